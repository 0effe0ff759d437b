package syncer

import (
	"context"
	"math/rand"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestKill9MidSyncLosesNothing runs the sync in a child process (this test binary), kills it
// with SIGKILL at seeded random moments of its backfill and live tail, and checks that a
// final run on the same file converges to exactly the tenant's events: nothing lost, nothing
// twice, the file never damaged.
func TestKill9MidSyncLosesNothing(t *testing.T) {
	if os.Getenv("WIZSYNC_CRASH_CHILD") == "1" {
		crashChild(t)
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL semantics")
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	start := time.Now().UTC()
	tenant := wizfake.New(wizfake.Options{Seed: 21, Events: 15000, Span: 3 * 24 * time.Hour, End: start.Add(-time.Minute)})
	srv := newServer(t, tenant)
	path := filepath.Join(t.TempDir(), "ds.db")
	backfillStart := start.Add(-3 * 24 * time.Hour)

	rng := rand.New(rand.NewSource(5))
	for round := 0; round < 3; round++ {
		tenant.ResetStats()
		killAt := 5 + rng.Intn(40) // GraphQL requests into this run
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9MidSyncLosesNothing$")
		cmd.Env = append(os.Environ(), "WIZSYNC_CRASH_CHILD=1", "WIZSYNC_URL="+srv,
			"WIZSYNC_DB="+path, "WIZSYNC_BACKFILL="+backfillStart.Format(time.RFC3339Nano),
			"WIZSYNC_ID="+tenant.ClientID(), "WIZSYNC_SECRET="+tenant.ClientSecret())
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for tenant.Stats().GraphQLRequests < killAt {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("round %d: the child made only %d requests", round, tenant.Stats().GraphQLRequests)
			}
			time.Sleep(time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("round %d: killed after %d requests", round, tenant.Stats().GraphQLRequests)
	}

	c, err := cache.Open(path, cache.Options{Fingerprint: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := c.Notices(); len(n) != 0 {
		t.Fatalf("the killed writer left a file Open did not accept: %+v", n)
	}
	cfg := Config{DatasourceUID: "crash", BackfillStart: backfillStart, PageSize: 100, Lag: time.Millisecond,
		Slice: 6 * time.Hour, Registerer: prometheus.NewRegistry()}
	s := New(c, crashClient(t, srv, tenant.ClientID(), tenant.ClientSecret()), cfg)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range tenant.VisibleEvents() {
		if !e.Timestamp.Before(backfillStart) {
			want[e.ID] = true
		}
	}
	got := cached(t, c)
	for id := range want {
		if _, ok := got[id]; !ok {
			t.Fatalf("event %s lost (cache %d, tenant %d)", id, len(got), len(want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("cache holds %d events, tenant %d", len(got), len(want))
	}
	if st, _ := c.Stats(context.Background()); st.Events != int64(len(want)) {
		t.Fatalf("event counter %d, want %d", st.Events, len(want))
	}
}

// crashChild is the child's side: sync until killed.
func crashChild(t *testing.T) {
	bs, err := time.Parse(time.RFC3339Nano, os.Getenv("WIZSYNC_BACKFILL"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(os.Getenv("WIZSYNC_DB"), cache.Options{Fingerprint: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadOnly() {
		t.Fatal("the previous child still holds the lock")
	}
	cfg := Config{DatasourceUID: "crash", BackfillStart: bs, PageSize: 100, Lag: time.Millisecond,
		Slice: 6 * time.Hour, Concurrency: 3, PollInterval: 50 * time.Millisecond, Registerer: prometheus.NewRegistry()}
	s := New(c, crashClient(t, os.Getenv("WIZSYNC_URL"), os.Getenv("WIZSYNC_ID"), os.Getenv("WIZSYNC_SECRET")), cfg)
	s.Start()
	time.Sleep(time.Minute) // killed long before
	t.Fatal("not killed")
}

func crashClient(t *testing.T, url, id, secret string) *wiz.Client {
	client, err := wiz.New(wiz.Config{APIURL: url, AuthURL: wizfake.TokenURL(url), ClientID: id, ClientSecret: secret,
		RequestsPerSecond: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func newServer(t *testing.T, tenant *wizfake.Tenant) string {
	srv := httptest.NewServer(tenant)
	t.Cleanup(srv.Close)
	return srv.URL
}
