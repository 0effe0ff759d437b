package integration

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// prepareEnv is newEnv without starting the plugin, so that a test can place files in the
// cache directory first or start the plugin its own way.
func prepareEnv(t testing.TB, opts wizfake.Options, jsonData map[string]any) *env {
	t.Helper()
	if opts.ClientSecret == "" {
		opts.ClientSecret = secret
	}
	tenant, srv := wizfake.NewServer(opts)
	t.Cleanup(srv.Close)
	e := &env{t: t, tenant: tenant, srv: srv, cacheDir: t.TempDir()}
	jd := map[string]any{
		"apiUrl":            wizfake.GraphQLURL(srv.URL),
		"authUrl":           wizfake.TokenURL(srv.URL),
		"pollInterval":      "10s",
		"requestsPerSecond": 10,
	}
	for k, v := range jsonData {
		jd[k] = v
	}
	e.ds = pluginharness.DataSource{
		ID: 1, UID: "wiz-test", Name: "Wiz", JSONData: jd,
		Secure: map[string]string{"clientId": tenant.ClientID(), "clientSecret": tenant.ClientSecret()},
	}
	return e
}

// startWrapped starts the plugin (again) with a wrapper program before the binary.
func (e *env) startWrapped(wrapper []string) {
	e.plugin = pluginharness.Start(e.t, pluginharness.Options{
		Env: []string{"GF_PLUGIN_CACHE_DIR=" + e.cacheDir}, Wrapper: wrapper,
	})
}

// expectedCacheFile is where the data source's cache lives: one file per org and UID.
func (e *env) expectedCacheFile() string {
	return filepath.Join(e.cacheDir, "org1-"+e.ds.UID+".sqlite")
}

// withJSON returns a copy of the data source with jsonData keys changed and Updated set.
func withJSON(ds pluginharness.DataSource, updated time.Time, changes map[string]any) pluginharness.DataSource {
	jd := map[string]any{}
	for k, v := range ds.JSONData.(map[string]any) {
		jd[k] = v
	}
	for k, v := range changes {
		jd[k] = v
	}
	ds.JSONData, ds.Updated = jd, updated
	return ds
}

// readCache opens a cache file read-only (the plugin may be running) and returns its events
// (id → stored node JSON), failing on a duplicate id or a failed PRAGMA quick_check.
func readCache(t testing.TB, file string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(file)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA quick_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("PRAGMA quick_check on %s: %q %v", file, check, err)
	}
	rows, err := db.Query(`SELECT id, raw FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	return collectEvents(t, rows)
}

// eventRows are rows of (id, raw) from either backend.
type eventRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collectEvents reads rows of (id, raw) into a map, failing on a duplicate id.
func collectEvents(t testing.TB, rows eventRows) map[string]string {
	t.Helper()
	got := map[string]string{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[id]; dup {
			t.Fatalf("event %s stored twice", id)
		}
		got[id] = raw
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// assertExactlyTenant checks that the cache holds each visible tenant event once, as sent, and
// nothing else.
func assertExactlyTenant(t testing.TB, got map[string]string, want []wizfake.Entry) {
	t.Helper()
	seen := map[string]bool{}
	var lost []string
	for _, w := range want {
		seen[w.ID] = true
		raw, ok := got[w.ID]
		if !ok {
			lost = append(lost, w.ID)
			continue
		}
		if raw != string(w.Node) {
			t.Errorf("event %s stored as %s, sent as %s", w.ID, raw, w.Node)
		}
	}
	var extra []string
	for id := range got {
		if !seen[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(lost)
	sort.Strings(extra)
	if len(lost) > 0 || len(extra) > 0 {
		t.Fatalf("cache holds %d events, the tenant %d: %d lost (first %v), %d not the tenant's (first %v)",
			len(got), len(want), len(lost), first(lost, 5), len(extra), first(extra, 5))
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// lockErrors returns the log lines that report SQLite lock contention.
func lockErrors(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "database is locked") || strings.Contains(l, "sqlite_busy") || strings.Contains(l, "database table is locked") {
			out = append(out, line)
		}
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
