package wiz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	// refreshMargin is how long before expiry a token is replaced.
	refreshMargin = 5 * time.Minute
	// defaultTokenLifetime is assumed when the token endpoint does not say (no expires_in).
	defaultTokenLifetime = time.Hour
)

// tokenCache holds the current access token and makes sure at most one token request is in
// flight. Token requests run on a long-lived context (not the caller's), so a caller that gives
// up does not cancel a refresh other callers wait for; each caller still stops waiting when its
// own context ends.
type tokenCache struct {
	c       *Client
	cc      clientcredentials.Config
	baseCtx context.Context

	mu        sync.Mutex
	tok       string
	prev      string // the token before tok, kept only to scrub it from errors
	gen       uint64 // incremented with every new token
	refreshAt time.Time
	expiresAt time.Time
	inflight  *tokenCall
}

type tokenCall struct {
	done chan struct{}
	err  *Error
}

func newTokenCache(c *Client) *tokenCache {
	cc := clientcredentials.Config{
		ClientID:       c.cfg.ClientID,
		ClientSecret:   c.cfg.ClientSecret,
		TokenURL:       c.cfg.AuthURL,
		EndpointParams: url.Values{"audience": {c.cfg.Audience}},
		AuthStyle:      oauth2.AuthStyleInParams,
	}
	hc := *c.http // a shallow copy so that the User-Agent wrapper does not touch the caller's client
	hc.Transport = userAgentTransport{base: c.http.Transport, ua: c.cfg.UserAgent}
	// The client secret is in the token request's body, which Go re-sends on a 307 or 308
	// redirect: never follow the token endpoint to another host, nor off https.
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && (req.URL.Host != via[0].URL.Host || (req.URL.Scheme != "https" && !IsLoopback(req.URL.Hostname()))) {
			return fmt.Errorf("the token endpoint redirected to %s://%s; the client secret is only sent to the configured token URL",
				req.URL.Scheme, req.URL.Host)
		}
		if c.http.CheckRedirect != nil {
			return c.http.CheckRedirect(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &tokenCache{
		c:       c,
		cc:      cc,
		baseCtx: context.WithValue(context.Background(), oauth2.HTTPClient, &hc),
	}
}

// get returns a usable token and its generation (for invalidate).
func (tc *tokenCache) get(ctx context.Context) (string, uint64, *Error) {
	for {
		tc.mu.Lock()
		now := tc.c.cfg.Now()
		if tc.tok != "" && now.Before(tc.refreshAt) {
			tok, gen := tc.tok, tc.gen
			tc.mu.Unlock()
			return tok, gen, nil
		}
		call := tc.inflight
		if call == nil {
			call = &tokenCall{done: make(chan struct{})}
			tc.inflight = call
			go tc.fetch(call)
		}
		tc.mu.Unlock()

		select {
		case <-ctx.Done():
			return "", 0, tc.c.ctxError(ctx, nil)
		case <-call.done:
		}
		if call.err == nil {
			continue // loop to read the new token under the lock
		}
		// The refresh failed. A token that has not expired yet is still good to use.
		tc.mu.Lock()
		if tc.tok != "" && tc.c.cfg.Now().Before(tc.expiresAt.Add(-10*time.Second)) {
			tok, gen := tc.tok, tc.gen
			tc.mu.Unlock()
			return tok, gen, nil
		}
		tc.mu.Unlock()
		return "", 0, call.err
	}
}

// invalidate drops the token of generation gen (after the API refused it with 401), so the
// next get fetches a new one. Callers holding an older generation do not drop a newer token.
func (tc *tokenCache) invalidate(gen uint64) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if gen == tc.gen && tc.tok != "" {
		tc.prev, tc.tok = tc.tok, ""
	}
}

func (tc *tokenCache) knownTokens() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []string
	for _, t := range []string{tc.tok, tc.prev} {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

func (tc *tokenCache) fetch(call *tokenCall) {
	ctx, cancel := context.WithTimeout(tc.baseCtx, tc.c.cfg.TokenTimeout)
	defer cancel()
	t, err := tc.cc.Token(ctx)
	var cerr *Error
	if err != nil {
		cerr = tc.classify(err) // before locking: scrubbing reads the token under the lock
	}

	tc.mu.Lock()
	defer tc.mu.Unlock()
	defer close(call.done)
	tc.inflight = nil
	if cerr != nil {
		call.err = cerr
		return
	}
	now := tc.c.cfg.Now()
	life := defaultTokenLifetime
	switch {
	case t.ExpiresIn > 0:
		life = time.Duration(t.ExpiresIn) * time.Second
	case !t.Expiry.IsZero():
		life = time.Until(t.Expiry)
	}
	if tc.tok != "" {
		tc.prev = tc.tok
	}
	tc.tok = t.AccessToken
	tc.gen++
	tc.expiresAt = now.Add(life)
	tc.refreshAt = now.Add(life - refreshLead(life))
}

// refreshLead is how long before expiry a token of the given lifetime is replaced: 5 minutes,
// or half its life when it lives 10 minutes or less, so that a short-lived token is still
// reused for a while instead of being fetched again for every call.
func refreshLead(life time.Duration) time.Duration {
	if life <= 2*refreshMargin {
		return life / 2
	}
	return refreshMargin
}

func (tc *tokenCache) classify(err error) *Error {
	red := tc.c.red
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		detail := re.ErrorCode
		if re.ErrorDescription != "" {
			detail += ": " + re.ErrorDescription
		}
		if detail == "" {
			detail = truncate(string(re.Body), 200)
		}
		detail = http.StatusText(status) + withDetail(detail)
		switch {
		case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden:
			return red.errorf(KindAuthentication, status, err,
				"authentication failed: the token endpoint refused the client ID or secret (HTTP %d %s); "+
					"check the client ID, the client secret and the token URL", status, detail)
		case status == http.StatusTooManyRequests:
			return red.errorf(KindRateLimited, status, err,
				"the token endpoint is rate limiting this client (HTTP %d)", status)
		case status >= 500 || status == http.StatusRequestTimeout:
			return red.errorf(KindTransient, status, err,
				"the token endpoint is unavailable (HTTP %d %s)", status, detail)
		default:
			return red.errorf(KindPermanent, status, err,
				"the token endpoint answered HTTP %d %s", status, detail)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return red.errorf(KindTransient, 0, err, "the token endpoint did not answer in time")
	}
	return red.errorf(KindTransient, 0, err, "could not get an access token from the token endpoint: %s",
		red.causeText(err))
}

func withDetail(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// userAgentTransport sets the User-Agent of every request it sends.
type userAgentTransport struct {
	base http.RoundTripper
	ua   string
}

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("User-Agent", t.ua)
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r2)
}
