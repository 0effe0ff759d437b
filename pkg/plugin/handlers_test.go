package plugin

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// These tests drive the SDK handlers (QueryData, CallResource, CheckHealth) in process, against
// a fake Wiz tenant on a loopback port and a cache in t.TempDir(). The cache location comes
// from the environment, so they do not run in parallel.

// fixture is a fake tenant and the data source settings that point at it.
type fixture struct {
	tenant   *wizfake.Tenant
	conns    atomic.Int64 // open connections to the tenant
	jsonData map[string]any
	secrets  map[string]string
	cacheDir string
}

func newFixture(t *testing.T, opts wizfake.Options) *fixture {
	t.Helper()
	tenant := wizfake.New(opts)
	srv := httptest.NewUnstartedServer(tenant)
	t.Cleanup(srv.Close)
	f := &fixture{
		tenant:   tenant,
		jsonData: map[string]any{"pollInterval": "10s", "requestsPerSecond": 10},
		secrets:  map[string]string{"clientId": tenant.ClientID(), "clientSecret": tenant.ClientSecret()},
		cacheDir: t.TempDir(),
	}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			f.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			f.conns.Add(-1)
		}
	}
	srv.Start()
	f.jsonData["apiUrl"], f.jsonData["authUrl"] = wizfake.GraphQLURL(srv.URL), wizfake.TokenURL(srv.URL)
	return f
}

// start builds the data source instance as Grafana's instance manager would, and disposes it
// when the test ends.
func (f *fixture) start(t *testing.T) *Datasource {
	t.Helper()
	t.Setenv("GF_PLUGIN_CACHE_DIR", f.cacheDir)
	jd, err := json.Marshal(f.jsonData)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := NewDatasource(context.Background(), backend.DataSourceInstanceSettings{
		UID: "wiz-test", Type: ID, JSONData: jd, DecryptedSecureJSONData: f.secrets,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := inst.(*Datasource)
	t.Cleanup(d.Dispose)
	return d
}

func TestQueryDataErrors(t *testing.T) {
	logs := `{"queryType":"logs"}`
	cases := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		alert   bool
		queries map[string]string         // refId → query JSON
		want    map[string]backend.Status // refId → status
		message map[string]string         // refId → part of the error
	}{
		{
			name:    "settings error answers every query",
			setup:   func(_ *testing.T, f *fixture) { f.jsonData["pollInterval"] = "1s" },
			queries: map[string]string{"A": logs, "B": logs},
			want:    map[string]backend.Status{"A": backend.StatusBadRequest, "B": backend.StatusBadRequest},
			message: map[string]string{"A": "pollInterval", "B": "pollInterval"},
		},
		{
			name: "cache error answers every query",
			setup: func(t *testing.T, f *fixture) {
				// A file where the cache directory should be: the cache cannot be created.
				f.cacheDir = filepath.Join(t.TempDir(), "not-a-directory")
				if err := os.WriteFile(f.cacheDir, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			queries: map[string]string{"A": logs},
			want:    map[string]backend.Status{"A": backend.StatusBadRequest},
			message: map[string]string{"A": "cache"},
		},
		{
			name: "alert query on a cache that has never synced",
			// Without the audit scope the first sync cannot complete.
			setup:   func(_ *testing.T, f *fixture) { f.tenant.SetScopes("read:all") },
			alert:   true,
			queries: map[string]string{"A": logs},
			want:    map[string]backend.Status{"A": backend.StatusBadGateway},
			message: map[string]string{"A": "Wiz audit cache"},
		},
		{
			name:    "the same query outside an alert answers",
			setup:   func(_ *testing.T, f *fixture) { f.tenant.SetScopes("read:all") },
			queries: map[string]string{"A": logs},
			want:    map[string]backend.Status{"A": backend.StatusOK},
		},
		{
			name:    "a bad query next to a good one",
			queries: map[string]string{"good": logs, "bad": `{"queryType":"nonsense"}`},
			want:    map[string]backend.Status{"good": backend.StatusOK, "bad": backend.StatusBadRequest},
			message: map[string]string{"bad": "nonsense"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, wizfake.Options{Seed: 1, Events: 20})
			if tc.setup != nil {
				tc.setup(t, f)
			}
			d := f.start(t)
			req := &backend.QueryDataRequest{Headers: map[string]string{}}
			if tc.alert {
				req.Headers[backend.FromAlertHeaderName] = "true"
			}
			now := time.Now()
			for ref, js := range tc.queries {
				req.Queries = append(req.Queries, backend.DataQuery{
					RefID: ref, JSON: json.RawMessage(js), MaxDataPoints: 100, Interval: time.Minute,
					TimeRange: backend.TimeRange{From: now.Add(-time.Hour), To: now},
				})
			}
			resp, err := d.QueryData(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Responses) != len(tc.queries) {
				t.Fatalf("%d responses for %d queries", len(resp.Responses), len(tc.queries))
			}
			for ref, want := range tc.want {
				r := resp.Responses[ref]
				got := r.Status
				if got == 0 && r.Error == nil {
					got = backend.StatusOK
				}
				if got != want {
					t.Errorf("%s: status %v (error %v), want %v", ref, got, r.Error, want)
				}
				if want == backend.StatusOK {
					if r.Error != nil || len(r.Frames) == 0 {
						t.Errorf("%s: error %v, %d frames", ref, r.Error, len(r.Frames))
					}
					continue
				}
				if r.Error == nil || !strings.Contains(r.Error.Error(), tc.message[ref]) {
					t.Errorf("%s: error %v, want one containing %q", ref, r.Error, tc.message[ref])
				}
				if r.ErrorSource != backend.ErrorSourceDownstream {
					t.Errorf("%s: error source %q, want downstream", ref, r.ErrorSource)
				}
				if strings.Contains(r.Error.Error(), f.tenant.ClientSecret()) {
					t.Errorf("%s: the secret is in the error", ref)
				}
			}
		})
	}
}

func TestCallResourceErrors(t *testing.T) {
	// One working instance and one with a settings error, each asked everything.
	f := newFixture(t, wizfake.Options{Seed: 2, Events: 20})
	working := f.start(t)
	bad := newFixture(t, wizfake.Options{Seed: 3})
	bad.jsonData["pageSize"] = 0
	broken := bad.start(t)

	editor := &backend.User{Login: "e", Role: "Editor"}
	cases := []struct {
		name    string
		d       *Datasource
		user    *backend.User
		method  string
		path    string
		status  int
		message string
	}{
		{"run without a user", working, nil, "POST", "sync/run", http.StatusForbidden, "Editor"},
		{"run as a viewer", working, &backend.User{Login: "v", Role: "Viewer"}, "POST", "sync/run", http.StatusForbidden, "Editor"},
		{"run with no role", working, &backend.User{Login: "n", Role: "None"}, "POST", "sync/run", http.StatusForbidden, "Editor"},
		{"run as an editor", working, editor, "POST", "sync/run", http.StatusAccepted, "sync started"},
		{"unknown resource", working, editor, "GET", "nothing/here", http.StatusNotFound, "no such resource"},
		{"unknown field", working, editor, "GET", "values/colour", http.StatusBadRequest, "colour"},
		{"values limit above the maximum", working, editor, "GET", "values/action?limit=10001", http.StatusBadRequest, "1 to 10000"},
		{"status with the wrong method", working, editor, "POST", "sync/status", http.StatusMethodNotAllowed, "GET"},
		{"run with the wrong method", working, editor, "GET", "sync/run", http.StatusMethodNotAllowed, "POST"},
		{"values with the wrong method", working, editor, "DELETE", "values/action", http.StatusMethodNotAllowed, "GET"},
		{"run on broken settings", broken, editor, "POST", "sync/run", http.StatusConflict, "pageSize"},
		{"values on broken settings", broken, editor, "GET", "values/action", http.StatusConflict, "pageSize"},
		{"a viewer on broken settings is still refused", broken, nil, "POST", "sync/run", http.StatusForbidden, "Editor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *backend.CallResourceResponse
			err := tc.d.CallResource(context.Background(), &backend.CallResourceRequest{
				PluginContext: backend.PluginContext{User: tc.user},
				Method:        tc.method, Path: strings.SplitN(tc.path, "?", 2)[0], URL: tc.path,
			}, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || got.Status != tc.status {
				t.Fatalf("got %+v, want status %d", got, tc.status)
			}
			if ct := strings.Join(got.Headers["Content-Type"], ""); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var body struct{ Message string }
			if err := json.Unmarshal(got.Body, &body); err != nil || !strings.Contains(body.Message, tc.message) {
				t.Errorf("body %s (%v), want a message containing %q", got.Body, err, tc.message)
			}
		})
	}
}

// TestHealthCheckOrder: each check runs only when the ones before it pass, so the answer names
// the first thing to fix: settings, then authentication, then the audit scope, then the sync.
func TestHealthCheckOrder(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(f *fixture)
		status backend.HealthStatus
		want   string
	}{
		{"settings before authentication", func(f *fixture) {
			f.jsonData["retentionDays"] = -1
			f.secrets["clientSecret"] = "wrong-secret-value"
		}, backend.HealthStatusError, "retentionDays"},
		{"authentication before scope", func(f *fixture) {
			f.secrets["clientSecret"] = "wrong-secret-value"
			f.tenant.SetScopes("read:all")
		}, backend.HealthStatusError, "authentication failed"},
		{"scope before the sync status", func(f *fixture) { f.tenant.SetScopes("read:all") }, backend.HealthStatusError, "admin:audit"},
		{"then the sync status", func(*fixture) {}, backend.HealthStatusOk, "events cached"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, wizfake.Options{Seed: 4, Events: 10})
			tc.setup(f)
			res, err := f.start(t).CheckHealth(context.Background(), &backend.CheckHealthRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status || !strings.Contains(res.Message, tc.want) {
				t.Errorf("got %v %q, want %v and %q", res.Status, res.Message, tc.status, tc.want)
			}
			if res.Status == backend.HealthStatusError {
				var details struct{ VerboseMessage string }
				if err := json.Unmarshal(res.JSONDetails, &details); err != nil || details.VerboseMessage == "" {
					t.Errorf("details %s (%v)", res.JSONDetails, err)
				}
			}
			for _, s := range []string{f.tenant.ClientSecret(), "wrong-secret-value"} {
				if strings.Contains(res.Message, s) {
					t.Errorf("a secret is in the message: %q", res.Message)
				}
			}
		})
	}
}

// TestDisposeClosesIdleConnections: a disposed instance leaves no connection open to Wiz
// (Grafana replaces the instance at every settings change).
func TestDisposeClosesIdleConnections(t *testing.T) {
	f := newFixture(t, wizfake.Options{Seed: 5, Events: 10})
	d := f.start(t)
	if res, err := d.CheckHealth(context.Background(), &backend.CheckHealthRequest{}); err != nil || res.Status != backend.HealthStatusOk {
		t.Fatalf("%v %+v", err, res)
	}
	if f.conns.Load() == 0 {
		t.Fatal("no connection to the tenant after a health check")
	}
	d.Dispose()
	deadline := time.Now().Add(5 * time.Second)
	for f.conns.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5 s after Dispose", f.conns.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
