package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replicas starts n plugin processes of one data source on one database and one tenant, as
// n Grafana replicas would run it. Each has a cache directory of its own, which stays unused.
func replicas(t *testing.T, e *env, databaseURL string, n int) []*env {
	t.Helper()
	e.databaseURL = databaseURL
	out := []*env{e}
	for len(out) < n {
		r := *e
		r.cacheDir = t.TempDir()
		out = append(out, &r)
	}
	for _, r := range out {
		r.start()
		r.status() // creates the instance, which starts its syncer
	}
	return out
}

// leaderOf waits until exactly one replica leads and the others follow it, and returns it.
func leaderOf(t *testing.T, rs []*env, timeout time.Duration) *env {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var leaders []*env
		names := map[string]bool{}
		for _, r := range rs {
			st := r.status()
			if st.Role == "leader" {
				leaders = append(leaders, r)
			}
			if st.Leader != nil {
				names[*st.Leader] = true
			}
		}
		if len(leaders) == 1 && len(names) == 1 {
			want := "vm"
			if h, err := os.Hostname(); err == nil {
				want = h
			}
			for name := range names {
				if name != want+":"+strconv.Itoa(leaders[0].plugin.PID()) {
					t.Fatalf("the replicas name the leader %q, its process is %d", name, leaders[0].plugin.PID())
				}
			}
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader after %s: %d leading, leader names %v", timeout, len(leaders), names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readPostgres returns the data source's events in the database (id → stored node JSON),
// failing on a duplicate id.
func readPostgres(t *testing.T, databaseURL, uid string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT e.id, e.raw FROM wizauditlogs.events e
		JOIN wizauditlogs.data_sources d ON d.id = e.ds WHERE d.org_id = 1 AND d.uid = $1`, uid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	return collectEvents(t, rows)
}

// haTenant is the tenant of the HA tests: a backfill of a few thousand events.
func haTenant(seed int64, events int) (wizfake.Options, map[string]any) {
	now := time.Now().UTC()
	return wizfake.Options{Seed: seed, Events: events, Span: 10 * 24 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-11 * 24 * time.Hour).Format(time.RFC3339), "pageSize": 100}
}

// syncedAll waits until the replica reports the backfill done and every visible event.
func syncedAll(e *env, timeout time.Duration) syncStatus {
	want := len(e.tenant.VisibleEvents())
	return e.waitFor("every event", timeout, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(want) && st.State != "error"
	})
}

// TestHAOneSyncerForThreeReplicas: three replicas on one database make the API calls of one:
// the tenant sees about as many GraphQL requests as a single process makes for the same sync.
func TestHAOneSyncerForThreeReplicas(t *testing.T) {
	t.Parallel()
	opts, jd := haTenant(31, 6000)

	single := prepareEnv(t, opts, jd)
	replicas(t, single, pgtest.NewDatabase(t), 1)
	syncedAll(single, 120*time.Second)
	one := single.tenant.Stats().GraphQLRequests
	t.Logf("one process: %d GraphQL requests, peak RSS %d MiB", one, peakRSS(t, single.plugin.PID())>>20)

	e := prepareEnv(t, opts, jd)
	db := pgtest.NewDatabase(t)
	rs := replicas(t, e, db, 3)
	leader := leaderOf(t, rs, 30*time.Second)
	st := syncedAll(leader, 120*time.Second)
	three := e.tenant.Stats().GraphQLRequests
	for _, r := range rs {
		t.Logf("replica %d (leader %v): peak RSS %d MiB", r.plugin.PID(), r == leader, peakRSS(t, r.plugin.PID())>>20)
	}
	t.Logf("three replicas: %d GraphQL requests; the data source's share of the database: %d bytes per event",
		three, st.CacheBytes/max(1, st.Events))
	// Live windows at each poll may add a few requests; a second syncer would double them.
	if three > one+one/4+5 {
		t.Errorf("three replicas made %d GraphQL requests, one process %d: more than one replica syncs", three, one)
	}
	for _, r := range rs {
		fst := r.status()
		if fst.Backend != "postgres" || fst.CacheFile != "" || fst.Events != st.Events || fst.SyncedUpTo == nil {
			t.Errorf("replica status %+v, leader's %+v", fst, st)
		}
	}
	assertExactlyTenant(t, readPostgres(t, db, e.ds.UID), e.tenant.VisibleEvents())
}

// TestHAReplicasAnswerAlike: every replica answers the same queries with the same frames.
func TestHAReplicasAnswerAlike(t *testing.T) {
	t.Parallel()
	opts, jd := haTenant(32, 2000)
	e := prepareEnv(t, opts, jd)
	rs := replicas(t, e, pgtest.NewDatabase(t), 3)
	syncedAll(leaderOf(t, rs, 30*time.Second), 120*time.Second)
	to := time.Now().UTC()
	from := to.Add(-12 * 24 * time.Hour)
	queries := []map[string]any{
		{"queryType": "logs", "limit": 50},
		{"queryType": "top", "groupBy": "principal"},
		{"queryType": "timeseries", "groupBy": "action"},
		{"queryType": "logs", "search": "user", "limit": 20},
	}
	for _, q := range queries {
		var first string
		for i, r := range rs {
			res := r.query(nil, from, to, q)
			if res.Error != nil {
				t.Errorf("replica %d, query %v: %v", i, q, res.Error)
				continue
			}
			b, err := json.Marshal(res.Frames)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = string(b)
			} else if string(b) != first {
				t.Errorf("query %v: replica %d answers differently from replica 0", q, i)
			}
		}
	}
}

// TestHALeaderKilledDuringBackfill: the leader is killed with SIGKILL five times during the
// backfill; each time another replica takes over, and the end state is exactly the tenant.
func TestHALeaderKilledDuringBackfill(t *testing.T) {
	t.Parallel()
	opts, jd := haTenant(33, 12000)
	e := prepareEnv(t, opts, jd)
	// A little latency per call spreads the sync over enough requests to kill it in the middle.
	e.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 5 * time.Millisecond})
	db := pgtest.NewDatabase(t)
	rs := replicas(t, e, db, 3)
	leader := leaderOf(t, rs, 30*time.Second)
	for round := range 5 {
		// Kill once the leader has made a few more requests: in the middle of its work.
		at := e.tenant.Stats().GraphQLRequests + 10
		deadline := time.Now().Add(30 * time.Second)
		for e.tenant.Stats().GraphQLRequests < at && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if st := leader.status(); st.Backfill != nil && st.Backfill.Done == 1 {
			t.Logf("round %d: the backfill was already complete", round)
		}
		old := leader.plugin.PID()
		leader.plugin.Kill()
		var others []*env
		for _, r := range rs {
			if r != leader {
				others = append(others, r)
			}
		}
		next := leaderOf(t, others, 30*time.Second)
		if next.plugin.PID() == old {
			t.Fatalf("round %d: the killed process still leads", round)
		}
		leader.start() // the killed replica comes back, as a follower
		leader.status()
		leader = next
	}
	syncedAll(leaderOf(t, rs, 30*time.Second), 180*time.Second)
	assertExactlyTenant(t, readPostgres(t, db, e.ds.UID), e.tenant.VisibleEvents())
}

// TestHADatabaseRestartMidSync: the database stops during the sync: the replicas report state
// error, and once it is back they converge to exactly the tenant.
func TestHADatabaseRestartMidSync(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	db := c.NewDatabase(t)
	opts, jd := haTenant(34, 6000)
	e := prepareEnv(t, opts, jd)
	e.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 5 * time.Millisecond})
	rs := replicas(t, e, db, 2)
	leader := leaderOf(t, rs, 30*time.Second)
	leader.waitFor("the backfill to be under way", 60*time.Second, func(st syncStatus) bool { return st.Events > 0 })
	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		st := r.waitFor("state error with the database down", 60*time.Second, func(st syncStatus) bool { return st.State == "error" })
		if st.LastError == nil || !strings.Contains(*st.LastError, "PostgreSQL at 127.0.0.1:") || strings.Contains(*st.LastError, c.Password()) {
			t.Errorf("lastError with the database down: %v", st.LastError)
		}
	}
	if err := c.StartServer(); err != nil {
		t.Fatal(err)
	}
	syncedAll(leaderOf(t, rs, 60*time.Second), 180*time.Second)
	assertExactlyTenant(t, readPostgres(t, db, e.ds.UID), e.tenant.VisibleEvents())
}

// TestHADatabasePasswordNeverShown: the database URL's password appears in no health answer,
// status, error, frame or log line, whether it is wrong (authentication fails) or right.
func TestHADatabasePasswordNeverShown(t *testing.T) {
	t.Parallel()
	good := pgtest.NewDatabase(t)
	u, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	right, _ := u.User.Password()
	const wrong = "Wr0ng-db-pa55word-7f3e"
	u.User = url.UserPassword(u.User.Username(), wrong)
	bad := u.String()

	for _, tc := range []struct {
		name, url, password, health string
	}{
		{"wrong password", bad, wrong, "authentication failed"},
		{"right password", good, right, "events cached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, jd := haTenant(35, 200)
			e := prepareEnv(t, opts, jd)
			replicas(t, e, tc.url, 1)
			var seen []string
			if tc.password == right {
				seen = append(seen, fmt.Sprint(syncedAll(e, 60*time.Second)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := e.plugin.CheckHealth(ctx, e.ds)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Message, tc.health) {
				t.Errorf("health %q, want it to contain %q", res.Message, tc.health)
			}
			st := e.call(viewer, "GET", "sync/status", nil)
			run := e.call(editor, "POST", "sync/run", nil)
			values := e.call(viewer, "GET", "values/action", nil)
			to := time.Now()
			q := e.query(nil, to.Add(-24*time.Hour), to, map[string]any{"queryType": "logs", "limit": 20})
			frames, _ := json.Marshal(q.Frames)
			seen = append(seen, res.Message, string(res.JSONDetails), string(st.Body), string(run.Body), string(values.Body),
				fmt.Sprint(q.Error), string(frames))
			e.plugin.Close()
			seen = append(seen, e.plugin.Logs())
			for _, s := range seen {
				if strings.Contains(s, tc.password) {
					t.Fatalf("the database password is in %q", tail(s, 2000))
				}
			}
			if tc.password == wrong && !strings.Contains(string(st.Body), "PostgreSQL at 127.0.0.1:") {
				t.Errorf("status with a wrong password: %s", st.Body)
			}
		})
	}
}
