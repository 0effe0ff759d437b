package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestResourceAuthorization: starting a sync needs the Editor or Admin role; reading the
// status and the values lists needs only a Viewer. Every 4xx answer is JSON with a message,
// never a Go stack trace, a source file path or the cache path.
func TestResourceAuthorization(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 61, Events: 300, Span: time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-2 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the backfill", 60*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })

	admin := &backend.User{Login: "admin", Role: "Admin"}
	noRole := &backend.User{Login: "anonymous"}
	none := &backend.User{Login: "guest", Role: "None"}
	lower := &backend.User{Login: "sneaky", Role: "editor"} // Grafana sends roles capitalised

	type tc struct {
		user         *backend.User
		method, path string
		status       int
		contains     string
	}
	cases := []tc{
		{viewer, "POST", "sync/run", 403, "Editor or Admin"},
		{noRole, "POST", "sync/run", 403, "Editor or Admin"},
		{none, "POST", "sync/run", 403, "Editor or Admin"},
		{lower, "POST", "sync/run", 403, "Editor or Admin"},
		{editor, "POST", "sync/run", 202, ""},
		{admin, "POST", "sync/run", 202, ""},
		{viewer, "GET", "sync/status", 200, `"state"`},
		{viewer, "GET", "values/action?q=Log&limit=5", 200, `"Login"`},
		{viewer, "GET", "values/action?q=%25", 200, "["},
		{viewer, "GET", "values/action?q=%27%20OR%201%3D1--", 200, "[]"},
		{viewer, "GET", "values/password", 400, "password"},
		{viewer, "GET", "values/action?limit=0", 400, "limit"},
		{viewer, "GET", "values/action?limit=abc", 400, "limit"},
		{viewer, "GET", "values/action?limit=10001", 400, "limit"},
		{viewer, "GET", "values/action?limit=99999999999999999999999", 400, "limit"},
		{viewer, "GET", "values/..%2F..%2Fetc%2Fpasswd", 400, ""},
		{viewer, "GET", "values/", 404, ""},
		{viewer, "GET", "values/action/extra", 404, ""},
		{viewer, "GET", "nothing/here", 404, "no such resource"},
		{viewer, "GET", "sync/run", 405, "takes POST"},
		{viewer, "DELETE", "sync/status", 405, "takes GET"},
		{viewer, "PUT", "values/action", 405, "takes GET"},
		{editor, "POST", "values/action", 405, "takes GET"},
	}
	for _, field := range []string{"action", "status", "principal", "principalType", "sourceIp", "userAgent"} {
		cases = append(cases, tc{viewer, "GET", "values/" + field, 200, "["}, tc{noRole, "GET", "values/" + field, 200, "["})
	}
	check := func(e *env, c tc) {
		t.Helper()
		res := e.call(c.user, c.method, c.path, nil)
		who := roleOf(c.user)
		if res.Status != c.status || !strings.Contains(string(res.Body), c.contains) {
			t.Errorf("%s %s as %s: %d %s (want %d with %q)", c.method, c.path, who, res.Status, res.Body, c.status, c.contains)
		}
		if ct := strings.Join(res.Headers["Content-Type"], ""); !strings.Contains(ct, "application/json") {
			t.Errorf("%s %s as %s: content type %q", c.method, c.path, who, ct)
		}
		if res.Status >= 400 {
			var body map[string]any
			if err := json.Unmarshal(res.Body, &body); err != nil {
				t.Errorf("%s %s as %s: %d body is not JSON: %s", c.method, c.path, who, res.Status, res.Body)
			} else if m, _ := body["message"].(string); strings.TrimSpace(m) == "" {
				t.Errorf("%s %s as %s: %d body has no message: %s", c.method, c.path, who, res.Status, res.Body)
			}
			for _, bad := range []string{"goroutine ", ".go:", "panic", "runtime.", "github.com/", "/pkg/", e.cacheDir, "sqlite3"} {
				if strings.Contains(string(res.Body), bad) {
					t.Errorf("%s %s as %s: %d body shows internals (%q): %s", c.method, c.path, who, res.Status, bad, res.Body)
				}
			}
		}
		if res.Status == 200 && strings.HasPrefix(c.path, "values/") {
			var vals []string
			if err := json.Unmarshal(res.Body, &vals); err != nil {
				t.Errorf("%s: not a JSON array of strings: %s", c.path, res.Body)
			}
		}
	}
	for _, c := range cases {
		check(e, c)
	}

	// A data source with bad settings: the same rules, the same JSON errors.
	broken := *e
	broken.ds = pluginharness.DataSource{ID: 2, UID: "wiz-broken", JSONData: map[string]any{"dataCenter": "us1.evil.com/"},
		Secure: map[string]string{"clientId": "id", "clientSecret": secret}}
	for _, c := range []tc{
		{viewer, "POST", "sync/run", 403, "Editor or Admin"},
		{editor, "POST", "sync/run", 409, "dataCenter"},
		{viewer, "GET", "values/action", 409, "dataCenter"},
		{viewer, "GET", "sync/status", 200, "dataCenter"},
	} {
		check(&broken, c)
	}
	if strings.Contains(e.plugin.Logs(), "panic") {
		t.Errorf("a panic in the logs:\n%s", tail(e.plugin.Logs(), 3000))
	}
}
