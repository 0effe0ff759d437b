// Package wizfake is a fake Wiz tenant for tests and demos: an OAuth2 token endpoint and the
// audit log part of the GraphQL API, backed by a deterministic, seeded set of audit log
// events that tests can inspect (Events) and change while it serves (Add, AddVisibleAt).
//
// It mimics what is publicly known of the real API: client-credentials tokens that are
// JWT-shaped and expire, `first` required and capped, newest-first pages with opaque base64
// keyset cursors, a cap of 10,000 results per query, 180 days of retention, status/action
// filters. Faults (rate limits, 5xx, dropped connections, expired tokens, missing scope,
// partial data, missing cursors, latency) can be switched on and off at run time; see Fault.
//
// Serve it with httptest.NewServer(tenant) (or NewServer): the token endpoint is
// POST /oauth/token and the GraphQL endpoint POST (or GET) /graphql.
package wizfake

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Options.
const (
	DefaultClientID      = "wizfake-client-id"
	DefaultClientSecret  = "wizfake-client-secret-0123456789"
	DefaultDataCenter    = "us17"
	DefaultTokenLifetime = time.Hour
	DefaultRetention     = 180 * 24 * time.Hour
	DefaultResultCap     = 10000
	DefaultMaxPageSize   = 500
	DefaultSpan          = 24 * time.Hour
	DefaultEqualRate     = 0.05
	// AuditScope is the scope the audit log query needs.
	AuditScope = "admin:audit"
)

// Options configures a Tenant. The zero value is a usable empty tenant.
type Options struct {
	Seed   int64         // seeds the generator and probabilistic faults
	Events int           // number of events to generate
	Span   time.Duration // generated timestamps spread over [End-Span, End]; DefaultSpan when 0
	End    time.Time     // newest generated timestamp; Now() when zero
	// EqualRate is the share of generated events that get the same timestamp as the event
	// before them (so groups of equal timestamps exist); DefaultEqualRate when 0, none when < 0.
	EqualRate float64

	ClientID, ClientSecret string        // accepted credentials; DefaultClientID/DefaultClientSecret when empty
	TokenLifetime          time.Duration // expires_in of issued tokens; DefaultTokenLifetime when 0
	DataCenter             string        // the dc claim; DefaultDataCenter when empty
	// Scopes granted to the service account; [admin:audit read:all] when nil. Without
	// admin:audit the GraphQL endpoint answers 200 with an authorization error in errors[].
	Scopes []string
	// LegacyAudience makes the token endpoint accept audience "beyond-api" as well as "wiz-api".
	LegacyAudience bool

	Now         func() time.Time // the tenant's clock (token expiry, retention, visibility); time.Now when nil
	OldestFirst bool             // serve pages oldest first instead of newest first
	Retention   time.Duration    // DefaultRetention when 0; no retention when < 0
	ResultCap   int              // results per query (all pages of one filter); DefaultResultCap when 0, none when < 0
	MaxPageSize int              // cap on `first`; DefaultMaxPageSize when 0
	RateLimit   float64          // hard limit of GraphQL requests per second (real time), 429 above it; 0 = none
	RateBurst   int              // requests allowed at once under RateLimit; the limit rounded up when 0
	// AfterInclusive and BeforeInclusive make the filter's timestamp.after and timestamp.before
	// bounds inclusive. Wiz does not document which they are; the default, exclusive on both
	// sides, is the one a client is most likely to get wrong.
	AfterInclusive, BeforeInclusive bool
}

// BoundNames are the names ParseBounds accepts, one per meaning of the timestamp bounds.
var BoundNames = []string{"exclusive", "after-inclusive", "before-inclusive", "inclusive"}

// ParseBounds reads one of BoundNames into Options.AfterInclusive and BeforeInclusive.
func ParseBounds(name string) (afterInclusive, beforeInclusive bool, err error) {
	switch name {
	case "exclusive":
		return false, false, nil
	case "after-inclusive":
		return true, false, nil
	case "before-inclusive":
		return false, true, nil
	case "inclusive":
		return true, true, nil
	}
	return false, false, fmt.Errorf("wizfake: bounds %q: want one of %s", name, strings.Join(BoundNames, ", "))
}

// BoundsForTests is what the slow tests run under: each of BoundNames, or only the one named by
// $WIZ_BOUNDS when iterating on one.
func BoundsForTests() []string {
	switch name := os.Getenv("WIZ_BOUNDS"); name {
	case "", "all":
		return BoundNames
	default:
		return []string{name}
	}
}

// RunUnderBounds runs fn as a subtest under each of BoundsForTests.
func RunUnderBounds(t *testing.T, fn func(t *testing.T, afterInclusive, beforeInclusive bool)) {
	for _, name := range BoundsForTests() {
		afterIn, beforeIn, err := ParseBounds(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { fn(t, afterIn, beforeIn) })
	}
}

// Principal is a user or service account as audit log nodes name them.
type Principal struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Event is one audit log entry as the tenant knows it. Empty SourceIP / UserAgent are sent
// as null; nil ActionParameters as null; nil User / ServiceAccount as null.
type Event struct {
	ID               string
	RequestID        string
	Action           string // as sent, stray spaces included
	Status           string
	Timestamp        time.Time
	ActionParameters json.RawMessage
	UserAgent        string
	SourceIP         string
	ServiceAccount   *Principal
	User             *Principal
}

// Entry is an event with what the server sends for it.
type Entry struct {
	Event
	// VisibleFrom is when the event became visible to queries (the zero time for generated
	// events, which are visible as soon as their timestamp is not in the future).
	VisibleFrom time.Time
	Node        json.RawMessage // the exact node JSON the server sends for this event
}

// rec is the compact form of an event: generated events are (timestamp, seed) only.
type rec struct {
	ts     int64  // UnixNano
	seed   uint64 // generated events: the generator seed
	custom uint32 // 0: generated; else index+1 into Tenant.custom
}

type customEvent struct {
	ev      Event
	visible int64 // UnixNano from which it is visible
}

// Tenant is a fake Wiz tenant. Its methods are safe for concurrent use.
type Tenant struct {
	opts       Options
	now        func() time.Time
	seed       uint64
	principals []principal
	jwtKey     []byte

	mu       sync.RWMutex
	recs     []rec // sorted by (timestamp, id)
	custom   []customEvent
	ids      map[string]bool // ids of custom events
	nextSeed uint64

	authMu     sync.Mutex
	scopes     []string
	epoch      int // tokens of an older epoch are refused (ExpireTokens)
	tokenCount int
	issued     []issuedToken // every token response, for IssuedTokens
	limiter    *rate.Limiter

	faultMu  sync.Mutex
	faults   []*faultState
	faultRnd *rand.Rand

	statsMu  sync.Mutex
	stats    Stats
	requests []Request
}

// New builds a tenant and generates its events.
func New(o Options) *Tenant {
	if o.Span <= 0 {
		o.Span = DefaultSpan
	}
	if o.EqualRate == 0 {
		o.EqualRate = DefaultEqualRate
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = DefaultClientSecret
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.DataCenter == "" {
		o.DataCenter = DefaultDataCenter
	}
	if o.Scopes == nil {
		o.Scopes = []string{AuditScope, "read:all"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.ResultCap == 0 {
		o.ResultCap = DefaultResultCap
	}
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = DefaultMaxPageSize
	}
	seed := splitmix(uint64(o.Seed) ^ 0x77697a66616b65)
	t := &Tenant{
		opts:       o,
		now:        o.Now,
		seed:       seed,
		principals: makePrincipals(seed),
		ids:        map[string]bool{},
		scopes:     slices.Clone(o.Scopes),
		faultRnd:   rand.New(rand.NewPCG(seed, 0xfa017)),
		stats:      Stats{Outcomes: map[string]int{}},
	}
	t.jwtKey = []byte(fmt.Sprintf("wizfake-signing-key-%x", seed))
	if o.RateLimit > 0 {
		t.limiter = newLimiter(o.RateLimit, o.RateBurst)
	}
	end := o.End
	if end.IsZero() {
		end = t.now()
	}
	t.recs = t.generate(o.Events, end.Add(-o.Span), end, o.EqualRate)
	return t
}

// NewServer builds a tenant and serves it on a new httptest server (loopback, random port).
// The caller closes the server. GraphQLURL and TokenURL give the endpoints.
func NewServer(o Options) (*Tenant, *httptest.Server) {
	t := New(o)
	return t, httptest.NewServer(t)
}

// GraphQLURL is the GraphQL endpoint of a tenant served at baseURL.
func GraphQLURL(baseURL string) string { return strings.TrimRight(baseURL, "/") + "/graphql" }

// TokenURL is the token endpoint of a tenant served at baseURL.
func TokenURL(baseURL string) string { return strings.TrimRight(baseURL, "/") + "/oauth/token" }

// ClientID returns the accepted client ID.
func (t *Tenant) ClientID() string { return t.opts.ClientID }

// ClientSecret returns the accepted client secret.
func (t *Tenant) ClientSecret() string { return t.opts.ClientSecret }

// generate makes n events spread over [from, to], sorted, at microsecond precision.
func (t *Tenant) generate(n int, from, to time.Time, equalRate float64) []rec {
	if n <= 0 {
		return nil
	}
	t.nextSeed++
	r := rng{s: t.seed ^ splitmix(t.nextSeed*0x51ed)}
	span := to.Sub(from)
	recs := make([]rec, n)
	for i := range recs {
		off := time.Duration(0)
		if span > 0 {
			off = time.Duration(r.next() % uint64(span))
		}
		recs[i].ts = from.Add(off).Truncate(time.Microsecond).UnixNano()
		recs[i].seed = r.next()
	}
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.ts, b.ts) })
	for i := 1; i < n; i++ {
		if equalRate > 0 && r.chance(equalRate) {
			recs[i].ts = recs[i-1].ts
		}
	}
	// Within a group of equal timestamps, order by id.
	for i := 0; i < n; {
		j := i + 1
		for j < n && recs[j].ts == recs[i].ts {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(recs[i:j], func(a, b rec) int { return strings.Compare(genID(a.seed), genID(b.seed)) })
		}
		i = j
	}
	return recs
}

// id returns the id of r. Callers hold t.mu.
func (t *Tenant) id(r rec) string {
	if r.custom != 0 {
		return t.custom[r.custom-1].ev.ID
	}
	return genID(r.seed)
}

// event returns the full event of r. Callers hold t.mu.
func (t *Tenant) event(r rec) Event {
	if r.custom != 0 {
		return t.custom[r.custom-1].ev
	}
	return t.genEvent(r.seed, time.Unix(0, r.ts).UTC())
}

func (t *Tenant) visibleFrom(r rec) int64 {
	if r.custom != 0 {
		return t.custom[r.custom-1].visible
	}
	return 0
}

// compare orders records by (timestamp, id). Callers hold t.mu.
func (t *Tenant) compare(a, b rec) int {
	if c := cmp.Compare(a.ts, b.ts); c != 0 {
		return c
	}
	return strings.Compare(t.id(a), t.id(b))
}

// Add stores events, visible to queries from now on (by the tenant's clock). An event whose
// timestamp is in the past is a late arrival: a query made before Add did not see it. A zero
// Timestamp means now. IDs must be non-empty and unique among added events.
func (t *Tenant) Add(evs ...Event) error {
	return t.AddVisibleAt(t.now(), evs...)
}

// AddVisibleAt stores events that become visible to queries at the given time, whatever their
// timestamp, so a test can stage late arrivals without racing the clock.
func (t *Tenant) AddVisibleAt(at time.Time, evs ...Event) error {
	now := t.now()
	for i := range evs {
		if evs[i].ID == "" {
			return errors.New("wizfake: an event needs an ID")
		}
		if evs[i].Timestamp.IsZero() {
			evs[i].Timestamp = now
		}
		evs[i].Timestamp = evs[i].Timestamp.UTC()
		if evs[i].ActionParameters != nil && !json.Valid(evs[i].ActionParameters) {
			return fmt.Errorf("wizfake: event %s: ActionParameters is not valid JSON", evs[i].ID)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range evs {
		if t.ids[ev.ID] || seen[ev.ID] {
			return fmt.Errorf("wizfake: duplicate event ID %s", ev.ID)
		}
		seen[ev.ID] = true
	}
	var added []rec
	for _, ev := range evs {
		t.custom = append(t.custom, customEvent{ev: ev, visible: at.UnixNano()})
		t.ids[ev.ID] = true
		added = append(added, rec{ts: ev.Timestamp.UnixNano(), custom: uint32(len(t.custom))})
	}
	t.insert(added)
	return nil
}

// AddGenerated generates n more events with timestamps in [from, to] (visible as soon as their
// timestamp is not in the future) and returns them as the server renders them.
func (t *Tenant) AddGenerated(n int, from, to time.Time) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	recs := t.generate(n, from, to, t.opts.EqualRate)
	t.insert(recs)
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		out = append(out, t.entry(r))
	}
	return out
}

// AddTie generates n more events all at the instant at (truncated to the microsecond): a tie
// group, e.g. on a cut point of a client's windows.
func (t *Tenant) AddTie(at time.Time, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.insert(t.generate(n, at, at, -1))
}

// AddTieBurst adds groups tie groups of size events each, the first at from and the next ones
// step apart: a burst made of ties only. When the burst is larger than the result cap, the
// cap (a multiple of the page size) cuts it inside a tie group, so that group straddles a
// page boundary and a cap split at once.
func (t *Tenant) AddTieBurst(from time.Time, groups, size int, step time.Duration) {
	for i := 0; i < groups; i++ {
		t.AddTie(from.Add(time.Duration(i)*step), size)
	}
}

// insert merges records into t.recs. Callers hold t.mu for writing.
func (t *Tenant) insert(add []rec) {
	if len(add) < 64 {
		for _, r := range add {
			i := sort.Search(len(t.recs), func(i int) bool { return t.compare(t.recs[i], r) > 0 })
			t.recs = slices.Insert(t.recs, i, r)
		}
		return
	}
	t.recs = append(t.recs, add...)
	slices.SortFunc(t.recs, t.compare)
}

func (t *Tenant) entry(r rec) Entry {
	ev := t.event(r)
	e := Entry{Event: ev, Node: renderNode(ev)}
	if v := t.visibleFrom(r); v != 0 {
		e.VisibleFrom = time.Unix(0, v).UTC()
	}
	return e
}

// Events returns every event the tenant holds, oldest first (ties by id), with the exact node
// JSON the server sends for each: the tenant's full truth, whether visible now or not. It
// renders every event, so it is slow for millions of events.
func (t *Tenant) Events() []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Entry, 0, len(t.recs))
	for _, r := range t.recs {
		out = append(out, t.entry(r))
	}
	return out
}

// VisibleEvents returns the events a query could return now: timestamp not in the future,
// within retention, and visible (added) by now. Oldest first.
func (t *Tenant) VisibleEvents() []Entry {
	now := t.now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Entry
	for _, r := range t.recs {
		if t.visible(r, now.UnixNano()) {
			out = append(out, t.entry(r))
		}
	}
	return out
}

// VisibleIDs returns the ids of VisibleEvents without rendering them (cheap for millions).
func (t *Tenant) VisibleIDs() []string {
	now := t.now().UnixNano()
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for _, r := range t.recs {
		if t.visible(r, now) {
			out = append(out, t.id(r))
		}
	}
	return out
}

// Len is the number of events held.
func (t *Tenant) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.recs)
}

func (t *Tenant) visible(r rec, now int64) bool {
	if r.ts > now {
		return false
	}
	if t.opts.Retention > 0 && r.ts < now-int64(t.opts.Retention) {
		return false
	}
	return t.visibleFrom(r) <= now
}

// SetScopes replaces the scopes granted to the service account (checked on every GraphQL call).
func (t *Tenant) SetScopes(scopes ...string) {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	t.scopes = slices.Clone(scopes)
}

// ExpireTokens makes every token issued so far invalid (the API answers 401 to them), as if
// they had expired early: the client must fetch a new token.
func (t *Tenant) ExpireTokens() {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	t.epoch++
}

// SetRateLimit sets the hard per-second GraphQL rate limit (0 removes it).
func (t *Tenant) SetRateLimit(perSecond float64) {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	if perSecond <= 0 {
		t.limiter = nil
		return
	}
	t.limiter = newLimiter(perSecond, t.opts.RateBurst)
}

func newLimiter(perSecond float64, burst int) *rate.Limiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// renderNode renders an event as the GraphQL API sends it.
func renderNode(ev Event) json.RawMessage {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"action":`...)
	b = appendString(b, ev.Action)
	b = append(b, `,"requestId":`...)
	b = appendNullable(b, ev.RequestID)
	b = append(b, `,"status":`...)
	b = appendString(b, ev.Status)
	b = append(b, `,"timestamp":`...)
	b = appendString(b, FormatTimestamp(ev.Timestamp))
	b = append(b, `,"actionParameters":`...)
	if len(ev.ActionParameters) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, ev.ActionParameters...)
	}
	b = append(b, `,"userAgent":`...)
	b = appendNullable(b, ev.UserAgent)
	b = append(b, `,"sourceIP":`...)
	b = appendNullable(b, ev.SourceIP)
	b = append(b, `,"serviceAccount":`...)
	b = appendPrincipal(b, ev.ServiceAccount)
	b = append(b, `,"user":`...)
	b = appendPrincipal(b, ev.User)
	return append(b, '}')
}

// FormatTimestamp formats a timestamp as the API does: UTC, fractional seconds without
// trailing zeros.
func FormatTimestamp(ts time.Time) string {
	return ts.UTC().Format("2006-01-02T15:04:05.999999999Z")
}

func appendString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func appendPrincipal(b []byte, p *Principal) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, p.Name)
	return append(b, '}')
}
