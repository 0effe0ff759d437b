package syncer

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/store/postgres"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

func TestMain(m *testing.M) {
	if os.Getenv("WIZSYNC_CRASH_CHILD") == "1" {
		os.Exit(m.Run()) // the crash test's child process needs no database
	}
	os.Exit(pgtest.Main(m))
}

// openPG opens the data source "test" of org 1 in the database at url, as one replica.
func openPG(t *testing.T, url, name string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, 1, "test", postgres.Options{Fingerprint: "fp", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestPostgresFollower: of two replicas on one database, one syncs; the other fetches
// nothing, reports the leader's state, name and freshness, and takes over when it leaves.
func TestPostgresFollower(t *testing.T) {
	url := pgtest.NewDatabase(t)
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.add(entry(t0.Add(-time.Minute)))
	a, b := openPG(t, url, "replica-a:1"), openPG(t, url, "replica-b:2")
	sa, sb := New(a, src, testConfig(clock)), New(b, src, testConfig(clock))
	ctx := context.Background()
	if err := sa.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sb.RunOnce(ctx); !errors.Is(err, cache.ErrReadOnly) {
		t.Fatalf("the follower synced: %v", err)
	}
	if n := len(src.windows()); n != 1 {
		t.Fatalf("%d windows fetched, want the leader's one", n)
	}
	st := sb.Status(ctx)
	if st.Role != RoleFollower || !st.ReadOnly || st.Leader == nil || *st.Leader != "replica-a:1" || st.Events != 1 ||
		st.SyncedUpTo == nil || !st.SyncedUpTo.Equal(t0.Add(-DefaultLag)) || st.CoveredFrom == nil {
		t.Fatalf("follower status %+v", st)
	}

	// The leader fails for good: the follower shows its state and error.
	src.failFn = func(int, wiz.Window) error {
		return &wiz.Error{Kind: wiz.KindAuthentication, Message: "authentication failed: invalid client secret"}
	}
	clock.Advance(time.Minute)
	if err := sa.RunOnce(ctx); wiz.KindOf(err) != wiz.KindAuthentication {
		t.Fatalf("leader run: %v", err)
	}
	st = sb.Status(ctx)
	if st.State != StateError || st.LastError == nil || *st.LastError != "authentication failed: invalid client secret" {
		t.Fatalf("follower status after the leader's failure %+v", st)
	}

	// The leader leaves: the follower takes over at one of its next cycles (the server frees
	// the lock when it has ended the leader's session).
	src.failFn = nil
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := sb.RunOnce(ctx); err != nil; err = sb.RunOnce(ctx) {
		if !errors.Is(err, cache.ErrReadOnly) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := sb.Status(ctx); st.Role != RoleLeader || st.State != StateIdle || st.LastError != nil || *st.Leader != "replica-b:2" {
		t.Fatalf("after take-over %+v", st)
	}
}

// TestPostgresRunRequest: a run request sent from a follower starts a cycle on the leader
// before its poll is due.
func TestPostgresRunRequest(t *testing.T) {
	url := pgtest.NewDatabase(t)
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	a, b := openPG(t, url, "replica-a:1"), openPG(t, url, "replica-b:2")
	sa := New(a, src, testConfig(clock))
	sa.Start()
	defer sa.Stop()
	<-clock.waiting // the first cycle is over; the loop waits for the poll
	if !a.Leading() || len(src.windows()) != 1 {
		t.Fatalf("leading %v after %d windows", a.Leading(), len(src.windows()))
	}
	if err := b.RequestRun(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(src.windows()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not run on request")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
