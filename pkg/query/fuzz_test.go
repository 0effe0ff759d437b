package query

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: any JSON (or not-JSON) a panel, a provisioning file or an API caller sends either
// parses into a query whose every field is within the query model (docs/query-model.md), or is refused with a user
// error that names the problem. Never a panic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `[]`, `"logs"`, `{"queryType":"logs","limit":1000}`,
		`{"queryType":"timeseries","groupBy":"action","statuses":["FAILED","ACCESS_DENIED"]}`,
		`{"queryType":"top","groupBy":"sourceIp","limit":1000}`, `{"queryType":"top","limit":1001}`,
		`{"queryType":"values","field":"principal","principalType":"serviceAccount"}`,
		`{"queryType":"table","sourceIps":["203.0.113.7","10.0.0.0/8","::1","2001:db8::/32"]}`,
		`{"sourceIps":["10.0.0.0/33"]}`, `{"sourceIps":"1.2.3.4"}`, `{"principalType":"robot"}`,
		`{"groupBy":"password"}`, `{"limit":-1}`, `{"limit":"10"}`, `{"limit":1e309}`, `{"actions":[1,2]}`,
		`{"search":"' OR 1=1; DROP TABLE events; --"}`, `{"search":"\u0000\uffff"}`, `{"queryType":"LOGS"}`,
		`{"actions":["a"],"actions":["b"]}`, `{"refId":"A","datasource":{"uid":"x"},"queryType":"logs"}`,
		`{"notActions":["Login"],"notStatuses":"SUCCESS","notPrincipals":["x"],"notSourceIps":["10.0.0.0/8","::ffff:10.0.0.0/104"]}`,
		`{"adhocFilters":[{"key":"sourceIp","operator":"!=","value":"10.0.0.0/8"},{"key":"userAgent","operator":"=~","value":"curl.*"}]}`,
		`{"adhocFilters":[{"key":"action","operator":"!~","value":"(a"}]}`, `{"adhocFilters":[{"key":"x","operator":"=","value":""}]}`,
		`{"queryType":"newTerms","fields":["principal","sourceIp"],"lookback":"30d","limit":10000}`,
		`{"queryType":"newTerms","fields":"action","lookback":"8760h"}`, `{"queryType":"newTerms","fields":["a","b","c","d"],"lookback":"1e9d"}`,
		`{"queryType":"timeseries","groupBy":"level"}`, `{"queryType":"top","groupBy":"level"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("error %v is not a user error", err)
			}
			if msg := err.Error(); msg == "" || len(msg) > 4096 {
				t.Fatalf("error message of %d bytes", len(msg))
			}
			return
		}
		if !slices.Contains(queryTypes, q.Type) {
			t.Fatalf("query type %q", q.Type)
		}
		if q.GroupBy != "" && fieldColumns[q.GroupBy] == "" && (q.GroupBy != FieldLevel || q.Type != TypeTimeSeries) {
			t.Fatalf("groupBy %q", q.GroupBy)
		}
		if q.Field != "" && fieldColumns[q.Field] == "" {
			t.Fatalf("field %q", q.Field)
		}
		if q.PrincipalType != "" && q.PrincipalType != "user" && q.PrincipalType != "serviceAccount" {
			t.Fatalf("principalType %q", q.PrincipalType)
		}
		if q.Limit < 0 || q.Limit > MaxValuesLimit {
			t.Fatalf("limit %d", q.Limit)
		}
		if q.Type == TypeNewTerms && (len(q.Fields) < 1 || len(q.Fields) > MaxTermsFields || q.Lookback <= 0 || q.Lookback > MaxLookback) {
			t.Fatalf("newTerms fields %q lookback %s", q.Fields, q.Lookback)
		}
		for _, f := range q.Fields {
			if fieldColumns[f] == "" {
				t.Fatalf("field %q", f)
			}
		}
		for _, a := range q.Adhoc {
			if fieldColumns[a.Key] == "" || !slices.Contains(adhocOperators, a.Operator) {
				t.Fatalf("ad-hoc filter %+v", a)
			}
			if strings.Contains(a.Operator, "~") && utf8.RuneCountInString(a.Value) > MaxRegexLen {
				t.Fatalf("regex of %d characters", utf8.RuneCountInString(a.Value))
			}
		}
		for _, list := range [][]string{q.Actions, q.Statuses, q.Principals, q.SourceIPs, q.NotActions, q.NotStatuses, q.NotPrincipals, q.NotSourceIPs} {
			if len(list) > MaxListLen {
				t.Fatalf("list of %d entries", len(list))
			}
		}
		for _, ip := range append(slices.Clone(q.SourceIPs), q.NotSourceIPs...) {
			if _, err := netip.ParsePrefix(ip); err != nil {
				if _, err := netip.ParseAddr(ip); err != nil && !strings.HasPrefix(ip, "$") {
					t.Fatalf("source IP %q accepted", ip)
				}
			}
		}
		if _, err := json.Marshal(q); err != nil {
			t.Fatal(err)
		}
	})
}
