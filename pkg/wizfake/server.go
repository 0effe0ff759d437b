package wizfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Outcomes counted in Stats.Outcomes.
const (
	OutcomeOK                 = "ok"
	OutcomeUnauthorized       = "unauthorized"         // 401
	OutcomeForbidden          = "forbidden"            // 403
	OutcomeScopeError         = "scope_error"          // 200 with an authorization error
	OutcomeRateLimited        = "rate_limited"         // 429
	OutcomeGraphQLRateLimited = "graphql_rate_limited" // 200 with "Rate limit exceeded"
	OutcomeServerError        = "server_error"         // 5xx
	OutcomeDropped            = "dropped"              // connection closed mid-body
	OutcomePartial            = "partial"              // data and errors
	OutcomeNoData             = "no_data"              // errors, data null
	OutcomeNullCursor         = "null_cursor"          // hasNextPage with a null cursor
	OutcomeBadRequest         = "bad_request"          // query rejected
	OutcomeCanceled           = "canceled"             // the client went away during latency
)

// Stats counts what the tenant has served.
type Stats struct {
	TokenRequests   int            // requests to the token endpoint
	TokensIssued    int            // successful token responses
	TokenRefused    int            // token requests refused (bad credentials, audience, grant) or failed by fault
	GraphQLRequests int            // requests to the GraphQL endpoint
	Outcomes        map[string]int // GraphQL requests by outcome (Outcome* constants)
	Sent429         int            // HTTP 429 answers
}

// Request is one GraphQL request as the tenant received it.
type Request struct {
	Time      time.Time // tenant clock
	UserAgent string
	Variables map[string]json.RawMessage
	Outcome   string
}

const maxRequestLog = 10000

// Stats returns a copy of the counters.
func (t *Tenant) Stats() Stats {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	s := t.stats
	s.Outcomes = make(map[string]int, len(t.stats.Outcomes))
	for k, v := range t.stats.Outcomes {
		s.Outcomes[k] = v
	}
	return s
}

// Requests returns the GraphQL requests received (the last 10,000), oldest first.
func (t *Tenant) Requests() []Request {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	return slices.Clone(t.requests)
}

// ResetStats zeroes the counters and the request log.
func (t *Tenant) ResetStats() {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	t.stats = Stats{Outcomes: map[string]int{}}
	t.requests = nil
}

func (t *Tenant) count(f func(s *Stats)) {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	f(&t.stats)
}

func (t *Tenant) record(r *http.Request, vars map[string]json.RawMessage, outcome string) {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	t.stats.Outcomes[outcome]++
	if outcome == OutcomeRateLimited {
		t.stats.Sent429++
	}
	if len(t.requests) >= maxRequestLog {
		t.requests = t.requests[1:]
	}
	t.requests = append(t.requests, Request{Time: t.now(), UserAgent: r.UserAgent(), Variables: vars, Outcome: outcome})
}

// ServeHTTP serves POST /oauth/token and POST or GET /graphql.
func (t *Tenant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oauth/token" && r.Method == http.MethodPost:
		t.serveToken(w, r)
	case r.URL.Path == "/graphql" && (r.Method == http.MethodPost || r.Method == http.MethodGet):
		t.serveGraphQL(w, r)
	case r.URL.Path == "/healthz":
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "events": t.Len()})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "not found"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ---- token endpoint ----

func (t *Tenant) serveToken(w http.ResponseWriter, r *http.Request) {
	t.count(func(s *Stats) { s.TokenRequests++ })
	refuse := func(status int, code, desc string) {
		t.count(func(s *Stats) { s.TokenRefused++ })
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc, "message": desc})
	}
	if f := t.pickFault(true); f != nil {
		st := f.Status
		if st == 0 {
			st = http.StatusServiceUnavailable
		}
		refuse(st, "temporarily_unavailable", "the token service is unavailable")
		return
	}
	// ParseForm merges the query string and the form body, so audience may come from either.
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "the request body is not a form")
		return
	}
	if gt := r.Form.Get("grant_type"); gt != "client_credentials" {
		refuse(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	aud := r.Form.Get("audience")
	if aud != "wiz-api" && !(aud == "beyond-api" && t.opts.LegacyAudience) {
		refuse(http.StatusBadRequest, "invalid_request", "invalid audience")
		return
	}
	id, secret := r.Form.Get("client_id"), r.Form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && id == "" {
		id, secret = u, p
	}
	if !hmac.Equal([]byte(id), []byte(t.opts.ClientID)) || !hmac.Equal([]byte(secret), []byte(t.opts.ClientSecret)) {
		refuse(http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	now := t.now()
	t.authMu.Lock()
	t.tokenCount++
	n, epoch, scopes := t.tokenCount, t.epoch, strings.Join(t.scopes, " ")
	t.authMu.Unlock()
	life := int64(math.Ceil(t.opts.TokenLifetime.Seconds()))
	tok := t.signJWT(claims{
		Sub: id, Aud: aud, DC: t.opts.DataCenter, IsServiceAccount: true, Scope: scopes,
		Iat: now.Unix(), Exp: now.Unix() + life, Jti: strconv.Itoa(n), Epoch: epoch,
	})
	refresh := fmt.Sprintf("wizfake-refresh-%d", n)
	t.noteIssued(tok, refresh)
	t.count(func(s *Stats) { s.TokensIssued++ })
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  tok,
		"token_type":    "Bearer",
		"expires_in":    life,
		"refresh_token": refresh,
		"scope":         scopes,
	})
}

type claims struct {
	Sub              string `json:"sub"`
	Aud              string `json:"aud"`
	DC               string `json:"dc"`
	IsServiceAccount bool   `json:"isServiceAccount"`
	Scope            string `json:"scope"`
	Iat              int64  `json:"iat"`
	Exp              int64  `json:"exp"`
	Jti              string `json:"jti"`
	Epoch            int    `json:"wizfake_epoch"`
}

var b64 = base64.RawURLEncoding

func (t *Tenant) signJWT(c claims) string {
	h := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p, _ := json.Marshal(c)
	msg := h + "." + b64.EncodeToString(p)
	return msg + "." + b64.EncodeToString(t.mac(msg))
}

func (t *Tenant) mac(msg string) []byte {
	m := hmac.New(sha256.New, t.jwtKey)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// checkToken returns the claims of a valid, unexpired, current token.
func (t *Tenant) checkToken(tok string) (*claims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, t.mac(parts[0]+"."+parts[1])) {
		return nil, false
	}
	p, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var c claims
	if json.Unmarshal(p, &c) != nil {
		return nil, false
	}
	t.authMu.Lock()
	epoch := t.epoch
	t.authMu.Unlock()
	if c.Epoch != epoch || t.now().Unix() >= c.Exp {
		return nil, false
	}
	return &c, true
}

// ---- GraphQL endpoint ----

type gqlBody struct {
	Query         string                     `json:"query"`
	OperationName string                     `json:"operationName"`
	Variables     map[string]json.RawMessage `json:"variables"`
}

func gqlErrorBody(msg string, ext map[string]any) []byte {
	e := map[string]any{"message": msg}
	if ext != nil {
		e["extensions"] = ext
	}
	b, _ := json.Marshal(map[string]any{"data": nil, "errors": []any{e}})
	return b
}

func (t *Tenant) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	t.count(func(s *Stats) { s.GraphQLRequests++ })
	var body gqlBody
	if r.Method == http.MethodGet {
		body.Query = r.URL.Query().Get("query")
		body.OperationName = r.URL.Query().Get("operationName")
		if v := r.URL.Query().Get("variables"); v != "" {
			_ = json.Unmarshal([]byte(v), &body.Variables) // a bad value surfaces as a missing variable
		}
	} else {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || json.Unmarshal(raw, &body) != nil {
			t.record(r, nil, OutcomeBadRequest)
			writeRaw(w, http.StatusBadRequest, gqlErrorBody("POST body must be JSON", map[string]any{"code": "BAD_REQUEST"}))
			return
		}
	}

	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	var cl *claims
	if ok {
		cl, ok = t.checkToken(strings.TrimSpace(tok))
	}
	if !ok {
		t.record(r, body.Variables, OutcomeUnauthorized)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized", "message": "Unauthorized"})
		return
	}

	t.authMu.Lock()
	lim := t.limiter
	t.authMu.Unlock()
	if lim != nil && !lim.Allow() {
		t.record(r, body.Variables, OutcomeRateLimited)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Too Many Requests"})
		return
	}

	fault := t.pickFault(false)
	if fault != nil {
		switch fault.Kind {
		case FaultRateLimit:
			if fault.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(fault.RetryAfter.Seconds()))))
			}
			t.record(r, body.Variables, OutcomeRateLimited)
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Too Many Requests"})
			return
		case FaultGraphQLRateLimit:
			ext := map[string]any{"code": "RATE_LIMIT_EXCEEDED"}
			if fault.RetryAfter > 0 {
				ext["retryAfter"] = fault.RetryAfter.Seconds()
			}
			t.record(r, body.Variables, OutcomeGraphQLRateLimited)
			writeRaw(w, http.StatusOK, gqlErrorBody("Rate limit exceeded", ext))
			return
		case FaultServerError:
			st := fault.Status
			if st == 0 {
				st = http.StatusServiceUnavailable
			}
			t.record(r, body.Variables, OutcomeServerError)
			writeJSON(w, st, map[string]string{"message": http.StatusText(st)})
			return
		case FaultUnauthorized:
			t.record(r, body.Variables, OutcomeUnauthorized)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized", "message": "Token expired"})
			return
		case FaultForbidden:
			t.record(r, body.Variables, OutcomeForbidden)
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		case FaultForbiddenGraphQL:
			t.record(r, body.Variables, OutcomeScopeError)
			writeRaw(w, http.StatusOK, scopeErrorBody())
			return
		case FaultNoData:
			t.record(r, body.Variables, OutcomeNoData)
			writeRaw(w, http.StatusOK, gqlErrorBody("Internal server error", map[string]any{"code": "INTERNAL_SERVER_ERROR"}))
			return
		case FaultLatency:
			timer := time.NewTimer(fault.Latency)
			select {
			case <-r.Context().Done():
				timer.Stop()
				t.record(r, body.Variables, OutcomeCanceled)
				return
			case <-timer.C:
			}
		}
	}

	if !strings.Contains(cl.Scope+" ", AuditScope+" ") || !t.hasScope(AuditScope) {
		t.record(r, body.Variables, OutcomeScopeError)
		writeRaw(w, http.StatusOK, scopeErrorBody())
		return
	}
	if !strings.Contains(body.Query, "auditLogEntries") {
		t.record(r, body.Variables, OutcomeBadRequest)
		writeRaw(w, http.StatusOK, gqlErrorBody("this fake only answers auditLogEntries queries",
			map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}))
		return
	}
	f, err := parseFilter(body.Variables, t.opts.MaxPageSize)
	if err != nil {
		t.record(r, body.Variables, OutcomeBadRequest)
		writeRaw(w, http.StatusOK, gqlErrorBody(err.Error(), map[string]any{"code": "BAD_USER_INPUT"}))
		return
	}
	pg := t.run(f, t.now())
	outcome := OutcomeOK
	var extraErrors []byte
	if fault != nil {
		switch fault.Kind {
		case FaultNullCursor:
			pg.hasNext, pg.endCursor, outcome = true, nil, OutcomeNullCursor
		case FaultPartialData:
			outcome = OutcomePartial
			extraErrors = []byte(`[{"message":"Internal error while resolving field user","path":["auditLogEntries","nodes",0,"user"],"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]`)
		}
	}
	b := renderPage(pg, extraErrors)
	if fault != nil && fault.Kind == FaultDropConnection {
		t.record(r, body.Variables, OutcomeDropped)
		dropAfterPart(w, b)
		return
	}
	t.record(r, body.Variables, outcome)
	writeRaw(w, http.StatusOK, b)
}

func (t *Tenant) hasScope(s string) bool {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	return slices.Contains(t.scopes, s)
}

func scopeErrorBody() []byte {
	return gqlErrorBody("Unauthorized: the service account is missing the required scope admin:audit",
		map[string]any{"code": "UNAUTHORIZED"})
}

func renderPage(pg page, errs []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":{"auditLogEntries":{"nodes":[`)
	for i, n := range pg.nodes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(n)
	}
	b.WriteString(`],"pageInfo":{"hasNextPage":`)
	b.WriteString(strconv.FormatBool(pg.hasNext))
	b.WriteString(`,"endCursor":`)
	if pg.endCursor == nil {
		b.WriteString("null")
	} else {
		b.WriteString(strconv.Quote(*pg.endCursor)) // base64 needs no JSON escaping
	}
	b.WriteString(`}}}`)
	if errs != nil {
		b.WriteString(`,"errors":`)
		b.Write(errs)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// dropAfterPart sends the headers announcing the whole body, half of the body, then closes
// the connection.
func dropAfterPart(w http.ResponseWriter, body []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 or a recorder: the best we can do is a truncated body with a full length.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}
