package wiz

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
)

const emptyPage = `{"data":{"auditLogEntries":{"nodes":[],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}`

// headerLog records the headers of the requests a server received.
type headerLog struct {
	mu   sync.Mutex
	reqs []http.Header
}

func (l *headerLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Header.Clone())
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.reqs...)
}

func serveToken(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"`+fzToken+`","token_type":"Bearer","expires_in":3600}`)
}

// quietServer is an unstarted test server that does not log TLS handshake failures.
func quietServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	return srv
}

// TestRedirectToAnotherHostDropsTheToken: when the GraphQL endpoint redirects to another host
// (localhost is another host than 127.0.0.1 to Go's HTTP client), the access token stays
// behind. A redirect on the same host keeps it, which shows the header is really sent.
func TestRedirectToAnotherHostDropsTheToken(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var atB headerLog
			b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				atB.add(r)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, emptyPage)
			}))
			defer b.Close()
			otherHost := strings.Replace(b.URL, "127.0.0.1", "localhost", 1)
			if otherHost == b.URL {
				t.Skipf("test server is not on 127.0.0.1: %s", b.URL)
			}

			var atA headerLog
			a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/oauth/token":
					serveToken(w)
				case "/graphql":
					atA.add(r)
					http.Redirect(w, r, otherHost+"/graphql", status)
				case "/same/graphql":
					atA.add(r)
					http.Redirect(w, r, "/graphql-here", status)
				case "/graphql-here":
					atA.add(r)
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, emptyPage)
				}
			}))
			defer a.Close()

			run := func(apiURL string) error {
				c, err := New(Config{APIURL: apiURL, AuthURL: a.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret,
					RequestsPerSecond: 1e6, MaxAttempts: 2,
					Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = c.AuditLog(ctx, fzWindow, 10, func([]auditlog.Entry) error { return nil })
				return err
			}

			if err := run(a.URL + "/same/graphql"); err != nil {
				t.Fatalf("same-host redirect: %v", err)
			}
			for i, h := range atA.all() {
				if h.Get("Authorization") != "Bearer "+fzToken {
					t.Fatalf("same-host request %d carried Authorization %q, want the bearer token", i, h.Get("Authorization"))
				}
			}

			err := run(a.URL)
			got := atB.all()
			if len(got) == 0 {
				t.Fatalf("the other host received nothing (err %v)", err)
			}
			for i, h := range got {
				if v := h.Get("Authorization"); v != "" {
					t.Errorf("request %d to the other host carried Authorization %q", i, v)
				}
				for k, vs := range h {
					for _, v := range vs {
						if strings.Contains(v, fzToken) || strings.Contains(v, fzSecret) {
							t.Errorf("request %d to the other host carried a secret in %s: %q", i, k, v)
						}
					}
				}
			}
			if err != nil && (strings.Contains(err.Error(), fzToken) || strings.Contains(err.Error(), fzSecret)) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// TestSelfSignedCertificateRefused: with certificate verification on (no HTTPClient, or a
// plain http.Client), a server with a self-signed certificate is refused, with a classified
// error that says why, and the server never sees a request.
func TestSelfSignedCertificateRefused(t *testing.T) {
	var served headerLog
	tlsSrv := quietServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.add(r)
		if r.URL.Path == "/oauth/token" {
			serveToken(w)
			return
		}
		_, _ = io.WriteString(w, emptyPage)
	}))
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	// A plain-http token endpoint on loopback, to reach the GraphQL call itself.
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveToken(w) }))
	defer tokenSrv.Close()

	clients := map[string]*http.Client{"default client": nil, "plain http.Client": {}}
	for name, hc := range clients {
		for _, tc := range []struct{ what, authURL string }{
			{"token endpoint", tlsSrv.URL + "/oauth/token"},
			{"GraphQL endpoint", tokenSrv.URL + "/oauth/token"},
		} {
			t.Run(name+"/"+tc.what, func(t *testing.T) {
				c, err := New(Config{APIURL: tlsSrv.URL, AuthURL: tc.authURL, ClientID: "id", ClientSecret: fzSecret,
					HTTPClient: hc, RequestsPerSecond: 1e6, MaxAttempts: 2,
					Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = c.AuditLog(ctx, fzWindow, 10, func([]auditlog.Entry) error { return nil })
				var we *Error
				if !errors.As(err, &we) {
					t.Fatalf("err = %v (%T), want a classified *Error", err, err)
				}
				if ctx.Err() != nil {
					t.Fatalf("ran into the test deadline: %v", err)
				}
				if tc.what == "GraphQL endpoint" && KindOf(err) != KindPermanent {
					t.Errorf("a refused certificate is %s, want permanent: retrying cannot fix it", KindOf(err))
				}
				msg := err.Error()
				if !strings.Contains(msg, "certificate") {
					t.Errorf("the message does not say the certificate is the problem: %q", msg)
				}
				if strings.Contains(msg, fzSecret) || strings.Contains(msg, fzToken) {
					t.Errorf("error leaks a secret: %q", msg)
				}
				if err := c.CheckAccess(ctx); err == nil {
					t.Errorf("CheckAccess passed against a self-signed certificate")
				}
				if n := len(served.all()); n != 0 {
					t.Errorf("the TLS server answered %d requests", n)
				}
				t.Logf("%s: %s", KindOf(err), msg)
			})
		}
	}
}

// TestNewRefusesPlainHTTPToRemoteHosts: http:// is only for loopback hosts, for the API URL and
// the token URL alike; the refusal is a settings error that names the URL.
func TestNewRefusesPlainHTTPToRemoteHosts(t *testing.T) {
	cfg := func(api, auth string) Config {
		return Config{APIURL: api, AuthURL: auth, ClientID: "id", ClientSecret: fzSecret}
	}
	const goodAuth = "https://auth.app.wiz.io/oauth/token"
	for _, u := range []string{
		"http://api.us17.app.wiz.io/graphql",
		"http://203.0.113.7:8080",
		"http://127.0.0.1.example.com/graphql",
		"http://localhost.example.com",
		"http://[2001:db8::1]:8080",
		"http://0.0.0.0:8080",
		"http://10.0.0.1/graphql",
	} {
		for _, c := range []struct {
			field string
			cfg   Config
		}{{"API URL", cfg(u, goodAuth)}, {"token URL", cfg("https://api.us17.app.wiz.io", u)}} {
			_, err := New(c.cfg)
			if err == nil {
				t.Errorf("New accepted %s %q", c.field, u)
				continue
			}
			if KindOf(err) != KindSettings {
				t.Errorf("%s %q: kind %s, want settings", c.field, u, KindOf(err))
			}
			if !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s %q: the message does not name the URL: %q", c.field, u, err)
			}
		}
	}
	for _, u := range []string{
		"http://127.0.0.1", "http://127.0.0.1:8080/graphql", "http://localhost", "http://LOCALHOST:3000/",
		"http://[::1]", "http://[::1]:8080", "http://127.1.2.3:9", "https://api.us17.app.wiz.io",
	} {
		if _, err := New(cfg(u, u+"/oauth/token")); err != nil {
			t.Errorf("New refused %q: %v", u, err)
		}
	}
}

// TestTokenRedirectToAnotherHostIsNotFollowed: the client secret travels in the token
// request's body, which a 307/308 redirect would re-send: a token endpoint that redirects to
// another host gets a classified error, and the other host never sees the secret.
func TestTokenRedirectToAnotherHostIsNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var atB []string
			var mu sync.Mutex
			b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				atB = append(atB, r.URL.Path+" "+string(body))
				mu.Unlock()
				serveToken(w)
			}))
			defer b.Close()
			otherHost := strings.Replace(b.URL, "127.0.0.1", "localhost", 1)
			a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, otherHost+"/oauth/token", status)
			}))
			defer a.Close()
			c, err := New(Config{APIURL: b.URL, AuthURL: a.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret,
				RequestsPerSecond: 1e6, MaxAttempts: 2,
				Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.CheckAccess(ctx)
			var we *Error
			if !errors.As(err, &we) || !strings.Contains(err.Error(), "redirected") {
				t.Fatalf("err = %v, want a classified error about the redirect", err)
			}
			if strings.Contains(err.Error(), fzSecret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range atB {
				if strings.Contains(r, fzSecret) {
					t.Fatalf("the other host received the client secret: %q", r)
				}
			}
		})
	}
}
