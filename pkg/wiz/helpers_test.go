package wiz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// t0 is a fixed "now" for tests that use a manual clock.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// sleeps records the waits the client asks for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type fixture struct {
	tenant *wizfake.Tenant
	srv    *httptest.Server
	client *Client
	sleeps *sleeps
	clock  *wizfake.ManualClock
}

// newFixture serves a fake tenant on a random loopback port and builds a client for it that
// shares the tenant's manual clock, does not really sleep between retries, and is not slowed
// by its rate limiter.
func newFixture(t *testing.T, o wizfake.Options, mod func(*Config)) *fixture {
	t.Helper()
	clock := wizfake.NewManualClock(t0)
	if o.Now == nil {
		o.Now = clock.Now
	}
	if o.End.IsZero() {
		o.End = t0
	}
	tenant := wizfake.New(o)
	srv := httptest.NewServer(tenant)
	t.Cleanup(srv.Close)
	f := &fixture{tenant: tenant, srv: srv, sleeps: &sleeps{}, clock: clock}
	cfg := Config{
		APIURL:            srv.URL,
		AuthURL:           wizfake.TokenURL(srv.URL),
		ClientID:          tenant.ClientID(),
		ClientSecret:      tenant.ClientSecret(),
		RequestsPerSecond: 10000,
		UserAgent:         "seed-wizauditlogs-datasource/test",
		Now:               clock.Now,
		Sleep:             f.sleeps.sleep,
		Rand:              func() float64 { return 0.5 },
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.client = c
	return f
}

// collect pages through w and returns every entry, failing the test on error.
func (f *fixture) collect(t *testing.T, w Window, pageSize int) ([]auditlog.Entry, WindowResult) {
	t.Helper()
	var got []auditlog.Entry
	res, err := f.client.AuditLog(context.Background(), w, pageSize, func(es []auditlog.Entry) error {
		got = append(got, es...)
		return nil
	})
	if err != nil {
		t.Fatalf("AuditLog: %v (kind %s)", err, KindOf(err))
	}
	return got, res
}

// tryCollect is collect without failing.
func (f *fixture) tryCollect(ctx context.Context, w Window, pageSize int) ([]auditlog.Entry, WindowResult, error) {
	var got []auditlog.Entry
	res, err := f.client.AuditLog(ctx, w, pageSize, func(es []auditlog.Entry) error {
		got = append(got, es...)
		return nil
	})
	return got, res, err
}

// truthIn returns the tenant's visible entries inside w, by id.
func truthIn(tenant *wizfake.Tenant, w Window) map[string]wizfake.Entry {
	out := map[string]wizfake.Entry{}
	for _, e := range tenant.VisibleEvents() {
		if (!w.After.IsZero() && e.Timestamp.Before(w.After)) || (!w.Before.IsZero() && e.Timestamp.After(w.Before)) {
			continue
		}
		out[e.ID] = e
	}
	return out
}

// checkExactlyOnce asserts got holds every entry of want exactly once, with the exact node JSON.
func checkExactlyOnce(t *testing.T, got []auditlog.Entry, want map[string]wizfake.Entry) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range got {
		seen[e.ID]++
		w, ok := want[e.ID]
		if !ok {
			t.Errorf("entry %s was not expected", e.ID)
			continue
		}
		if string(e.Raw) != string(w.Node) {
			t.Errorf("entry %s: Raw differs from the node the tenant sent:\n got %s\nwant %s", e.ID, e.Raw, w.Node)
		}
		if !e.Timestamp.Equal(w.Timestamp) {
			t.Errorf("entry %s: timestamp %s, want %s", e.ID, e.Timestamp, w.Timestamp)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("entry %s received %d times", id, n)
		}
	}
	for id := range want {
		if seen[id] == 0 {
			t.Errorf("entry %s missing", id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d", len(got), len(want))
	}
}

// slowTokens wraps a handler so that token requests take d (to make concurrent callers overlap).
func slowTokens(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			time.Sleep(d)
		}
		h.ServeHTTP(w, r)
	})
}
