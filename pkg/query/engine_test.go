package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
)

// engines returns the engines as shipped (SQLite, PostgreSQL) and one on SQLite that never
// uses the rollup tables, so every counting check covers both paths. The first reads the
// cache whose search index is complete, the third the one where half the events still wait in
// the queue, so every search check covers both too.
func engines(f *fixture) map[string]*Engine {
	es := backends(f)
	es["sqlite-events-partial-index"] = NewEngine(f.partial.Reader(cache.ReadOptions{NoRollup: true}))
	return es
}

// tablesRead runs q over [rangeFrom, rangeTo] on the full cache and returns the tables its
// statements read, in order.
func tablesRead(t *testing.T, f *fixture, js string, iv time.Duration) string {
	t.Helper()
	var tables []string
	e := NewEngine(f.cache.Reader(cache.ReadOptions{Trace: func(table string) { tables = append(tables, table) }}))
	r := Request{Query: mustParse(t, js), From: rangeFrom, To: rangeTo, Interval: iv, MaxDataPoints: 100000}
	if _, err := e.Run(context.Background(), r, fresh); err != nil {
		t.Fatal(err)
	}
	return strings.Join(tables, ",")
}

var (
	rangeFrom = fixEnd.Add(-50*time.Hour - 13*time.Minute - 7*time.Second)
	rangeTo   = fixEnd.Add(-90 * time.Second)
	fresh     = Freshness{SyncedUpTo: fixEnd.Add(time.Hour)}
)

// filterCases are the filters every query type is checked with.
var filterCases = []string{
	`{}`,
	`{"actions":["Login"]}`,
	`{"actions":["Login","Reports"],"statuses":["FAILED","ACCESS_DENIED"]}`,
	`{"statuses":"SUCCESS"}`,
	`{"principals":["SOC-Pipeline","MetronLabs"]}`,
	`{"principalType":"user"}`,
	`{"principalType":"serviceAccount","actions":["TokenRefresh"]}`,
	`{"sourceIps":["203.0.113.0/24"]}`,
	`{"sourceIps":["10.0.0.0/8","2001:db8::/32"]}`,
	`{"sourceIps":["2001:db8::1:0:0:9"]}`,
	`{"sourceIps":["not-an-ip/0"]}`,
	`{"search":"zebra"}`,
	`{"search":"LOGIN"}`,
	`{"search":"\"quoted\""}`,
	`{"search":"python-requests"}`,
	`{"search":"weekly posture 1"}`,
	`{"search":"GLOBAL_ADMIN","principalType":"user"}`,
	`{"search":"Ünïcödé"}`,
	`{"search":"ünïcödé"}`, // the index folds non-ASCII case, the exact check does not
	`{"notActions":["Login","TokenRefresh"]}`,
	`{"actions":["Login"],"notStatuses":"SUCCESS"}`,
	`{"notPrincipals":["SOC-Pipeline","u-odd-2"],"principalType":"user"}`,
	`{"notSourceIps":["10.0.0.0/8","2001:db8::/32"]}`,
	`{"notSourceIps":["0.0.0.0/0","::/0"],"actions":["Login"]}`, // leaves the events without a source IP
	`{"sourceIps":["10.0.0.0/8"],"notSourceIps":["::ffff:10.1.2.3"]}`,
	`{"statuses":["FAILED"],"notSourceIps":["203.0.113.0/24","198.51.100.0/24"]}`,
	`{"notActions":["Login"],"search":"curl"}`,
	`{"adhocFilters":[{"key":"action","operator":"!=","value":"Login"},{"key":"status","operator":"=~","value":"FAIL.*|ACCESS_DENIED"}]}`,
	`{"adhocFilters":[{"key":"principal","operator":"=~","value":"(?i)soc-.*|metron.*"}]}`,
	`{"adhocFilters":[{"key":"principalType","operator":"=","value":"serviceAccount"},{"key":"action","operator":"!~","value":"Token.*"}]}`,
	`{"adhocFilters":[{"key":"sourceIp","operator":"=","value":"10.0.0.0/8"}]}`,
	`{"adhocFilters":[{"key":"sourceIp","operator":"!=","value":"::ffff:10.1.2.3"},{"key":"sourceIp","operator":"!~","value":"203\\..*"}]}`,
	`{"adhocFilters":[{"key":"sourceIp","operator":"=","value":"not-an-ip"}]}`,
	`{"adhocFilters":[{"key":"userAgent","operator":"=~","value":"curl/.*|python.*"},{"key":"principal","operator":"!=","value":"MetronLabs"}]}`,
	`{"adhocFilters":[{"key":"userAgent","operator":"=","value":""}]}`,
	`{"adhocFilters":[{"key":"action","operator":"=~","value":"ogin"}]}`, // anchored: matches nothing
}

func queryWith(t *testing.T, filter, extra string) Query {
	t.Helper()
	js := strings.TrimSuffix(filter, "}")
	if js != "{" && extra != "" {
		js += ","
	}
	return mustParse(t, js+extra+"}")
}

func TestLogsAndTableMatchModel(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range engines(f) {
		for _, fc := range filterCases {
			if strings.Contains(fc, "not-an-ip/0") {
				continue // a parse error, tested below
			}
			t.Run(name+"/"+fc, func(t *testing.T) { checkLogsAndTable(t, f, e, fc) })
		}
	}
}

func checkLogsAndTable(t *testing.T, f *fixture, e *Engine, fc string) {
	q := queryWith(t, fc, `"queryType":"table","limit":10000`)
	want := f.expected(&q, rangeFrom, rangeTo)
	frames, err := e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo, RefID: "A"}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	fr := frames[0]
	if fr.Rows() != len(want) {
		t.Fatalf("rows = %d, want %d", fr.Rows(), len(want))
	}
	for i := range want {
		if got := fr.Fields[1].At(i).(string); got != want[i].ID {
			t.Fatalf("row %d id = %s, want %s", i, got, want[i].ID)
		}
		if got := fr.Fields[0].At(i).(time.Time); !got.Equal(want[i].Timestamp) {
			t.Fatalf("row %d timestamp = %s, want %s", i, got, want[i].Timestamp)
		}
		if got := fr.Fields[10].At(i).(json.RawMessage); !bytes.Equal(got, want[i].ActionParameters) {
			t.Fatalf("row %d actionParameters = %s, want %s", i, got, want[i].ActionParameters)
		}
	}
	// logs: the same rows, capped at the limit.
	q.Type, q.Limit = TypeLogs, 25
	frames, err = e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo, RefID: "A"}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	fr = frames[0]
	if n := min(25, len(want)); fr.Rows() != n {
		t.Fatalf("logs rows = %d, want %d", fr.Rows(), n)
	}
	for i := 0; i < fr.Rows(); i++ {
		if got := fr.Fields[3].At(i).(string); got != want[i].ID {
			t.Fatalf("logs row %d id = %s, want %s", i, got, want[i].ID)
		}
	}
}

func TestLogLine(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			q := mustParse(t, `{"principals":["MetronLabs"]}`)
			frames, err := e.Run(context.Background(), Request{Query: q, From: fixEnd.Add(-6 * time.Hour), To: fixEnd}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			fr := frames[0]
			want := []struct{ body, sev, labels string }{
				{`Login SUCCESS by MetronLabs (service account) from 2001:db8::7`, "info",
					`{"action":"Login","status":"SUCCESS","principal":"MetronLabs","principalType":"serviceAccount","sourceIp":"2001:db8::7","userAgent":"curl/8.0","requestId":"req-odd-1"}`},
				{`Login FAILED by MetronLabs (service account) from ::ffff:10.1.2.3`, "error",
					`{"action":"Login","status":"FAILED","principal":"MetronLabs","principalType":"serviceAccount","sourceIp":"::ffff:10.1.2.3","userAgent":"Agent \"quoted\" \u003cb\u003e","requestId":"req-odd-2"}`},
			}
			if fr.Rows() != len(want) {
				t.Fatalf("rows = %d, want %d", fr.Rows(), len(want))
			}
			for i, w := range want {
				if got := fr.Fields[1].At(i); got != w.body {
					t.Errorf("body %d = %q, want %q", i, got, w.body)
				}
				if got := fr.Fields[2].At(i); got != w.sev {
					t.Errorf("severity %d = %q, want %q", i, got, w.sev)
				}
				if got := string(fr.Fields[4].At(i).(json.RawMessage)); got != w.labels {
					t.Errorf("labels %d = %s, want %s", i, got, w.labels)
				}
			}
			q = mustParse(t, `{"principalType":"user","statuses":["ACCESS_DENIED"],"actions":["UpdateUser"],"search":"odd-3"}`)
			frames, err = e.Run(context.Background(), Request{Query: q, From: fixEnd.Add(-6 * time.Hour), To: fixEnd}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			if got := frames[0].Fields[1].At(0); got != "UpdateUser ACCESS_DENIED by Robert'); DROP TABLE events;-- (user) from not-an-ip" {
				t.Errorf("body = %q", got)
			}
			if got := frames[0].Fields[2].At(0); got != "warning" {
				t.Errorf("severity = %q", got)
			}
		})
	}
}

// expectedBuckets counts the model's matches per bucket and group value.
func expectedBuckets(f *fixture, q *Query, from, to time.Time, iv time.Duration) (map[string]map[int64]float64, int64, int) {
	first := bucketStart(from, iv)
	n := int((bucketStart(to, iv)-first)/int64(iv)) + 1
	out := map[string]map[int64]float64{}
	for _, e := range f.expected(q, from, to) {
		v := ""
		if q.GroupBy != "" {
			v = fieldOf(&e, q.GroupBy)
		}
		if out[v] == nil {
			out[v] = map[int64]float64{}
		}
		out[v][(e.Timestamp.UnixNano()-first)/int64(iv)]++
	}
	return out, first, n
}

func TestTimeSeriesMatchesModel(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range engines(f) {
		for _, iv := range []time.Duration{time.Hour, 3 * time.Hour, 24 * time.Hour, 7 * time.Minute} {
			for _, gb := range append([]string{"", FieldLevel}, fieldNames...) {
				for _, fc := range filterCases {
					if strings.Contains(fc, "not-an-ip/0") {
						continue
					}
					extra := `"queryType":"timeseries"`
					if gb != "" {
						extra += `,"groupBy":"` + gb + `"`
					}
					q := queryWith(t, fc, extra)
					frames, err := e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo, Interval: iv, MaxDataPoints: 5000}, fresh)
					if err != nil {
						t.Fatalf("%s %s %s %s: %v", name, iv, gb, fc, err)
					}
					want, first, n := expectedBuckets(f, &q, rangeFrom, rangeTo, iv)
					got := map[string]map[int64]float64{}
					for _, fr := range frames {
						if len(fr.Fields) == 0 {
							continue
						}
						if fr.Rows() != n {
							t.Fatalf("%s %s %s %s: %d buckets, want %d", name, iv, gb, fc, fr.Rows(), n)
						}
						for i := 0; i < n; i++ {
							if ts := fr.Fields[0].At(i).(time.Time); ts.UnixNano() != first+int64(i)*int64(iv) {
								t.Fatalf("bucket %d at %s, want %s", i, ts, time.Unix(0, first+int64(i)*int64(iv)).UTC())
							}
						}
						v := fr.Fields[1].Labels[gb]
						if gb == "" && len(fr.Fields[1].Labels) != 0 {
							t.Fatalf("ungrouped series has labels %v", fr.Fields[1].Labels)
						}
						if gb != "" && fr.Fields[1].Config.DisplayNameFromDS != displayName(v) {
							t.Fatalf("series %q is displayed as %q", v, fr.Fields[1].Config.DisplayNameFromDS)
						}
						got[v] = map[int64]float64{}
						for i := 0; i < n; i++ {
							if c := fr.Fields[1].At(i).(float64); c != 0 {
								got[v][int64(i)] = c
							}
						}
					}
					if gb == "" && len(want) == 0 {
						want[""] = map[int64]float64{}
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("%s %s groupBy %q %s:\n got %v\nwant %v", name, iv, gb, fc, got, want)
					}
				}
			}
		}
	}
}

func TestTopMatchesModel(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range engines(f) {
		for _, gb := range fieldNames {
			for _, fc := range filterCases {
				if strings.Contains(fc, "not-an-ip/0") {
					continue
				}
				q := queryWith(t, fc, `"queryType":"top","limit":5,"groupBy":"`+gb+`"`)
				frames, err := e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo}, fresh)
				if err != nil {
					t.Fatal(err)
				}
				counts := map[string]int64{}
				for _, e := range f.expected(&q, rangeFrom, rangeTo) {
					if v := fieldOf(&e, gb); v != "" {
						counts[v]++
					}
				}
				type vc struct {
					v string
					c int64
				}
				var want []vc
				for v, c := range counts {
					want = append(want, vc{v, c})
				}
				sort.Slice(want, func(i, j int) bool {
					if want[i].c != want[j].c {
						return want[i].c > want[j].c
					}
					return want[i].v < want[j].v
				})
				if len(want) > 5 {
					want = want[:5]
				}
				var got []vc
				fr := frames[0]
				for i := 0; i < fr.Rows(); i++ {
					got = append(got, vc{fr.Fields[0].At(i).(string), fr.Fields[1].At(i).(int64)})
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s top %s %s:\n got %v\nwant %v", name, gb, fc, got, want)
				}
			}
		}
	}
}

func TestValuesMatchModel(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	cases := []string{`{}`, `{"principalType":"serviceAccount"}`, `{"actions":["Login"],"statuses":["FAILED"]}`,
		`{"sourceIps":["10.0.0.0/8"]}`, `{"search":"curl"}`, `{"principals":["MetronLabs"]}`,
		`{"notActions":["Login"],"notStatuses":["SUCCESS"]}`, `{"notPrincipals":["MetronLabs"]}`,
		`{"notSourceIps":["10.0.0.0/8"],"sourceIps":["10.0.0.0/8","2001:db8::/32"]}`,
		`{"adhocFilters":[{"key":"action","operator":"!~","value":"Log.*"},{"key":"sourceIp","operator":"!=","value":"10.0.0.0/8"}]}`}
	for name, e := range engines(f) {
		for _, field := range fieldNames {
			for _, fc := range cases {
				q := queryWith(t, fc, `"queryType":"values","field":"`+field+`"`)
				// The model: every entry, any time, matching the filters other than field's own.
				mq := q
				switch field {
				case FieldAction:
					mq.Actions = nil
				case FieldStatus:
					mq.Statuses = nil
				case FieldPrincipal:
					mq.Principals = nil
				case FieldPrincipalType:
					mq.PrincipalType = ""
				case FieldSourceIP:
					mq.SourceIPs = nil
				}
				set := map[string]bool{}
				for i := range f.entries {
					if v := fieldOf(&f.entries[i], field); v != "" && matches(&f.entries[i], &mq) {
						set[v] = true
					}
				}
				var want []string
				for v := range set {
					want = append(want, v)
				}
				sort.Strings(want)
				frames, err := e.Run(context.Background(), Request{Query: q}, fresh)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for i := 0; i < frames[0].Rows(); i++ {
					got = append(got, frames[0].Fields[0].At(i).(string))
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
					t.Fatalf("%s values %s %s:\n got %q\nwant %q", name, field, fc, got, want)
				}
			}
		}
		// The resource form: prefix (case-insensitive) and limit.
		got, err := e.Values(context.Background(), FieldPrincipal, "so", 10, Query{PrincipalType: "serviceAccount"})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[SOC-Pipeline]" {
			t.Errorf("%s: Values(principal, so) = %q", name, got)
		}
		got, err = e.Values(context.Background(), FieldAction, "", 2, Query{})
		if err != nil || len(got) != 2 {
			t.Errorf("%s: Values(action, limit 2) = %q, %v", name, got, err)
		}
		if _, err := e.Values(context.Background(), "nope", "", 2, Query{}); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: Values(nope) error = %v", name, err)
		}
	}
}

// The rollup tiers are what the counting checks above exercise: make sure they are chosen.
func TestRollupPlan(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	cases := []struct {
		js   string
		iv   time.Duration
		want string
	}{
		{`{"queryType":"timeseries","groupBy":"action"}`, time.Hour, "rollup_hourly_kind,events,events"},
		{`{"queryType":"timeseries","groupBy":"principal"}`, time.Hour, "rollup_hourly,events,events"},
		{`{"queryType":"timeseries","groupBy":"principal"}`, 24 * time.Hour, "rollup_hourly,rollup_daily,rollup_hourly,events,events"},
		{`{"queryType":"top","groupBy":"principal"}`, 0, "rollup_hourly,rollup_daily,rollup_hourly,events,events"},
		{`{"queryType":"top","groupBy":"status","principals":["x"]}`, 0, "rollup_hourly,rollup_daily,rollup_hourly,events,events"},
		{`{"queryType":"top","groupBy":"sourceIp"}`, 0, "events"},
		{`{"queryType":"top","groupBy":"action","search":"x"}`, 0, "events"},
		{`{"queryType":"timeseries"}`, 7 * time.Minute, "events"},
		{`{"queryType":"values","field":"sourceIp","sourceIps":["10.0.0.0/8"]}`, 0, "rollup_values"},
		{`{"queryType":"values","field":"action","statuses":["FAILED"]}`, 0, "rollup_hourly_kind"},
		{`{"queryType":"values","field":"principal"}`, 0, "rollup_daily"},
		{`{"queryType":"values","field":"action","search":"zebra"}`, 0, "events_search,events"},
	}
	for _, c := range cases {
		if got := tablesRead(t, f, c.js, c.iv); got != c.want {
			t.Errorf("%s / %s: %s, want %s", c.js, c.iv, got, c.want)
		}
	}
}

// Negation pinned on the hand-made events, so that the model checks above cannot agree on a
// wrong reading: no source IP is never excluded; a mapped address is in its IPv4 prefix.
func TestNegationOddities(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range engines(f) {
		ids := func(js string) string {
			q := mustParse(t, js)
			frames, err := e.Run(context.Background(), Request{Query: q, From: fixEnd.Add(-7 * time.Hour), To: fixEnd}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for i := 0; i < frames[0].Rows(); i++ {
				if id := frames[0].Fields[3].At(i).(string); strings.HasPrefix(id, "odd-") {
					out = append(out, id)
				}
			}
			return strings.Join(out, ",")
		}
		for js, want := range map[string]string{
			`{"notSourceIps":["0.0.0.0/0","::/0"]}`:                          "odd-3,odd-6",
			`{"notSourceIps":["10.0.0.0/8"],"principals":["MetronLabs"]}`:    "odd-1",
			`{"notSourceIps":["::ffff:10.0.0.0/104"],"actions":["Login"]}`:   "odd-1,odd-6",
			`{"notPrincipals":["u-odd-6","MetronLabs"],"actions":["Login"]}`: "odd-5",
		} {
			if got := ids(js); got != want {
				t.Errorf("%s: %s: odd events %s, want %s", name, js, got, want)
			}
		}
	}
}

// Explore's logs volume: one series per level, labelled level, whichever path counts.
func TestLevelSeries(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range engines(f) {
		q := mustParse(t, `{"queryType":"timeseries","groupBy":"level"}`)
		frames, err := e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo, Interval: time.Hour}, fresh)
		if err != nil {
			t.Fatal(err)
		}
		var levels []string
		for _, fr := range frames {
			levels = append(levels, fr.Fields[1].Labels["level"]+"="+fr.Fields[1].Config.DisplayNameFromDS)
		}
		sort.Strings(levels)
		if got := strings.Join(levels, " "); got != "error=error info=info warning=warning" {
			t.Errorf("%s: series %s", name, got)
		}
	}
}
