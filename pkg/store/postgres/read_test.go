package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"

	"github.com/seed/wizauditlogs/pkg/query/read"
	"github.com/seed/wizauditlogs/pkg/store"
)

// The searched text of actionParameters is what SQLite's json_extract returns, byte for byte,
// on hostile parameters too: the search answers alike on both stores.
func TestSearchParamsMatchSQLite(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range []string{
		`{"role":"GLOBAL_ADMIN"}`, `{ "role" : "GLOBAL_ADMIN" , "n" : 1 }`, "{\n\t\"b\": 1,\n\t\"a\": [1, 2, {\"c\": null}]\n}",
		`{"z":1,"a":2,"z":3}`, `{"s":"a \"quoted\" \\ back \u00e9 \u2028 <b>&amp;"}`, `{"x":"Ünïcödé","y":"\ud83d\ude00"}`,
		`{"n":1.50,"e":1E+2,"m":-0,"big":123456789012345678901234567890}`, `[ ]`, `{ }`, `[1, "two", [3]]`,
		`"a string"`, `"esc\"aped\n"`, `true`, `false`, `null`, `42`, `-7`, `1.5`, `{"k": "v with  spaces"}`,
		`{"html":"<script>&</script>"}`, `{"ctl":"\u001f\u0000"}`,
	} {
		var want sql.NullString
		if err := db.QueryRow(`SELECT json_extract(?, '$.actionParameters')`, `{"actionParameters": `+p+`}`).Scan(&want); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got, ok := read.SearchParams(json.RawMessage(p))
		if ok != want.Valid || got != want.String {
			t.Errorf("SearchParams(%s) = %q, %v; SQLite: %q, %v", p, got, ok, want.String, want.Valid)
		}
	}
}

// Search reads the search column through its trigram index, and finds the compact form of the
// parameters (what a provisioned alert rule searches).
func TestSearchIndex(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	page := entries(rand.New(rand.NewSource(1)), base, 200, 1<<30)
	page[7].ActionParameters = json.RawMessage(`{ "reportName" : "Quarterly-Secrets" }`)
	page[9].UserAgent = "Mozilla/5.0 NeedleBrowser"
	apply(t, s, page, store.Update{})
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		// Without the data source condition, so that the trigram index is the only one the
		// planner may use.
		rows, err := tx.Query(ctx, "EXPLAIN SELECT id FROM events WHERE search LIKE $1", "%quarterly%")
		if err != nil {
			return err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil && !strings.Contains(strings.Join(lines, "\n"), "events_search_text") {
			err = fmt.Errorf("the search does not use the trigram index:\n%s", strings.Join(lines, "\n"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	find := func(needle string) []string {
		evs, err := s.Events(ctx, read.Filter{Search: needle}, base, base.Add(24*time.Hour), 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		return ids
	}
	for needle, want := range map[string]string{
		`"reportname":"quarterly-SECRETS"`: page[7].ID,
		"needlebrowser":                    page[9].ID,
	} {
		if got := find(needle); fmt.Sprint(got) != fmt.Sprint([]string{want}) {
			t.Errorf("search %q found %v, want %s", needle, got, want)
		}
	}
	for _, needle := range []string{"nowhere-to-be-found", `"reportName" : "Quarterly`, "ab\x00cd", "\xff", "role\x1fsvc"} {
		if got := find(needle); len(got) != 0 {
			t.Errorf("search %q found %v", needle, got)
		}
	}
}

// A search answers alike whether the newest events of the range hold enough matches (the
// window) or the index finds them: the window's answer is only taken when it is complete.
func TestSearchWindow(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	page := entries(rand.New(rand.NewSource(2)), base, 600, 1<<30)
	apply(t, s, page, store.Update{})
	ctx := context.Background()
	from, to := base, base.Add(24*time.Hour)
	ids := func(evs []read.Event) string {
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "%s@%d ", e.ID, e.TS)
		}
		return b.String()
	}
	for _, needle := range []string{"svc-1", "global_admin", "agent/2", "e-1"} {
		for _, limit := range []int{1, 7, 50, 1000} {
			f := read.Filter{Search: needle}
			all, err := s.events(ctx, f, from, to, limit, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Events(ctx, f, from, to, limit, true)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != ids(all) {
				t.Errorf("search %q, limit %d: %s, want %s", needle, limit, ids(got), ids(all))
			}
			for _, window := range []int{1, 20, 100} {
				part, err := s.events(ctx, f, from, to, limit, true, window)
				if err != nil {
					t.Fatal(err)
				}
				if len(part) == limit && ids(part) != ids(all) {
					t.Errorf("search %q, limit %d, window %d: %s, want %s", needle, limit, window, ids(part), ids(all))
				}
			}
		}
	}
}
