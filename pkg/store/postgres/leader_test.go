package postgres

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
)

// eventually waits for cond, which an event outside the test (the server, a goroutine) makes
// true, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockPID is the server process of the session holding s's leader lock.
func lockPID(t *testing.T, s *Store) int32 {
	t.Helper()
	var pid int32
	err := s.pool.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2`, lockSpace, s.dsID).Scan(&pid)
	if err != nil {
		t.Fatalf("find the lock holder: %v", err)
	}
	return pid
}

func TestLeaderElectionAndFailover(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	a := open(t, url, "ds", Options{Name: "host-a:101"})
	b := open(t, url, "ds", Options{Name: "host-b:202"})
	other := open(t, url, "other", Options{Name: "host-b:202"})
	if name, err := a.Leader(ctx); name != "" || err != nil {
		t.Fatalf("leader before any: %q %v", name, err)
	}
	mustLead(t, a, true)
	mustLead(t, b, false)
	mustLead(t, a, true)     // the leader's poll
	mustLead(t, other, true) // one lock per data source
	for _, s := range []*Store{a, b} {
		if name, err := s.Leader(ctx); name != "host-a:101" || err != nil {
			t.Fatalf("Leader() = %q, %v", name, err)
		}
	}
	if !a.Leading() || b.Leading() {
		t.Fatalf("leading: a %v, b %v", a.Leading(), b.Leading())
	}
	page := entries(rand.New(rand.NewSource(1)), base, 20, 1<<30)
	if _, err := b.Apply(ctx, page, store.Update{SyncedUpTo: base}); !errors.Is(err, ErrNotLeader) || !errors.Is(err, cache.ErrReadOnly) {
		t.Fatalf("a follower's write: %v", err)
	}
	apply(t, a, page[:10], store.Update{SyncedUpTo: base})

	// sync/run on the follower reaches the leader, and only it.
	if err := b.RequestRun(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.RunRequests():
	case <-time.After(10 * time.Second):
		t.Fatal("the leader did not receive the run request")
	}
	select {
	case <-b.RunRequests():
		t.Fatal("a follower received a run request")
	case <-other.RunRequests():
		t.Fatal("another data source's leader received the run request")
	default:
	}

	// The leader's lock connection dies: it notices at once and stops writing; the
	// follower takes over at its next poll and resumes from the shared checkpoint.
	pid := lockPID(t, a)
	var terminated bool
	if err := b.pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate the lock session: %v %v", terminated, err)
	}
	eventually(t, "the leader notices its lost lock", func() bool { return !a.Leading() })
	_, err := a.Apply(ctx, page[10:], store.Update{SyncedUpTo: base.Add(time.Hour)})
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), a.Target()) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("the former leader's write: %v", err)
	}
	eventually(t, "the server frees the lock", func() bool { name, _ := b.Leader(ctx); return name == "" })
	mustLead(t, b, true)
	mustLead(t, a, false)
	if name, err := a.Leader(ctx); name != "host-b:202" || err != nil {
		t.Fatalf("Leader() after failover = %q, %v", name, err)
	}
	st, err := b.State(ctx)
	if err != nil || !st.SyncedUpTo.Equal(base) {
		t.Fatalf("the new leader's checkpoint: %v %v", st.SyncedUpTo, err)
	}
	if n := apply(t, b, page, store.Update{}); n != 10 {
		t.Fatalf("the new leader stored %d of the rest", n)
	}
	checkRollups(t, b)

	// Closing releases the lock (when the server has ended the session).
	_ = b.Close()
	eventually(t, "a takes the lock b released", func() bool { ok, err := a.TryLead(ctx); return ok && err == nil })
}

// A former leader that has not noticed yet (its lock connection seems alive) is fenced off by
// the new leader's epoch.
func TestFormerLeaderFencedByEpoch(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	ctx := context.Background()
	apply(t, s, entries(rand.New(rand.NewSource(1)), base, 5, 1<<30), store.Update{})
	if _, err := s.pool.Exec(ctx, "UPDATE sync_state SET leader_epoch = leader_epoch + 1 WHERE ds = $1", s.dsID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, entries(rand.New(rand.NewSource(2)), base, 5, 1<<30), store.Update{SyncedUpTo: base})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after another leader's epoch: %v", err)
	}
	if countEvents(t, s) != 5 {
		t.Fatalf("%d events", countEvents(t, s))
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{})
	_ = s.Close()
	ctx := context.Background()
	if _, err := s.Apply(ctx, nil, store.Update{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := s.TryLead(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryLead: %v", err)
	}
	if _, err := s.State(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("State: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// The timeouts that free a dead replica's lock are in force on the store's sessions.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{KeepAlive: 7 * time.Second, IdleInTransactionTimeout: 9 * time.Second, Name: "h:1"})
	want := map[string]string{
		"tcp_keepalives_idle": "7", "tcp_keepalives_interval": "7", "tcp_keepalives_count": "1",
		"tcp_user_timeout": "14000", "idle_in_transaction_session_timeout": "9s", "application_name": "wizauditlogs h:1",
	}
	for name, v := range want {
		var got string
		if err := s.pool.QueryRow(context.Background(), "SHOW "+name).Scan(&got); err != nil || got != v {
			t.Errorf("%s = %q, %v; want %q", name, got, err, v)
		}
	}
}
