package integration

import (
	"bytes"
	"context"
	"database/sql"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestCorruptCacheIsSetAsideAtStart: a cache file that is not a usable SQLite database when the
// plugin starts — garbage, or a real cache cut short — is detected before anything is read from
// it: sync/status says it was set aside and where, the set-aside file is kept byte for byte, a
// fresh sync ends with exactly the tenant's events, and the health check is OK with a warning.
func TestCorruptCacheIsSetAsideAtStart(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(99))
	garbage := make([]byte, 64<<10)
	rng.Read(garbage)
	withHeader := append([]byte("SQLite format 3\x00"), garbage[:32<<10]...)

	for _, tc := range []struct {
		name string
		// bad returns what to place at the cache path before the plugin starts.
		bad func(t *testing.T, e *env) []byte
	}{
		{"garbage", func(*testing.T, *env) []byte { return garbage }},
		{"garbage behind an SQLite header", func(*testing.T, *env) []byte { return withHeader }},
		{"truncated real cache", func(t *testing.T, e *env) []byte {
			// A complete cache of this very tenant, written by the plugin and closed cleanly,
			// then cut to half its pages.
			e.start()
			st := e.waitFor("the first backfill", 60*time.Second, func(st syncStatus) bool {
				return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(e.tenant.Len())
			})
			if st.CacheFile != e.expectedCacheFile() {
				t.Fatalf("cacheFile %q, want %q", st.CacheFile, e.expectedCacheFile())
			}
			e.plugin.Close()
			waitExit(t, e)
			// The plugin leaves its last pages in the WAL; fold them into the file first so
			// that what is cut is a complete cache, and no WAL can make up for the cut.
			checkpoint(t, st.CacheFile)
			raw, err := os.ReadFile(st.CacheFile)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) < 8*4096 {
				t.Fatalf("the real cache is only %d bytes: too small to truncate meaningfully", len(raw))
			}
			return raw[:len(raw)/2/4096*4096]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := time.Now().UTC()
			e := prepareEnv(t, wizfake.Options{Seed: 21, Events: 1500, Span: 2 * time.Hour, End: now.Add(-time.Minute)},
				map[string]any{"backfillStart": now.Add(-3 * time.Hour).Format(time.RFC3339)})
			bad := tc.bad(t, e)
			path := e.expectedCacheFile()
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			e.start()

			st := e.status()
			if st.CacheFile != path {
				t.Fatalf("cacheFile %q, want %q", st.CacheFile, path)
			}
			aside := setAsideFiles(t, e.cacheDir, filepath.Base(path))
			if len(aside) != 1 {
				t.Fatalf("set-aside files %v, want one", aside)
			}
			raw, err := os.ReadFile(aside[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, bad) {
				t.Errorf("the set-aside file %s differs from the file placed there (%d vs %d bytes)", aside[0], len(raw), len(bad))
			}
			notices := statusNotices(t, e)
			var notice string
			for _, n := range notices {
				if strings.Contains(n, "set aside") {
					notice = n
				}
			}
			if notice == "" {
				t.Fatalf("no notice says the file was set aside: %q", notices)
			}
			t.Logf("notice: %s", notice)
			if !strings.Contains(notice, aside[0]) {
				t.Errorf("the notice does not say where the file went (%s): %q", aside[0], notice)
			}

			want := e.tenant.VisibleEvents()
			st = e.waitFor("the fresh backfill", 60*time.Second, func(st syncStatus) bool {
				return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want))
			})
			if st.State == "error" || st.LastError != nil {
				t.Errorf("status after the fresh sync: state %s, lastError %v", st.State, deref(st.LastError))
			}
			assertExactlyTenant(t, readCache(t, path), want)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			health, err := e.plugin.CheckHealth(ctx, e.ds)
			if err != nil {
				t.Fatal(err)
			}
			if health.Status != backend.HealthStatusOk || !strings.HasPrefix(health.Message, "OK: ") ||
				!strings.Contains(health.Message, "Warning") || !strings.Contains(health.Message, "set aside") {
				t.Errorf("health: %v %q", health.Status, health.Message)
			}
			// Still there after the fresh sync, untouched.
			if raw, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(raw, bad) {
				t.Errorf("the set-aside file changed or went away: %v", err)
			}
		})
	}
}

// setAsideFiles lists the files next to the cache that carry its name plus a set-aside suffix
// (not the WAL, shared-memory or lock files of the cache itself).
func setAsideFiles(t *testing.T, dir, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range entries {
		name := de.Name()
		rest, ok := strings.CutPrefix(name, base+".")
		if !ok || rest == "lock" || strings.HasSuffix(rest, "-wal") || strings.HasSuffix(rest, "-shm") {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out
}

// statusNotices reads the notices of sync/status (an admin field, docs/sync.md).
func statusNotices(t *testing.T, e *env) []string {
	t.Helper()
	var st struct {
		Notices  []string `json:"notices"`
		ReadOnly bool     `json:"readOnly"`
	}
	res := e.call(viewer, "GET", "sync/status", nil)
	if err := jsonUnmarshal(res.Body, &st); err != nil {
		t.Fatalf("sync/status: %v: %s", err, res.Body)
	}
	return st.Notices
}

func waitExit(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !e.plugin.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not exit 15 s after Close")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// checkpoint folds a cache's WAL into the file and removes the WAL, as a clean close would.
func checkpoint(t *testing.T, file string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(file)+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(file + sfx); err == nil {
			t.Fatalf("%s%s is still there after the checkpoint", file, sfx)
		}
	}
}
