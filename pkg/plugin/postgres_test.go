package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// call sends one resource request as an Editor and decodes the JSON answer.
func call(t *testing.T, d *Datasource, method, path string) (int, map[string]any) {
	t.Helper()
	var got *backend.CallResourceResponse
	err := d.CallResource(context.Background(), &backend.CallResourceRequest{
		PluginContext: backend.PluginContext{User: &backend.User{Login: "e", Role: "Editor"}},
		Method:        method, Path: path, URL: path,
	}, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
	if err != nil || got == nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var body map[string]any
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatalf("%s %s: %s", method, path, got.Body)
	}
	return got.Status, body
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresLeaderAndFollower: two instances of one data source on one database (two
// replicas, here in one process): one syncs, the other follows, reports the leader's
// freshness and passes "sync now" on.
func TestPostgresLeaderAndFollower(t *testing.T) {
	f := newFixture(t, wizfake.Options{Seed: 6, Events: 30})
	t.Setenv(DatabaseURLEnv, pgtest.NewDatabase(t))
	a := f.start(t)
	waitUntil(t, "the first instance to sync", 10*time.Second, func() bool {
		_, st := call(t, a, "GET", "sync/status")
		return st["role"] == "leader" && st["syncedUpTo"] != nil
	})
	b := f.start(t)
	_, st := call(t, a, "GET", "sync/status")
	if st["backend"] != "postgres" || st["cacheFile"] != nil || st["leader"] == nil || st["events"] == 0.0 {
		t.Fatalf("leader status %v", st)
	}
	_, fst := call(t, b, "GET", "sync/status")
	if fst["role"] != "follower" || fst["leader"] != st["leader"] || fst["events"] != st["events"] || fst["syncedUpTo"] != st["syncedUpTo"] || fst["readOnly"] != true {
		t.Fatalf("follower status %v", fst)
	}
	status, body := call(t, b, "POST", "sync/run")
	if status != http.StatusAccepted || !strings.Contains(body["message"].(string), "was asked to sync") {
		t.Fatalf("run on the follower: %d %v", status, body)
	}
	res, err := b.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil || res.Status != backend.HealthStatusOk || !strings.Contains(res.Message, "synced by the replica "+st["leader"].(string)) {
		t.Fatalf("follower health %v %+v", err, res)
	}
	// The leader goes: the follower takes over within a promote interval.
	a.Dispose()
	waitUntil(t, "the follower to lead", 15*time.Second, func() bool {
		_, st := call(t, b, "GET", "sync/status")
		return st["role"] == "leader"
	})
}

// TestPostgresUnreachableAtStart: an instance created while the database is down reports it
// (naming host, port and database, never the password) and syncs once it is back.
func TestPostgresUnreachableAtStart(t *testing.T) {
	f := newFixture(t, wizfake.Options{Seed: 7, Events: 10})
	c := pgtest.NewCluster(t)
	url := c.NewDatabase(t)
	t.Setenv(DatabaseURLEnv, url)
	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	d := f.start(t)
	_, st := call(t, d, "GET", "sync/status")
	msg, _ := st["lastError"].(string)
	if st["state"] != "error" || st["backend"] != "postgres" || !strings.Contains(msg, "PostgreSQL at 127.0.0.1:") || !strings.Contains(msg, "/"+pgtest.DatabaseName(url)) {
		t.Fatalf("status with the database down: %v", st)
	}
	res, _ := d.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "PostgreSQL at") {
		t.Fatalf("health with the database down: %+v", res)
	}
	for _, s := range []string{msg, res.Message, string(res.JSONDetails)} {
		if strings.Contains(s, c.Password()) {
			t.Fatalf("the password is in %q", s)
		}
	}
	if err := c.StartServer(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the instance to sync once the database is back", 20*time.Second, func() bool {
		_, st := call(t, d, "GET", "sync/status")
		return st["role"] == "leader" && st["syncedUpTo"] != nil && st["state"] != "error"
	})
}

// TestSQLiteStatusFields: without a database URL the data source keeps its cache file and
// says so in the status fields the PostgreSQL backend added.
func TestSQLiteStatusFields(t *testing.T) {
	f := newFixture(t, wizfake.Options{Seed: 8, Events: 5})
	d := f.start(t)
	_, st := call(t, d, "GET", "sync/status")
	file, _ := st["cacheFile"].(string)
	if st["backend"] != "sqlite" || st["role"] != "leader" || st["leader"] == nil || !strings.HasPrefix(file, f.cacheDir) {
		t.Fatalf("status %v", st)
	}
}
