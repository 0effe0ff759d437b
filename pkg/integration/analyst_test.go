package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// One request mixing the analyst's queries (negation, ad-hoc filters, new terms, the level
// series) with bad ones: each bad query gets its own error naming the field, the others answer.
func TestAnalystQueriesThroughThePlugin(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 13, Events: 600, Span: 2 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-3 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the backfill", 60*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })

	good := map[string]string{
		"negation":   `{"queryType":"table","notActions":["Login"],"notSourceIps":["10.0.0.0/8","::ffff:10.0.0.0/104"],"limit":10000}`,
		"adhoc":      `{"queryType":"top","groupBy":"action","adhocFilters":[{"key":"status","operator":"=~","value":"FAILED|ACCESS_DENIED"},{"key":"sourceIp","operator":"!=","value":"192.0.2.0/24"}]}`,
		"newTerms":   `{"queryType":"newTerms","fields":["principal","sourceIp"],"lookback":"1h"}`,
		"levels":     `{"queryType":"timeseries","groupBy":"level"}`,
		"everything": `{"queryType":"table","limit":10000}`,
	}
	bad := map[string]struct{ js, want string }{
		"key":      {`{"adhocFilters":[{"key":"password","operator":"=","value":"x"}]}`, `adhocFilters[0]: unknown key "password"`},
		"operator": {`{"adhocFilters":[{"key":"action","operator":"<>","value":"x"}]}`, `adhocFilters[0] (action): unknown operator "<>"`},
		"regex":    {`{"adhocFilters":[{"key":"userAgent","operator":"=~","value":"(curl"}]}`, `adhocFilters[0] (userAgent): "(curl" is not a valid regular expression`},
		"long":     {`{"adhocFilters":[{"key":"action","operator":"!~","value":"` + strings.Repeat("x", 300) + `"}]}`, "adhocFilters[0] (action): the regular expression has 300 characters: at most 256"},
		"fields":   {`{"queryType":"newTerms","fields":["action","status","principal","sourceIp"]}`, "a newTerms query takes 1 to 3 fields, not 4"},
		"lookback": {`{"queryType":"newTerms","fields":["sourceIp"],"lookback":"400d"}`, "lookback 400d is out of range"},
	}
	req := pluginharness.QueryRequest{}
	add := func(refID, js string) {
		req.Queries = append(req.Queries, backend.DataQuery{RefID: refID, JSON: json.RawMessage(js),
			TimeRange: backend.TimeRange{From: now.Add(-90 * time.Minute), To: now}, Interval: time.Minute, MaxDataPoints: 1000})
	}
	for ref, js := range good {
		add(ref, js)
	}
	for ref, b := range bad {
		add(ref, b.js)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.plugin.QueryData(ctx, e.ds, req)
	if err != nil {
		t.Fatal(err)
	}
	for ref := range good {
		r := res.Responses[ref]
		if r.Error != nil || len(r.Frames) == 0 {
			t.Errorf("%s: %v, %d frames", ref, r.Error, len(r.Frames))
		}
	}
	for ref, b := range bad {
		r := res.Responses[ref]
		if r.Error == nil || r.Status != backend.StatusBadRequest || !strings.Contains(r.Error.Error(), b.want) {
			t.Errorf("%s: status %d, error %v; want 400 with %q", ref, r.Status, r.Error, b.want)
		}
	}

	// The negation through the binary: no Login, no address in 10.0.0.0/8 (mapped ones too),
	// and events without a source IP kept.
	all, neg := res.Responses["everything"].Frames[0], res.Responses["negation"].Frames[0]
	action, ip := fieldIndex(t, all, "action"), fieldIndex(t, all, "sourceIp")
	want := 0
	for i := 0; i < all.Rows(); i++ {
		a, s := all.Fields[action].At(i).(string), all.Fields[ip].At(i).(string)
		if a != "Login" && !strings.HasPrefix(s, "10.") && !strings.HasPrefix(s, "::ffff:10.") {
			want++
		}
	}
	if neg.Rows() != want || want == 0 {
		t.Errorf("negation: %d rows, want %d", neg.Rows(), want)
	}

	// An alert rule's newTerms: one numeric-long frame of string columns and the count.
	alert := map[string]string{backend.FromAlertHeaderName: "true"}
	r := e.query(alert, now.Add(-30*time.Minute), now, map[string]any{"queryType": "newTerms", "fields": []string{"principal", "sourceIp"}, "lookback": "1h"})
	if r.Error != nil || len(r.Frames) != 1 || r.Frames[0].Meta == nil || r.Frames[0].Meta.Type != data.FrameTypeNumericLong ||
		len(r.Frames[0].Fields) != 3 || r.Frames[0].Fields[2].Name != "count" {
		t.Errorf("alert newTerms: %v %+v", r.Error, r.Frames)
	}
}
