package query

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestSearchTrigrams(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("abcdefghij", 10)
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"ab", ""}, {"  ab  ", ""}, {"\tab\n", ""}, {"é€", ""},
		{"abc", `"abc"`},
		{" ab", ""}, // three characters, two once trimmed
		{"abc ", `"abc" AND "bc "`},
		{"aaaaa", `"aaa"`},
		{`a"bc`, `"a""b" AND """bc"`},
		{`"""`, `""""""""`},
		{"a*b:c", `"a*b" AND "*b:" AND "b:c"`},
		{"ünï", `"ünï"`},
		{"ab\x00cd", ""},
		{"ab\xffcd", ""},
	} {
		if got := searchTrigrams(c.in); got != c.want {
			t.Errorf("searchTrigrams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	terms := strings.Split(searchTrigrams(long), " AND ")
	if len(terms) != 10 { // ten distinct trigrams in a repeated ten-letter word
		t.Errorf("%d terms for %q", len(terms), long)
	}
	var b strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "%03d", i)
	}
	terms = strings.Split(searchTrigrams(b.String()), " AND ")
	if len(terms) != maxTrigrams || terms[0] != `"000"` || terms[len(terms)-1] != `"499"` {
		t.Errorf("long needle: %d terms, first %s, last %s", len(terms), terms[0], terms[len(terms)-1])
	}
}

func TestSearchPlan(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	full, partial := NewEngine(f.cache.ReadDB()), NewEngine(f.partial.ReadDB())
	capped := NewEngine(f.cache.ReadDB())
	capped.maxSearchCandidates = 10
	cappedPartial := NewEngine(f.partial.ReadDB())
	cappedPartial.maxSearchCandidates = 100
	scan := NewEngine(f.cache.ReadDB())
	scan.noSearchIndex = true
	for _, c := range []struct {
		name   string
		e      *Engine
		search string
		index  bool
	}{
		{"full", full, "zebra", true},
		{"full", full, "ZEBRA-cross", true},
		{"full", full, "login", true},
		{"full", full, "qqq-nowhere", true}, // no candidates at all: an empty list, not the scan
		{"full", full, "ze", false},
		{"full", full, "", false},
		{"partial", partial, "zebra", true},
		{"capped", capped, "zebra", true},
		{"capped", capped, "login", false},                // hundreds of candidates: walk the range
		{"capped-partial", cappedPartial, "zebra", false}, // thousands of queued events
		{"scan", scan, "zebra", false},
	} {
		q := Query{Search: c.search}
		if err := c.e.planSearch(context.Background(), c.e.db(), &q); err != nil {
			t.Fatal(err)
		}
		if got := q.searchRowids != ""; got != c.index {
			t.Errorf("%s, search %q: index used = %v, want %v", c.name, c.search, got, c.index)
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
	capped := NewEngine(f.cache.ReadDB()) // always the scan, as before the index
	capped.maxSearchCandidates = 1
	es["capped"] = capped
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
