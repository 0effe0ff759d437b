package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// fakeClock moves only when told to. After channels fire when Advance passes their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // signalled whenever After registers a waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// memSource is an in-test audit log: it pages closed windows like the real API, with a result
// cap, a configurable order, events that become visible late, and injected errors.
type memSource struct {
	clock *fakeClock
	order wiz.Order // OrderNewestFirst, OrderOldestFirst, or OrderUnknown for a shuffled order
	cap   int

	mu      sync.Mutex
	events  []memEvent // sorted by (ts, id)
	calls   []wiz.Window
	failFn  func(call int, w wiz.Window) error  // nil: no failure
	blockFn func(ctx context.Context, call int) // runs before each call
	rng     *rand.Rand
}

type memEvent struct {
	e       auditlog.Entry
	visible time.Time
}

func newMemSource(clock *fakeClock, order wiz.Order) *memSource {
	return &memSource{clock: clock, order: order, cap: wiz.ResultCap, rng: rand.New(rand.NewSource(42))}
}

var idSeq int

// entry builds an entry with raw JSON as Wiz would send it.
func entry(ts time.Time) auditlog.Entry {
	idSeq++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", idSeq)
	raw := fmt.Sprintf(`{"id":%q,"action":"Login","requestId":%q,"status":"SUCCESS","timestamp":%q,"actionParameters":{"n":%d},"userAgent":null,"sourceIP":"203.0.113.9","serviceAccount":null,"user":{"id":"u1","name":"alice"}}`,
		id, id, ts.UTC().Format(time.RFC3339Nano), idSeq)
	return auditlog.Entry{ID: id, RequestID: id, Action: "Login", Status: "SUCCESS", Timestamp: ts.UTC(),
		PrincipalID: "u1", PrincipalName: "alice", PrincipalType: auditlog.PrincipalUser, SourceIP: "203.0.113.9",
		ActionParameters: json.RawMessage(fmt.Sprintf(`{"n":%d}`, idSeq)), Raw: json.RawMessage(raw)}
}

// add stores entries visible from now on (late arrivals when their timestamps are past).
func (s *memSource) add(es ...auditlog.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for _, e := range es {
		s.events = append(s.events, memEvent{e: e, visible: now})
	}
	sort.SliceStable(s.events, func(i, j int) bool {
		a, b := s.events[i].e, s.events[j].e
		if !a.Timestamp.Equal(b.Timestamp) {
			return a.Timestamp.Before(b.Timestamp)
		}
		return a.ID < b.ID
	})
}

// generate adds n entries spread at random over [from, to] with some equal timestamps, all
// visible already.
func (s *memSource) generate(rng *rand.Rand, n int, from, to time.Time) []auditlog.Entry {
	out := make([]auditlog.Entry, 0, n)
	span := int64(to.Sub(from))
	for i := 0; i < n; i++ {
		var ts time.Time
		if i > 0 && rng.Intn(10) == 0 {
			ts = out[i-1].Timestamp // groups of equal timestamps
		} else {
			ts = from.Add(time.Duration(rng.Int63n(span + 1))).Truncate(time.Microsecond)
		}
		out = append(out, entry(ts))
	}
	s.add(out...)
	return out
}

// truth is every visible entry in [from, to].
func (s *memSource) truth(from, to time.Time) map[string]auditlog.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	m := map[string]auditlog.Entry{}
	for _, ev := range s.events {
		if !ev.e.Timestamp.Before(from) && !ev.e.Timestamp.After(to) && !ev.visible.After(now) {
			m[ev.e.ID] = ev.e
		}
	}
	return m
}

func (s *memSource) windows() []wiz.Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *memSource) AuditLog(ctx context.Context, w wiz.Window, pageSize int, onPage func([]auditlog.Entry) error) (wiz.WindowResult, error) {
	s.mu.Lock()
	call := len(s.calls)
	s.calls = append(s.calls, w)
	failFn, blockFn := s.failFn, s.blockFn
	now := s.clock.Now()
	var sel []auditlog.Entry
	for _, ev := range s.events {
		ts := ev.e.Timestamp
		if ts.Before(w.After) || ts.After(w.Before) || ev.visible.After(now) || ts.After(now) {
			continue
		}
		sel = append(sel, ev.e)
	}
	switch s.order {
	case wiz.OrderNewestFirst:
		slices.Reverse(sel)
	case wiz.OrderUnknown:
		s.rng.Shuffle(len(sel), func(i, j int) { sel[i], sel[j] = sel[j], sel[i] })
	}
	s.mu.Unlock()
	if blockFn != nil {
		blockFn(ctx, call)
	}
	if err := ctx.Err(); err != nil {
		return wiz.WindowResult{}, err
	}
	if failFn != nil {
		if err := failFn(call, w); err != nil {
			return wiz.WindowResult{}, err
		}
	}
	if len(sel) > s.cap {
		sel = sel[:s.cap]
	}
	var res wiz.WindowResult
	rose, fell := false, false
	for i, e := range sel {
		if res.Oldest.IsZero() || e.Timestamp.Before(res.Oldest) {
			res.Oldest = e.Timestamp
		}
		if e.Timestamp.After(res.Newest) {
			res.Newest = e.Timestamp
		}
		if i > 0 {
			rose = rose || e.Timestamp.After(sel[i-1].Timestamp)
			fell = fell || e.Timestamp.Before(sel[i-1].Timestamp)
		}
	}
	for len(sel) > 0 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := min(pageSize, len(sel))
		page := slices.Clone(sel[:n])
		sel = sel[n:]
		res.Pages++
		res.Entries += n
		if err := onPage(page); err != nil {
			return res, err
		}
	}
	res.Truncated = res.Entries >= s.cap
	switch {
	case fell && !rose:
		res.Order = wiz.OrderNewestFirst
	case rose && !fell:
		res.Order = wiz.OrderOldestFirst
	}
	return res, nil
}

// cached reads every event of the cache: id -> raw JSON.
func cached(t *testing.T, c *cache.Cache) map[string]string {
	t.Helper()
	rows, err := c.ReadDB().Query("SELECT id, raw FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		if _, dup := m[id]; dup {
			t.Fatalf("event %s stored twice", id)
		}
		m[id] = raw
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameEvents fails unless the cache holds exactly the entries of want, raw JSON byte for byte.
func sameEvents(t *testing.T, c *cache.Cache, want map[string]auditlog.Entry) {
	t.Helper()
	got := cached(t, c)
	missingN, extra := 0, 0
	for id, e := range want {
		raw, ok := got[id]
		if !ok {
			missingN++
			if missingN <= 3 {
				t.Errorf("missing %s at %s", id, e.Timestamp.Format(time.RFC3339Nano))
			}
			continue
		}
		if raw != string(e.Raw) {
			t.Errorf("event %s: raw differs:\n got %s\nwant %s", id, raw, e.Raw)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	if missingN > 0 || extra > 0 {
		t.Fatalf("cache holds %d events: %d missing, %d unexpected (want %d)", len(got), missingN, extra, len(want))
	}
	if st, err := c.Stats(context.Background()); err != nil || st.Events != int64(len(want)) {
		t.Fatalf("Stats().Events = %d (%v), want %d", st.Events, err, len(want))
	}
}

func openCache(t *testing.T, path string) *cache.Cache {
	t.Helper()
	c, err := cache.Open(path, cache.Options{Fingerprint: "fp", PrunePause: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func tempCache(t *testing.T) (*cache.Cache, string) {
	path := filepath.Join(t.TempDir(), "ds.db")
	return openCache(t, path), path
}

// testConfig is a Config on the fake clock with its own metrics registry.
func testConfig(clock *fakeClock) Config {
	return Config{
		DatasourceUID: "test",
		PollInterval:  time.Minute,
		PageSize:      100,
		Clock:         clock,
		Registerer:    prometheus.NewRegistry(),
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
