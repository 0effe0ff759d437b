package cache

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/seed/wizauditlogs/pkg/store"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/seed/wizauditlogs/pkg/auditlog"
)

var base = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// genEntries makes n entries shaped like Wiz's, one second apart from start, with raw JSON
// of a realistic size.
func genEntries(rng *rand.Rand, start time.Time, n int) []auditlog.Entry {
	actions := []string{"Login", "TokenRefresh", "Reports", "UpdateReport", "RevokeSessions"}
	statuses := []string{auditlog.StatusSuccess, auditlog.StatusSuccess, auditlog.StatusFailed, auditlog.StatusAccessDenied}
	out := make([]auditlog.Entry, n)
	for i := range out {
		ts := start.Add(time.Duration(i) * time.Second).Add(time.Duration(rng.Intn(1000)) * time.Microsecond)
		id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Intn(1<<16), rng.Intn(1<<12), rng.Intn(1<<12), rng.Int63n(1<<48))
		act := actions[rng.Intn(len(actions))]
		st := statuses[rng.Intn(len(statuses))]
		ip := fmt.Sprintf("203.0.113.%d", rng.Intn(255))
		params := fmt.Sprintf(`{"clientID":"%x","groups":null,"name":"svc-%d","products":["*"],"role":"GLOBAL_ADMIN","scopes":["admin:audit","read:all"],"userEmail":"","userID":"u%d","userpoolID":"us-east-2_GQ3gwvxsQ","sourceIP":"%s","error":""}`,
			rng.Int63(), rng.Intn(50), rng.Intn(1000), ip)
		node := map[string]any{
			"id": id, "action": act, "requestId": id, "status": st,
			"timestamp": ts.Format(time.RFC3339Nano), "actionParameters": json.RawMessage(params),
			"userAgent": "python-requests/2.31.0", "sourceIP": ip,
			"serviceAccount": map[string]string{"id": fmt.Sprintf("sa%d", rng.Intn(50)), "name": fmt.Sprintf("svc-%d", rng.Intn(50))},
			"user":           nil,
		}
		raw, _ := json.Marshal(node)
		out[i] = auditlog.Entry{
			ID: id, RequestID: id, Action: act, Status: st, Timestamp: ts,
			PrincipalID: "sa1", PrincipalName: "svc-1", PrincipalType: auditlog.PrincipalServiceAccount,
			SourceIP: ip, UserAgent: "python-requests/2.31.0", ActionParameters: json.RawMessage(params), Raw: raw,
		}
	}
	return out
}

func mustOpen(t testing.TB, path string, opts Options) *Cache {
	t.Helper()
	c, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func countRows(t testing.TB, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenCreatesOwnerOnlyWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "ds.db")
	c := mustOpen(t, path, Options{Fingerprint: "fp"})
	if _, err := c.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 3), store.Update{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + ".lock": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(p), got, want)
		}
	}
	var mode string
	if err := c.ReadDB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var v int
	if err := c.ReadDB().QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() {
		t.Errorf("user_version = %d, %v", v, err)
	}
	if c.ReadOnly() || len(c.Notices()) != 0 {
		t.Errorf("fresh cache: readOnly=%v notices=%v", c.ReadOnly(), c.Notices())
	}
}

func TestMigratesOlderSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	// A file as the first release wrote it: version 1, one event.
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(context.Background(), db, 1); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "UPDATE sync_state SET fingerprint = 'fp', event_count = 1, synced_up_to = 42")
	mustExec(t, db, `INSERT INTO events (id, ts, raw) VALUES ('e1', 1, '{"id":"e1"}')`)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c := mustOpen(t, path, Options{Fingerprint: "fp"})
	if n := c.Notices(); len(n) != 0 {
		t.Fatalf("notices %v: an old file must be migrated, not set aside", n)
	}
	var v, idx int
	if err := c.ReadDB().QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() {
		t.Fatalf("user_version %d, %v", v, err)
	}
	if err := c.ReadDB().QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'events_action_ts'").Scan(&idx); err != nil || idx != 1 {
		t.Fatalf("index from version 2 missing: %d %v", idx, err)
	}
	st, err := c.Stats(context.Background())
	if err != nil || st.Events != 1 || countRows(t, c.ReadDB()) != 1 {
		t.Fatalf("events after migration: %+v %v", st, err)
	}
	s, err := c.State(context.Background())
	if err != nil || s.SyncedUpTo.UnixNano() != 42 {
		t.Fatalf("state after migration: %+v %v", s, err)
	}
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func setAsideFiles(t *testing.T, path string, kind NoticeKind) []string {
	t.Helper()
	m, err := filepath.Glob(path + "." + string(kind) + "-*")
	if err != nil {
		t.Fatal(err)
	}
	var dbs []string
	for _, f := range m {
		if !strings.HasSuffix(f, "-wal") && !strings.HasSuffix(f, "-shm") {
			dbs = append(dbs, f)
		}
	}
	return dbs
}

func TestForeignTenantSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	a := mustOpen(t, path, Options{Fingerprint: "tenant-a"})
	if _, err := a.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 5), store.Update{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := mustOpen(t, path, Options{Fingerprint: "tenant-b"})
	n := b.Notices()
	if len(n) != 1 || n[0].Kind != NoticeForeign {
		t.Fatalf("notices %+v, want one foreign", n)
	}
	if st, _ := b.Stats(context.Background()); st.Events != 0 || countRows(t, b.ReadDB()) != 0 {
		t.Fatalf("fresh cache holds %d events", st.Events)
	}
	aside := setAsideFiles(t, path, NoticeForeign)
	if len(aside) != 1 || aside[0] != n[0].SetAside {
		t.Fatalf("set-aside files %v, notice %q", aside, n[0].SetAside)
	}
	old, err := sql.Open("sqlite3", "file:"+aside[0]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := countRows(t, old); got != 5 {
		t.Fatalf("set-aside file holds %d events, want the 5 of tenant a", got)
	}
	if s, err := b.State(context.Background()); err != nil || s.Fingerprint != "tenant-b" {
		t.Fatalf("fingerprint %q %v", s.Fingerprint, err)
	}
}

func TestDamagedFilesSetAside(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	garbage := make([]byte, 8192)
	rng.Read(garbage)

	cases := map[string]func(t *testing.T, path string){
		"garbage": func(t *testing.T, path string) {
			if err := os.WriteFile(path, garbage, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"short": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("SQLite format 3\x00junk"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"header then garbage": func(t *testing.T, path string) {
			writeValidThen(t, path, func(b []byte) []byte {
				copy(b[4096:], garbage) // keep page 1, trash the rest
				return b
			})
		},
		"truncated": func(t *testing.T, path string) {
			writeValidThen(t, path, func(b []byte) []byte { return b[:len(b)/3] })
		},
		"someone else's sqlite": func(t *testing.T, path string) {
			db, err := sql.Open("sqlite3", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "CREATE TABLE t (x)")
			_ = db.Close()
		},
	}
	for name, prep := range cases {
		for _, qc := range []int64{-1, 1} { // quick_check always; only after an unclean close
			t.Run(fmt.Sprintf("%s, quick-check limit %d", name, qc), func(t *testing.T) {
				testDamaged(t, rng, prep, qc, name == "header then garbage" && qc == 1)
			})
		}
	}
}

// testDamaged opens a damaged file; only a damage inside the pages (which a clean file is not
// quick-checked for, above the size limit) may go unnoticed at open.
func testDamaged(t *testing.T, rng *rand.Rand, prep func(t *testing.T, path string), quickCheckMax int64, mayPass bool) {
	path := filepath.Join(t.TempDir(), "ds.db")
	prep(t, path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, path, Options{Fingerprint: "fp", QuickCheckMaxBytes: quickCheckMax})
	if mayPass && len(c.Notices()) == 0 {
		return
	}
	n := c.Notices()
	if len(n) != 1 || n[0].Kind != NoticeCorrupt {
		t.Fatalf("notices %+v, want one corrupt", n)
	}
	t.Logf("detected: %s", n[0].Message)
	kept, err := os.ReadFile(n[0].SetAside)
	if err != nil || !bytes.Equal(kept, before) {
		t.Fatalf("set-aside file not kept byte for byte: %v", err)
	}
	if _, err := c.Apply(context.Background(), genEntries(rng, base, 2), store.Update{}); err != nil {
		t.Fatalf("fresh cache unusable: %v", err)
	}
}

// writeValidThen writes a real cache of 3000 events, closes it, and rewrites its bytes.
func writeValidThen(t *testing.T, path string, mangle func([]byte) []byte) {
	t.Helper()
	c, err := Open(path, Options{Fingerprint: "fp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), genEntries(rand.New(rand.NewSource(3)), base, 3000), store.Update{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, mangle(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	c := mustOpen(t, path, Options{Fingerprint: "fp"})
	mustExec(t, c.writeDB, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := mustOpen(t, path, Options{Fingerprint: "fp"})
	if n := c2.Notices(); len(n) != 1 || n[0].Kind != NoticeNewerSchema {
		t.Fatalf("notices %+v", n)
	}
}

func TestInsertIdempotentAndStats(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	page := genEntries(rand.New(rand.NewSource(1)), base, 10)
	if n, err := c.Apply(context.Background(), page, store.Update{}); err != nil || n != 10 {
		t.Fatalf("first insert %d %v", n, err)
	}
	if n, err := c.Apply(context.Background(), page, store.Update{}); err != nil || n != 0 {
		t.Fatalf("same page again inserted %d %v", n, err)
	}
	mixed := append(genEntries(rand.New(rand.NewSource(2)), base.Add(time.Hour), 3), page[:4]...)
	if n, err := c.Apply(context.Background(), mixed, store.Update{}); err != nil || n != 3 {
		t.Fatalf("mixed page inserted %d %v", n, err)
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 13 || countRows(t, c.ReadDB()) != 13 {
		t.Fatalf("stats %+v", st)
	}
	if !st.Oldest.Equal(page[0].Timestamp) || !st.Newest.Equal(mixed[2].Timestamp) || st.Bytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
	// The stored row is the entry, raw JSON byte for byte.
	var raw, action, ptype string
	var ts int64
	err = c.ReadDB().QueryRow("SELECT raw, action, principal_type, ts FROM events WHERE id = ?", page[3].ID).Scan(&raw, &action, &ptype, &ts)
	if err != nil || raw != string(page[3].Raw) || action != page[3].Action || ptype != page[3].PrincipalType || ts != page[3].Timestamp.UnixNano() {
		t.Fatalf("stored row differs: %v", err)
	}
	var ap string
	if err := c.ReadDB().QueryRow("SELECT json_extract(raw, '$.actionParameters.role') FROM events WHERE id = ?", page[3].ID).Scan(&ap); err != nil || ap != "GLOBAL_ADMIN" {
		t.Fatalf("actionParameters from raw: %q %v", ap, err)
	}
}

func TestEntryWithoutIDStoredOnce(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	e := genEntries(rand.New(rand.NewSource(1)), base, 1)
	e[0].ID = ""
	for range 2 {
		if _, err := c.Apply(context.Background(), e, store.Update{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRows(t, c.ReadDB()); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

func TestPageIsAtomic(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	mustExec(t, c.writeDB, `CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.id = 'boom'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`)
	page := genEntries(rand.New(rand.NewSource(1)), base, 50)
	page[40].ID = "boom"
	cp := base.Add(time.Hour)
	if _, err := c.Apply(context.Background(), page, store.Update{SyncedUpTo: cp}); err == nil {
		t.Fatal("want an error")
	}
	st, _ := c.Stats(context.Background())
	s, _ := c.State(context.Background())
	if n := countRows(t, c.ReadDB()); n != 0 || st.Events != 0 || !s.SyncedUpTo.IsZero() {
		t.Fatalf("failed page left %d rows, count %d, checkpoint %v", n, st.Events, s.SyncedUpTo)
	}
	page[40].ID = "fine"
	if n, err := c.Apply(context.Background(), page, store.Update{SyncedUpTo: cp}); err != nil || n != 50 {
		t.Fatalf("%d %v", n, err)
	}
	if s, _ := c.State(context.Background()); !s.SyncedUpTo.Equal(cp) {
		t.Fatalf("checkpoint %v", s.SyncedUpTo)
	}
}

func TestCoveredIntervalsMerge(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	iv := func(a, b int) store.Interval { return store.Interval{From: at(a), To: at(b)} }
	steps := []struct {
		add  store.Interval
		want []store.Interval
	}{
		{iv(100, 200), []store.Interval{iv(100, 200)}},
		{iv(300, 400), []store.Interval{iv(100, 200), iv(300, 400)}},
		{iv(150, 250), []store.Interval{iv(100, 250), iv(300, 400)}},
		{iv(0, 10), []store.Interval{iv(0, 10), iv(100, 250), iv(300, 400)}},
		{store.Interval{From: at(250).Add(time.Nanosecond), To: at(299).Add(time.Second - time.Nanosecond)}, []store.Interval{iv(0, 10), iv(100, 400)}}, // touching both
		{iv(5, 500), []store.Interval{iv(0, 500)}},
		{iv(600, 600), []store.Interval{iv(0, 500), iv(600, 600)}},
		{iv(700, 650), []store.Interval{iv(0, 500), iv(600, 600)}}, // empty: ignored
	}
	for i, s := range steps {
		if _, err := c.Apply(context.Background(), nil, store.Update{Covered: []store.Interval{s.add}}); err != nil {
			t.Fatal(err)
		}
		st, err := c.State(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st.Covered) != fmt.Sprint(s.want) {
			t.Fatalf("step %d: covered %v, want %v", i, st.Covered, s.want)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	bs, msg, empty := base.Add(-time.Hour), "boom", ""
	if _, err := c.Apply(context.Background(), nil, store.Update{SyncedUpTo: base, LiveStart: base, BackfillStart: &bs, LastSyncAt: base, LastError: &msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), nil, store.Update{LiveStart: base.Add(time.Hour)}); err != nil { // set once only
		t.Fatal(err)
	}
	s, err := c.State(context.Background())
	if err != nil || !s.LiveStart.Equal(base) || !s.BackfillStart.Equal(bs) || s.LastError != "boom" || !s.LastSyncAt.Equal(base) {
		t.Fatalf("%+v %v", s, err)
	}
	zero := time.Time{}
	if _, err := c.Apply(context.Background(), nil, store.Update{LastError: &empty, BackfillStart: &zero}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.State(context.Background()); s.LastError != "" || !s.BackfillStart.IsZero() {
		t.Fatalf("%+v", s)
	}
}

func TestPruneInBatches(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{PruneBatch: 1000, PrunePause: -1})
	all := genEntries(rand.New(rand.NewSource(1)), base, 4500) // one per second
	for i := 0; i < len(all); i += 500 {
		if _, err := c.Apply(context.Background(), all[i:i+500], store.Update{}); err != nil {
			t.Fatal(err)
		}
	}
	cut := all[3200].Timestamp
	n, err := c.Prune(context.Background(), cut)
	if err != nil || n != 3200 {
		t.Fatalf("pruned %d %v", n, err)
	}
	st, _ := c.Stats(context.Background())
	if st.Events != 1300 || countRows(t, c.ReadDB()) != 1300 || !st.Oldest.Equal(cut) {
		t.Fatalf("after prune %+v", st)
	}
}

func TestTwoOpenersOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	a := mustOpen(t, path, Options{Fingerprint: "fp"})
	b := mustOpen(t, path, Options{Fingerprint: "fp"})
	if a.ReadOnly() || !b.ReadOnly() {
		t.Fatalf("a readOnly=%v b readOnly=%v: want exactly one writer, the first", a.ReadOnly(), b.ReadOnly())
	}
	if n := b.Notices(); len(n) != 1 || n[0].Kind != NoticeReadOnly || n[0].Message != "read-only: another instance is writing this cache" {
		t.Fatalf("b notices %+v", n)
	}
	page := genEntries(rand.New(rand.NewSource(1)), base, 20)
	if _, err := b.Apply(context.Background(), page, store.Update{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only insert: %v", err)
	}
	if _, err := a.Apply(context.Background(), page, store.Update{}); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b.ReadDB()); n != 20 {
		t.Fatalf("reader sees %d rows", n)
	}
	if ok, err := b.TryLead(context.Background()); ok || err != nil {
		t.Fatalf("promote while a writes: %v %v", ok, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLead(context.Background()); !ok || err != nil {
		t.Fatalf("promote after a closed: %v %v", ok, err)
	}
	if b.ReadOnly() || len(b.Notices()) != 0 {
		t.Fatalf("after promotion readOnly=%v notices=%v", b.ReadOnly(), b.Notices())
	}
	if n, err := b.Apply(context.Background(), genEntries(rand.New(rand.NewSource(2)), base, 5), store.Update{}); err != nil || n != 5 {
		t.Fatalf("%d %v", n, err)
	}
	if st, _ := b.Stats(context.Background()); st.Events != 25 {
		t.Fatalf("events %d", st.Events)
	}
}

func TestReadOnlyOpenerOfAnotherTenantSeesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	a := mustOpen(t, path, Options{Fingerprint: "tenant-a"})
	if _, err := a.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 20), store.Update{}); err != nil {
		t.Fatal(err)
	}
	b := mustOpen(t, path, Options{Fingerprint: "tenant-b"})
	if !b.ReadOnly() || countRows(t, b.ReadDB()) != 0 {
		t.Fatal("a read-only opener must not show another tenant's events")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLead(context.Background()); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if n := b.Notices(); len(n) != 1 || n[0].Kind != NoticeForeign {
		t.Fatalf("after promotion %+v", n)
	}
}

func TestReadOnlyPlaceholderReplacedWhenFileReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	// Take the lock by hand, as another process would while it creates the file.
	a := mustOpen(t, path, Options{Fingerprint: "fp"})
	if err := os.Rename(path, path+".moved"); err != nil { // b sees no file yet
		t.Fatal(err)
	}
	b := mustOpen(t, path, Options{Fingerprint: "fp"})
	if err := os.Rename(path+".moved", path); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 3), store.Update{}); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b.ReadDB()); n != 0 {
		t.Fatalf("placeholder shows %d", n)
	}
	if ok, _ := b.TryLead(context.Background()); ok {
		t.Fatal("promoted while a holds the lock")
	}
	if n := countRows(t, b.ReadDB()); n != 3 {
		t.Fatalf("after refresh the reader sees %d rows, want 3", n)
	}
}

func TestReadersSeeCommittedPagesOnly(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	if _, err := c.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 10), store.Update{}); err != nil {
		t.Fatal(err)
	}
	tx, err := c.writeDB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range genEntries(rand.New(rand.NewSource(2)), base, 5) {
		if _, err := tx.Exec(insertSQLFor(1), e.ID, e.Timestamp.UnixNano(), "", "", "", "", "", "", "", "", string(e.Raw)); err != nil {
			t.Fatal(err)
		}
	}
	// Mid-transaction: the reader neither waits nor sees the uncommitted rows.
	done := make(chan int)
	go func() { done <- countRows(t, c.ReadDB()) }()
	select {
	case n := <-done:
		if n != 10 {
			t.Fatalf("reader saw %d rows mid-transaction", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader blocked by the writer")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, c.ReadDB()); n != 15 {
		t.Fatalf("after commit %d", n)
	}
	if _, err := c.ReadDB().Exec("DELETE FROM events"); err == nil {
		t.Fatal("the read pool accepted a write")
	}
}

func TestClosedCache(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), nil, store.Update{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("%v", err)
	}
	if _, err := c.TryLead(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("%v", err)
	}
}

func TestDamageFoundInUseSetAsideAtNextOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ds.db")
	c := mustOpen(t, path, Options{Fingerprint: "fp", QuickCheckMaxBytes: 1})
	if _, err := c.Apply(context.Background(), genEntries(rand.New(rand.NewSource(1)), base, 10), store.Update{}); err != nil {
		t.Fatal(err)
	}
	c.checkDamage(fmt.Errorf("insert entries: %w", sqlite3.Error{Code: sqlite3.ErrCorrupt}))
	if n := c.Notices(); len(n) != 1 || n[0].Kind != NoticeCorrupt || !strings.Contains(n[0].Message, "restart the data source") {
		t.Fatalf("notices %+v", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := mustOpen(t, path, Options{Fingerprint: "fp", QuickCheckMaxBytes: 1})
	n := c2.Notices()
	if len(n) != 1 || n[0].Kind != NoticeCorrupt || n[0].SetAside == "" {
		t.Fatalf("notices after reopen %+v", n)
	}
	if st, _ := c2.Stats(context.Background()); st.Events != 0 {
		t.Fatal("not a fresh cache")
	}
	if _, err := os.Stat(path + damagedSuffix); !os.IsNotExist(err) {
		t.Fatalf("marker left behind: %v", err)
	}
}
