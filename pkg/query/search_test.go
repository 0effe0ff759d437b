package query

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
)

func TestSearchPlan(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	for _, c := range []struct {
		name   string
		c      *cache.Cache
		o      cache.ReadOptions
		search string
		index  bool
	}{
		{"full", f.cache, cache.ReadOptions{}, "zebra", true},
		{"full", f.cache, cache.ReadOptions{}, "ZEBRA-cross", true},
		{"full", f.cache, cache.ReadOptions{}, "login", true},
		{"full", f.cache, cache.ReadOptions{}, "qqq-nowhere", true}, // no candidates at all: an empty list, not the scan
		{"full", f.cache, cache.ReadOptions{}, "ze", false},
		{"partial", f.partial, cache.ReadOptions{}, "zebra", true},
		{"capped", f.cache, cache.ReadOptions{MaxSearchCandidates: 10}, "zebra", true},
		{"capped", f.cache, cache.ReadOptions{MaxSearchCandidates: 10}, "login", false},            // hundreds of candidates: walk the range
		{"capped-partial", f.partial, cache.ReadOptions{MaxSearchCandidates: 100}, "zebra", false}, // thousands of queued events
		{"scan", f.cache, cache.ReadOptions{NoSearchIndex: true}, "zebra", false},
	} {
		used := false
		c.o.Trace = func(table string) { used = used || table == "events_search" }
		e := NewEngine(c.c.Reader(c.o))
		_, err := e.Run(context.Background(), Request{Query: Query{Search: c.search}, From: rangeFrom, To: rangeTo}, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if used != c.index {
			t.Errorf("%s, search %q: index used = %v, want %v", c.name, c.search, used, c.index)
		}
	}
}

// searchNeedles are read as text, never as FTS5 or SQL syntax.
var searchNeedles = []string{
	`zebra`, `Zebra-Crossing`, `"quoted"`, `100% "quoted" \ back`, `"`, `""`, `"""`, `'`, `\`,
	`*`, `ua%_*`, `zebra*`, `"zebra"*`, `-`, `-zebra`, `a-b`, `^`, `^Login`, `^zebra`, `:`,
	`id:odd`, `action:Login`, `{x}:login`, `(`, `)`, `(a)`, `(zebra)`, `AND`, `OR`, `NOT`,
	`zebra AND login`, `zebra OR login`, `NOT login`, `NEAR`, `NEAR(zebra login)`,
	`NEAR("zebra" "crossing", 2)`, `+login`, `login +`, `Robert'); DROP`, `); DROP TABLE events;--`,
	`' OR '1'='1`, `%`, `_`, `$1`, `?`, `{"clientID":`, `"note": "Zebra`, "Ünïcödé", "ünïcödé",
	"Weird Action", "  Weird", "ab\x00cd",
}

func TestSearchMetacharactersArePlainText(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	es := engines(f)
	es["capped"] = NewEngine(f.cache.Reader(cache.ReadOptions{MaxSearchCandidates: 1})) // always the scan, as before the index
	from, to := fixEnd.Add(-80*time.Hour), fixEnd
	for _, needle := range searchNeedles {
		q := Query{Search: needle}
		want := f.expected(&q, from, to)
		counts := map[string]int64{}
		for _, ev := range want {
			counts[ev.Action]++
		}
		all := map[string]bool{}
		for i := range f.entries {
			if matches(&f.entries[i], &q) {
				all[f.entries[i].Action] = true
			}
		}
		wantVals := []string{}
		for v := range all {
			wantVals = append(wantVals, v)
		}
		sort.Strings(wantVals)
		for name, e := range es {
			// table: every matching row, newest first
			q := Query{Type: TypeTable, Search: needle, Limit: 10000}
			frames, err := e.Run(context.Background(), Request{Query: q, From: from, To: to}, fresh)
			if err != nil {
				t.Fatalf("%s table %q: %v", name, needle, err)
			}
			if n := frames[0].Rows(); n != len(want) {
				t.Fatalf("%s table %q: %d rows, want %d", name, needle, n, len(want))
			}
			for i := range want {
				if got := frames[0].Fields[1].At(i).(string); got != want[i].ID {
					t.Fatalf("%s table %q: row %d is %s, want %s", name, needle, i, got, want[i].ID)
				}
			}
			// logs
			q.Type, q.Limit = TypeLogs, 50
			frames, err = e.Run(context.Background(), Request{Query: q, From: from, To: to}, fresh)
			if err != nil || frames[0].Rows() != min(50, len(want)) {
				t.Fatalf("%s logs %q: %v", name, needle, err)
			}
			// top and timeseries by action
			q.Type, q.GroupBy, q.Limit = TypeTop, FieldAction, 100
			frames, err = e.Run(context.Background(), Request{Query: q, From: from, To: to}, fresh)
			if err != nil {
				t.Fatalf("%s top %q: %v", name, needle, err)
			}
			got := map[string]int64{}
			for i := 0; i < frames[0].Rows(); i++ {
				got[frames[0].Fields[0].At(i).(string)] = frames[0].Fields[1].At(i).(int64)
			}
			if fmt.Sprint(got) != fmt.Sprint(counts) {
				t.Fatalf("%s top %q: %v, want %v", name, needle, got, counts)
			}
			q.Type, q.Limit = TypeTimeSeries, 0
			frames, err = e.Run(context.Background(), Request{Query: q, From: from, To: to, Interval: time.Hour}, fresh)
			if err != nil {
				t.Fatalf("%s timeseries %q: %v", name, needle, err)
			}
			got = map[string]int64{}
			for _, fr := range frames {
				if len(fr.Fields) < 2 {
					continue
				}
				for i := 0; i < fr.Rows(); i++ {
					if v := int64(fr.Fields[1].At(i).(float64)); v != 0 {
						got[fr.Fields[1].Labels[FieldAction]] += v
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(counts) {
				t.Fatalf("%s timeseries %q: %v, want %v", name, needle, got, counts)
			}
			// values of action over the whole cache
			vals, err := e.Values(context.Background(), FieldAction, "", MaxValuesLimit, Query{Search: needle})
			if err != nil {
				t.Fatalf("%s values %q: %v", name, needle, err)
			}
			if a, b := mustJSON(vals), mustJSON(wantVals); a != b {
				t.Fatalf("%s values %q: %s, want %s", name, needle, a, b)
			}
		}
	}
	// Some needles must find something, or the comparisons above prove little.
	for _, needle := range []string{`Zebra-Crossing`, `"quoted"`, `Robert'); DROP`, `ua%_*`, "Ünïcödé", "Weird Action"} {
		q := Query{Search: needle}
		if len(f.expected(&q, from, to)) == 0 {
			t.Errorf("%q matches nothing in the fixture", needle)
		}
	}
}
