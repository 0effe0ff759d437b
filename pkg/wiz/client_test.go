package wiz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestNewValidatesSettings(t *testing.T) {
	t.Parallel()
	ok := Config{APIURL: "https://api.us17.app.wiz.io/graphql", ClientID: "id", ClientSecret: "secret-1234"}
	for name, mod := range map[string]func(*Config){
		"no client id":        func(c *Config) { c.ClientID = " " },
		"no secret":           func(c *Config) { c.ClientSecret = "" },
		"no api url":          func(c *Config) { c.APIURL = "" },
		"relative api url":    func(c *Config) { c.APIURL = "api.us17.app.wiz.io" },
		"ftp api url":         func(c *Config) { c.APIURL = "ftp://api.us17.app.wiz.io" },
		"plain http api url":  func(c *Config) { c.APIURL = "http://api.us17.app.wiz.io/graphql" },
		"plain http auth url": func(c *Config) { c.AuthURL = "http://auth.app.wiz.io/oauth/token" },
		"credentials in url":  func(c *Config) { c.APIURL = "https://u:p@api.us17.app.wiz.io/graphql" },
		"negative rps":        func(c *Config) { c.RequestsPerSecond = -1 },
	} {
		cfg := ok
		mod(&cfg)
		_, err := New(cfg)
		if KindOf(err) != KindSettings {
			t.Errorf("%s: err %v (kind %s), want a settings error", name, err, KindOf(err))
		}
		if err != nil && strings.Contains(err.Error(), "secret-1234") {
			t.Errorf("%s: secret in %q", name, err)
		}
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}

func TestNormalizeAPIURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://api.us17.app.wiz.io":           "https://api.us17.app.wiz.io/graphql",
		"https://api.us17.app.wiz.io/":          "https://api.us17.app.wiz.io/graphql",
		"https://api.us17.app.wiz.io/graphql":   "https://api.us17.app.wiz.io/graphql",
		"https://api.us17.app.wiz.io/graphql/":  "https://api.us17.app.wiz.io/graphql",
		" https://proxy.example/wiz/graphql ":   "https://proxy.example/wiz/graphql",
		"https://proxy.example/wiz":             "https://proxy.example/wiz/graphql",
		"http://127.0.0.1:8090":                 "http://127.0.0.1:8090/graphql",
		"http://localhost:8090/graphql":         "http://localhost:8090/graphql",
		"http://[::1]:8090/":                    "http://[::1]:8090/graphql",
		"https://api.us2.app.wiz.us/graphql?x=": "https://api.us2.app.wiz.us/graphql?x=",
	} {
		got, err := NormalizeAPIURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeAPIURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	t.Parallel()
	c, err := New(Config{APIURL: "https://api.us1.app.wiz.io", ClientID: "id", ClientSecret: "secret-1234",
		BaseBackoff: time.Second, MaxBackoff: 8 * time.Second, Rand: func() float64 { return 0.999999 }})
	if err != nil {
		t.Fatal(err)
	}
	prev := time.Duration(0)
	for attempt := 1; attempt <= 8; attempt++ {
		d := c.backoff(attempt)
		if d > 8*time.Second || d < prev {
			t.Errorf("attempt %d: %s after %s", attempt, d, prev)
		}
		prev = d
	}
	c.randFunc = func() float64 { return 0 }
	if d := c.backoff(1); d != 500*time.Millisecond {
		t.Errorf("minimum jitter of the first step: %s", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"1.5":                           1500 * time.Millisecond,
		"-3":                            0,
		"soon":                          0,
		"Mon, 01 Jun 2026 12:00:30 GMT": 30 * time.Second,
		"Mon, 01 Jun 2026 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]time.Duration{`3`: 3 * time.Second, `"4"`: 4 * time.Second, `2.5`: 2500 * time.Millisecond, `null`: 0, `{}`: 0, `-1`: 0} {
		if got := retryAfterSeconds(json.RawMessage(in)); got != want {
			t.Errorf("retryAfterSeconds(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestClassifyGraphQLErrors(t *testing.T) {
	t.Parallel()
	c, err := New(Config{APIURL: "https://api.us1.app.wiz.io", ClientID: "id", ClientSecret: "secret-1234"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body    string
		hasData bool
		kind    Kind
	}{
		{`[{"message":"Rate limit exceeded","extensions":{"retryAfter":2}}]`, false, KindRateLimited},
		{`[{"message":"Unauthorized: missing scope admin:audit"}]`, false, KindAuthorization},
		{`[{"message":"You are not authorized to perform this action"}]`, false, KindAuthorization},
		{`[{"message":"nope","extensions":{"code":"FORBIDDEN"}}]`, false, KindAuthorization},
		{`[{"message":"Variable $first is required","extensions":{"code":"BAD_USER_INPUT"}}]`, false, KindPermanent},
		{`[{"message":"token expired","extensions":{"code":"UNAUTHENTICATED"}}]`, false, KindAuthentication},
		{`[{"message":"Internal error"}]`, false, KindTransient},
		{`[{"message":"Internal error"}]`, true, KindTransient},
	} {
		var errs []gqlError
		if err := json.Unmarshal([]byte(tc.body), &errs); err != nil {
			t.Fatal(err)
		}
		if got := c.classifyGraphQL(errs, tc.hasData, 200); got.Kind != tc.kind {
			t.Errorf("%s: kind %s, want %s", tc.body, got.Kind, tc.kind)
		}
	}
}

// A hostile server that echoes everything it receives (client secret, bearer token) in its
// error answers: none of it may reach an error message.
func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "SuperSecretValue-9f8e7d"
	var issued atomic.Int64
	var mode atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		echo := fmt.Sprintf("got secret %s auth %q form %v", r.Form.Get("client_secret"), r.Header.Get("Authorization"), r.Form)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth/token" {
			if mode.Load() == 0 {
				w.WriteHeader(401)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "access_denied " + echo, "error_description": echo, "message": echo})
				return
			}
			n := issued.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d-abcdefgh", n), "token_type": "Bearer", "expires_in": 3600})
			return
		}
		codes := map[int32]int{1: 500, 2: 400, 3: 403, 4: 200, 5: 401}
		code := codes[mode.Load()]
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"message": echo, "data": nil, "errors": []map[string]any{{"message": echo}}})
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "id", ClientSecret: secret,
		MaxAttempts: 2, RequestsPerSecond: 1000, Sleep: (&sleeps{}).sleep})
	if err != nil {
		t.Fatal(err)
	}
	for m := int32(0); m <= 5; m++ {
		mode.Store(m)
		err := c.CheckAccess(context.Background())
		if err == nil {
			t.Fatalf("mode %d: no error", m)
		}
		msgs := []string{err.Error()}
		var we *Error
		if errors.As(err, &we) {
			msgs = append(msgs, we.Message)
		}
		for _, msg := range msgs {
			if strings.Contains(msg, secret) || strings.Contains(msg, "-abcdefgh") {
				t.Errorf("mode %d: secret or token in error: %s", m, msg)
			}
		}
	}
}

func TestCheckAccess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 40, Events: 3}, nil)
	if err := f.client.CheckAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := string(f.tenant.Requests()[0].Variables["first"]); got != "1" {
		t.Errorf("first = %s", got)
	}
	f.tenant.SetScopes("read:all")
	if err := f.client.CheckAccess(context.Background()); KindOf(err) != KindAuthorization {
		t.Errorf("without scope: %v", err)
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	if KindOf(context.Canceled) != KindTransient || KindOf(fmt.Errorf("x: %w", context.DeadlineExceeded)) != KindTransient {
		t.Error("context errors")
	}
	if KindOf(errors.New("x")) != KindPermanent {
		t.Error("plain error")
	}
	wrapped := fmt.Errorf("sync: %w", &Error{Kind: KindAuthorization, Message: "m"})
	if KindOf(wrapped) != KindAuthorization {
		t.Error("wrapped *Error")
	}
}
