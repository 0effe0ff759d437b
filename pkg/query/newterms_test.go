package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/cache"
)

// expectedTerms is the model of a newTerms query: the combinations of q.Fields among the
// matching events of [from, to] that no matching event of [from - lookback, from) has.
func expectedTerms(f *fixture, q *Query, from, to time.Time) []string {
	type agg struct {
		first time.Time
		n     int64
	}
	seenBefore := map[string]bool{}
	in := map[string]*agg{}
	for _, e := range f.expected(q, from.Add(-q.Lookback), to) {
		var vals []string
		for _, fl := range q.Fields {
			vals = append(vals, fieldOf(&e, fl))
		}
		k := strings.Join(vals, "|")
		if e.Timestamp.Before(from) {
			seenBefore[k] = true
			continue
		}
		a := in[k]
		if a == nil {
			a = &agg{first: e.Timestamp}
			in[k] = a
		}
		a.n++
		if e.Timestamp.Before(a.first) {
			a.first = e.Timestamp
		}
	}
	type row struct {
		k string
		a *agg
	}
	var rows []row
	for k, a := range in {
		if !seenBefore[k] {
			rows = append(rows, row{k, a})
		}
	}
	slices.SortFunc(rows, func(x, y row) int {
		if c := y.a.first.Compare(x.a.first); c != 0 {
			return c
		}
		return strings.Compare(x.k, y.k)
	})
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s @%s n=%d", r.k, r.a.first.Format(time.RFC3339Nano), r.a.n))
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func termsOf(t *testing.T, fr *data.Frame, q *Query) []string {
	t.Helper()
	var out []string
	for i := 0; i < fr.Rows(); i++ {
		var vals []string
		for j := range q.Fields {
			vals = append(vals, fr.Fields[j].At(i).(string))
		}
		first := fr.Fields[len(q.Fields)].At(i).(time.Time)
		n := fr.Fields[len(q.Fields)+1].At(i).(int64)
		out = append(out, fmt.Sprintf("%s @%s n=%d", strings.Join(vals, "|"), first.Format(time.RFC3339Nano), n))
	}
	return out
}

func TestNewTermsMatchModel(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		{"10h-to-now", fixEnd.Add(-10 * time.Hour), fixEnd.Add(-90 * time.Second)},
		{"day-ending-before-later-events", fixEnd.Add(-29 * time.Hour), fixEnd.Add(-5 * time.Hour)},
		{"whole-day", fixEnd.Truncate(24 * time.Hour).Add(-24 * time.Hour), fixEnd.Truncate(24 * time.Hour).Add(-time.Nanosecond)},
	}
	cases := []string{
		`{"fields":["principal","sourceIp"]}`,
		`{"fields":["sourceIp"],"lookback":"1d"}`,
		`{"fields":["principal","sourceIp","userAgent"],"lookback":"36h","principalType":"serviceAccount"}`,
		`{"fields":["action"],"lookback":"2h"}`,
		`{"fields":["principal","action"],"lookback":"20h","notActions":["Login"],"limit":7}`,
		`{"fields":["status","sourceIp"],"lookback":"1d","adhocFilters":[{"key":"sourceIp","operator":"!=","value":"10.0.0.0/8"}]}`,
		`{"fields":["userAgent"],"lookback":"2d","search":"curl"}`,
		`{"fields":["principal","principalType"],"lookback":"30h","principals":["MetronLabs","u-odd-6","ipless"]}`,
	}
	for name, e := range engines(f) {
		for _, rg := range ranges {
			for _, c := range cases {
				q := queryWith(t, c, `"queryType":"newTerms"`)
				frames, err := e.Run(context.Background(), Request{Query: q, From: rg.from, To: rg.to, RefID: "A"}, fresh)
				if err != nil {
					t.Fatalf("%s %s %s: %v", name, rg.name, c, err)
				}
				got, want := termsOf(t, frames[0], &q), expectedTerms(f, &q, rg.from, rg.to)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s %s %s:\n got %q\nwant %q", name, rg.name, c, got, want)
				}
			}
		}
	}
}

// The rollup answers the usual shape (a range up to now, a lookback starting on an earlier
// day), and leaves the others to the events.
func TestNewTermsRollupChosen(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for _, c := range []struct {
		js       string
		from, to time.Time
		want     bool
	}{
		{`{"queryType":"newTerms","fields":["principal","sourceIp"]}`, fixEnd.Add(-10 * time.Hour), fixEnd, true},
		{`{"queryType":"newTerms","fields":["action"],"lookback":"2h"}`, fixEnd.Add(-10 * time.Hour), fixEnd, false},
		{`{"queryType":"newTerms","fields":["action"],"search":"curl"}`, fixEnd.Add(-10 * time.Hour), fixEnd, false},
		{`{"queryType":"newTerms","fields":["sourceIp"]}`, fixEnd.Add(-7 * time.Hour), fixEnd.Add(-6 * time.Hour), true},
	} {
		var rollup bool
		e := NewEngine(f.cache.Reader(cache.ReadOptions{Trace: func(table string) { rollup = rollup || table == "rollup_terms_daily" }}))
		_, err := e.Run(context.Background(), Request{Query: mustParse(t, c.js), From: c.from, To: c.to}, fresh)
		if err != nil || rollup != c.want {
			t.Errorf("%s %s..%s: rollup %v, %v; want %v", c.js, c.from, c.to, rollup, err, c.want)
		}
	}
}

// For an alert rule: one numeric-long frame, a string column per field and the count, which
// Grafana's expressions read as one labelled number per combination.
func TestNewTermsForAlert(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			q := mustParse(t, `{"queryType":"newTerms","fields":["principal","sourceIp"],"lookback":"1d"}`)
			frames, err := e.Run(context.Background(), Request{Query: q, From: fixEnd.Add(-10 * time.Hour), To: fixEnd, RefID: "A", ForAlert: true}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			fr := frames[0]
			if len(frames) != 1 || fr.Meta.Type != data.FrameTypeNumericLong || len(fr.Fields) != 3 || fr.Rows() == 0 {
				t.Fatalf("frames %d, type %s, fields %d, rows %d", len(frames), fr.Meta.Type, len(fr.Fields), fr.Rows())
			}
			if fr.Fields[0].Name != "principal" || fr.Fields[1].Name != "sourceIp" || fr.Fields[2].Name != "count" || fr.Fields[2].Type() != data.FieldTypeInt64 {
				t.Fatalf("fields %s %s %s", fr.Fields[0].Name, fr.Fields[1].Name, fr.Fields[2].Name)
			}
			if ts := fr.TimeSeriesSchema().Type; ts != data.TimeSeriesTypeNot {
				t.Fatalf("time series type %s: Grafana would not read numbers", ts)
			}
		})
	}
}
