package wizfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	tenant *Tenant
	srv    *httptest.Server
	clock  *ManualClock
	token  string
}

func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	clock := NewManualClock(t0)
	if o.Now == nil {
		o.Now = clock.Now
	}
	if o.End.IsZero() {
		o.End = t0
	}
	tenant, srv := NewServer(o)
	t.Cleanup(srv.Close)
	h := &harness{t: t, tenant: tenant, srv: srv, clock: clock}
	h.token = h.getToken(url.Values{"grant_type": {"client_credentials"}, "audience": {"wiz-api"},
		"client_id": {tenant.ClientID()}, "client_secret": {tenant.ClientSecret()}}, "", http.StatusOK)
	return h
}

func (h *harness) getToken(form url.Values, query string, want int) string {
	h.t.Helper()
	resp, err := http.Post(TokenURL(h.srv.URL)+query, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != want {
		h.t.Fatalf("token: HTTP %d %v, want %d", resp.StatusCode, body, want)
	}
	tok, _ := body["access_token"].(string)
	return tok
}

type gqlPage struct {
	Data *struct {
		AuditLogEntries struct {
			Nodes    []json.RawMessage `json:"nodes"`
			PageInfo struct {
				HasNextPage bool    `json:"hasNextPage"`
				EndCursor   *string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"auditLogEntries"`
	} `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (h *harness) query(vars map[string]any) (int, gqlPage) {
	h.t.Helper()
	b, _ := json.Marshal(map[string]any{"query": "query AuditLogTable { auditLogEntries { nodes { id } } }", "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, GraphQLURL(h.srv.URL), bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var p gqlPage
	_ = json.Unmarshal(raw, &p)
	return resp.StatusCode, p
}

// all pages through a filter and returns the node ids.
func (h *harness) all(first int, filterBy map[string]any) []string {
	h.t.Helper()
	var ids []string
	var after any
	for i := 0; ; i++ {
		code, p := h.query(map[string]any{"first": first, "after": after, "filterBy": filterBy})
		if code != 200 || p.Data == nil {
			h.t.Fatalf("HTTP %d %+v", code, p.Errors)
		}
		for _, n := range p.Data.AuditLogEntries.Nodes {
			var v struct{ ID string }
			_ = json.Unmarshal(n, &v)
			ids = append(ids, v.ID)
		}
		if !p.Data.AuditLogEntries.PageInfo.HasNextPage {
			return ids
		}
		after = *p.Data.AuditLogEntries.PageInfo.EndCursor
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	t.Parallel()
	a := New(Options{Seed: 1, Events: 500, End: t0})
	b := New(Options{Seed: 1, Events: 500, End: t0})
	c := New(Options{Seed: 2, Events: 500, End: t0})
	ea, eb, ec := a.Events(), b.Events(), c.Events()
	if len(ea) != 500 {
		t.Fatalf("%d events", len(ea))
	}
	for i := range ea {
		if string(ea[i].Node) != string(eb[i].Node) {
			t.Fatalf("event %d differs between two tenants of one seed", i)
		}
	}
	if string(ea[0].Node) == string(ec[0].Node) {
		t.Error("two seeds, same first event")
	}
}

func TestGeneratedEventsLookReal(t *testing.T) {
	t.Parallel()
	tn := New(Options{Seed: 3, Events: 5000, End: t0, Span: 48 * time.Hour})
	evs := tn.Events()
	counts := map[string]int{}
	equal := 0
	for i, e := range evs {
		var node map[string]json.RawMessage
		if err := json.Unmarshal(e.Node, &node); err != nil {
			t.Fatalf("node %d: %v: %s", i, err, e.Node)
		}
		for _, k := range []string{"id", "action", "requestId", "status", "timestamp", "actionParameters", "userAgent", "sourceIP", "serviceAccount", "user"} {
			if _, ok := node[k]; !ok {
				t.Fatalf("node lacks %s: %s", k, e.Node)
			}
		}
		counts["status:"+e.Status]++
		counts["action:"+e.Action]++
		if e.SourceIP == "" {
			counts["null ip"]++
		}
		if e.UserAgent == "" {
			counts["null ua"]++
		}
		if e.ServiceAccount != nil {
			counts["sa"]++
		} else {
			counts["user"]++
		}
		if (e.Action == "Login") != (e.ID == e.RequestID) && e.Action != " user Login" {
			t.Errorf("requestId = id only for logins: %s", e.Node)
		}
		if i > 0 {
			if e.Timestamp.Before(evs[i-1].Timestamp) {
				t.Fatal("Events not oldest first")
			}
			if e.Timestamp.Equal(evs[i-1].Timestamp) {
				equal++
			}
		}
		if e.Timestamp.After(t0) || e.Timestamp.Before(t0.Add(-48*time.Hour)) {
			t.Errorf("timestamp %s out of span", e.Timestamp)
		}
	}
	for _, k := range []string{"status:SUCCESS", "status:FAILED", "status:ACCESS_DENIED", "action:Login", "action: user Login",
		"action:TokenRefresh", "action:Reports", "action:RerunReport", "action:UpdateReport", "action:CreateSAMLUser",
		"action:RevokeSessions", "action:UpdateUser", "null ip", "null ua", "sa", "user"} {
		if counts[k] == 0 {
			t.Errorf("no %s among 5000 events", k)
		}
	}
	if equal < 100 {
		t.Errorf("only %d equal timestamps", equal)
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 4, TokenLifetime: 900 * time.Second, DataCenter: "eu7"})
	parts := strings.Split(h.token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not JWT-shaped", h.token)
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var cl map[string]any
	if err := json.Unmarshal(p, &cl); err != nil {
		t.Fatal(err)
	}
	if cl["dc"] != "eu7" || cl["isServiceAccount"] != true {
		t.Errorf("claims %v", cl)
	}
	id, secret := h.tenant.ClientID(), h.tenant.ClientSecret()
	// Audience from the query string; credentials with Basic auth.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	h.getToken(form, "?audience=wiz-api", 200)
	req, _ := http.NewRequest(http.MethodPost, TokenURL(h.srv.URL), strings.NewReader("grant_type=client_credentials&audience=wiz-api"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("Basic auth: HTTP %d", resp.StatusCode)
	}
	// Refusals.
	h.getToken(url.Values{"grant_type": {"client_credentials"}, "audience": {"wiz-api"}, "client_id": {id}, "client_secret": {"wrong"}}, "", 401)
	h.getToken(url.Values{"grant_type": {"client_credentials"}, "audience": {"beyond-api"}, "client_id": {id}, "client_secret": {secret}}, "", 400)
	h.getToken(url.Values{"grant_type": {"password"}, "audience": {"wiz-api"}, "client_id": {id}, "client_secret": {secret}}, "", 400)
	if s := h.tenant.Stats(); s.TokensIssued != 3 || s.TokenRefused != 3 {
		t.Errorf("stats %+v", s)
	}

	// Expiry by the tenant's clock, and ExpireTokens.
	if code, _ := h.query(map[string]any{"first": 1}); code != 200 {
		t.Fatalf("fresh token: HTTP %d", code)
	}
	h.clock.Advance(900 * time.Second)
	if code, _ := h.query(map[string]any{"first": 1}); code != 401 {
		t.Errorf("expired token: HTTP %d", code)
	}
	h.token = h.getToken(url.Values{"grant_type": {"client_credentials"}, "audience": {"wiz-api"}, "client_id": {id}, "client_secret": {secret}}, "", 200)
	h.tenant.ExpireTokens()
	if code, _ := h.query(map[string]any{"first": 1}); code != 401 {
		t.Errorf("revoked token: HTTP %d", code)
	}
	h.token = "abc.def.ghi"
	if code, _ := h.query(map[string]any{"first": 1}); code != 401 {
		t.Errorf("forged token: HTTP %d", code)
	}
}

func TestFirstRequiredAndCapped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 5, Events: 800})
	code, p := h.query(map[string]any{})
	if code != 200 || p.Data != nil || len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Message, "first") {
		t.Errorf("missing first: HTTP %d %+v", code, p)
	}
	_, p = h.query(map[string]any{"first": 5000})
	if n := len(p.Data.AuditLogEntries.Nodes); n != 500 {
		t.Errorf("first 5000 gave %d nodes, want the cap 500", n)
	}
	_, p = h.query(map[string]any{"first": 1, "after": "not base64!"})
	if len(p.Errors) == 0 {
		t.Error("bad cursor accepted")
	}
}

func TestCursorFormatAndOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 6, Events: 50})
	_, p := h.query(map[string]any{"first": 10})
	c := p.Data.AuditLogEntries.PageInfo.EndCursor
	if c == nil {
		t.Fatal("no cursor")
	}
	raw, err := base64.StdEncoding.DecodeString(*c)
	if err != nil || !strings.HasPrefix(string(raw), `{"fields":[{"Field":"Timestamp","Value":"`) {
		t.Errorf("cursor %q decodes to %s (%v)", *c, raw, err)
	}
	ids := h.all(7, nil)
	evs := h.tenant.Events()
	if len(ids) != len(evs) {
		t.Fatalf("%d ids, %d events", len(ids), len(evs))
	}
	for i := range ids { // newest first: the reverse of Events
		if ids[i] != evs[len(evs)-1-i].ID {
			t.Fatalf("position %d: %s, want %s", i, ids[i], evs[len(evs)-1-i].ID)
		}
	}
}

func TestEqualTimestampsPageExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, oldest := range []bool{false, true} {
		h := newHarness(t, Options{Seed: 7, Events: 300, EqualRate: 0.9, OldestFirst: oldest})
		var evs []Event
		for i := 0; i < 40; i++ {
			evs = append(evs, Event{ID: fmt.Sprintf("eq-%02d", 39-i), Timestamp: t0.Add(-time.Hour)})
		}
		if err := h.tenant.Add(evs...); err != nil {
			t.Fatal(err)
		}
		for _, first := range []int{1, 3, 8} {
			ids := h.all(first, nil)
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("oldestFirst=%v first=%d: %s twice", oldest, first, id)
				}
				seen[id] = true
			}
			if len(ids) != 340 {
				t.Fatalf("oldestFirst=%v first=%d: %d ids", oldest, first, len(ids))
			}
		}
	}
}

func TestWindowsRetentionAndCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 8, Events: 2000, Span: 200 * 24 * time.Hour, ResultCap: 300})
	truth := h.tenant.VisibleEvents()
	if len(truth) >= 2000 || len(truth) < 1500 {
		t.Fatalf("%d of 2000 events visible over 200 days with 180 days of retention", len(truth))
	}
	for _, e := range truth {
		if e.Timestamp.Before(t0.Add(-DefaultRetention)) {
			t.Fatal("an event older than retention is visible")
		}
	}
	// The cap: 300 results, then hasNextPage false although more exist.
	if ids := h.all(100, nil); len(ids) != 300 {
		t.Errorf("capped query returned %d", len(ids))
	}
	// By default both bounds are exclusive: a window under the cap returns exactly the events
	// strictly between them.
	after, before := truth[100].Timestamp, truth[299].Timestamp
	want := 0
	for _, e := range truth {
		if e.Timestamp.After(after) && e.Timestamp.Before(before) {
			want++
		}
	}
	ids := h.all(50, map[string]any{"timestamp": map[string]any{"after": FormatTimestamp(after), "before": FormatTimestamp(before)}})
	if len(ids) != want {
		t.Errorf("window: %d ids, want %d", len(ids), want)
	}
	// Open window: only after.
	ids = h.all(50, map[string]any{"timestamp": map[string]any{"after": FormatTimestamp(truth[len(truth)-11].Timestamp)}})
	if len(ids) < 10 {
		t.Errorf("open window: %d ids", len(ids))
	}
}

// TestBoundSemantics: each side of the timestamp filter is inclusive or exclusive as
// configured, with a tie group on both bounds.
func TestBoundSemantics(t *testing.T) {
	t.Parallel()
	lo, hi := t0.Add(-2*time.Hour), t0.Add(-time.Hour)
	for _, c := range []struct{ afterIn, beforeIn bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		h := newHarness(t, Options{Seed: 3, Events: 200, AfterInclusive: c.afterIn, BeforeInclusive: c.beforeIn})
		h.tenant.AddTie(lo, 30)
		h.tenant.AddTie(hi, 40)
		want := 0
		for _, e := range h.tenant.VisibleEvents() {
			ts := e.Timestamp
			if (ts.After(lo) || c.afterIn && ts.Equal(lo)) && (ts.Before(hi) || c.beforeIn && ts.Equal(hi)) {
				want++
			}
		}
		ids := h.all(7, map[string]any{"timestamp": map[string]any{"after": FormatTimestamp(lo), "before": FormatTimestamp(hi)}})
		if len(ids) != want {
			t.Errorf("after inclusive %v, before inclusive %v: %d ids, want %d", c.afterIn, c.beforeIn, len(ids), want)
		}
	}
}

func TestStatusAndActionFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 9, Events: 1000})
	want := map[string]int{}
	for _, e := range h.tenant.VisibleEvents() {
		if e.Status == "FAILED" || e.Status == "ACCESS_DENIED" {
			want["status"]++
		}
		if strings.EqualFold(strings.TrimSpace(e.Action), "login") || strings.EqualFold(strings.TrimSpace(e.Action), "user login") {
			if strings.TrimSpace(e.Action) == "Login" {
				want["action"]++
			}
		}
	}
	if got := len(h.all(100, map[string]any{"status": []string{"FAILED", "ACCESS_DENIED"}})); got != want["status"] {
		t.Errorf("status filter: %d, want %d", got, want["status"])
	}
	if got := len(h.all(100, map[string]any{"action": "login"})); got != want["action"] {
		t.Errorf("action filter: %d, want %d", got, want["action"])
	}
}

func TestLateEntriesAndFutureEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 10, Events: 10})
	if err := h.tenant.AddVisibleAt(t0.Add(10*time.Minute), Event{ID: "late", Timestamp: t0.Add(-5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := h.tenant.Add(Event{ID: "future", Timestamp: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := h.tenant.Add(Event{ID: "late"}); err == nil {
		t.Error("duplicate id accepted")
	}
	if n := len(h.all(500, nil)); n != 10 {
		t.Errorf("%d visible, want 10", n)
	}
	h.clock.Advance(2 * time.Minute)
	if n := len(h.all(500, nil)); n != 11 {
		t.Errorf("%d visible after the future event's time, want 11", n)
	}
	h.clock.Advance(10 * time.Minute)
	if n := len(h.all(500, nil)); n != 12 {
		t.Errorf("%d visible after the late event arrived, want 12", n)
	}
	if n := len(h.tenant.Events()); n != 12 {
		t.Errorf("Events: %d", n)
	}
}

func TestFaultScheduling(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 11, Events: 5})
	id := h.tenant.Inject(Fault{Kind: FaultServerError, Skip: 1, Count: 2})
	var codes []int
	for i := 0; i < 5; i++ {
		code, _ := h.query(map[string]any{"first": 1})
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 503 503 200 200]" {
		t.Errorf("codes %v", codes)
	}
	h.tenant.RemoveFault(id)
	h.tenant.Inject(Fault{Kind: FaultServerError, Probability: 0.5})
	fails := 0
	for i := 0; i < 200; i++ {
		if code, _ := h.query(map[string]any{"first": 1}); code == 503 {
			fails++
		}
	}
	if fails < 60 || fails > 140 {
		t.Errorf("probability 0.5: %d of 200 failed", fails)
	}
	h.tenant.ClearFaults()
	if code, _ := h.query(map[string]any{"first": 1}); code != 200 {
		t.Errorf("after ClearFaults: %d", code)
	}
	s := h.tenant.Stats()
	if s.Outcomes[OutcomeServerError] != fails+2 || s.GraphQLRequests != 206 {
		t.Errorf("stats %+v", s)
	}
}

func TestFaultAnswers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 12, Events: 20})
	h.tenant.Inject(Fault{Kind: FaultGraphQLRateLimit, RetryAfter: 4 * time.Second, Count: 1})
	code, p := h.query(map[string]any{"first": 5})
	if code != 200 || p.Data != nil || p.Errors[0].Message != "Rate limit exceeded" || p.Errors[0].Extensions["retryAfter"] != 4.0 {
		t.Errorf("GraphQL rate limit: %d %+v", code, p)
	}
	h.tenant.Inject(Fault{Kind: FaultNullCursor, Count: 1})
	_, p = h.query(map[string]any{"first": 5})
	if !p.Data.AuditLogEntries.PageInfo.HasNextPage || p.Data.AuditLogEntries.PageInfo.EndCursor != nil {
		t.Errorf("null cursor: %+v", p.Data.AuditLogEntries.PageInfo)
	}
	h.tenant.Inject(Fault{Kind: FaultPartialData, Count: 1})
	_, p = h.query(map[string]any{"first": 5})
	if p.Data == nil || len(p.Data.AuditLogEntries.Nodes) != 5 || len(p.Errors) != 1 {
		t.Errorf("partial: %+v", p)
	}
	h.tenant.Inject(Fault{Kind: FaultForbiddenGraphQL, Count: 1})
	_, p = h.query(map[string]any{"first": 5})
	if p.Data != nil || !strings.Contains(p.Errors[0].Message, "admin:audit") {
		t.Errorf("scope error: %+v", p)
	}
	h.tenant.Inject(Fault{Kind: FaultRateLimit, RetryAfter: 1500 * time.Millisecond, Count: 1})
	b, _ := json.Marshal(map[string]any{"query": "auditLogEntries", "variables": map[string]any{"first": 1}})
	req, _ := http.NewRequest(http.MethodPost, GraphQLURL(h.srv.URL), bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("429: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.tenant.Inject(Fault{Kind: FaultDropConnection, Count: 1})
	req, _ = http.NewRequest(http.MethodPost, GraphQLURL(h.srv.URL), bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("dropped connection read without error")
	}
	if s := h.tenant.Stats(); s.Sent429 != 1 || s.Outcomes[OutcomeDropped] != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestGETTransport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Seed: 13, Events: 3})
	q := url.Values{"query": {"query { auditLogEntries { nodes { id } } }"}, "variables": {`{"first":2}`}}
	req, _ := http.NewRequest(http.MethodGet, GraphQLURL(h.srv.URL)+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p gqlPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Data == nil || len(p.Data.AuditLogEntries.Nodes) != 2 {
		t.Errorf("GET: %v %+v", err, p)
	}
}

func TestMillionEventsStayCompact(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a million events")
	}
	t.Parallel()
	start := time.Now()
	tn := New(Options{Seed: 14, Events: 1_000_000, Span: 170 * 24 * time.Hour, End: t0})
	if tn.Len() != 1_000_000 {
		t.Fatal(tn.Len())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("generating a million events took %s", el)
	}
	f, err := parseFilter(map[string]json.RawMessage{"first": json.RawMessage("500")}, 500)
	if err != nil {
		t.Fatal(err)
	}
	if pg := tn.run(f, t0); len(pg.nodes) != 500 || !pg.hasNext {
		t.Errorf("first page of a million: %d nodes", len(pg.nodes))
	}
}
