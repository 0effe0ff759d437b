// Package integration tests the built plugin binary through the plugin protocol, as Grafana
// runs it. Build it first: go tool mage -v native.
package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestHealthNamesTheBadField(t *testing.T) {
	t.Parallel()
	p := pluginharness.Start(t, pluginharness.Options{Env: []string{"GF_PLUGIN_CACHE_DIR=" + t.TempDir()}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cases := []struct {
		name     string
		jsonData map[string]any
		secure   map[string]string
		want     []string
	}{
		{"host injection", map[string]any{"dataCenter": "us1.evil.com/"}, creds(), []string{"dataCenter", "us1.evil.com/", "not a Wiz data center"}},
		{"secrets missing", map[string]any{"dataCenter": "us17"}, nil, []string{"not configured", "Client ID", "Client Secret"}},
		{"http to a remote host", map[string]any{"apiUrl": "http://wiz.example.com/graphql"}, creds(), []string{"apiUrl", "https"}},
		{"future backfill", map[string]any{"dataCenter": "us17", "backfillStart": "2999-01-01"}, creds(), []string{"backfillStart", "future"}},
	}
	for i, tc := range cases {
		ds := pluginharness.DataSource{ID: int64(i + 1), UID: "ds" + tc.name[:4], JSONData: tc.jsonData, Secure: tc.secure}
		res, err := p.CheckHealth(ctx, ds)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Status != backend.HealthStatusError {
			t.Errorf("%s: status %v, message %q", tc.name, res.Status, res.Message)
		}
		for _, w := range tc.want {
			if !strings.Contains(res.Message, w) {
				t.Errorf("%s: message %q lacks %q", tc.name, res.Message, w)
			}
		}
	}
	if logs := p.Logs(); strings.Contains(logs, secret) {
		t.Errorf("the secret reached the logs")
	}
}

func TestProcessExitsWhenClosed(t *testing.T) {
	t.Parallel()
	p := pluginharness.Start(t, pluginharness.Options{Env: []string{"GF_PLUGIN_CACHE_DIR=" + t.TempDir()}})
	if p.Exited() {
		t.Fatal("exited before being asked to")
	}
	p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !p.ExitedCleanly() {
		t.Fatalf("not a clean exit 10 s after Close\n%s", p.Logs())
	}
}

const secret = "sup3r-s3cret-value-7f3a"

func creds() map[string]string {
	return map[string]string{"clientId": "test-client", "clientSecret": secret}
}

// TestHealthWarnings: the health check is OK but says when the backfill start was clamped to
// Wiz's 180 days, and when no cache_dir is set so the cache lands in a temporary directory.
func TestHealthWarnings(t *testing.T) {
	t.Parallel()
	e := prepareEnv(t, wizfake.Options{Seed: 2, Events: 10}, map[string]any{"backfillStart": "2020-01-01"})
	tmp := t.TempDir()
	// As Grafana 12.4 starts plugins: no cache_dir, no data path, no HOME; only TMPDIR here so
	// that the test writes in its own directory.
	e.plugin = pluginharness.Start(t, pluginharness.Options{Env: []string{"TMPDIR=" + tmp}})
	res, err := e.plugin.CheckHealth(context.Background(), e.ds)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OK: ", "older than the 180 days", "temporary directory", "cache_dir"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("health %v %q lacks %q", res.Status, res.Message, want)
		}
	}
	if res.Status != backend.HealthStatusOk {
		t.Errorf("status %v", res.Status)
	}
	if st := e.status(); !strings.HasPrefix(st.CacheFile, tmp) {
		t.Errorf("cache file %s is not under the temporary directory %s", st.CacheFile, tmp)
	}
}
