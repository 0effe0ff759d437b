package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

func TestLiveTailCheckpointAndLateArrivals(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	rng := rand.New(rand.NewSource(1))
	src.generate(rng, 300, t0.Add(-3*time.Hour), t0)
	c, _ := tempCache(t)
	s := New(c, src, testConfig(clock))

	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No backfill: the first window is [now - overlap, now - lag].
	liveStart, end := t0.Add(-DefaultOverlap), t0.Add(-DefaultLag)
	if w := src.windows(); len(w) != 1 || !w[0].After.Equal(liveStart) || !w[0].Before.Equal(end) {
		t.Fatalf("first windows %v", w)
	}
	sameEvents(t, c, src.truth(liveStart, end))
	st, err := c.State(context.Background())
	if err != nil || !st.SyncedUpTo.Equal(end) || !st.LiveStart.Equal(liveStart) {
		t.Fatalf("state %+v %v", st, err)
	}

	// A minute later: new events, and late arrivals stamped before the checkpoint (within the
	// overlap) that were not visible to the first window.
	clock.Advance(time.Minute)
	late := []time.Time{end.Add(-5 * time.Minute), end.Add(-time.Second), end}
	for _, ts := range late {
		src.add(entry(ts))
	}
	src.generate(rng, 20, end, clock.Now())
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	end2 := clock.Now().Add(-DefaultLag)
	if w := src.windows(); len(w) != 2 || !w[1].After.Equal(end.Add(-DefaultOverlap)) || !w[1].Before.Equal(end2) {
		t.Fatalf("second window %v", w[1:])
	}
	sameEvents(t, c, src.truth(liveStart, end2))
	if st := s.Status(context.Background()); st.State != StateIdle || st.LastError != nil || !st.SyncedUpTo.Equal(end2) || st.Backfill != nil {
		t.Fatalf("status %+v", st)
	}
}

func TestBackfillCoversEverythingNewestFirst(t *testing.T) {
	for _, order := range []wiz.Order{wiz.OrderNewestFirst, wiz.OrderOldestFirst, wiz.OrderUnknown} {
		t.Run(orderName(order), func(t *testing.T) {
			clock := newFakeClock(t0)
			src := newMemSource(clock, order)
			src.cap = 250 // small cap: many windows reach it
			rng := rand.New(rand.NewSource(2))
			src.generate(rng, 3000, t0.Add(-4*24*time.Hour), t0)
			// A burst: 600 entries inside one minute, more than any window may return.
			src.generate(rng, 600, t0.Add(-30*time.Hour), t0.Add(-30*time.Hour+time.Minute))
			c, _ := tempCache(t)
			cfg := testConfig(clock)
			cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
			cfg.Concurrency = 3
			cfg.Slice = 6 * time.Hour
			cfg.MinSlice = time.Second
			s := New(c, src, cfg)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameEvents(t, c, src.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
			st := s.Status(context.Background())
			if st.Backfill == nil || st.Backfill.Done != 1 || !st.Backfill.From.Equal(cfg.BackfillStart) || !st.Backfill.To.Equal(t0.Add(-DefaultOverlap)) {
				t.Fatalf("backfill status %+v", st.Backfill)
			}
			if metricValue(t, s.mSplits) == 0 {
				t.Fatal("no window reached the cap: the test does not test splitting")
			}
			// A second run fetches nothing more for the backfill.
			n := len(src.windows())
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := len(src.windows()) - n; got != 1 {
				t.Fatalf("second run made %d calls, want only the live window", got)
			}
		})
	}
}

func TestBackfillOrderIsNewestFirst(t *testing.T) {
	for _, order := range []wiz.Order{wiz.OrderNewestFirst, wiz.OrderOldestFirst, wiz.OrderUnknown} {
		t.Run(orderName(order), func(t *testing.T) {
			clock := newFakeClock(t0)
			src := newMemSource(clock, order)
			src.cap = 100
			src.generate(rand.New(rand.NewSource(9)), 2000, t0.Add(-3*24*time.Hour), t0)
			c, _ := tempCache(t)
			cfg := testConfig(clock)
			cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
			cfg.Concurrency = 1
			cfg.Slice = 12 * time.Hour
			if err := New(c, src, cfg).RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			w := src.windows()[1:] // after the live window
			if !w[0].Before.Equal(t0.Add(-DefaultOverlap)) {
				t.Fatalf("backfill began with %v, want the slice ending at the live start", w[0])
			}
			for i := 1; i < len(w); i++ {
				if w[i].Before.After(w[i-1].Before) {
					t.Fatalf("window %d %v is newer than the one before it %v", i, w[i], w[i-1])
				}
			}
			sameEvents(t, c, src.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
		})
	}
}

func orderName(o wiz.Order) string {
	switch o {
	case wiz.OrderNewestFirst:
		return "newest-first"
	case wiz.OrderOldestFirst:
		return "oldest-first"
	}
	return "shuffled"
}

func TestMoreThanCapAtOneInstant(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.cap = 50
	ts := t0.Add(-2 * time.Minute).Truncate(time.Microsecond)
	for range 80 {
		src.add(entry(ts))
	}
	c, _ := tempCache(t)
	s := New(c, src, testConfig(clock))
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The sync does not hang and says what it could not get.
	st := s.Status(context.Background())
	if len(st.Notices) != 1 || !strings.Contains(st.Notices[0], "more than 10000 audit entries at") {
		t.Fatalf("notices %v", st.Notices)
	}
	if n := len(cached(t, c)); n != 50 {
		t.Fatalf("%d cached", n)
	}
}

func TestRestartResumesBackfillWithoutRefetching(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	rng := rand.New(rand.NewSource(3))
	src.generate(rng, 4000, t0.Add(-5*24*time.Hour), t0)
	c, path := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-5 * 24 * time.Hour)
	cfg.Slice = 12 * time.Hour
	cfg.Concurrency = 1
	src.failFn = func(call int, w wiz.Window) error {
		if call == 4 {
			return &wiz.Error{Kind: wiz.KindTransient, Message: "the Wiz API answered 503"}
		}
		return nil
	}
	s := New(c, src, cfg)
	err := s.RunOnce(context.Background())
	if wiz.KindOf(err) != wiz.KindTransient {
		t.Fatalf("first run: %v", err)
	}
	st := s.Status(context.Background())
	if st.State != StateIdle || st.LastError == nil || !strings.Contains(*st.LastError, "503") || st.Backfill.Done <= 0 || st.Backfill.Done >= 1 {
		t.Fatalf("after a transient failure: %+v backfill %+v", st, st.Backfill)
	}
	state, _ := c.State(context.Background())
	covered := state.Covered
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// A new instance on the same file: it fetches only what is missing.
	src.failFn = nil
	c2 := openCache(t, path)
	s2 := New(c2, src, cfg)
	n := len(src.windows())
	if err := s2.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range src.windows()[n+1:] { // after the live window
		for _, cv := range covered {
			if w.After.Before(cv.To) && w.Before.After(cv.From) {
				t.Fatalf("refetched %v, covered by %v before the restart", w, cv)
			}
		}
	}
	sameEvents(t, c2, src.truth(cfg.BackfillStart, clock.Now().Add(-DefaultLag)))
	if st := s2.Status(context.Background()); st.LastError != nil || st.Backfill.Done != 1 {
		t.Fatalf("status after resume %+v", st)
	}
}

func TestEarlierBackfillStartFetchesOnlyTheNewPart(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(4)), 2000, t0.Add(-4*24*time.Hour), t0)
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-1 * 24 * time.Hour)
	if err := New(c, src, cfg).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := len(src.windows())
	cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
	cfg.Registerer = prometheus.NewRegistry()
	s := New(c, src, cfg)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range src.windows()[n+1:] {
		if w.Before.After(t0.Add(-24 * time.Hour)) {
			t.Fatalf("refetched %v, already backfilled", w)
		}
	}
	sameEvents(t, c, src.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
	if st, _ := c.State(context.Background()); !st.BackfillStart.Equal(cfg.BackfillStart) {
		t.Fatalf("stored backfill start %v", st.BackfillStart)
	}
}

func TestBackfillClampedTo180Days(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-400 * 24 * time.Hour)
	cfg.Slice = 30 * 24 * time.Hour
	s := New(c, src, cfg)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range src.windows() {
		if w.After.Before(t0.Add(-wiz.Retention)) {
			t.Fatalf("window %v reaches past 180 days", w)
		}
	}
	if b := s.Status(context.Background()).Backfill; !b.From.Equal(t0.Add(-wiz.Retention)) || b.Done != 1 {
		t.Fatalf("backfill %+v", b)
	}
}

func TestAuthorizationErrorStopsUntilFixed(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(5)), 100, t0.Add(-2*time.Hour), t0)
	scopeErr := &wiz.Error{Kind: wiz.KindAuthorization, HTTPStatus: 403, Err: wiz.ErrScopeMissing,
		Message: "the service account lacks the admin:audit scope: grant it in Wiz"}
	var fail atomic.Bool
	fail.Store(true)
	src.failFn = func(int, wiz.Window) error {
		if fail.Load() {
			return scopeErr
		}
		return nil
	}
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-24 * time.Hour)
	s := New(c, src, cfg)
	if err := s.RunOnce(context.Background()); !errors.Is(err, wiz.ErrScopeMissing) {
		t.Fatalf("err %v", err)
	}
	st := s.Status(context.Background())
	if st.State != StateError || st.ErrorKind != "authorization" || st.LastError == nil || !strings.Contains(*st.LastError, "admin:audit") {
		t.Fatalf("status %+v", st)
	}
	if len(src.windows()) != 1 {
		t.Fatalf("%d calls: the backfill must not run while authorization fails", len(src.windows()))
	}
	if st.SyncedUpTo != nil {
		t.Fatal("checkpoint moved on a failed window")
	}
	fail.Store(false)
	clock.Advance(time.Minute)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(context.Background()); st.State != StateIdle || st.LastError != nil || st.Backfill.Done != 1 {
		t.Fatalf("after the fix %+v", st)
	}
}

func TestStatusJSONShape(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	c, _ := tempCache(t)
	s := New(c, src, testConfig(clock))
	b, err := json.Marshal(s.Status(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"state", "events", "oldest", "newest", "syncedUpTo", "lastSyncAt", "lastError", "backfill", "nextSyncAt", "cacheBytes", "role", "leader"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	for _, k := range []string{"oldest", "newest", "syncedUpTo", "lastSyncAt", "lastError", "backfill", "nextSyncAt"} {
		if m[k] != nil {
			t.Errorf("%s = %v before any sync, want null", k, m[k])
		}
	}
	src.add(entry(t0.Add(-time.Minute)))
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(s.Status(context.Background()))
	m = map[string]any{}
	_ = json.Unmarshal(b, &m)
	if m["state"] != "idle" || m["events"] != 1.0 || m["oldest"] != t0.Add(-time.Minute).Format(time.RFC3339) ||
		m["syncedUpTo"] != t0.Add(-DefaultLag).Format(time.RFC3339) {
		t.Fatalf("status %s", b)
	}
}

func TestStartStopRunNow(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	s := New(c, src, cfg)
	s.Start()
	s.Start() // no second loop
	defer s.Stop()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	<-clock.waiting // the first cycle is over; the loop waits for the poll
	if n := len(src.windows()); n != 1 {
		t.Fatalf("%d windows after start", n)
	}
	if st := s.Status(context.Background()); st.NextSyncAt == nil || !st.NextSyncAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("nextSyncAt %v", st.NextSyncAt)
	}
	// RunNow: a cycle without waiting for the poll.
	src.add(entry(t0.Add(-time.Minute)))
	s.RunNow()
	waitFor("RunNow's cycle", func() bool { return len(src.windows()) == 2 })
	<-clock.waiting
	waitFor("the event", func() bool { st := s.Status(context.Background()); return st.Events == 1 })
	// The poll.
	clock.Advance(time.Minute)
	waitFor("the poll's cycle", func() bool { return len(src.windows()) == 3 })
	<-clock.waiting
	s.Stop()
	s.Stop()
	clock.Advance(time.Hour)
	if n := len(src.windows()); n != 3 {
		t.Fatalf("%d windows after Stop", n)
	}
}

func TestStopMidBackfillThenRestartConverges(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(6)), 5000, t0.Add(-6*24*time.Hour), t0)
	c, path := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-6 * 24 * time.Hour)
	cfg.Slice = 6 * time.Hour
	cfg.Concurrency = 2
	stopped := make(chan struct{})
	blocked := make(chan struct{}, 10)
	src.blockFn = func(ctx context.Context, call int) {
		if call >= 5 { // hold every call from the 6th on until the syncer is stopped
			blocked <- struct{}{}
			<-ctx.Done()
		}
	}
	s := New(c, src, cfg)
	s.Start()
	<-blocked
	go func() { s.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	if st := s.Status(context.Background()); st.Backfill.Done >= 1 {
		t.Fatalf("backfill done before the stop: %+v", st.Backfill)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	src.blockFn = nil
	c2 := openCache(t, path)
	cfg.Registerer = prometheus.NewRegistry()
	s2 := New(c2, src, cfg)
	if err := s2.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, c2, src.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
}

func TestBackfillSlicesRunConcurrentlyWhileLiveContinues(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(10)), 1000, t0.Add(-4*24*time.Hour), t0)
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-4 * 24 * time.Hour)
	cfg.Slice = 12 * time.Hour
	cfg.Concurrency = 3
	liveStart := t0.Add(-DefaultOverlap)
	var active, peak atomic.Int32
	release := make(chan struct{})
	allIn := make(chan struct{})
	src.blockFn = func(ctx context.Context, call int) {
		// Backfill calls end at or before the live start; hold them until released.
		if w := src.windows()[call]; w.Before.After(liveStart) {
			return
		}
		if n := active.Add(1); n > peak.Load() {
			peak.Store(n)
			if n == 3 {
				close(allIn)
			}
		}
		defer active.Add(-1)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	s := New(c, src, cfg)
	s.Start()
	defer s.Stop()
	select {
	case <-allIn:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d backfill slices in flight at once, want 3", peak.Load())
	}
	if st := s.Status(context.Background()); st.State != StateBackfilling {
		t.Fatalf("state %q", st.State)
	}
	// The live tail goes on while the backfill is stuck.
	<-clock.waiting
	src.add(entry(t0.Add(30 * time.Second)))
	clock.Advance(time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for s.Status(context.Background()).Events == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the live window did not run during the backfill")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	deadline = time.Now().Add(20 * time.Second)
	for st := s.Status(context.Background()); st.Backfill.Done != 1 || st.State == StateBackfilling; st = s.Status(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("backfill did not finish: %+v", st.Backfill)
		}
		time.Sleep(time.Millisecond)
	}
	if peak.Load() > 3 {
		t.Fatalf("%d slices at once, more than Concurrency", peak.Load())
	}
	sameEvents(t, c, src.truth(cfg.BackfillStart, clock.Now().Add(-DefaultLag)))
}

func TestRetentionPruning(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(7)), 500, t0.Add(-5*24*time.Hour), t0)
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-5 * 24 * time.Hour)
	if err := New(c, src, cfg).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, c, src.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))

	cfg.RetentionDays = 2
	cfg.Registerer = prometheus.NewRegistry()
	s := New(c, src, cfg)
	n := len(src.windows())
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	cut := t0.Add(-2 * 24 * time.Hour)
	sameEvents(t, c, src.truth(cut, t0.Add(-DefaultLag)))
	if got := len(src.windows()) - n; got != 1 {
		t.Fatalf("%d calls: pruned history must not be fetched again", got)
	}
	if b := s.Status(context.Background()).Backfill; b.Done != 1 || !b.From.Equal(cut) {
		t.Fatalf("backfill %+v", b)
	}
}

func TestReadOnlyThenTakeOver(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.add(entry(t0.Add(-time.Minute)))
	a, path := tempCache(t)
	b := openCache(t, path)
	sa := New(a, src, testConfig(clock))
	sb := New(b, src, testConfig(clock))
	if err := sa.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sb.RunOnce(context.Background()); !errors.Is(err, cache.ErrReadOnly) {
		t.Fatalf("read-only instance synced: %v", err)
	}
	st := sb.Status(context.Background())
	if !st.ReadOnly || st.Role != RoleFollower || st.State != StateIdle || st.Events != 1 || st.SyncedUpTo == nil {
		t.Fatalf("read-only status %+v", st)
	}
	if len(src.windows()) != 1 {
		t.Fatal("the read-only instance fetched")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := sb.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := sb.Status(context.Background()); st.ReadOnly || st.Role != RoleLeader || st.Leader == nil || len(st.Notices) != 0 || !st.SyncedUpTo.Equal(clock.Now().Add(-DefaultLag)) {
		t.Fatalf("after take-over %+v", st)
	}
}

func TestStartedReadOnlySyncerTakesOverSoon(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	a, path := tempCache(t)
	b := openCache(t, path)
	s := New(b, src, testConfig(clock))
	s.Start()
	defer s.Stop()
	<-clock.waiting
	if st := s.Status(context.Background()); !st.ReadOnly || !st.NextSyncAt.Equal(t0.Add(DefaultPromoteInterval)) {
		t.Fatalf("read-only status %+v", st)
	}
	if err := a.Close(); err != nil { // the old instance is disposed
		t.Fatal(err)
	}
	clock.Advance(DefaultPromoteInterval)
	<-clock.waiting
	if st := s.Status(context.Background()); st.ReadOnly || st.SyncedUpTo == nil || !st.NextSyncAt.Equal(t0.Add(DefaultPromoteInterval+time.Minute)) {
		t.Fatalf("after take-over %+v", st)
	}
}

func TestMetrics(t *testing.T) {
	clock := newFakeClock(t0)
	src := newMemSource(clock, wiz.OrderNewestFirst)
	src.generate(rand.New(rand.NewSource(8)), 200, t0.Add(-24*time.Hour), t0)
	reg := prometheus.NewRegistry()
	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.Registerer = reg
	cfg.BackfillStart = t0.Add(-24 * time.Hour)
	s := New(c, src, cfg)
	// A second syncer on the same registry (another data source) must not clash.
	c2, _ := tempCache(t)
	cfg2 := cfg
	cfg2.DatasourceUID = "other"
	_ = New(c2, newMemSource(clock, wiz.OrderNewestFirst), cfg2)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s.mEvents); got != 200 {
		t.Fatalf("events_synced_total %v", got)
	}
	if got := metricValue(t, s.mBackfill); got != 1 {
		t.Fatalf("backfill progress %v", got)
	}
	if got := metricValue(t, s.mLag); got != DefaultLag.Seconds() {
		t.Fatalf("lag %v", got)
	}
	if got := metricValue(t, s.mCacheBytes); got <= 0 {
		t.Fatalf("cache bytes %v", got)
	}
	if got := metricValue(t, s.mRequests.WithLabelValues("window", "ok").(prometheus.Metric)); int(got) != len(src.windows()) {
		t.Fatalf("windows ok %v, calls %d", got, len(src.windows()))
	}
	s.NoteRetry("rate limited")
	s.NoteRetry("rate limited")
	if got := metricValue(t, s.mRetries.WithLabelValues("rate limited").(prometheus.Metric)); got != 2 {
		t.Fatalf("retries %v", got)
	}
	names, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range names {
		got = append(got, mf.GetName())
	}
	sort.Strings(got)
	want := []string{"wizauditlogs_api_requests_total", "wizauditlogs_api_retries_total", "wizauditlogs_backfill_progress_ratio", "wizauditlogs_cache_events",
		"wizauditlogs_cache_size_bytes", "wizauditlogs_events_synced_total", "wizauditlogs_sync_lag_seconds"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("metric %s not exported (have %v)", w, got)
		}
	}
}

func TestMissingAndProgress(t *testing.T) {
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	target := store.Interval{From: at(0), To: at(10)}
	cov := []store.Interval{{From: at(-5), To: at(2)}, {From: at(4), To: at(6)}, {From: at(9), To: at(20)}}
	gaps := missing(target, cov)
	want := []store.Interval{{From: at(6).Add(1), To: at(9).Add(-1)}, {From: at(2).Add(1), To: at(4).Add(-1)}}
	if len(gaps) != 2 || gaps[0] != want[0] || gaps[1] != want[1] {
		t.Fatalf("gaps %v, want %v", gaps, want)
	}
	if p := progress(target, cov); p < 0.49 || p > 0.51 {
		t.Fatalf("progress %v", p)
	}
	if p := progress(target, []store.Interval{{From: at(-1), To: at(11)}}); p != 1 {
		t.Fatalf("progress %v", p)
	}
	if g := missing(target, nil); len(g) != 1 || g[0] != target {
		t.Fatalf("%v", g)
	}
}
