package syncer

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/auditlog"
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

func TestFakeTenantFullSync(t *testing.T) {
	cases := []struct {
		name        string
		oldestFirst bool
		pageSize    int
	}{
		{"newest-first", false, 500},
		{"oldest-first", true, 500},
		{"newest-first, odd page size", false, 97},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Many equal timestamps (so groups straddle page boundaries), and a burst over the
			// 10,000-result cap inside one hour.
			f := newFakeTenant(t, wizfake.Options{Seed: 11, Events: 8000, Span: 3 * 24 * time.Hour,
				EqualRate: 0.2, OldestFirst: tc.oldestFirst})
			f.tenant.AddGenerated(12000, t0.Add(-50*time.Hour), t0.Add(-49*time.Hour))
			c, _ := tempCache(t)
			cfg := testConfig(f.clock)
			cfg.PageSize = tc.pageSize
			cfg.BackfillStart = t0.Add(-3 * 24 * time.Hour)
			s := New(c, f.client, cfg)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameEvents(t, c, f.truth(cfg.BackfillStart, t0.Add(-DefaultLag)))
			if metricValue(t, s.mSplits) == 0 {
				t.Fatal("no window reached the cap")
			}
			st := s.Status(context.Background())
			if st.State != StateIdle || st.LastError != nil || st.Backfill.Done != 1 {
				t.Fatalf("status %+v", st)
			}
			for _, r := range f.tenant.Requests() {
				if r.Outcome != "ok" {
					t.Fatalf("request outcome %q", r.Outcome)
				}
			}
		})
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
	if filter.Timestamp.After != wizfake.FormatTimestamp(cp.Add(-DefaultOverlap)) || filter.Timestamp.Before != wizfake.FormatTimestamp(end) {
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
