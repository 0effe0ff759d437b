package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestFullSyncThroughThePlugin: the built binary backfills a tenant into a real SQLite file and
// then answers from it exactly what the tenant holds.
func TestFullSyncThroughThePlugin(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 7, Events: 3000, Span: 20 * 24 * time.Hour, End: now.Add(-2 * time.Minute)},
		map[string]any{"backfillStart": now.Add(-25 * 24 * time.Hour).Format(time.RFC3339)})
	want := e.tenant.VisibleEvents()

	st := e.waitFor("the backfill", 90*time.Second, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want))
	})
	if st.SyncedUpTo == nil || st.State == "error" || st.LastError != nil {
		t.Fatalf("status after sync: %+v", st)
	}

	// The built binary really opened SQLite: the file is there, owner-only, and holds the events.
	if filepath.Dir(st.CacheFile) != e.cacheDir {
		t.Errorf("cache file %s is not in GF_PLUGIN_CACHE_DIR %s", st.CacheFile, e.cacheDir)
	}
	fi, err := os.Stat(st.CacheFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	head := make([]byte, 16)
	f, err := os.Open(st.CacheFile)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Read(head)
	f.Close()
	if string(head) != "SQLite format 3\x00" {
		t.Errorf("cache file is not SQLite: %q", head)
	}
	if raw, err := os.ReadFile(st.CacheFile); err == nil && bytes.Contains(raw, []byte(secret)) {
		t.Error("the client secret is in the cache file")
	}

	// Every event, once, with its actionParameters unchanged.
	res := e.query(nil, now.Add(-30*24*time.Hour), now, map[string]any{"queryType": "table", "limit": 10000})
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	frame := res.Frames[0]
	// The range starts before the backfill start: the frame says from when the cache is whole.
	if frame.Meta == nil || !slices.ContainsFunc(frame.Meta.Notices, func(n data.Notice) bool {
		return strings.Contains(n.Text, "the cache holds events from "+st.Backfill.From.Format(time.RFC3339))
	}) {
		t.Errorf("no coverage notice on a range older than the backfill: %+v", frame.Meta)
	}
	ids := frame.Fields[fieldIndex(t, frame, "id")]
	params := frame.Fields[fieldIndex(t, frame, "actionParameters")]
	got := map[string]json.RawMessage{}
	for i := 0; i < ids.Len(); i++ {
		id := ids.At(i).(string)
		if _, dup := got[id]; dup {
			t.Fatalf("event %s answered twice", id)
		}
		got[id] = rawAt(params, i)
	}
	if len(got) != len(want) {
		t.Fatalf("table has %d events, the tenant %d", len(got), len(want))
	}
	for _, w := range want {
		p, ok := got[w.ID]
		if !ok {
			t.Fatalf("event %s missing", w.ID)
		}
		if !jsonEqual(t, p, w.ActionParameters) {
			t.Fatalf("event %s: actionParameters %s, tenant sent %s", w.ID, p, w.ActionParameters)
		}
	}

	health, err := e.plugin.CheckHealth(context.Background(), e.ds)
	if err != nil {
		t.Fatal(err)
	}
	if health.Status != backend.HealthStatusOk || !strings.HasPrefix(health.Message, "OK: 3,000 events cached, synced up to ") || !strings.Contains(health.Message, "backfill 100%") {
		t.Errorf("health: %v %q", health.Status, health.Message)
	}
	if strings.Contains(e.plugin.Logs(), secret) {
		t.Error("the client secret reached the logs")
	}

	// Wiz sees who is calling: the plugin id and the version of the build.
	for _, r := range e.tenant.Requests() {
		if r.UserAgent != "seed-wizauditlogs-datasource/1.0.0" {
			t.Fatalf("User-Agent %q", r.UserAgent)
		}
	}

	// When Grafana stops the plugin, the cache is closed cleanly: the write-ahead log is
	// folded into the file, so the .sqlite file alone holds the events.
	e.plugin.Close()
	if !e.plugin.ExitedCleanly() {
		t.Fatal("the plugin did not exit cleanly")
	}
	if fi, err := os.Stat(st.CacheFile + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("a %d-byte write-ahead log was left behind: the cache was not closed", fi.Size())
	}
	if fi, err := os.Stat(st.CacheFile); err != nil || fi.Size() < int64(len(want))*100 {
		t.Errorf("cache file after shutdown: %v, %v", fi, err)
	}
}

func TestHealthReportsAuthenticationAndScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, wizfake.Options{Seed: 1, Events: 10}, nil)
	ctx := context.Background()

	bad := e.ds
	bad.UID = "wiz-bad-secret"
	bad.Secure = map[string]string{"clientId": e.tenant.ClientID(), "clientSecret": "wrong-" + secret}
	res, err := e.plugin.CheckHealth(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != backend.HealthStatusError || !strings.HasPrefix(res.Message, "authentication failed") {
		t.Errorf("bad secret: %v %q", res.Status, res.Message)
	}
	if strings.Contains(res.Message, secret) {
		t.Error("the secret is in the health message")
	}

	e.tenant.SetScopes("read:all")
	res, err = e.plugin.CheckHealth(ctx, e.ds)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "the service account lacks the admin:audit scope") {
		t.Errorf("no scope: %v %q", res.Status, res.Message)
	}
	if strings.Contains(e.plugin.Logs(), secret) {
		t.Error("the client secret reached the logs")
	}
}

func TestResourceEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, wizfake.Options{Seed: 3, Events: 500, Span: time.Hour, End: time.Now().Add(-time.Minute)},
		map[string]any{"backfillStart": time.Now().UTC().Add(-2 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the backfill", 60*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })

	for _, tc := range []struct {
		user         *backend.User
		method, path string
		status       int
		contains     string
	}{
		{viewer, "POST", "sync/run", 403, "Editor or Admin"},
		{editor, "POST", "sync/run", 202, "sync started"},
		{viewer, "GET", "values/status", 200, `"SUCCESS"`},
		{viewer, "GET", "values/action?q=Log&limit=5", 200, `"Login"`},
		{viewer, "GET", "values/password", 400, "password"},
		{viewer, "GET", "values/action?limit=0", 400, "limit"},
		{viewer, "GET", "nothing/here", 404, "no such resource"},
	} {
		res := e.call(tc.user, tc.method, tc.path, nil)
		if res.Status != tc.status || !strings.Contains(string(res.Body), tc.contains) {
			t.Errorf("%s %s as %s: %d %s", tc.method, tc.path, tc.user.Role, res.Status, res.Body)
		}
		if ct := strings.Join(res.Headers["Content-Type"], ""); !strings.Contains(ct, "application/json") {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, ct)
		}
		if tc.status >= 400 {
			var body struct{ Message string }
			if json.Unmarshal(res.Body, &body) != nil || body.Message == "" {
				t.Errorf("%s %s: error body is not JSON with a message: %s", tc.method, tc.path, res.Body)
			}
		}
	}
	var actions []string
	if err := json.Unmarshal(e.call(viewer, "GET", "values/action?q=Log", nil).Body, &actions); err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		if !strings.HasPrefix(a, "Log") {
			t.Errorf("prefix filter let %q through", a)
		}
	}
}

// TestAlertQueries: an alert rule gets numbers from a fresh cache, and an error — not an empty
// answer — once the sync fails.
func TestAlertQueries(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 5, Events: 400, Span: time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-2 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the backfill", 60*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })

	alert := map[string]string{backend.FromAlertHeaderName: "true"}
	q := map[string]any{"queryType": "timeseries", "statuses": []string{"FAILED"}}
	res := e.query(alert, now.Add(-time.Hour), now, q)
	if res.Error != nil || len(res.Frames) == 0 {
		t.Fatalf("fresh cache: %v %d frames", res.Error, len(res.Frames))
	}
	for _, f := range res.Frames {
		if f.Meta == nil || f.Meta.Type != data.FrameTypeTimeSeriesMulti {
			t.Errorf("frame type %+v", f.Meta)
		}
		if len(f.Fields) != 2 || f.Fields[0].Type() != data.FieldTypeTime || !f.Fields[1].Type().Numeric() {
			t.Errorf("not a numeric time series: %v", f.Fields)
		}
	}

	e.tenant.SetScopes("read:all")
	e.call(editor, "POST", "sync/run", nil)
	e.waitFor("the sync error", 30*time.Second, func(st syncStatus) bool { return st.State == "error" })
	res = e.query(alert, now.Add(-time.Hour), now, q)
	if res.Error == nil || !strings.Contains(res.Error.Error(), "admin:audit") {
		t.Errorf("alert query on a failing sync: %v", res.Error)
	}
	// A panel still gets the data, with a notice.
	res = e.query(nil, now.Add(-time.Hour), now, q)
	if res.Error != nil || len(res.Frames) == 0 || res.Frames[0].Meta == nil || len(res.Frames[0].Meta.Notices) == 0 {
		t.Errorf("panel query on a failing sync: %v", res.Error)
	}
}

func fieldIndex(t *testing.T, f *data.Frame, name string) int {
	t.Helper()
	for i, fld := range f.Fields {
		if fld.Name == name {
			return i
		}
	}
	t.Fatalf("frame has no field %q", name)
	return -1
}

func rawAt(f *data.Field, i int) json.RawMessage {
	switch v := f.At(i).(type) {
	case json.RawMessage:
		return v
	case *json.RawMessage:
		if v == nil {
			return json.RawMessage("null")
		}
		return *v
	default:
		b, _ := json.Marshal(v)
		return b
	}
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if len(a) == 0 {
		a = json.RawMessage("null")
	}
	if len(b) == 0 {
		b = json.RawMessage("null")
	}
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
