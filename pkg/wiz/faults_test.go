package wiz

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

var day = Window{After: t0.Add(-24 * time.Hour), Before: t0}

// Faults the client must survive: each is injected for a few requests in the middle of a
// window, and the window must still come out whole, every entry exactly once.
func TestClientSurvivesFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fault      wizfake.Fault
		wantSleeps []time.Duration // nil: do not check
		outcome    string
	}{
		{"429 with Retry-After", wizfake.Fault{Kind: wizfake.FaultRateLimit, RetryAfter: 7 * time.Second, Skip: 1, Count: 2},
			[]time.Duration{7 * time.Second, 7 * time.Second}, wizfake.OutcomeRateLimited},
		{"429 without Retry-After", wizfake.Fault{Kind: wizfake.FaultRateLimit, Skip: 1, Count: 3},
			[]time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}, wizfake.OutcomeRateLimited},
		{"GraphQL rate limit with retryAfter", wizfake.Fault{Kind: wizfake.FaultGraphQLRateLimit, RetryAfter: 3 * time.Second, Skip: 2, Count: 1},
			[]time.Duration{3 * time.Second}, wizfake.OutcomeGraphQLRateLimited},
		{"GraphQL rate limit without retryAfter", wizfake.Fault{Kind: wizfake.FaultGraphQLRateLimit, Skip: 2, Count: 1},
			[]time.Duration{750 * time.Millisecond}, wizfake.OutcomeGraphQLRateLimited},
		{"503", wizfake.Fault{Kind: wizfake.FaultServerError, Skip: 1, Count: 2}, nil, wizfake.OutcomeServerError},
		{"502", wizfake.Fault{Kind: wizfake.FaultServerError, Status: 502, Skip: 1, Count: 1}, nil, wizfake.OutcomeServerError},
		{"connection dropped mid-body", wizfake.Fault{Kind: wizfake.FaultDropConnection, Skip: 1, Count: 2}, nil, wizfake.OutcomeDropped},
		{"partial data with errors", wizfake.Fault{Kind: wizfake.FaultPartialData, Skip: 1, Count: 1}, nil, wizfake.OutcomePartial},
		{"errors and no data", wizfake.Fault{Kind: wizfake.FaultNoData, Skip: 1, Count: 2}, nil, wizfake.OutcomeNoData},
		{"hasNextPage with null cursor", wizfake.Fault{Kind: wizfake.FaultNullCursor, Skip: 1, Count: 1}, nil, wizfake.OutcomeNullCursor},
		{"401 mid-pagination", wizfake.Fault{Kind: wizfake.FaultUnauthorized, Skip: 2, Count: 1}, []time.Duration{}, wizfake.OutcomeUnauthorized},
		{"probabilistic 503", wizfake.Fault{Kind: wizfake.FaultServerError, Probability: 0.3}, nil, wizfake.OutcomeServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, wizfake.Options{Seed: 20, Events: 400}, func(c *Config) { c.MaxAttempts = 8 })
			f.tenant.Inject(tc.fault)
			got, res := f.collect(t, day, 50)
			checkExactlyOnce(t, got, truthIn(f.tenant, day))
			if res.Pages != 8 {
				t.Errorf("%d pages", res.Pages)
			}
			if s := f.tenant.Stats(); s.Outcomes[tc.outcome] == 0 {
				t.Errorf("fault never fired: %+v", s.Outcomes)
			}
			if tc.wantSleeps != nil {
				got := f.sleeps.all()
				if len(got) != len(tc.wantSleeps) {
					t.Fatalf("sleeps %v, want %v", got, tc.wantSleeps)
				}
				for i := range got {
					if got[i] != tc.wantSleeps[i] {
						t.Errorf("sleeps %v, want %v", got, tc.wantSleeps)
						break
					}
				}
			}
		})
	}
}

// A partial page is never handed to onPage: every page the caller sees is complete.
func TestPartialPageNeverDelivered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 21, Events: 100}, func(c *Config) { c.MaxAttempts = 3 })
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultPartialData, Skip: 1})
	var pages [][]auditlog.Entry
	_, err := f.client.AuditLog(context.Background(), day, 30, func(es []auditlog.Entry) error {
		pages = append(pages, es)
		return nil
	})
	if KindOf(err) != KindTransient || !strings.Contains(err.Error(), "partial data") {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
	if len(pages) != 1 || len(pages[0]) != 30 {
		t.Errorf("delivered %d pages", len(pages))
	}
}

func TestPersistentNullCursorIsAnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 22, Events: 100}, func(c *Config) { c.MaxAttempts = 3 })
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultNullCursor})
	got, res, err := f.tryCollect(context.Background(), day, 30)
	if !errors.Is(err, ErrMissingCursor) || KindOf(err) != KindTransient {
		t.Fatalf("err %v (kind %s)", err, KindOf(err))
	}
	if len(got) != 0 || res.Pages != 0 {
		t.Errorf("a page without its cursor was delivered: %d entries", len(got))
	}
	if n := f.tenant.Stats().GraphQLRequests; n != 3 {
		t.Errorf("%d requests, want 3 attempts (no loop)", n)
	}
}

func TestPersistentFaultsAreClassified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    wizfake.Fault
		kind     Kind
		status   int
		requests int // GraphQL requests expected
		contains string
	}{
		{"503", wizfake.Fault{Kind: wizfake.FaultServerError}, KindTransient, 503, 4, "unavailable (HTTP 503"},
		{"429", wizfake.Fault{Kind: wizfake.FaultRateLimit, RetryAfter: time.Second}, KindRateLimited, 429, 4, "rate limiting"},
		{"GraphQL rate limit", wizfake.Fault{Kind: wizfake.FaultGraphQLRateLimit, RetryAfter: time.Second}, KindRateLimited, 200, 4, "Rate limit exceeded"},
		{"dropped", wizfake.Fault{Kind: wizfake.FaultDropConnection}, KindTransient, 200, 4, "connection"},
		{"no data", wizfake.Fault{Kind: wizfake.FaultNoData}, KindTransient, 200, 4, "no data"},
		{"403", wizfake.Fault{Kind: wizfake.FaultForbidden}, KindAuthorization, 403, 1, "the service account lacks the admin:audit scope"},
		{"GraphQL scope error", wizfake.Fault{Kind: wizfake.FaultForbiddenGraphQL}, KindAuthorization, 200, 1, "the service account lacks the admin:audit scope"},
		{"401 after a fresh token", wizfake.Fault{Kind: wizfake.FaultUnauthorized}, KindAuthentication, 401, 2, "authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, wizfake.Options{Seed: 23, Events: 20}, func(c *Config) { c.MaxAttempts = 4 })
			f.tenant.Inject(tc.fault)
			_, _, err := f.tryCollect(context.Background(), day, 50)
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("err %v is not a *Error", err)
			}
			if we.Kind != tc.kind || we.HTTPStatus != tc.status {
				t.Errorf("kind %s status %d, want %s %d: %v", we.Kind, we.HTTPStatus, tc.kind, tc.status, err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("message %q lacks %q", err.Error(), tc.contains)
			}
			if n := f.tenant.Stats().GraphQLRequests; n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if tc.kind == KindAuthorization && !errors.Is(err, ErrScopeMissing) {
				t.Errorf("not ErrScopeMissing: %v", err)
			}
			if tc.kind == KindRateLimited && we.RetryAfter != time.Second {
				t.Errorf("RetryAfter %s", we.RetryAfter)
			}
		})
	}
}

func TestMissingScopeFromTheTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 24, Scopes: []string{"read:all"}}, nil)
	err := f.client.CheckAccess(context.Background())
	if KindOf(err) != KindAuthorization || !strings.Contains(err.Error(), "the service account lacks the admin:audit scope") {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
}

func TestExpiredTokensMidPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 25, Events: 200}, nil)
	pages := 0
	_, err := f.client.AuditLog(context.Background(), day, 20, func([]auditlog.Entry) error {
		pages++
		if pages%3 == 0 {
			f.tenant.ExpireTokens() // every third page, all tokens die
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.tenant.Stats(); s.TokensIssued != 1+pages/3 || s.Outcomes[wizfake.OutcomeUnauthorized] != pages/3 {
		t.Errorf("%d pages: stats %+v", pages, s)
	}
	// The same with the clock: tokens of 900 s, 20 minutes of fake time per page.
	g := newFixture(t, wizfake.Options{Seed: 25, Events: 200, TokenLifetime: 900 * time.Second}, nil)
	_, err = g.client.AuditLog(context.Background(), day, 20, func([]auditlog.Entry) error {
		g.clock.Advance(20 * time.Minute)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.tenant.Stats(); s.Outcomes[wizfake.OutcomeUnauthorized] != 0 {
		t.Errorf("the client let a token expire: %+v", s.Outcomes)
	}
}

func TestSlowResponsesHonourContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 26, Events: 20}, nil)
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := f.tryCollect(ctx, day, 50)
	if KindOf(err) != KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}

	// A per-attempt timeout shorter than the latency: the slow attempt is retried.
	g := newFixture(t, wizfake.Options{Seed: 26, Events: 20}, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	g.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 2 * time.Second, Count: 1})
	got, _ := g.collect(t, day, 50)
	if len(got) != 20 {
		t.Errorf("%d entries", len(got))
	}
}

func TestCancelledDuringBackoff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 27, Events: 20}, func(c *Config) { c.Sleep = nil }) // real sleeps
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultRateLimit, RetryAfter: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := f.tryCollect(ctx, day, 50)
	if KindOf(err) != KindTransient || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("after %s: kind %s: %v", time.Since(start), KindOf(err), err)
	}
}

func TestRetryAfterLongerThanMaxGivesUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 28, Events: 20}, func(c *Config) { c.MaxRetryAfter = 10 * time.Second })
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultRateLimit, RetryAfter: time.Hour})
	_, _, err := f.tryCollect(context.Background(), day, 50)
	if KindOf(err) != KindRateLimited || RetryAfterOf(err) != time.Hour || len(f.sleeps.all()) != 0 {
		t.Fatalf("kind %s retry-after %s sleeps %v: %v", KindOf(err), RetryAfterOf(err), f.sleeps.all(), err)
	}
}

// The tenant's hard rate limit: a client within it never sees a 429; a client far above it
// gets 429s, backs off and still completes.
func TestHardRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 29, Events: 300, RateLimit: 40}, func(c *Config) {
		c.RequestsPerSecond = 30
	})
	start := time.Now()
	got, _ := f.collect(t, day, 20) // 15 pages
	if len(got) != 300 || f.tenant.Stats().Sent429 != 0 {
		t.Errorf("%d entries, %d 429s", len(got), f.tenant.Stats().Sent429)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("15 requests at 30/s took only %s: the limiter does not limit", el)
	}

	g := newFixture(t, wizfake.Options{Seed: 29, Events: 120, RateLimit: 40, RateBurst: 1}, func(c *Config) {
		c.Sleep = nil // real sleeps
		c.BaseBackoff = 20 * time.Millisecond
		c.MaxAttempts = 20
	})
	got, _ = g.collect(t, day, 5) // 24 pages, far above 40/s without a client-side limit
	if len(got) != 120 || g.tenant.Stats().Sent429 == 0 {
		t.Errorf("%d entries, %d 429s", len(got), g.tenant.Stats().Sent429)
	}
}

func TestResponseSizeCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 30, Events: 50}, func(c *Config) { c.MaxResponseBytes = 2000 })
	_, _, err := f.tryCollect(context.Background(), day, 50)
	if !errors.Is(err, ErrResponseTooLarge) || KindOf(err) != KindPermanent {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
}

func TestUndecodableNodeFailsThePage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 31, Events: 10}, nil)
	if err := f.tenant.Add(wizfake.Event{ID: "bad", Timestamp: t0.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// Serve the tenant through a proxy that breaks the timestamp of the node "bad".
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		f.tenant.ServeHTTP(rec, r)
		body := strings.Replace(rec.Body.String(), `"id":"bad","action":"","requestId":null,"status":"","timestamp":"`,
			`"id":"bad","action":"","requestId":null,"status":"","timestamp":"x`, 1)
		w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
		w.WriteHeader(rec.Code)
		_, _ = w.Write([]byte(body))
	}))
	defer proxy.Close()
	c, err := New(Config{APIURL: proxy.URL, AuthURL: wizfake.TokenURL(proxy.URL), ClientID: f.tenant.ClientID(),
		ClientSecret: f.tenant.ClientSecret(), RequestsPerSecond: 1000, Now: f.clock.Now, Sleep: f.sleeps.sleep})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = c.AuditLog(context.Background(), day, 500, func([]auditlog.Entry) error { calls++; return nil })
	if !errors.Is(err, ErrBadEntry) || KindOf(err) != KindPermanent || calls != 0 {
		t.Fatalf("calls %d, kind %s: %v", calls, KindOf(err), err)
	}
}

func TestHTTPStatusClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		kind   Kind
	}{{400, KindPermanent}, {404, KindPermanent}, {408, KindTransient}, {500, KindTransient}, {504, KindTransient}} {
		f := newFixture(t, wizfake.Options{Seed: 32}, func(c *Config) { c.MaxAttempts = 1 })
		f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultServerError, Status: tc.status})
		if _, _, err := f.tryCollect(context.Background(), day, 5); KindOf(err) != tc.kind {
			t.Errorf("HTTP %d: kind %s: %v", tc.status, KindOf(err), err)
		}
	}
}
