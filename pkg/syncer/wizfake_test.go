package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// fakeTenant is a wizfake tenant served on a random loopback port, with the real client in
// front of it, both on the test's fake clock (the client never really sleeps).
type fakeTenant struct {
	clock  *fakeClock
	tenant *wizfake.Tenant
	client *wiz.Client
}

func newFakeTenant(t *testing.T, o wizfake.Options) *fakeTenant {
	t.Helper()
	clock := newFakeClock(t0)
	o.Now = clock.Now
	if o.End.IsZero() {
		o.End = t0
	}
	tenant := wizfake.New(o)
	srv := httptest.NewServer(tenant)
	t.Cleanup(srv.Close)
	client, err := wiz.New(wiz.Config{
		APIURL:            srv.URL,
		AuthURL:           wizfake.TokenURL(srv.URL),
		ClientID:          tenant.ClientID(),
		ClientSecret:      tenant.ClientSecret(),
		RequestsPerSecond: 10000,
		Now:               clock.Now,
		Sleep:             func(ctx context.Context, d time.Duration) error { return ctx.Err() },
		Rand:              func() float64 { return 0.5 },
		ResultCap:         o.ResultCap,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTenant{clock: clock, tenant: tenant, client: client}
}

// truth is what the tenant shows in [from, to], as entries keyed by id with the node JSON.
func (f *fakeTenant) truth(from, to time.Time) map[string]auditlog.Entry {
	m := map[string]auditlog.Entry{}
	for _, e := range f.tenant.VisibleEvents() {
		if e.Timestamp.Before(from) || e.Timestamp.After(to) {
			continue
		}
		m[e.ID] = auditlog.Entry{ID: e.ID, Timestamp: e.Timestamp, Raw: json.RawMessage(e.Node)}
	}
	return m
}

// bounds is one of the four meanings Wiz's timestamp.after/before filters may have.
type bounds struct{ afterIn, beforeIn bool }

func (b bounds) String() string {
	name := func(in bool) string {
		if in {
			return "inclusive"
		}
		return "exclusive"
	}
	return "after " + name(b.afterIn) + ", before " + name(b.beforeIn)
}

var allBounds = []bounds{{false, false}, {true, false}, {false, true}, {true, true}}

// TestFakeTenantFullSync: every bound semantics, both orders, with dense ties on the cut
// points: the live window's ends (the backfill's end), the next window's overlap start and
// end, and a burst made of tie groups over the result cap, so that a cap split (at a page
// boundary) cuts a tie group. Two cycles: the backfill and first window, then the next window.
func TestFakeTenantFullSync(t *testing.T) {
	cases := []struct {
		bounds      bounds
		oldestFirst bool
		pageSize    int
	}{
		{bounds{false, false}, false, 500},
		{bounds{false, false}, true, 500},
		{bounds{true, false}, false, 97},
		{bounds{false, true}, true, 250},
		{bounds{true, true}, false, 500},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s, oldest first %v, pages of %d", tc.bounds, tc.oldestFirst, tc.pageSize)
		t.Run(name, func(t *testing.T) {
			f := newFakeTenant(t, wizfake.Options{Seed: 11, Events: 6000, Span: 3 * 24 * time.Hour,
				EqualRate: 0.2, OldestFirst: tc.oldestFirst, AfterInclusive: tc.bounds.afterIn, BeforeInclusive: tc.bounds.beforeIn})
			// 24 tie groups of 500 at 1 ms steps: 12,000 entries, over the cap in any window.
			f.tenant.AddTieBurst(t0.Add(-50*time.Hour), 24, 500, time.Millisecond)
			liveStart, liveEnd := t0.Add(-DefaultOverlap), t0.Add(-DefaultLag)
			next := t0.Add(time.Minute)
			for _, at := range []time.Time{liveStart, liveEnd, liveEnd.Add(-DefaultOverlap), next.Add(-DefaultLag)} {
				f.tenant.AddTie(at, 300)
			}
			c, _ := tempCache(t)
			cfg := testConfig(f.clock)
			cfg.PageSize = tc.pageSize
			cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
			s := New(c, f.client, cfg)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameEventsWidened(t, c, f, cfg.BackfillStart, liveEnd)
			if metricValue(t, s.mSplits) == 0 {
				t.Fatal("no window reached the cap")
			}
			st := s.Status(context.Background())
			if st.State != StateIdle || st.LastError != nil || st.Backfill.Done != 1 {
				t.Fatalf("status %+v", st)
			}
			f.clock.Advance(time.Minute)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameEventsWidened(t, c, f, cfg.BackfillStart, next.Add(-DefaultLag))
			for _, r := range f.tenant.Requests() {
				if r.Outcome != "ok" {
					t.Fatalf("request outcome %q", r.Outcome)
				}
			}
		})
	}
}

// sameEventsWidened fails unless the cache holds every tenant entry in [from, to], with the
// node JSON sent, and nothing but them and entries within the client's 1µs widening.
func sameEventsWidened(t *testing.T, c *cache.Cache, f *fakeTenant, from, to time.Time) {
	t.Helper()
	got := cached(t, c)
	want := f.truth(from, to)
	extra := f.truth(from.Add(-time.Microsecond), to.Add(time.Microsecond))
	missingN := 0
	for id, e := range want {
		if raw, ok := got[id]; !ok {
			missingN++
		} else if raw != string(e.Raw) {
			t.Errorf("event %s: raw differs", id)
		}
	}
	unexpected := 0
	for id := range got {
		if _, ok := extra[id]; !ok {
			unexpected++
		}
	}
	if missingN > 0 || unexpected > 0 {
		t.Fatalf("cache holds %d events: %d missing, %d unexpected (want %d)", len(got), missingN, unexpected, len(want))
	}
}

func TestFakeTenantLateArrivalsAndRestart(t *testing.T) {
	f := newFakeTenant(t, wizfake.Options{Seed: 12, Events: 3000, Span: 24 * time.Hour})
	c, path := tempCache(t)
	cfg := testConfig(f.clock)
	cfg.BackfillStart = t0.Add(-24 * time.Hour)
	if err := New(c, f.client, cfg).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp := t0.Add(-DefaultLag)

	// While the sync runs (between two polls), Wiz makes entries visible late: stamped before
	// the checkpoint, within the 10-minute overlap.
	f.clock.Advance(time.Minute)
	late := []wizfake.Event{
		{ID: "late-1", Action: "Login", Status: "SUCCESS", Timestamp: cp.Add(-9 * time.Minute), User: &wizfake.Principal{ID: "u1", Name: "alice"}},
		{ID: "late-2", Action: "UpdateUser", Status: "FAILED", Timestamp: cp.Add(-time.Second), ServiceAccount: &wizfake.Principal{ID: "sa1", Name: "robot"}},
		{ID: "late-3", Action: "Login", Status: "SUCCESS", Timestamp: cp},
	}
	if err := f.tenant.Add(late...); err != nil {
		t.Fatal(err)
	}
	f.tenant.AddGenerated(50, cp, f.clock.Now().Add(-DefaultLag))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// A new instance on the same file resumes from the checkpoint: one window, nothing older.
	c2 := openCache(t, path)
	cfg.Registerer = prometheus.NewRegistry()
	s2 := New(c2, f.client, cfg)
	f.tenant.ResetStats()
	if err := s2.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	end := f.clock.Now().Add(-DefaultLag)
	sameEvents(t, c2, f.truth(cfg.BackfillStart, end))
	reqs := f.tenant.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests after restart, want the one live window", len(reqs))
	}
	var filter struct {
		Timestamp struct{ After, Before string } `json:"timestamp"`
	}
	if err := json.Unmarshal(reqs[0].Variables["filterBy"], &filter); err != nil {
		t.Fatal(err)
	}
	// The closed window [checkpoint - overlap, end], widened by the client by 1µs each side.
	if filter.Timestamp.After != wizfake.FormatTimestamp(cp.Add(-DefaultOverlap-time.Microsecond)) ||
		filter.Timestamp.Before != wizfake.FormatTimestamp(end.Add(time.Microsecond)) {
		t.Fatalf("window after restart %+v", filter.Timestamp)
	}
}

func TestFakeTenantForbidden(t *testing.T) {
	for _, kind := range []wizfake.FaultKind{wizfake.FaultForbidden, wizfake.FaultForbiddenGraphQL} {
		t.Run(kind.String(), func(t *testing.T) {
			f := newFakeTenant(t, wizfake.Options{Seed: 13, Events: 100, Span: time.Hour})
			id := f.tenant.Inject(wizfake.Fault{Kind: kind})
			c, _ := tempCache(t)
			cfg := testConfig(f.clock)
			cfg.BackfillStart = t0.Add(-2 * time.Hour)
			s := New(c, f.client, cfg)
			if err := s.RunOnce(context.Background()); wiz.KindOf(err) != wiz.KindAuthorization {
				t.Fatalf("err %v (%v)", err, wiz.KindOf(err))
			}
			st := s.Status(context.Background())
			if st.State != StateError || st.LastError == nil || !strings.Contains(*st.LastError, "admin:audit") || st.SyncedUpTo != nil {
				t.Fatalf("status %+v", st)
			}
			b, _ := json.Marshal(st)
			if !strings.Contains(string(b), `"state":"error"`) {
				t.Fatalf("%s", b)
			}
			// Fixed in Wiz: the next poll (or RunNow) syncs again.
			f.tenant.RemoveFault(id)
			f.clock.Advance(time.Minute)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st := s.Status(context.Background()); st.State != StateIdle || st.LastError != nil || st.Backfill.Done != 1 {
				t.Fatalf("after the fix %+v", st)
			}
			sameEvents(t, c, f.truth(cfg.BackfillStart, f.clock.Now().Add(-DefaultLag)))
		})
	}
}

func TestFakeTenantRetriedFaultsAndTransientFailure(t *testing.T) {
	f := newFakeTenant(t, wizfake.Options{Seed: 14, Events: 2000, Span: 12 * time.Hour})
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultRateLimit, Skip: 1, Count: 2, RetryAfter: time.Second})
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultGraphQLRateLimit, Skip: 3, Count: 1, RetryAfter: time.Second})
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultDropConnection, Skip: 5, Count: 1})
	c, _ := tempCache(t)
	cfg := testConfig(f.clock)
	cfg.BackfillStart = t0.Add(-12 * time.Hour)
	s := New(c, f.client, cfg)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, c, f.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))

	// A 503 that outlasts the client's retries: the window is tried again next poll; the state
	// is not "error" and the checkpoint does not move.
	f.clock.Advance(time.Minute)
	id := f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultServerError, Status: 503})
	if err := s.RunOnce(context.Background()); wiz.KindOf(err) != wiz.KindTransient {
		t.Fatalf("err %v", err)
	}
	st := s.Status(context.Background())
	if st.State != StateIdle || st.LastError == nil || !st.SyncedUpTo.Equal(t0.Add(-DefaultLag)) {
		t.Fatalf("status %+v", st)
	}
	f.tenant.RemoveFault(id)
	f.clock.Advance(time.Minute)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(context.Background()); st.LastError != nil || !st.SyncedUpTo.Equal(f.clock.Now().Add(-DefaultLag)) {
		t.Fatalf("status %+v", st)
	}
}

func TestFakeTenantStopMidBackfillConverges(t *testing.T) {
	f := newFakeTenant(t, wizfake.Options{Seed: 15, Events: 20000, Span: 5 * 24 * time.Hour})
	c, path := tempCache(t)
	cfg := testConfig(f.clock)
	cfg.BackfillStart = t0.Add(-5 * 24 * time.Hour)
	cfg.Slice = 12 * time.Hour
	cfg.Concurrency = 3
	cfg.PageSize = 200
	// Stop after a few hundred pages, in the middle of pages and slices.
	var pages int
	stopAt := make(chan struct{})
	src := pageCounter{Source: f.client, onPage: func() {
		pages++
		if pages == 40 {
			close(stopAt)
		}
	}}
	s := New(c, &src, cfg)
	s.Start()
	<-stopAt
	s.Stop()
	if st := s.Status(context.Background()); st.Backfill.Done >= 1 {
		t.Fatalf("backfill complete before the stop: %+v", st.Backfill)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, path)
	cfg.Registerer = prometheus.NewRegistry()
	if err := New(c2, f.client, cfg).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, c2, f.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
}

// pageCounter calls onPage (serialised) after every page its Source delivers.
type pageCounter struct {
	Source
	mu     sync.Mutex
	onPage func()
}

func (s *pageCounter) AuditLog(ctx context.Context, w wiz.Window, pageSize int, onPage func([]auditlog.Entry) error) (wiz.WindowResult, error) {
	return s.Source.AuditLog(ctx, w, pageSize, func(p []auditlog.Entry) error {
		if err := onPage(p); err != nil {
			return err
		}
		s.mu.Lock()
		s.onPage()
		s.mu.Unlock()
		return nil
	})
}

// TestMoreThanCapInOneMicrosecondEndsUnderEveryBound: 10,001 entries at one instant can never
// be paged past; the split tree around them still ends (every window it pushes is narrower,
// and windows under 2µs are not split) and the notice says what is missing.
func TestMoreThanCapInOneMicrosecondEndsUnderEveryBound(t *testing.T) {
	for _, b := range []bounds{{false, false}, {true, true}} {
		t.Run(b.String(), func(t *testing.T) {
			f := newFakeTenant(t, wizfake.Options{Seed: 16, Events: -1, AfterInclusive: b.afterIn, BeforeInclusive: b.beforeIn})
			at := t0.Add(-time.Hour)
			f.tenant.AddTie(at, wiz.ResultCap+1)
			f.tenant.AddTie(at.Add(-time.Microsecond), 5)
			f.tenant.AddTie(at.Add(time.Microsecond), 5)
			c, _ := tempCache(t)
			s := New(c, f.client, testConfig(f.clock))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := s.fetchRange(ctx, wiz.Window{After: at.Add(-3 * time.Microsecond), Before: at.Add(3 * time.Microsecond)}, false); err != nil {
				t.Fatal(err)
			}
			// 6µs: at most 1 + 2 + 4 windows before they are under 2µs wide.
			if n := metricValue(t, s.mSplits); n > 7 {
				t.Fatalf("%v windows reached the cap", n)
			}
			if st := s.Status(context.Background()); len(st.Notices) != 1 || !strings.Contains(st.Notices[0], "more than 10000 audit entries at") {
				t.Fatalf("notices %v", st.Notices)
			}
			// What the API returns is stored. Entries within a microsecond of such an instant
			// may be shadowed by it (a query that reaches them also gets the crowded instant
			// under some bound semantics): the notice covers them.
			if n := len(cached(t, c)); n < wiz.ResultCap || n > wiz.ResultCap+10 {
				t.Fatalf("%d cached", n)
			}
		})
	}
}
