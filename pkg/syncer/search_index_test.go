package syncer

import (
	"context"
	"errors"
	"github.com/seed/wizauditlogs/pkg/store"
	"math/rand"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

func pendingCount(t *testing.T, c *cache.Cache) int64 {
	t.Helper()
	n, err := c.SearchPending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSyncLeavesTheSearchQueueEmpty(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(7)), 2500, t0.Add(-2*24*time.Hour), t0)
	a, path := tempCache(t)
	b := openCache(t, path) // read-only: another instance writes
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
	cfg.IndexBatch = 300
	sa := New(a, src, cfg)
	if err := sa.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := a.Stats(context.Background())
	if err != nil || st.Events != 2500 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if n := pendingCount(t, a); n != 0 {
		t.Fatalf("%d events still queued for the search index after a sync", n)
	}

	// The read-only instance never indexes: events the writer stores without indexing stay
	// queued when it runs.
	extra := make([]auditlog.Entry, 0, 40)
	for i := range 40 {
		extra = append(extra, entry(t0.Add(-time.Duration(i+1)*time.Hour)))
	}
	if _, err := a.Apply(context.Background(), extra, store.Update{}); err != nil {
		t.Fatal(err)
	}
	sb := New(b, src, testConfig(clock))
	if err := sb.RunOnce(context.Background()); !errors.Is(err, cache.ErrReadOnly) {
		t.Fatalf("read-only RunOnce: %v", err)
	}
	if n := pendingCount(t, b); n != 40 {
		t.Fatalf("%d queued after the read-only instance ran, want 40", n)
	}
	// The writer's next cycle indexes them.
	clock.Advance(time.Minute)
	if err := sa.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, a); n != 0 {
		t.Fatalf("%d still queued", n)
	}
}

func TestBackgroundIndexingStopsPromptly(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	c, _ := tempCache(t)
	// A big queue, as after opening a cache written before the search index existed.
	rng := rand.New(rand.NewSource(8))
	const total = 8000
	for i := 0; i < total; i += 1000 {
		page := src.generate(rng, 1000, t0.Add(-30*24*time.Hour), t0.Add(-24*time.Hour))
		if _, err := c.Apply(context.Background(), page, store.Update{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(clock)
	cfg.IndexBatch = 100
	cfg.IndexPause = 5 * time.Millisecond
	s := New(c, src, cfg)
	s.Start()
	deadline := time.Now().Add(20 * time.Second)
	for pendingCount(t, c) > total-300 {
		if time.Now().After(deadline) {
			t.Fatal("background indexing made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	s.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %s while indexing", d)
	}
	// Stop waited for every goroutine it started, and each clears its flag before it ends:
	// nothing of this syncer can index any more (no need to watch the queue for a while).
	s.mu.Lock()
	busy := s.indexing || s.backfilling || s.pruning
	s.mu.Unlock()
	if busy {
		t.Fatal("a background task still runs after Stop")
	}
	left := pendingCount(t, c)
	if left == 0 {
		t.Log("the queue drained before Stop: the check of promptness proves less")
	}
	// Started again, it finishes the queue.
	s.Start()
	defer s.Stop()
	deadline = time.Now().Add(30 * time.Second)
	for pendingCount(t, c) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained: %d left", pendingCount(t, c))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
