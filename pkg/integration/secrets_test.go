package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// Recognisable credentials: anything that contains them (or their tail) is a leak.
const (
	canaryClientID = "wizaudit-canary-client-0b7e51"
	canarySecret   = "wizaudit-canary-SECRET-4c9f2d81e6"
)

// capture collects everything the plugin hands out, labelled, to be searched for secrets.
type capture struct {
	parts []capturedPart
}

type capturedPart struct {
	label string
	data  []byte
}

func (c *capture) add(label string, data []byte) {
	c.parts = append(c.parts, capturedPart{label, append([]byte(nil), data...)})
}

func (c *capture) addJSON(t *testing.T, label string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: marshal: %v", label, err)
	}
	c.add(label, b)
}

func (c *capture) bytes() int {
	n := 0
	for _, p := range c.parts {
		n += len(p.data)
	}
	return n
}

// TestSecretsNeverLeak drives the built plugin through health checks, every fault and error
// path the fake tenant can inject, every query type and every resource endpoint, capturing
// everything it hands out — logs, errors, frames, resource bodies, health messages and
// details, the cache directory's files — and checks that neither the client secret nor any
// token the tenant issued appears anywhere.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := prepareEnv(t, wizfake.Options{
		Seed: 51, Events: 2500, Span: 5 * 24 * time.Hour, End: now.Add(-time.Minute),
		ClientID: canaryClientID, ClientSecret: canarySecret,
	}, map[string]any{"backfillStart": now.Add(-6 * 24 * time.Hour).Format(time.RFC3339), "pageSize": 50})
	e.start()
	ctx := context.Background()
	var got capture

	call := func(label string, user *backend.User, method, path string) *struct {
		Status int
		Body   []byte
	} {
		t.Helper()
		res := e.call(user, method, path, nil)
		got.add(fmt.Sprintf("%s %s %s (%s)", label, method, path, roleOf(user)), res.Body)
		for k, v := range res.Headers {
			got.add(label+" header "+k, []byte(strings.Join(v, "\n")))
		}
		return &struct {
			Status int
			Body   []byte
		}{res.Status, res.Body}
	}
	status := func(label string) syncStatus {
		t.Helper()
		res := call(label, viewer, "GET", "sync/status")
		var st syncStatus
		if err := json.Unmarshal(res.Body, &st); err != nil {
			t.Fatalf("sync/status: %v: %s", err, res.Body)
		}
		return st
	}
	health := func(label string, ds func() (r *backend.CheckHealthResult, err error)) *backend.CheckHealthResult {
		t.Helper()
		res, err := ds()
		if err != nil {
			got.add(label+" health call error", []byte(err.Error()))
			t.Fatalf("%s: %v", label, err)
		}
		got.add(label+" health message", []byte(res.Message))
		got.add(label+" health details", res.JSONDetails)
		return res
	}
	checkHealth := func(label string) *backend.CheckHealthResult {
		t.Helper()
		return health(label, func() (*backend.CheckHealthResult, error) {
			c, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return e.plugin.CheckHealth(c, e.ds)
		})
	}
	snapshotCacheDir := func(label string) {
		t.Helper()
		entries, err := os.ReadDir(e.cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range entries {
			raw, err := os.ReadFile(filepath.Join(e.cacheDir, de.Name()))
			if err != nil {
				continue // a -shm or -wal that went away meanwhile
			}
			got.add(label+" file "+de.Name(), raw)
		}
	}

	// 1. Health: good credentials, a bad secret, a missing scope.
	if res := checkHealth("good"); res.Status != backend.HealthStatusOk {
		t.Errorf("health with good credentials: %v %q", res.Status, res.Message)
	}
	bad := e.ds
	bad.UID = "wiz-bad-secret"
	bad.Secure = map[string]string{"clientId": canaryClientID, "clientSecret": canarySecret + "-WRONG"}
	res := health("bad secret", func() (*backend.CheckHealthResult, error) { return e.plugin.CheckHealth(ctx, bad) })
	if res.Status != backend.HealthStatusError || !strings.HasPrefix(res.Message, "authentication failed") {
		t.Errorf("health with a bad secret: %v %q", res.Status, res.Message)
	}
	badRes := e.call(viewer, "GET", "sync/status", nil)
	got.add("bad secret sync/status", badRes.Body)
	e.tenant.SetScopes("read:all")
	if res := checkHealth("no scope"); res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "admin:audit") {
		t.Errorf("health without the scope: %v %q", res.Status, res.Message)
	}
	e.tenant.SetScopes(wizfake.AuditScope, "read:all")

	// 2. A 401 mid-pagination: every token so far expires while the backfill pages.
	e.waitFor("the backfill to be under way", 30*time.Second, func(st syncStatus) bool { return st.Events > 0 })
	before := e.tenant.Stats()
	e.tenant.ExpireTokens()
	waitStats(t, e, "a new token after ExpireTokens", func(s wizfake.Stats) bool {
		return s.TokensIssued > before.TokensIssued && s.Outcomes[wizfake.OutcomeUnauthorized] > before.Outcomes[wizfake.OutcomeUnauthorized]
	})

	// 3. Every fault, one phase each: inject, make the plugin call, wait until the tenant has
	// answered with it, then clear and let the sync resume.
	type phase struct {
		name    string
		faults  []wizfake.Fault
		expire  bool // expire tokens first, so that the plugin asks the token endpoint
		outcome string
		tokenRe bool // wait for a refused token request instead of an outcome
	}
	phases := []phase{
		{name: "429 with Retry-After", faults: []wizfake.Fault{{Kind: wizfake.FaultRateLimit, RetryAfter: time.Second, Count: 1}}, outcome: wizfake.OutcomeRateLimited},
		{name: "429 without Retry-After", faults: []wizfake.Fault{{Kind: wizfake.FaultRateLimit, Count: 1}}, outcome: wizfake.OutcomeRateLimited},
		{name: "GraphQL rate limit with retryAfter", faults: []wizfake.Fault{{Kind: wizfake.FaultGraphQLRateLimit, RetryAfter: time.Second, Count: 1}}, outcome: wizfake.OutcomeGraphQLRateLimited},
		{name: "GraphQL rate limit", faults: []wizfake.Fault{{Kind: wizfake.FaultGraphQLRateLimit, Count: 1}}, outcome: wizfake.OutcomeGraphQLRateLimited},
		{name: "503", faults: []wizfake.Fault{{Kind: wizfake.FaultServerError, Count: 1}}, outcome: wizfake.OutcomeServerError},
		{name: "500", faults: []wizfake.Fault{{Kind: wizfake.FaultServerError, Status: 500, Count: 1}}, outcome: wizfake.OutcomeServerError},
		{name: "dropped connection", faults: []wizfake.Fault{{Kind: wizfake.FaultDropConnection, Count: 1}}, outcome: wizfake.OutcomeDropped},
		{name: "401 once", faults: []wizfake.Fault{{Kind: wizfake.FaultUnauthorized, Count: 1}}, outcome: wizfake.OutcomeUnauthorized},
		{name: "401 twice", faults: []wizfake.Fault{{Kind: wizfake.FaultUnauthorized, Count: 2}}, outcome: wizfake.OutcomeUnauthorized},
		{name: "403", faults: []wizfake.Fault{{Kind: wizfake.FaultForbidden, Count: 1}}, outcome: wizfake.OutcomeForbidden},
		{name: "GraphQL scope error", faults: []wizfake.Fault{{Kind: wizfake.FaultForbiddenGraphQL, Count: 1}}, outcome: wizfake.OutcomeScopeError},
		{name: "partial data", faults: []wizfake.Fault{{Kind: wizfake.FaultPartialData, Count: 1}}, outcome: wizfake.OutcomePartial},
		{name: "data null", faults: []wizfake.Fault{{Kind: wizfake.FaultNoData, Count: 1}}, outcome: wizfake.OutcomeNoData},
		{name: "null cursor", faults: []wizfake.Fault{{Kind: wizfake.FaultNullCursor, Count: 1}}, outcome: wizfake.OutcomeNullCursor},
		{name: "token endpoint 503", expire: true, faults: []wizfake.Fault{{Kind: wizfake.FaultTokenError, Count: 1}}, tokenRe: true},
		{name: "token endpoint 500", expire: true, faults: []wizfake.Fault{{Kind: wizfake.FaultTokenError, Status: 500, Count: 1}}, tokenRe: true},
		{name: "token endpoint 401", expire: true, faults: []wizfake.Fault{{Kind: wizfake.FaultTokenError, Status: 401, Count: 1}}, tokenRe: true},
		{name: "token endpoint 400", expire: true, faults: []wizfake.Fault{{Kind: wizfake.FaultTokenError, Status: 400, Count: 1}}, tokenRe: true},
	}
	for _, ph := range phases {
		before := e.tenant.Stats()
		lastErr := errorText(status(ph.name + " before"))
		if ph.expire {
			e.tenant.ExpireTokens()
		}
		for _, f := range ph.faults {
			e.tenant.Inject(f)
		}
		call(ph.name, editor, "POST", "sync/run")
		faulted := waitStats(t, e, ph.name, func(s wizfake.Stats) bool {
			if ph.tokenRe {
				return s.TokenRefused > before.TokenRefused
			}
			return s.Outcomes[ph.outcome] > before.Outcomes[ph.outcome]
		})
		// The plugin has handled the answer once it asks the tenant again (a retry, a new
		// token, the next page) or reports a new error.
		e.waitFor(ph.name+": the plugin to handle the answer", 30*time.Second, func(st syncStatus) bool {
			return requestCount(e.tenant.Stats()) > requestCount(faulted) || errorText(st) != lastErr
		})
		st := status(ph.name)
		if st.LastError != nil {
			got.add(ph.name+" lastError", []byte(*st.LastError))
		}
		checkHealth(ph.name)
		e.tenant.ClearFaults()
		call(ph.name+" resume", editor, "POST", "sync/run")
	}

	// The sync gets through all of it to exactly the tenant.
	want := e.tenant.VisibleEvents()
	e.waitFor("the sync after the faults", 60*time.Second, func(st syncStatus) bool {
		if st.State == "error" {
			e.call(editor, "POST", "sync/run", nil)
		}
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want)) && st.State != "error"
	})
	st := status("final")
	checkHealth("final")

	// 4. Queries of every type, for a panel and for an alert rule, plus rejected ones.
	queries := []map[string]any{
		{"queryType": "logs"},
		{"queryType": "logs", "search": "Login", "statuses": []string{"FAILED", "SUCCESS"}},
		{"queryType": "table", "limit": 10000},
		{"queryType": "timeseries"},
		{"queryType": "timeseries", "groupBy": "action"},
		{"queryType": "top", "groupBy": "principal"},
		{"queryType": "top", "groupBy": "sourceIp", "limit": 50},
		{"queryType": "values", "field": "principal"},
		{"queryType": "values", "field": "userAgent"},
		{"queryType": "nonsense"},
		{"queryType": "top", "groupBy": "clientSecret"},
		{"queryType": "timeseries", "sourceIps": []string{"not-an-ip"}},
	}
	for i, q := range queries {
		for _, headers := range []map[string]string{nil, {backend.FromAlertHeaderName: "true"}} {
			for _, rng := range [][2]time.Time{{now.Add(-7 * 24 * time.Hour), now}, {now.Add(time.Hour), now.Add(2 * time.Hour)}} {
				res := e.query(headers, rng[0], rng[1], q)
				label := fmt.Sprintf("query %d %v alert=%v", i, q["queryType"], headers != nil)
				if res.Error != nil {
					got.add(label+" error", []byte(res.Error.Error()))
				}
				got.addJSON(t, label+" frames", res.Frames)
				got.add(label+" status", []byte(fmt.Sprint(res.Status, res.ErrorSource)))
			}
		}
	}

	// 5. Every resource endpoint, as every role.
	for _, user := range []*backend.User{viewer, editor, {Login: "admin", Role: "Admin"}, {Login: "nobody"}} {
		for _, r := range [][2]string{
			{"GET", "sync/status"}, {"POST", "sync/run"}, {"GET", "sync/run"},
			{"GET", "values/action"}, {"GET", "values/status"}, {"GET", "values/principal"},
			{"GET", "values/principalType"}, {"GET", "values/sourceIp"}, {"GET", "values/userAgent?q=a&limit=3"},
			{"GET", "values/clientSecret"}, {"GET", "values/action?limit=-1"}, {"GET", "nothing/here"},
		} {
			call("resources", user, r[0], r[1])
		}
	}
	bad.Updated = time.Unix(1700000000, 0).Add(time.Minute)
	for _, r := range []string{"sync/status", "values/action"} {
		res, err := e.plugin.CallResource(ctx, bad, viewer, "GET", r, nil)
		if err != nil {
			t.Fatal(err)
		}
		got.add("bad secret "+r, res.Body)
	}

	// 6. The cache directory while running and after the plugin exits, and every log line.
	snapshotCacheDir("running")
	e.plugin.Close()
	waitExit(t, e)
	snapshotCacheDir("closed")
	got.add("plugin logs", []byte(e.plugin.Logs()))

	// The capture has teeth: it holds the logs of the fault paths and the cache's events.
	if got.bytes() < 1<<20 {
		t.Errorf("only %d bytes captured", got.bytes())
	}
	if !strings.Contains(e.plugin.Logs(), "sync failed") && !strings.Contains(e.plugin.Logs(), "sync stopped") {
		t.Errorf("the logs show no failed sync: the fault phases did not reach the plugin")
	}
	if _, err := os.Stat(st.CacheFile); err != nil {
		t.Errorf("no cache file to search: %v", err)
	}

	// Every secret and token, in the forms they travel in.
	tokens := e.tenant.IssuedTokens()
	if len(tokens) < 5 {
		t.Fatalf("the tenant issued only %d tokens: the expiry phases did not make the plugin fetch new ones", len(tokens))
	}
	needles := map[string]string{
		"client secret":               canarySecret,
		"client secret (tail)":        canarySecret[len(canarySecret)-12:],
		"client secret (form)":        url.QueryEscape(canarySecret),
		"client secret (basic auth)":  base64.StdEncoding.EncodeToString([]byte(canaryClientID + ":" + canarySecret)),
		"client secret (base64)":      base64.StdEncoding.EncodeToString([]byte(canarySecret))[:24],
		"client ID (secureJsonData)":  canaryClientID,
		"wrong client secret (tail)":  "SECRET-4c9f2d81e6-WRONG",
		"refresh token":               "wizfake-refresh-",
		"bearer header with a secret": "Bearer ey",
	}
	for i, tok := range tokens {
		needles[fmt.Sprintf("access token %d", i)] = tok
		parts := strings.Split(tok, ".")
		needles[fmt.Sprintf("access token %d payload", i)] = parts[1]
		needles[fmt.Sprintf("access token %d signature", i)] = parts[2]
	}
	leaks := 0
	for _, p := range got.parts {
		for what, needle := range needles {
			if i := strings.Index(string(p.data), needle); i >= 0 {
				leaks++
				if leaks <= 20 {
					lo, hi := max(0, i-120), min(len(p.data), i+len(needle)+40)
					t.Errorf("%s found in %s: …%q…", what, p.label, p.data[lo:hi])
				}
			}
		}
	}
	t.Logf("searched %d captured parts (%d bytes) for %d needles (%d tokens issued)", len(got.parts), got.bytes(), len(needles), len(tokens))
}

// waitStats polls the tenant's counters until cond holds, and returns the counters that met it.
func waitStats(t *testing.T, e *env, what string, cond func(wizfake.Stats) bool) wizfake.Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := e.tenant.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the tenant never saw it; stats %+v\n%s", what, s, tail(e.plugin.Logs(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requestCount is every request the tenant has received.
func requestCount(s wizfake.Stats) int { return s.GraphQLRequests + s.TokenRequests }

func errorText(st syncStatus) string {
	if st.LastError == nil {
		return ""
	}
	return *st.LastError
}

func roleOf(u *backend.User) string {
	if u == nil {
		return "nil user"
	}
	if u.Role == "" {
		return "no role"
	}
	return string(u.Role)
}
