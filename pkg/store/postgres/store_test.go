package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var base = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// entries makes n entries from a small vocabulary (so that rollup rows collect several
// events), about a minute apart from start, with ids drawn from a pool of idSpace (so that
// pages repeat entries).
func entries(rng *rand.Rand, start time.Time, n, idSpace int) []auditlog.Entry {
	actions := []string{"Login", "TokenRefresh", "Reports", "UpdateReport"}
	statuses := []string{auditlog.StatusSuccess, auditlog.StatusFailed, auditlog.StatusAccessDenied}
	types := []string{auditlog.PrincipalServiceAccount, auditlog.PrincipalUser, ""}
	out := make([]auditlog.Entry, n)
	for i := range out {
		id := fmt.Sprintf("e-%d", rng.Intn(idSpace))
		p := rng.Intn(5)
		params := fmt.Sprintf(`{"name":"svc-%d","role":"GLOBAL_ADMIN","n":%d}`, p, rng.Intn(1000))
		ts := start.Add(time.Duration(i)*time.Minute + time.Duration(rng.Intn(60_000_000))*time.Microsecond)
		out[i] = auditlog.Entry{
			ID: id, RequestID: "r-" + id, Action: actions[rng.Intn(len(actions))], Status: statuses[rng.Intn(len(statuses))],
			Timestamp: ts, PrincipalID: fmt.Sprintf("p%d", p), PrincipalName: fmt.Sprintf("svc-%d", p), PrincipalType: types[p%3],
			SourceIP: fmt.Sprintf("203.0.113.%d", rng.Intn(4)), UserAgent: fmt.Sprintf("agent/%d", rng.Intn(3)),
			ActionParameters: json.RawMessage(params),
			Raw:              json.RawMessage(fmt.Sprintf(`{"id":%q,"actionParameters":%s}`, id, params)),
		}
	}
	return out
}

func open(t testing.TB, url string, uid string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, 1, uid, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// leading opens a store on a fresh database and makes it the leader.
func leading(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	s := open(t, url, "ds", opts)
	mustLead(t, s, true)
	return s, url
}

func mustLead(t testing.TB, s *Store, want bool) {
	t.Helper()
	ok, err := s.TryLead(context.Background())
	if err != nil || ok != want {
		t.Fatalf("TryLead = %v, %v; want %v", ok, err, want)
	}
}

func apply(t testing.TB, s *Store, page []auditlog.Entry, u store.Update) int {
	t.Helper()
	n, err := s.Apply(context.Background(), page, u)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func TestMigrationsConcurrentAndIdempotent(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	const replicas = 4
	ids := make([]int32, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			s, err := Open(context.Background(), url, 1, "ds", Options{})
			if err == nil {
				ids[i] = s.DataSourceID()
				_ = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("replica %d: data source %d, err %v (first got %d)", i, ids[i], errs[i], ids[0])
		}
	}
	s := open(t, url, "ds", Options{}) // once more, on a migrated database
	other := open(t, url, "other", Options{})
	if s.DataSourceID() != ids[0] || other.DataSourceID() == ids[0] {
		t.Fatalf("data source ids %d, %d (first %d)", s.DataSourceID(), other.DataSourceID(), ids[0])
	}
	var versions []int
	rows, _ := s.pool.Query(context.Background(), "SELECT version FROM schema_version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(versions) != 1 || versions[0] != SchemaVersion() {
		t.Fatalf("schema_version rows %v %v", versions, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := open(t, url, "ds", Options{})
	if _, err := s.pool.Exec(context.Background(), "UPDATE schema_version SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), url, 1, "ds", Options{})
	if !errors.Is(err, errNewerSchema) || !strings.Contains(err.Error(), pgtest.DatabaseName(url)) {
		t.Fatalf("err %v", err)
	}
}

// A data source pointed at another tenant starts fresh; the old rows are set aside, not lost.
func TestForeignTenantSetAside(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	a := open(t, url, "ds", Options{Fingerprint: "tenant-a"})
	mustLead(t, a, true)
	apply(t, a, entries(rand.New(rand.NewSource(1)), base, 10, 1000), store.Update{SyncedUpTo: base})
	_ = a.Close()
	b := open(t, url, "ds", Options{Fingerprint: "tenant-b"})
	st, err := b.State(context.Background())
	if err != nil || !st.SyncedUpTo.IsZero() || st.Fingerprint != "tenant-b" || b.DataSourceID() == a.DataSourceID() {
		t.Fatalf("state %+v %v", st, err)
	}
	if len(b.Notices()) != 1 || !strings.Contains(b.Notices()[0], "set aside") {
		t.Fatalf("notices %v", b.Notices())
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE ds = $1", a.DataSourceID()).Scan(&n); err != nil || n == 0 {
		t.Fatalf("set-aside events %d %v", n, err)
	}
}

func TestApplyDedupsAndStats(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	page := entries(rand.New(rand.NewSource(1)), base, 10, 1<<30)
	if n := apply(t, s, page, store.Update{}); n != 10 {
		t.Fatalf("first insert %d", n)
	}
	if n := apply(t, s, page, store.Update{}); n != 0 {
		t.Fatalf("same page again inserted %d", n)
	}
	// The same ids re-sent with other timestamps, and twice in one page.
	again := append([]auditlog.Entry(nil), page[:3]...)
	for i := range again {
		again[i].Timestamp = again[i].Timestamp.Add(time.Hour)
	}
	more := entries(rand.New(rand.NewSource(2)), base.Add(time.Hour), 3, 1<<30)
	mixed := append(append(more, again...), more[0])
	if n := apply(t, s, mixed, store.Update{}); n != 3 {
		t.Fatalf("mixed page inserted %d", n)
	}
	noID := entries(rand.New(rand.NewSource(3)), base.Add(30*time.Minute), 1, 1)
	noID[0].ID = ""
	apply(t, s, noID, store.Update{})
	if n := apply(t, s, noID, store.Update{}); n != 0 {
		t.Fatalf("an entry without id stored twice")
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 14 || countEvents(t, s) != 14 || st.Bytes <= 0 {
		t.Fatalf("stats %+v, %d rows", st, countEvents(t, s))
	}
	if !st.Oldest.Equal(page[0].Timestamp) || !st.Newest.Equal(more[2].Timestamp) {
		t.Fatalf("stats %+v", st)
	}
	checkRollups(t, s)
}

func countEvents(t testing.TB, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE ds = $1", s.dsID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rollupChecks compare each rollup with the same GROUP BY over the events: both directions
// of EXCEPT must be empty.
var rollupChecks = map[string][2]string{
	"rollup_hourly": {
		`SELECT hour, action, status, principal_type, principal, principal_id, n FROM rollup_hourly WHERE ds = $1`,
		`SELECT ts / 3600000000000, action, status, principal_type, principal, principal_id, count(*) FROM events WHERE ds = $1 GROUP BY 1, 2, 3, 4, 5, 6`},
	"rollup_hourly_kind": {
		`SELECT hour, action, status, principal_type, n FROM rollup_hourly_kind WHERE ds = $1`,
		`SELECT ts / 3600000000000, action, status, principal_type, count(*) FROM events WHERE ds = $1 GROUP BY 1, 2, 3, 4`},
	"rollup_daily": {
		`SELECT day, action, status, principal_type, principal, principal_id, n FROM rollup_daily WHERE ds = $1`,
		`SELECT ts / 86400000000000, action, status, principal_type, principal, principal_id, count(*) FROM events WHERE ds = $1 GROUP BY 1, 2, 3, 4, 5, 6`},
	"rollup_values": {
		`SELECT field, value, n FROM rollup_values WHERE ds = $1`,
		`SELECT 'source_ip', source_ip, count(*) FROM events WHERE ds = $1 GROUP BY 2
		 UNION ALL SELECT 'user_agent', user_agent, count(*) FROM events WHERE ds = $1 GROUP BY 2`},
	"rollup_terms_daily": { // first_ts and last_ts: see checkTermsBounds
		`SELECT day, action, status, principal_type, principal, principal_id, source_ip, user_agent, n FROM rollup_terms_daily WHERE ds = $1`,
		`SELECT ts / 86400000000000, action, status, principal_type, principal, principal_id, source_ip, user_agent, count(*)
		 FROM events WHERE ds = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8`},
}

func checkRollups(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	for name, q := range rollupChecks {
		var diff, rows int
		err := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM ((%[1]s) EXCEPT ALL (%[2]s)) a)
			+ (SELECT count(*) FROM ((%[2]s) EXCEPT ALL (%[1]s)) b), (SELECT count(*) FROM (%[1]s) c)`, q[0], q[1]), s.dsID).Scan(&diff, &rows)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff != 0 {
			t.Fatalf("%s differs from the events in %d rows", name, diff)
		}
	}
	checkTermsBounds(t, s, false)
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT event_count FROM sync_state WHERE ds = $1", s.dsID).Scan(&n); err != nil || n != countEvents(t, s) {
		t.Fatalf("event_count %d, rows %d, %v", n, countEvents(t, s), err)
	}
}

// Random pages (with repeats) and prunes on two data sources of one database: the rollups
// always equal a GROUP BY over the events, and each data source only sees its own.
func TestRollupsExactUnderRandomWritesAndPrunes(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	a := open(t, url, "a", Options{PruneBatch: 37, PrunePause: -1})
	b := open(t, url, "b", Options{PruneBatch: 37, PrunePause: -1})
	mustLead(t, a, true)
	mustLead(t, b, true)
	rng := rand.New(rand.NewSource(42))
	for step := range 30 {
		s := a
		if rng.Intn(3) == 0 {
			s = b
		}
		if rng.Intn(4) == 0 {
			cut := base.Add(time.Duration(rng.Intn(72*60)) * time.Minute)
			if _, err := s.Prune(context.Background(), cut); err != nil {
				t.Fatal(err)
			}
		} else {
			start := base.Add(time.Duration(rng.Intn(72*60)) * time.Minute)
			apply(t, s, entries(rng, start, 1+rng.Intn(120), 400), store.Update{})
		}
		if step%5 == 4 {
			checkRollups(t, a)
			checkRollups(t, b)
		}
	}
	checkRollups(t, a)
	checkRollups(t, b)
	if _, err := a.Prune(context.Background(), base.Add(1000*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var left int
	for table := range rollupChecks {
		var n int
		if err := a.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE ds = $1", a.dsID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		left += n
	}
	if left != 0 || countEvents(t, a) != 0 || countEvents(t, b) == 0 {
		t.Fatalf("after pruning everything of a: %d rollup rows, %d events; b has %d", left, countEvents(t, a), countEvents(t, b))
	}
}

func TestPruneInBatches(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{PruneBatch: 100, PrunePause: -1})
	all := entries(rand.New(rand.NewSource(1)), base, 450, 1<<30)
	for i := 0; i < len(all); i += 50 {
		apply(t, s, all[i:i+50], store.Update{})
	}
	cut := all[320].Timestamp
	n, err := s.Prune(context.Background(), cut)
	if err != nil || n != 320 {
		t.Fatalf("pruned %d %v", n, err)
	}
	st, _ := s.Stats(context.Background())
	if st.Events != 130 || countEvents(t, s) != 130 || !st.Oldest.Equal(cut) {
		t.Fatalf("after prune %+v", st)
	}
	checkRollups(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := s.Prune(ctx, base.Add(1000*time.Hour)); n != 0 || err != nil {
		t.Fatalf("prune with a cancelled context: %d %v", n, err)
	}
}

func TestPageIsAtomic(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	_, err := s.pool.Exec(context.Background(), `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN IF NEW.id = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION boom()`)
	if err != nil {
		t.Fatal(err)
	}
	page := entries(rand.New(rand.NewSource(1)), base, 50, 1<<30)
	page[40].ID = "boom"
	cp := base.Add(time.Hour)
	if _, err := s.Apply(context.Background(), page, store.Update{SyncedUpTo: cp, Covered: []store.Interval{{From: base, To: cp}}}); err == nil {
		t.Fatal("want an error")
	}
	st, _ := s.State(context.Background())
	if countEvents(t, s) != 0 || !st.SyncedUpTo.IsZero() || len(st.Covered) != 0 {
		t.Fatalf("a failed page left %d rows, state %+v", countEvents(t, s), st)
	}
	checkRollups(t, s)
	page[40].ID = "fine"
	if n := apply(t, s, page, store.Update{SyncedUpTo: cp}); n != 50 {
		t.Fatalf("inserted %d", n)
	}
	if st, _ := s.State(context.Background()); !st.SyncedUpTo.Equal(cp) {
		t.Fatalf("checkpoint %v", st.SyncedUpTo)
	}
}

// Ported from the SQLite cache's tests: the same updates give the same state.
func TestCoveredIntervalsMerge(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
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
	for i, step := range steps {
		apply(t, s, nil, store.Update{Covered: []store.Interval{step.add}})
		st, err := s.State(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st.Covered) != fmt.Sprint(step.want) {
			t.Fatalf("step %d: covered %v, want %v", i, st.Covered, step.want)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	bs, msg, empty := base.Add(-time.Hour), "boom", ""
	apply(t, s, nil, store.Update{SyncedUpTo: base, LiveStart: base, BackfillStart: &bs, LastSyncAt: base, LastError: &msg})
	apply(t, s, nil, store.Update{LiveStart: base.Add(time.Hour)}) // set once only
	st, err := s.State(context.Background())
	if err != nil || !st.SyncedUpTo.Equal(base) || !st.LiveStart.Equal(base) || !st.BackfillStart.Equal(bs) ||
		st.LastError != "boom" || !st.LastSyncAt.Equal(base) {
		t.Fatalf("%+v %v", st, err)
	}
	zero := time.Time{}
	apply(t, s, nil, store.Update{LastError: &empty, BackfillStart: &zero})
	if st, _ := s.State(context.Background()); st.LastError != "" || !st.BackfillStart.IsZero() || !st.SyncedUpTo.Equal(base) {
		t.Fatalf("%+v", st)
	}
	if err := s.SetLeaderState(context.Background(), "syncing"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.LeaderState(context.Background()); st != "syncing" || err != nil {
		t.Fatalf("leader state %q %v", st, err)
	}
}

// actionParameters and the node come back byte for byte, however unusual the JSON.
func TestJSONByteIdentical(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	hostile := []string{
		`{"z":1,"a":2,"z":3}`,
		"{ \"spaced\" :\t[ 1 ,\n 2 ] }",
		`{"big":123456789012345678901234567890,"float":1.0e+400,"neg":-0.000}`,
		`{"esc":"\u00e9\ud83d\ude00\u0000\"\\\/","raw":"é😀"}`,
		`null`,
		`"just a string"`,
		`[]`,
		``,
		"{\"invalid\":\"\xff\xfe\"}", // not UTF-8: see text
	}
	page := entries(rand.New(rand.NewSource(1)), base, len(hostile), 1<<30)
	for i, h := range hostile {
		page[i].ID = fmt.Sprintf("h%d", i)
		page[i].ActionParameters = json.RawMessage(h)
		page[i].Raw = json.RawMessage(`{"actionParameters": ` + h + ` , "id":"h"}`)
	}
	apply(t, s, page, store.Update{})
	for i, h := range hostile {
		var params, raw string
		err := s.pool.QueryRow(context.Background(), "SELECT params, raw FROM events WHERE ds = $1 AND id = $2", s.dsID, page[i].ID).Scan(&params, &raw)
		want := strings.ToValidUTF8(h, "\uFFFD")
		if err != nil || params != want || raw != strings.ToValidUTF8(string(page[i].Raw), "\uFFFD") {
			t.Fatalf("entry %d: params %q raw %q, %v; want %q", i, params, raw, err, want)
		}
	}
}

// Pages, state updates and pruning running at once (the syncer's live tail, backfill and
// retention) take turns on the data source's row: no deadlock, exact rollups.
func TestConcurrentWritesAndPrunes(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{PruneBatch: 50, PrunePause: -1})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			for i := range 15 {
				start := base.Add(time.Duration(rng.Intn(48*60)) * time.Minute)
				cov := store.Interval{From: start, To: start.Add(time.Hour)}
				if _, err := s.Apply(ctx, entries(rng, start, 100, 2000), store.Update{SyncedUpTo: start, Covered: []store.Interval{cov}}); err != nil {
					errs <- fmt.Errorf("writer %d page %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			if _, err := s.Prune(ctx, base.Add(time.Duration(i)*3*time.Hour)); err != nil {
				errs <- fmt.Errorf("prune %d: %w", i, err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRollups(t, s)
}
