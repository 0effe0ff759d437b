package wiz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestRefreshLead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ life, lead time.Duration }{
		{86400 * time.Second, 5 * time.Minute},
		{3600 * time.Second, 5 * time.Minute},
		{900 * time.Second, 5 * time.Minute},
		{600 * time.Second, 5 * time.Minute},
		{300 * time.Second, 150 * time.Second},
		{60 * time.Second, 30 * time.Second},
	} {
		if got := refreshLead(tc.life); got != tc.lead {
			t.Errorf("refreshLead(%s) = %s, want %s", tc.life, got, tc.lead)
		}
	}
}

// Every call within a token's reuse period uses the cached token; the refresh happens exactly
// at expiry minus the lead, never per call, even for tokens of 5 minutes or less.
func TestTokenReusedUntilRefreshPoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		life      time.Duration
		refreshAt time.Duration
	}{
		{3600 * time.Second, 3300 * time.Second},
		{900 * time.Second, 600 * time.Second},
		{300 * time.Second, 150 * time.Second},
		{120 * time.Second, 60 * time.Second},
	} {
		t.Run(tc.life.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, wizfake.Options{Seed: 9, Events: 5, TokenLifetime: tc.life}, nil)
			ctx := context.Background()
			step := tc.refreshAt / 30
			for i := 0; i < 30; i++ { // 30 calls before the refresh point
				if err := f.client.CheckAccess(ctx); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(step)
			}
			if n := f.tenant.Stats().TokensIssued; n != 1 {
				t.Fatalf("%d tokens for 30 calls within the first %s of a %s token", n, tc.refreshAt, tc.life)
			}
			f.clock.Set(t0.Add(tc.refreshAt))
			if err := f.client.CheckAccess(ctx); err != nil {
				t.Fatal(err)
			}
			if n := f.tenant.Stats().TokensIssued; n != 2 {
				t.Fatalf("%d tokens after the refresh point, want 2", n)
			}
			// Over ten lifetimes with frequent calls: one token per reuse period, no more.
			f.tenant.ResetStats()
			for i := 0; i < 600; i++ { // ten lifetimes, 60 calls per lifetime
				f.clock.Advance(tc.life / 60)
				if err := f.client.CheckAccess(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if n, max := f.tenant.Stats().TokensIssued, int(10*tc.life/tc.refreshAt)+1; n > max {
				t.Errorf("%d tokens over ten lifetimes, want at most %d", n, max)
			}
		})
	}
}

func TestConcurrentCallersShareOneTokenRequest(t *testing.T) {
	t.Parallel()
	tenant := wizfake.New(wizfake.Options{Seed: 10, Events: 20, End: time.Now()})
	srv := httptest.NewServer(slowTokens(tenant, 100*time.Millisecond))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: wizfake.TokenURL(srv.URL), ClientID: tenant.ClientID(),
		ClientSecret: tenant.ClientSecret(), RequestsPerSecond: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.CheckAccess(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := tenant.Stats(); s.TokenRequests != 1 {
		t.Errorf("%d token requests for 20 concurrent callers, want 1", s.TokenRequests)
	}
}

// A caller that gives up while a token request is in flight does not break that request for
// the others: the token request runs on the client's own long-lived context.
func TestCancelledCallerDoesNotPoisonTokenRefresh(t *testing.T) {
	t.Parallel()
	tenant := wizfake.New(wizfake.Options{Seed: 11, Events: 3, End: time.Now()})
	srv := httptest.NewServer(slowTokens(tenant, 150*time.Millisecond))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: wizfake.TokenURL(srv.URL), ClientID: tenant.ClientID(),
		ClientSecret: tenant.ClientSecret(), RequestsPerSecond: 10000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.CheckAccess(ctx); KindOf(err) != KindTransient {
		t.Fatalf("impatient caller: %v", err)
	}
	if err := c.CheckAccess(context.Background()); err != nil {
		t.Fatalf("patient caller: %v", err)
	}
	if n := tenant.Stats().TokensIssued; n != 1 {
		t.Errorf("%d tokens issued, want 1 (the first request completed for the second caller)", n)
	}
}

func TestBadCredentialsAreAuthenticationErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 12}, func(c *Config) { c.ClientSecret = "not-the-secret-42" })
	err := f.client.CheckAccess(context.Background())
	if KindOf(err) != KindAuthentication {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
	if !strings.HasPrefix(err.Error(), "authentication failed: the token endpoint refused the client ID or secret (") {
		t.Errorf("message: %q", err.Error())
	}
	if strings.Contains(err.Error(), "not-the-secret-42") {
		t.Errorf("secret in message: %q", err.Error())
	}
	// The same for the pager, without retries.
	_, _, err = f.tryCollect(context.Background(), Window{After: t0.Add(-time.Hour), Before: t0}, 10)
	if KindOf(err) != KindAuthentication {
		t.Errorf("AuditLog kind %s: %v", KindOf(err), err)
	}
	if s := f.tenant.Stats(); s.TokenRequests != 2 || len(f.sleeps.all()) != 0 {
		t.Errorf("%d token requests and sleeps %v; refused credentials are not retried", s.TokenRequests, f.sleeps.all())
	}
}

func TestWrongAudienceIsAnAuthenticationError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 13}, func(c *Config) { c.Audience = AudienceAuth0 })
	if err := f.client.CheckAccess(context.Background()); KindOf(err) != KindAuthentication {
		t.Fatalf("kind %s: %v", KindOf(err), err)
	}
	g := newFixture(t, wizfake.Options{Seed: 13, LegacyAudience: true}, func(c *Config) { c.Audience = AudienceAuth0 })
	if err := g.client.CheckAccess(context.Background()); err != nil {
		t.Fatalf("legacy audience on a tenant that accepts it: %v", err)
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	// 5xx: transient, retried by the pager.
	f := newFixture(t, wizfake.Options{Seed: 14, Events: 10}, nil)
	f.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultTokenError, Count: 2})
	got, _ := f.collect(t, Window{After: t0.Add(-24 * time.Hour), Before: t0}, 500)
	if len(got) != 10 || len(f.sleeps.all()) != 2 {
		t.Errorf("%d entries, sleeps %v", len(got), f.sleeps.all())
	}
	// Unreachable token endpoint: transient.
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	c, err := New(Config{APIURL: url, AuthURL: url + "/oauth/token", ClientID: "id", ClientSecret: "secret-value",
		Sleep: (&sleeps{}).sleep, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckAccess(context.Background()); KindOf(err) != KindTransient {
		t.Errorf("unreachable: kind %s: %v", KindOf(err), err)
	}
}

func TestAudienceFor(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"https://auth.app.wiz.io/oauth/token":     AudienceCognito,
		"https://auth.app.wiz.us/oauth/token":     AudienceCognito,
		"https://auth.gov.wiz.io/oauth/token":     AudienceCognito,
		"https://auth.wiz.io/oauth/token":         AudienceAuth0,
		"https://AUTH0.gov.wiz.io/oauth/token":    AudienceAuth0,
		"https://auth0.test.wiz.io/oauth/token":   AudienceAuth0,
		"https://auth0.demo.wiz.io/oauth/token":   AudienceAuth0,
		"http://127.0.0.1:8090/oauth/token":       AudienceCognito,
		"https://auth.wiz.io.example/oauth/token": AudienceCognito,
	} {
		if got := AudienceFor(u); got != want {
			t.Errorf("AudienceFor(%s) = %s, want %s", u, got, want)
		}
	}
}

// The token request is a form post with the four fields in the body (no Basic header), the
// audience of the token host, and our User-Agent.
func TestTokenRequestShape(t *testing.T) {
	t.Parallel()
	type seen struct {
		form                url.Values
		basic               bool
		ua, ctype, queryAud string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctype := r.Header.Get("Content-Type")
		_, _, basic := r.BasicAuth()
		_ = r.ParseForm()
		got <- seen{form: r.PostForm, basic: basic, ua: r.UserAgent(), ctype: ctype}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"a.b.c","token_type":"Bearer","expires_in":3600}`))
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: "https://api.us1.app.wiz.io", AuthURL: srv.URL + "/oauth/token",
		ClientID: "the-id", ClientSecret: "the-secret", UserAgent: "ua-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.tokens.get(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := <-got
	want := url.Values{"grant_type": {"client_credentials"}, "audience": {"wiz-api"}, "client_id": {"the-id"}, "client_secret": {"the-secret"}}
	if s.form.Encode() != want.Encode() || s.basic || s.ua != "ua-test/1" || s.ctype != "application/x-www-form-urlencoded" {
		t.Errorf("token request: %+v", s)
	}
}
