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
)

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
