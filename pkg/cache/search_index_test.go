package cache

import (
	"context"
	"database/sql"
	"errors"
	"github.com/seed/wizauditlogs/pkg/store"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
)

// rowids lists the rowids a query returns, sorted.
func rowids(t testing.TB, db *sql.DB, q string, args ...any) []int64 {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func pendingRowids(t testing.TB, db *sql.DB) []int64 {
	return rowids(t, db, "SELECT rowid FROM search_pending")
}

func indexedRowids(t testing.TB, db *sql.DB) []int64 {
	return rowids(t, db, "SELECT rowid FROM events_search")
}

// found lists the rowids the index finds for a needle of three or more characters (all its
// trigrams, as the query engine asks).
func found(t testing.TB, db *sql.DB, needle string) []int64 {
	t.Helper()
	var terms []string
	r := []rune(needle)
	for i := 0; i+3 <= len(r); i++ {
		terms = append(terms, `"`+strings.ReplaceAll(string(r[i:i+3]), `"`, `""`)+`"`)
	}
	return rowids(t, db, "SELECT rowid FROM events_search WHERE events_search MATCH ?", strings.Join(terms, " AND "))
}

func rowidOf(t testing.TB, db *sql.DB, id string) int64 {
	t.Helper()
	var r int64
	if err := db.QueryRow("SELECT rowid FROM events WHERE id = ?", id).Scan(&r); err != nil {
		t.Fatalf("rowid of %s: %v", id, err)
	}
	return r
}

func drain(t testing.TB, c *Cache) int {
	t.Helper()
	total := 0
	for {
		n, err := c.IndexPending(context.Background(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func TestSearchIndexMigratesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	// A file as the previous release wrote it: version 4 with events and their rollups.
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(context.Background(), db, 4); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "UPDATE sync_state SET fingerprint = 'fp', event_count = 3")
	mustExec(t, db, `INSERT INTO events (rowid, id, ts, action, principal, raw) VALUES
		(3, 'e-three', 30, 'Login', 'Alice', '{"id":"e-three","actionParameters":{"note":"Needle-Alpha"}}'),
		(10, 'e-ten', 10, 'Reports', 'Bob', '{"id":"e-ten","actionParameters":null}'),
		(11, 'e-eleven', 20, 'Login', 'Carol', 'not json at all')`)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c := mustOpen(t, path, Options{Fingerprint: "fp"})
	if n := c.Notices(); len(n) != 0 {
		t.Fatalf("notices %v", n)
	}
	rdb := c.ReadDB()
	if got := pendingRowids(t, rdb); !slices.Equal(got, []int64{3, 10, 11}) {
		t.Fatalf("queued after migration: %v", got)
	}
	if got := indexedRowids(t, rdb); len(got) != 0 {
		t.Fatalf("the migration indexed %v itself", got)
	}
	if n, err := c.SearchPending(context.Background()); err != nil || n != 3 {
		t.Fatalf("SearchPending = %d, %v", n, err)
	}
	n, err := c.IndexPending(context.Background(), 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch: %d, %v", n, err)
	}
	if got := pendingRowids(t, rdb); !slices.Equal(got, []int64{11}) {
		t.Fatalf("queue after a batch of 2: %v (the lowest rowids go first)", got)
	}
	if n, err := c.IndexPending(context.Background(), 2); err != nil || n != 1 {
		t.Fatalf("second batch: %d, %v", n, err)
	}
	if n, err := c.IndexPending(context.Background(), 2); err != nil || n != 0 {
		t.Fatalf("empty queue: %d, %v", n, err)
	}
	if got := indexedRowids(t, rdb); !slices.Equal(got, []int64{3, 10, 11}) {
		t.Fatalf("indexed %v", got)
	}
	// Case folded; every searched field; an unreadable raw node still indexes its columns.
	for needle, want := range map[string][]int64{
		"needle-alpha": {3}, "E-TEN": {10}, "login": {3, 11}, "carol": {11}, "e-e": {11}, "zzz": nil,
	} {
		if got := found(t, rdb, needle); !slices.Equal(got, want) {
			t.Errorf("%q found %v, want %v", needle, got, want)
		}
	}
	// Deleting takes each row's indexed values out again, the unreadable node's too.
	mustExec(t, c.writeDB, "DELETE FROM events")
	checkSearchIndex(t, c)
	if got := indexedRowids(t, rdb); len(got) != 0 {
		t.Fatalf("still indexed after deleting every event: %v", got)
	}
	for _, needle := range []string{"needle-alpha", "e-ten", "login", "carol", "e-e", "not"} {
		if got := found(t, rdb, needle); len(got) != 0 {
			t.Errorf("%q still found %v", needle, got)
		}
	}
}

// checkSearchIndex runs FTS5's own consistency check of the index.
func checkSearchIndex(t testing.TB, c *Cache) {
	t.Helper()
	mustExec(t, c.writeDB, "INSERT INTO events_search (events_search) VALUES ('integrity-check')")
}

func TestSearchQueueFollowsInsertsAndPruning(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{PruneBatch: 4, PrunePause: -1})
	rdb := c.ReadDB()
	all := genEntries(rand.New(rand.NewSource(3)), base, 30)
	if _, err := c.Apply(context.Background(), all[:20], store.Update{}); err != nil {
		t.Fatal(err)
	}
	if got := pendingRowids(t, rdb); len(got) != 20 {
		t.Fatalf("queued %d, want 20", len(got))
	}
	// A page seen again inserts nothing and queues nothing.
	if n, err := c.Apply(context.Background(), all[:20], store.Update{}); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
	if got := pendingRowids(t, rdb); len(got) != 20 {
		t.Fatalf("queued %d after a repeated page, want 20", len(got))
	}
	if n := drain(t, c); n != 20 {
		t.Fatalf("indexed %d", n)
	}
	if _, err := c.Apply(context.Background(), all[20:], store.Update{}); err != nil {
		t.Fatal(err)
	}
	if got := pendingRowids(t, rdb); len(got) != 10 {
		t.Fatalf("queued %d, want the 10 new events", len(got))
	}
	if got := found(t, rdb, all[25].ID); len(got) != 0 {
		t.Fatalf("a queued event is in the index: %v", got)
	}
	if got := found(t, rdb, all[0].ID); !slices.Equal(got, []int64{rowidOf(t, rdb, all[0].ID)}) {
		t.Fatalf("an indexed event is not found: %v", got)
	}

	// Pruning takes the pruned events out of the index and the queue: make the queue hold
	// old events too, by queueing everything again.
	mustExec(t, c.writeDB, "UPDATE events SET action = action || '' WHERE ts < ?", all[15].Timestamp.UnixNano())
	if got := pendingRowids(t, rdb); len(got) != 25 {
		t.Fatalf("updated events not queued again: %d queued", len(got))
	}
	if n, err := c.Prune(context.Background(), all[10].Timestamp); err != nil || n != 10 {
		t.Fatalf("pruned %d %v", n, err)
	}
	left := rowids(t, rdb, "SELECT rowid FROM events")
	queued, indexed := pendingRowids(t, rdb), indexedRowids(t, rdb)
	if len(queued) != 15 || len(indexed) != 5 {
		t.Fatalf("after pruning: %d queued, %d indexed; want 15 and 5", len(queued), len(indexed))
	}
	for _, r := range append(queued, indexed...) {
		if _, ok := slices.BinarySearch(left, r); !ok {
			t.Fatalf("rowid %d of a pruned event is still queued or indexed", r)
		}
	}
	if got := found(t, rdb, all[0].ID); len(got) != 0 {
		t.Fatalf("a pruned event is still found: %v", got)
	}
	drain(t, c)
	if got := indexedRowids(t, rdb); !slices.Equal(got, left) {
		t.Fatalf("indexed %v, want every event %v", got, left)
	}
	if got := found(t, rdb, all[12].ID); !slices.Equal(got, []int64{rowidOf(t, rdb, all[12].ID)}) {
		t.Fatalf("an event indexed again is not found: %v", got)
	}
	// Every remaining event is still found by its id; no pruned one is.
	for i, e := range all {
		got := found(t, rdb, e.ID)
		if i < 10 && len(got) != 0 || i >= 10 && !slices.Equal(got, []int64{rowidOf(t, rdb, e.ID)}) {
			t.Fatalf("event %d (%s): found %v", i, e.ID, got)
		}
	}
	checkSearchIndex(t, c)
}

func TestSearchIndexRowidReuse(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{PrunePause: -1})
	rdb := c.ReadDB()
	es := genEntries(rand.New(rand.NewSource(4)), base, 4)
	newer, older := es[3], es[0]
	// The older event comes last, so it holds the highest rowid and is the one pruned.
	if _, err := c.Apply(context.Background(), []auditlog.Entry{newer, es[2], older}, store.Update{}); err != nil {
		t.Fatal(err)
	}
	top := rowidOf(t, rdb, older.ID)
	drain(t, c)
	if n, err := c.Prune(context.Background(), es[1].Timestamp); err != nil || n != 1 {
		t.Fatalf("pruned %d %v", n, err)
	}
	// SQLite hands the freed highest rowid to the next event.
	if _, err := c.Apply(context.Background(), []auditlog.Entry{es[1]}, store.Update{}); err != nil {
		t.Fatal(err)
	}
	if r := rowidOf(t, rdb, es[1].ID); r != top {
		t.Fatalf("rowid %d, want %d reused", r, top)
	}
	if got := pendingRowids(t, rdb); !slices.Equal(got, []int64{top}) {
		t.Fatalf("queued %v, want the reused rowid %d", got, top)
	}
	if got := found(t, rdb, older.ID); len(got) != 0 {
		t.Fatalf("the pruned event under the reused rowid is still found: %v", got)
	}
	drain(t, c)
	if got := found(t, rdb, es[1].ID); !slices.Equal(got, []int64{top}) {
		t.Fatalf("new event under the reused rowid: found %v", got)
	}
	if got := found(t, rdb, older.ID); len(got) != 0 {
		t.Fatalf("old text under the reused rowid: found %v", got)
	}

	// The same while the highest row is still queued: pruned before it was indexed.
	if _, err := c.Apply(context.Background(), []auditlog.Entry{{ID: "ancient-1", Timestamp: base.Add(-time.Hour), Raw: []byte(`{"id":"ancient-1"}`)}}, store.Update{}); err != nil {
		t.Fatal(err)
	}
	top = rowidOf(t, rdb, "ancient-1")
	if _, err := c.Prune(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), []auditlog.Entry{{ID: "fresh-2", Timestamp: base.Add(time.Hour), Raw: []byte(`{"id":"fresh-2"}`)}}, store.Update{}); err != nil {
		t.Fatal(err)
	}
	if r := rowidOf(t, rdb, "fresh-2"); r != top {
		t.Fatalf("rowid %d, want %d reused", r, top)
	}
	if got := pendingRowids(t, rdb); !slices.Equal(got, []int64{top}) {
		t.Fatalf("queued %v, want just %d", got, top)
	}
	drain(t, c)
	if got := found(t, rdb, "ancient-1"); len(got) != 0 {
		t.Fatalf("pruned event found: %v", got)
	}
	if got := found(t, rdb, "fresh-2"); !slices.Equal(got, []int64{top}) {
		t.Fatalf("found %v", got)
	}
	checkSearchIndex(t, c)
}

func TestIndexPendingNeedsTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	w := mustOpen(t, path, Options{Fingerprint: "fp"})
	if _, err := w.Apply(context.Background(), genEntries(rand.New(rand.NewSource(5)), base, 3), store.Update{}); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, path, Options{Fingerprint: "fp"})
	if !r.ReadOnly() {
		t.Fatal("second opener is not read-only")
	}
	if _, err := r.IndexPending(context.Background(), 10); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only IndexPending: %v", err)
	}
	if n, err := r.SearchPending(context.Background()); err != nil || n != 3 {
		t.Fatalf("read-only SearchPending: %d %v", n, err)
	}
	_ = w.Close()
	if _, err := w.IndexPending(context.Background(), 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed IndexPending: %v", err)
	}
}

func TestOpenRefusesSQLiteWithoutFTS5(t *testing.T) {
	if err := fts5Status(hasFTS5); err != nil {
		t.Fatalf("this test binary's SQLite: %v", err)
	}
	saved := checkFTS5
	t.Cleanup(func() { checkFTS5 = saved })
	checkFTS5 = func() error { return fts5Status(func() (bool, error) { return false, nil }) }
	path := filepath.Join(t.TempDir(), "ds.db")
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrNoFTS5) {
		t.Fatalf("Open: %v", err)
	}
	const want = `this build of SQLite lacks FTS5: build with the Magefile, or set CGO_CFLAGS="-O2 -g -DSQLITE_ENABLE_FTS5" CGO_LDFLAGS=-lm`
	if err.Error() != want {
		t.Fatalf("error %q,\nwant  %q", err, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created or touched the file: %v", err)
	}
}
