package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		js        string
		typ       string
		limit     int
		field     string
		principal []string
	}{
		{``, TypeLogs, 1000, "", nil},
		{`{}`, TypeLogs, 1000, "", nil},
		{`{"refId":"A","datasource":{"uid":"x"},"hide":false}`, TypeLogs, 1000, "", nil},
		{`{"queryType":"table","limit":10000}`, TypeTable, 10000, "", nil},
		{`{"queryType":"top","groupBy":"principal"}`, TypeTop, 10, "", nil},
		{`{"queryType":"top","groupBy":"action","limit":"25"}`, TypeTop, 25, "", nil},
		{`{"queryType":"values","field":"sourceIp"}`, TypeValues, 1000, "sourceIp", nil},
		{`{"queryType":"values","groupBy":"status"}`, TypeValues, 1000, "status", nil},
		{`{"queryType":"timeseries"}`, TypeTimeSeries, 0, "", nil},
		{`{"queryType":"newTerms","fields":["principal","sourceIp"]}`, TypeNewTerms, 100, "", nil},
		{`{"principals":"ana.berg"}`, TypeLogs, 1000, "", []string{"ana.berg"}},
		{`{"principals":["a","","a","b"],"limit":null}`, TypeLogs, 1000, "", []string{"a", "b"}},
	}
	for _, c := range cases {
		q, err := Parse(json.RawMessage(c.js))
		if err != nil {
			t.Errorf("Parse(%s): %v", c.js, err)
			continue
		}
		if q.Type != c.typ || q.Limit != c.limit || q.Field != c.field || strings.Join(q.Principals, "|") != strings.Join(c.principal, "|") {
			t.Errorf("Parse(%s) = %+v", c.js, q)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ js, field, msg string }{
		{`{`, "", "not valid JSON"},
		{`[1,2]`, "", "not valid JSON"},
		{`{"queryType":"graph"}`, "queryType", `unknown queryType "graph": use one of logs, table, timeseries, top, values`},
		{`{"queryType":"top","groupBy":"foo"}`, "groupBy", `unknown groupBy "foo": use one of action, status, principal, principalType, sourceIp, userAgent`},
		{`{"queryType":"top"}`, "groupBy", "needs groupBy"},
		{`{"queryType":"values","field":"ts"}`, "field", `unknown field "ts"`},
		{`{"queryType":"values"}`, "field", "needs field"},
		{`{"principalType":"robot"}`, "principalType", `unknown principalType "robot"`},
		{`{"sourceIps":["10.0.0.0/33"]}`, "sourceIps", `"10.0.0.0/33" is neither an IP address nor a CIDR prefix`},
		{`{"sourceIps":["10.0.0.300"]}`, "sourceIps", `"10.0.0.300"`},
		{`{"notSourceIps":["10.0.0.0/33"]}`, "notSourceIps", `notSourceIps: "10.0.0.0/33" is neither`},
		{`{"notActions":[1]}`, "notActions", "notActions must be a list of strings"},
		{`{"adhocFilters":[{"key":"password","operator":"=","value":"x"}]}`, "adhocFilters", `adhocFilters[0]: unknown key "password"`},
		{`{"adhocFilters":[{"key":"action","operator":"=","value":"x"},{"key":"status","operator":"<","value":"x"}]}`, "adhocFilters", `adhocFilters[1] (status): unknown operator "<"`},
		{`{"adhocFilters":[{"key":"userAgent","operator":"=~","value":"curl(("}]}`, "adhocFilters", `adhocFilters[0] (userAgent): "curl((" is not a valid regular expression`},
		{`{"adhocFilters":[{"key":"action","operator":"!~","value":"` + strings.Repeat("a", 257) + `"}]}`, "adhocFilters", "the regular expression has 257 characters: at most 256"},
		{`{"adhocFilters":{"key":"action"}}`, "adhocFilters", "adhocFilters must be a list"},
		{`{"queryType":"top","groupBy":"level"}`, "groupBy", "groupBy level is for timeseries queries only"},
		{`{"queryType":"newTerms"}`, "fields", "a newTerms query takes 1 to 3 fields, not 0"},
		{`{"queryType":"newTerms","fields":["action","status","principal","sourceIp"]}`, "fields", "a newTerms query takes 1 to 3 fields, not 4"},
		{`{"queryType":"newTerms","fields":["principal","ts"]}`, "fields", `unknown field "ts" in fields`},
		{`{"queryType":"newTerms","fields":"sourceIp","lookback":"400d"}`, "lookback", "lookback 400d is out of range"},
		{`{"queryType":"newTerms","fields":"sourceIp","lookback":"-1h"}`, "lookback", "lookback -1h0m0s is out of range"},
		{`{"queryType":"newTerms","fields":"sourceIp","lookback":"a month"}`, "lookback", `lookback "a month" is neither`},
		{`{"queryType":"newTerms","fields":"sourceIp","lookback":30}`, "lookback", "lookback has the wrong type"},
		{`{"sourceIps":["fe80::1::2"]}`, "sourceIps", `"fe80::1::2"`},
		{`{"sourceIps":[""," x "]}`, "sourceIps", `" x "`},
		{`{"limit":0.5}`, "limit", "whole number"},
		{`{"limit":"ten"}`, "limit", "whole number"},
		{`{"limit":10001}`, "limit", "limit 10001 is out of range: logs queries take 1 to 10000"},
		{`{"queryType":"table","limit":-1}`, "limit", "out of range"},
		{`{"queryType":"top","groupBy":"action","limit":1001}`, "limit", "top queries take 1 to 1000"},
		{`{"queryType":"values","field":"action","limit":10001}`, "limit", "out of range"},
		{`{"queryType":"timeseries","limit":1001}`, "limit", "out of range"},
		{`{"actions":{"a":1}}`, "actions", "actions"},
		{`{"search":42}`, "search", "search"},
		{`{"principals":` + manyStrings(1001) + `}`, "principals", "at most 1000"},
	}
	for _, c := range cases {
		_, err := Parse(json.RawMessage(c.js))
		var qe *Error
		if !errors.As(err, &qe) || !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("Parse(%.60s) error = %v, want a *query.Error", c.js, err)
			continue
		}
		if qe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Parse(%.60s) = field %q, %q; want field %q, containing %q", c.js, qe.Field, err, c.field, c.msg)
		}
	}
}

func manyStrings(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf(`"p%d"`, i)
	}
	return "[" + strings.Join(s, ",") + "]"
}

// Hostile input is data, never SQL: metacharacters and 100 KB strings in every filter run fine
// and match nothing (or exactly what the model says).
func TestHostileInput(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			long := strings.Repeat("' OR 1=1; DROP TABLE events; -- %_\\\"", 100*1024/36)
			meta := []string{`'`, `"`, `%`, `_`, `\`, `' OR '1'='1`, `); DROP TABLE events;--`, "\x00", `*`, `?`, `$1`, long}
			for _, m := range meta {
				mj, _ := json.Marshal(m)
				ms := string(mj)
				for _, js := range []string{
					`{"actions":[` + ms + `]}`, `{"statuses":[` + ms + `,"SUCCESS"]}`, `{"principals":[` + ms + `]}`,
					`{"search":` + ms + `}`, `{"actions":[` + ms + `],"search":` + ms + `}`,
				} {
					for _, typ := range []string{TypeLogs, TypeTable, TypeTimeSeries, TypeTop, TypeValues} {
						q := queryWith(t, js, `"queryType":"`+typ+`","groupBy":"principal","field":"action"`)
						frames, err := e.Run(context.Background(), Request{Query: q, From: rangeFrom, To: rangeTo, Interval: time.Hour}, fresh)
						if err != nil {
							t.Fatalf("%s %.80s: %v", typ, js, err)
						}
						if typ == TypeLogs {
							if want := len(f.expected(&q, rangeFrom, rangeTo)); frames[0].Rows() != min(want, 1000) {
								t.Fatalf("%.80s: %d rows, want %d", js, frames[0].Rows(), want)
							}
						}
					}
				}
			}
			// A hostile value in the principalType, groupBy or field position is refused by name.
			for _, js := range []string{`{"principalType":"user' OR 1=1"}`, `{"queryType":"top","groupBy":"action; DROP TABLE events"}`,
				`{"queryType":"values","field":` + mustJSON(long) + `}`} {
				if _, err := Parse(json.RawMessage(js)); !errors.Is(err, ErrInvalidQuery) || len(err.Error()) > 300 {
					t.Errorf("Parse(%.60s) = %.300v", js, err)
				}
			}
			// The table is still there.
			var n int
			if err := f.cache.ReadDB().QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != len(f.entries) {
				t.Fatalf("events: %d, %v", n, err)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBadRangeIsUserError(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			_, err := e.Run(context.Background(), Request{Query: mustParse(t, `{}`), From: fixEnd, To: fixEnd.Add(-time.Hour)}, fresh)
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("reversed range: %v", err)
			}
		})
	}
}

// Frame shapes, field by field: names, types, metadata.
func TestFrameShapes(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			type fieldShape struct {
				name string
				typ  data.FieldType
			}
			cases := []struct {
				js     string
				fields []fieldShape
				meta   data.FrameMeta
			}{
				{`{"queryType":"logs"}`, []fieldShape{{"timestamp", data.FieldTypeTime}, {"body", data.FieldTypeString},
					{"severity", data.FieldTypeString}, {"id", data.FieldTypeString}, {"labels", data.FieldTypeJSON}},
					data.FrameMeta{Type: data.FrameTypeLogLines, PreferredVisualization: data.VisTypeLogs}},
				{`{"queryType":"table"}`, []fieldShape{{"timestamp", data.FieldTypeTime}, {"id", data.FieldTypeString},
					{"action", data.FieldTypeString}, {"status", data.FieldTypeString}, {"principal", data.FieldTypeString},
					{"principalId", data.FieldTypeString}, {"principalType", data.FieldTypeString}, {"sourceIp", data.FieldTypeString},
					{"userAgent", data.FieldTypeString}, {"requestId", data.FieldTypeString}, {"actionParameters", data.FieldTypeJSON}},
					data.FrameMeta{Type: data.FrameTypeTable, PreferredVisualization: data.VisTypeTable}},
				{`{"queryType":"timeseries","groupBy":"status"}`, []fieldShape{{"time", data.FieldTypeTime}, {"count", data.FieldTypeFloat64}},
					data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}},
				{`{"queryType":"top","groupBy":"status"}`, []fieldShape{{"value", data.FieldTypeString}, {"count", data.FieldTypeInt64}},
					data.FrameMeta{Type: data.FrameTypeTable}},
				{`{"queryType":"values","field":"status"}`, []fieldShape{{"value", data.FieldTypeString}},
					data.FrameMeta{Type: data.FrameTypeTable}},
			}
			for _, c := range cases {
				frames, err := e.Run(context.Background(), Request{Query: mustParse(t, c.js), From: rangeFrom, To: rangeTo, RefID: "B",
					Interval: time.Hour}, fresh)
				if err != nil {
					t.Fatal(err)
				}
				for _, fr := range frames {
					if fr.RefID != "B" {
						t.Errorf("%s: refId %q", c.js, fr.RefID)
					}
					if len(fr.Fields) != len(c.fields) {
						t.Fatalf("%s: %d fields, want %d", c.js, len(fr.Fields), len(c.fields))
					}
					for i, fs := range c.fields {
						if fr.Fields[i].Name != fs.name || fr.Fields[i].Type() != fs.typ {
							t.Errorf("%s: field %d = %s %s, want %s %s", c.js, i, fr.Fields[i].Name, fr.Fields[i].Type(), fs.name, fs.typ)
						}
					}
					if fr.Meta == nil || fr.Meta.Type != c.meta.Type || fr.Meta.TypeVersion != c.meta.TypeVersion ||
						fr.Meta.PreferredVisualization != c.meta.PreferredVisualization {
						t.Errorf("%s: meta %+v", c.js, fr.Meta)
					}
					if _, err := fr.MarshalJSON(); err != nil {
						t.Errorf("%s: %v", c.js, err)
					}
				}
				if strings.Contains(c.js, "timeseries") {
					if len(frames) != 3 || frames[0].Fields[1].Labels["status"] != "SUCCESS" {
						t.Errorf("series: %d, first labels %v", len(frames), frames[0].Fields[1].Labels)
					}
				}
			}
			// An ungrouped series over an empty range is one series of zeros, usable by alert rules.
			frames, err := e.Run(context.Background(), Request{Query: mustParse(t, `{"queryType":"timeseries","actions":["Nope"]}`),
				From: fixEnd.Add(-time.Hour), To: fixEnd, Interval: time.Minute}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 1 || frames[0].Rows() != 61 || frames[0].Fields[1].At(60).(float64) != 0 {
				t.Fatalf("empty series: %d frames, %d rows", len(frames), frames[0].Rows())
			}
			// Grouped and empty: one frame with the type and no fields.
			frames, err = e.Run(context.Background(), Request{Query: mustParse(t, `{"queryType":"timeseries","groupBy":"action","actions":["Nope"]}`),
				From: fixEnd.Add(-time.Hour), To: fixEnd}, fresh)
			if err != nil || len(frames) != 1 || len(frames[0].Fields) != 0 || frames[0].Meta.Type != data.FrameTypeTimeSeriesMulti {
				t.Fatalf("empty grouped series: %v, %v", frames, err)
			}
		})
	}
}

func TestBucketInterval(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		span, req time.Duration
		mdp       int64
		want      time.Duration
	}{
		{30 * 24 * time.Hour, time.Hour, 1000, time.Hour},              // 721 buckets
		{30 * 24 * time.Hour, time.Minute, 1000, time.Hour},            // 43,201 > 1000: derived
		{30 * 24 * time.Hour, 0, 0, 5 * time.Minute},                   // the hard cap alone
		{time.Hour, 0, 100, time.Minute},                               // 61 buckets
		{time.Hour, 100 * time.Millisecond, 0, time.Second},            // the floor
		{10 * 365 * 24 * time.Hour, 0, 100, 60 * 24 * time.Hour},       // beyond the table
		{24 * time.Hour, 90 * time.Minute, 1000, 90 * time.Minute},     // an odd but valid request
		{2 * time.Hour, 7 * time.Minute, 1000, 7 * time.Minute},        // kept as asked
		{24 * time.Hour, time.Minute, 100, 15 * time.Minute},           // 1441 > 100: derived
		{24*time.Hour - time.Nanosecond, time.Hour, 24, time.Hour},     // exactly 24 buckets
		{24 * time.Hour, time.Hour, 24, 2 * time.Hour},                 // 25 would be one too many
		{7 * 24 * time.Hour, 30 * time.Second, 11000, 2 * time.Minute}, // 20,161 > MaxBuckets
	}
	for _, c := range cases {
		got := BucketInterval(from, from.Add(c.span), c.req, c.mdp)
		if got != c.want {
			t.Errorf("BucketInterval(%s, %s, %d) = %s, want %s", c.span, c.req, c.mdp, got, c.want)
		}
		limit := int64(MaxBuckets)
		if c.mdp > 0 && c.mdp < limit {
			limit = c.mdp
		}
		if n := buckets(from, from.Add(c.span), got); n > limit {
			t.Errorf("BucketInterval(%s, %s, %d): %d buckets", c.span, c.req, c.mdp, n)
		}
	}
}

func TestNotices(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	synced := now.Add(-time.Minute)
	logs := &Query{Type: TypeLogs}
	vals := &Query{Type: TypeValues}
	r := Request{From: now.Add(-24 * time.Hour), To: now}
	cases := []struct {
		name string
		q    *Query
		r    Request
		f    Freshness
		want []string // severity: text fragment
	}{
		{"fresh, range in the past", logs, Request{From: now.Add(-48 * time.Hour), To: now.Add(-24 * time.Hour)}, Freshness{SyncedUpTo: synced}, nil},
		{"normal lag", logs, r, Freshness{SyncedUpTo: synced}, []string{"Info: the cache is synced up to 2026-06-10T11:59:00Z; newer events are not shown yet"}},
		{"stale", logs, r, Freshness{SyncedUpTo: now.Add(-time.Hour)}, []string{"Warning: the cache is synced up to 2026-06-10T11:00:00Z"}},
		{"never synced", logs, r, Freshness{}, []string{"Warning: the cache has not completed its first sync"}},
		{"backfill running", logs, r, Freshness{SyncedUpTo: synced, BackfillFrom: now.Add(-2 * time.Hour)},
			[]string{"Info: the cache is synced", "Warning: the backfill has covered events from 2026-06-10T10:00:00Z on so far"}},
		{"backfill done", logs, Request{From: now.Add(-72 * time.Hour), To: now.Add(-48 * time.Hour)},
			Freshness{SyncedUpTo: synced, BackfillFrom: now.Add(-50 * time.Hour), BackfillDone: true},
			[]string{"Info: the cache holds events from 2026-06-08T10:00:00Z on"}},
		{"backfill covers the range", logs, r, Freshness{SyncedUpTo: now.Add(time.Minute), BackfillFrom: now.Add(-30 * time.Hour)}, nil},
		{"sync failing", logs, r, Freshness{SyncedUpTo: now.Add(time.Minute), SyncError: "authentication failed: 401"},
			[]string{"Warning: syncing with Wiz is failing (authentication failed: 401)"}},
		{"values: no range notices", vals, r, Freshness{SyncedUpTo: now.Add(-time.Hour), BackfillFrom: now}, nil},
		{"values: sync failing", vals, r, Freshness{SyncedUpTo: synced, SyncError: "boom"}, []string{"Warning: syncing with Wiz is failing (boom)"}},
	}
	for _, c := range cases {
		got := Notices(c.q, c.r, c.f, now)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d notices %v, want %d", c.name, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			sev, text, _ := strings.Cut(w, ": ")
			if !strings.EqualFold(got[i].Severity.String(), sev) || !strings.Contains(got[i].Text, text) {
				t.Errorf("%s: notice %d = %s %q, want %s %q", c.name, i, got[i].Severity, got[i].Text, sev, text)
			}
		}
	}
	// Run attaches them to the first frame.
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			frames, err := e.Run(context.Background(), Request{Query: mustParse(t, `{"queryType":"timeseries","groupBy":"status"}`),
				From: fixEnd.Add(-2 * time.Hour), To: fixEnd}, Freshness{SyncedUpTo: fixEnd.Add(-time.Hour), SyncError: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if len(frames[0].Meta.Notices) != 2 || len(frames[1].Meta.Notices) != 0 {
				t.Fatalf("notices: %v / %v", frames[0].Meta.Notices, frames[1].Meta.Notices)
			}
		})
	}
}

// The limits table and the code agree: every query type has its row and no other, and Parse
// applies each row's default and maximum.
func TestLimitsTable(t *testing.T) {
	t.Parallel()
	var keys []string
	for k := range Limits {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Clone(queryTypes)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("limits.json has %v, the query types are %v", keys, want)
	}
	extra := map[string]string{TypeTop: `,"groupBy":"action"`, TypeValues: `,"field":"action"`, TypeNewTerms: `,"fields":"action"`}
	for typ, l := range Limits {
		js := func(limit int) string {
			return fmt.Sprintf(`{"queryType":%q,"limit":%d%s}`, typ, limit, extra[typ])
		}
		q, err := Parse(json.RawMessage(js(0)))
		if err != nil || q.Limit != l.Default {
			t.Errorf("%s: default limit %d, %v; want %d", typ, q.Limit, err, l.Default)
		}
		if q, err := Parse(json.RawMessage(js(l.Max))); err != nil || q.Limit != l.Max {
			t.Errorf("%s: limit %d refused: %v", typ, l.Max, err)
		}
		if _, err := Parse(json.RawMessage(js(l.Max + 1))); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: limit %d accepted", typ, l.Max+1)
		}
	}
}
