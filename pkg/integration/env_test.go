package integration

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// env is a fake Wiz tenant on loopback and the built plugin configured against it.
type env struct {
	t        testing.TB
	tenant   *wizfake.Tenant
	srv      *httptest.Server
	plugin   *pluginharness.Plugin
	ds       pluginharness.DataSource
	cacheDir string
	// databaseURL, when set, puts the plugin on PostgreSQL (GF_PLUGIN_DATABASE_URL).
	databaseURL string
}

// newEnv starts a tenant and the plugin; extra jsonData keys override the defaults.
func newEnv(t testing.TB, opts wizfake.Options, jsonData map[string]any) *env {
	t.Helper()
	e := prepareEnv(t, opts, jsonData)
	e.start()
	return e
}

func (e *env) start() {
	e.plugin = pluginharness.Start(e.t, pluginharness.Options{Env: []string{"GF_PLUGIN_CACHE_DIR=" + e.cacheDir}, DatabaseURL: e.databaseURL})
}

// syncStatus is GET sync/status as docs/sync.md defines it.
type syncStatus struct {
	State      string     `json:"state"`
	Events     int64      `json:"events"`
	Oldest     *time.Time `json:"oldest"`
	Newest     *time.Time `json:"newest"`
	SyncedUpTo *time.Time `json:"syncedUpTo"`
	LastSyncAt *time.Time `json:"lastSyncAt"`
	LastError  *string    `json:"lastError"`
	Backfill   *struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
		Done float64   `json:"done"`
	} `json:"backfill"`
	NextSyncAt *time.Time `json:"nextSyncAt"`
	CacheFile  string     `json:"cacheFile"`
	CacheBytes int64      `json:"cacheBytes"`
	Backend    string     `json:"backend"`
	Role       string     `json:"role"`
	Leader     *string    `json:"leader"`
}

func (e *env) status() syncStatus {
	e.t.Helper()
	res := e.call(viewer, "GET", "sync/status", nil)
	if res.Status != 200 {
		e.t.Fatalf("sync/status: %d %s", res.Status, res.Body)
	}
	var st syncStatus
	if err := json.Unmarshal(res.Body, &st); err != nil {
		e.t.Fatalf("sync/status: %v: %s", err, res.Body)
	}
	return st
}

// waitFor polls sync/status until cond holds; it fails the test after timeout.
func (e *env) waitFor(what string, timeout time.Duration, cond func(syncStatus) bool) syncStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waiting for %s: last status %+v\nplugin logs:\n%s", what, st, tail(e.plugin.Logs(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) call(user *backend.User, method, path string, body []byte) *pluginharness.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := e.plugin.CallResource(ctx, e.ds, user, method, path, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// query runs one query (JSON of the query model, docs/query-model.md) over [from, to].
func (e *env) query(headers map[string]string, from, to time.Time, q map[string]any) backend.DataResponse {
	e.t.Helper()
	raw, err := json.Marshal(q)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.plugin.QueryData(ctx, e.ds, pluginharness.QueryRequest{
		Headers: headers,
		Queries: []backend.DataQuery{{
			RefID: "A", JSON: raw, TimeRange: backend.TimeRange{From: from, To: to},
			Interval: time.Minute, MaxDataPoints: 1000,
		}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Responses["A"]
}

var (
	viewer = &backend.User{Login: "viewer", Role: "Viewer"}
	editor = &backend.User{Login: "editor", Role: "Editor"}
)

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
