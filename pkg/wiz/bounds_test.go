package wiz

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestWindowFilterWidensToWholeMicroseconds: the bounds sent enclose the closed window with
// at least a microsecond to spare on each side, aligned to the API's precision.
func TestWindowFilterWidensToWholeMicroseconds(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		after, before time.Duration // offsets from base
		want          [2]string
	}{
		{0, time.Second, [2]string{"2026-11-01T11:59:59.999999Z", "2026-11-01T12:00:01.000001Z"}},
		{1500, 2500, [2]string{"2026-11-01T12:00:00Z", "2026-11-01T12:00:00.000004Z"}},
		{999, 1000, [2]string{"2026-11-01T11:59:59.999999Z", "2026-11-01T12:00:00.000002Z"}},
	} {
		f := windowFilter(Window{After: base.Add(c.after), Before: base.Add(c.before)})
		ts := f["timestamp"].(map[string]any)
		if ts["after"] != c.want[0] || ts["before"] != c.want[1] {
			t.Errorf("window +%s..+%s: sent %v, want %v", c.after, c.before, ts, c.want)
		}
	}
	if windowFilter(Window{}) != nil {
		t.Error("an open window sent a filter")
	}
}

// TestEveryBoundSemanticsReturnsTheClosedWindow: with tie groups on both ends of the window
// and a microsecond beyond them, each combination of inclusive and exclusive bounds returns
// every entry of the closed window; the only extras are within the widening.
func TestEveryBoundSemanticsReturnsTheClosedWindow(t *testing.T) {
	t.Parallel()
	lo, hi := t0.Add(-3*time.Hour), t0.Add(-time.Hour)
	for _, c := range []struct{ afterIn, beforeIn bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("after_inclusive=%v/before_inclusive=%v", c.afterIn, c.beforeIn), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, wizfake.Options{Seed: 5, Events: 300, Span: 4 * time.Hour,
				AfterInclusive: c.afterIn, BeforeInclusive: c.beforeIn}, nil)
			for _, at := range []time.Time{lo.Add(-2 * time.Microsecond), lo.Add(-time.Microsecond), lo, hi,
				hi.Add(time.Microsecond), hi.Add(2 * time.Microsecond)} {
				f.tenant.AddTie(at, 25)
			}
			w := Window{After: lo, Before: hi}
			got, _ := f.collect(t, w, 20)
			want := truthIn(f.tenant, w)
			seen := map[string]bool{}
			for _, e := range got {
				if seen[e.ID] {
					t.Errorf("entry %s sent twice", e.ID)
				}
				seen[e.ID] = true
				if e.Timestamp.Before(lo.Add(-time.Microsecond)) || e.Timestamp.After(hi.Add(time.Microsecond)) {
					t.Errorf("entry at %s is beyond the widening", e.Timestamp.Format(time.RFC3339Nano))
				}
			}
			for id := range want {
				if !seen[id] {
					t.Errorf("entry %s of the window is missing", id)
				}
			}
		})
	}
}

// TestFreshCursorsForeverStopAtTheCap: a server that always says there is another page, with a
// new cursor each time, cannot keep the client paging: it stops at the result cap and reports
// the window truncated, so the syncer splits it.
func TestFreshCursorsForeverStopAtTheCap(t *testing.T) {
	t.Parallel()
	page := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			serveToken(w)
			return
		}
		page++
		var nodes []string
		for i := 0; i < 500; i++ {
			nodes = append(nodes, fmt.Sprintf(`{"id":"p%d-%d","action":"Login","status":"SUCCESS","timestamp":"2026-11-01T00:00:00Z"}`, page, i))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"data":{"auditLogEntries":{"nodes":[%s],"pageInfo":{"hasNextPage":true,"endCursor":"c%d"}}}}`, strings.Join(nodes, ","), page)
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret, RequestsPerSecond: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.AuditLog(ctx, fzWindow, 500, func([]auditlog.Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Entries != ResultCap || res.Pages != ResultCap/500 {
		t.Fatalf("got %+v, want a truncated window of %d entries in %d pages", res, ResultCap, ResultCap/500)
	}
}

// TestRedirectOffHTTPSIsRefused: audit data never comes back over plain http from a remote host.
func TestRedirectOffHTTPSIsRefused(t *testing.T) {
	t.Parallel()
	srv := quietServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			serveToken(w)
			return
		}
		http.Redirect(w, r, "http://wiz.example.invalid/graphql", http.StatusTemporaryRedirect)
	}))
	srv.StartTLS()
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret,
		HTTPClient: srv.Client(), RequestsPerSecond: 1e6, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AuditLog(context.Background(), fzWindow, 10, func([]auditlog.Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "only https is followed") {
		t.Fatalf("err = %v", err)
	}
}

// TestOnRetryReportsEachRetry: the hook behind the retries metric sees every retry.
func TestOnRetryReportsEachRetry(t *testing.T) {
	t.Parallel()
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			serveToken(w)
			return
		}
		calls++
		if calls <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, emptyPage)
	}))
	defer srv.Close()
	var kinds []Kind
	c, err := New(Config{APIURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret,
		RequestsPerSecond: 1e6, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		OnRetry: func(k Kind, _ time.Duration) { kinds = append(kinds, k) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuditLog(context.Background(), fzWindow, 10, func([]auditlog.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != KindTransient || kinds[1] != KindTransient {
		t.Fatalf("retries seen: %v", kinds)
	}
}
