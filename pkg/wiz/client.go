// Package wiz is the client of the Wiz GraphQL API as far as the audit log needs it: OAuth2
// client credentials, the AuditLogTable query, paging through one closed time window,
// rate limiting, retries, and errors classified by Kind. It knows nothing of Grafana.
package wiz

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults used when a Config field is left zero.
const (
	DefaultAuthURL           = "https://auth.app.wiz.io/oauth/token"
	DefaultUserAgent         = "seed-wizauditlogs-datasource"
	DefaultRequestsPerSecond = 1.0
	DefaultMaxAttempts       = 6
	DefaultBaseBackoff       = time.Second
	DefaultMaxBackoff        = 60 * time.Second
	DefaultMaxRetryAfter     = 5 * time.Minute
	DefaultRequestTimeout    = 2 * time.Minute // the Wiz gateway gives up at about 120 s
	DefaultTokenTimeout      = 30 * time.Second
	DefaultMaxResponseBytes  = 32 << 20

	// AudienceCognito and AudienceAuth0 are the two `audience` values of the token endpoints.
	AudienceCognito = "wiz-api"
	AudienceAuth0   = "beyond-api"
)

// Config configures a Client. APIURL, ClientID and ClientSecret are required.
type Config struct {
	APIURL       string // GraphQL endpoint, with or without the /graphql suffix
	AuthURL      string // token endpoint; DefaultAuthURL when empty
	Audience     string // token `audience`; derived from AuthURL when empty (see AudienceFor)
	ClientID     string
	ClientSecret string

	// RequestsPerSecond is the ceiling on GraphQL calls (retries included) of this client.
	// 0 means DefaultRequestsPerSecond. The burst is 1.
	RequestsPerSecond float64
	UserAgent         string       // DefaultUserAgent when empty
	HTTPClient        *http.Client // used for both token and API calls; nil: a default with timeouts

	MaxAttempts      int           // attempts per API request for retryable errors; DefaultMaxAttempts when 0
	BaseBackoff      time.Duration // first backoff step; DefaultBaseBackoff when 0
	MaxBackoff       time.Duration // backoff ceiling; DefaultMaxBackoff when 0
	MaxRetryAfter    time.Duration // a longer Retry-After makes the client give up at once; DefaultMaxRetryAfter when 0
	RequestTimeout   time.Duration // per attempt; DefaultRequestTimeout when 0
	TokenTimeout     time.Duration // per token request; DefaultTokenTimeout when 0
	MaxResponseBytes int64         // response body cap; DefaultMaxResponseBytes when 0

	// OnRetry, when set, is told of every retry (rate-limited or transient) and the wait before
	// it, e.g. for a metric.
	OnRetry func(kind Kind, wait time.Duration)

	// Test hooks. Now is the clock used for token lifetimes; Sleep waits between attempts and
	// must return ctx.Err() when ctx ends first; Rand returns a float in [0,1) for jitter.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
	// ResultCap is the API's result cap, for tests against a fake with a smaller one;
	// ResultCap when 0.
	ResultCap int
}

// Client talks to one Wiz tenant. It is safe for concurrent use.
type Client struct {
	cfg      Config
	apiURL   string
	limiter  *rate.Limiter
	http     *http.Client
	red      redactor
	tokens   *tokenCache
	randMu   sync.Mutex
	randFunc func() float64
}

// New validates cfg and builds a Client. Every error it returns is of KindSettings.
func New(cfg Config) (*Client, error) {
	settingsErr := func(format string, args ...any) error {
		return &Error{Kind: KindSettings, Message: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, settingsErr("the client ID is missing: set it in the data source settings")
	}
	if cfg.ClientSecret == "" {
		return nil, settingsErr("the client secret is missing: set it in the data source settings")
	}
	if len(cfg.ClientSecret) < 4 {
		return nil, settingsErr("the client secret is too short to be a Wiz client secret")
	}
	apiURL, err := NormalizeAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	if cfg.AuthURL == "" {
		cfg.AuthURL = DefaultAuthURL
	}
	if cfg.ResultCap <= 0 {
		cfg.ResultCap = ResultCap
	}
	if _, err := CheckURL(cfg.AuthURL); err != nil {
		return nil, &Error{Kind: KindSettings, Message: "the token URL " + err.Error()}
	}
	if cfg.Audience == "" {
		cfg.Audience = AudienceFor(cfg.AuthURL)
	}
	switch {
	case cfg.RequestsPerSecond == 0:
		cfg.RequestsPerSecond = DefaultRequestsPerSecond
	case cfg.RequestsPerSecond < 0:
		return nil, settingsErr("requests per second must be more than 0, not %g", cfg.RequestsPerSecond)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.BaseBackoff, DefaultBaseBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.MaxRetryAfter, DefaultMaxRetryAfter)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.TokenTimeout, DefaultTokenTimeout)
	setDefault(&cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	c := &Client{
		cfg:     cfg,
		apiURL:  apiURL,
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), 1),
		http:    withSafeRedirects(hc),
	}
	c.randFunc = cfg.Rand
	if c.randFunc == nil {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15))
		c.randFunc = r.Float64
	}
	c.tokens = newTokenCache(c)
	c.red = redactor{secrets: c.secrets}
	return c, nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// secrets lists what must never appear in an error: the client secret and live tokens.
func (c *Client) secrets() []string {
	s := []string{c.cfg.ClientSecret}
	return append(s, c.tokens.knownTokens()...)
}

// NormalizeAPIURL checks a GraphQL endpoint URL (CheckURL) and returns it ending in /graphql.
// Errors are of KindSettings.
func NormalizeAPIURL(raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		return "", &Error{Kind: KindSettings, Message: "the API URL is missing: set the data center or the API URL"}
	}
	u, err := CheckURL(raw)
	if err != nil {
		return "", &Error{Kind: KindSettings, Message: "the API URL " + err.Error()}
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, "/graphql") {
		p += "/graphql"
	}
	u.Path = p
	u.RawPath = ""
	return u.String(), nil
}

// CheckURL is the rule for every URL the plugin calls: absolute, without credentials, and
// https, or plain http to a loopback host only (tokens and audit data never travel in clear
// text). The error reads after a field name; it never repeats a URL that carries credentials.
// The config editor keeps a copy of this rule for instant feedback (src/validation.ts); both
// run the cases of pkg/settings/testdata/url_rule.json.
func CheckURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%q is not an absolute URL such as https://api.us17.app.wiz.io/graphql", truncate(raw, 80))
	}
	if u.User != nil {
		return nil, errors.New("must not carry credentials in the URL")
	}
	switch u.Scheme { // url.Parse lower-cases it
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%q uses plain http to a non-loopback host: use https (http is only allowed for localhost)", truncate(raw, 80))
		}
	default:
		return nil, fmt.Errorf("%q must start with https://", truncate(raw, 80))
	}
	return u, nil
}

// IsLoopback tells whether host is localhost or a loopback address: the only hosts plain
// http may reach (tokens and audit data never travel in clear text elsewhere).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// legacyAuth0Hosts are the token hosts of the older Auth0 backend, which wants the
// "beyond-api" audience.
var legacyAuth0Hosts = map[string]bool{
	"auth.wiz.io":       true,
	"auth0.gov.wiz.io":  true,
	"auth0.test.wiz.io": true,
	"auth0.demo.wiz.io": true,
}

// AudienceFor returns the token `audience` for a token URL: "beyond-api" for the legacy
// Auth0 hosts, "wiz-api" for everything else.
func AudienceFor(authURL string) string {
	u, err := url.Parse(authURL)
	if err == nil && legacyAuth0Hosts[strings.ToLower(u.Hostname())] {
		return AudienceAuth0
	}
	return AudienceCognito
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = DefaultRequestTimeout
	tr.IdleConnTimeout = 90 * time.Second
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: tr, Timeout: DefaultRequestTimeout + 10*time.Second}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) random() float64 {
	c.randMu.Lock()
	defer c.randMu.Unlock()
	return c.randFunc()
}

// backoff is the wait before attempt number attempt+1 (attempt counts from 1) when the server
// gave no hint: exponential from BaseBackoff, capped at MaxBackoff, with "equal jitter"
// (half fixed, half random) so that waits grow but callers do not retry in lockstep.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.BaseBackoff
	for i := 1; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	half := d / 2
	return half + time.Duration(c.random()*float64(d-half))
}

// ctxError turns a context error into a classified error.
func (c *Client) ctxError(ctx context.Context, last error) *Error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = ctx.Err()
	}
	msg := "the request to Wiz was cancelled"
	if errors.Is(cause, context.DeadlineExceeded) {
		msg = "the request to Wiz timed out"
	}
	if last != nil {
		msg += " (last error: " + c.red.causeText(last) + ")"
	}
	return &Error{Kind: KindTransient, Message: msg, Err: cause}
}

// withSafeRedirects copies hc so that a redirect never leaves https for plain http to a remote
// host: the audit data must not come back in clear text. (Go already drops the Authorization
// header on a redirect to another host.)
func withSafeRedirects(hc *http.Client) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" && !IsLoopback(req.URL.Hostname()) {
			return fmt.Errorf("the Wiz API redirected to %s://%s: only https is followed", req.URL.Scheme, req.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}
