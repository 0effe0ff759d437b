package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestDiskFullStopsTheSyncAndLosesNothing runs the plugin under a file-size limit (prlimit
// --fsize: Go ignores SIGXFSZ, so writes past the limit fail with EFBIG as on a full disk). The
// backfill hits the limit; the sync stops with an error that names the space problem, queries
// still answer what was cached, and the file is sound. Restarted without the limit, the plugin
// completes the cache to exactly the tenant's events.
func TestDiskFullStopsTheSyncAndLosesNothing(t *testing.T) {
	t.Parallel()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed: cannot put the plugin under a file-size limit")
	}
	now := time.Now().UTC()
	// About 1.6 kB of cache per event: 6,000 events need ~10 MB; the limit stops the backfill
	// at a fraction of that (the WAL or the database file reaches it first).
	const limit = 3 << 20
	e := prepareEnv(t, wizfake.Options{Seed: 31, Events: 6000, Span: 10 * 24 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-11 * 24 * time.Hour).Format(time.RFC3339), "pageSize": 250})
	e.startWrapped([]string{prlimit, fmt.Sprintf("--fsize=%d", limit), "--"})

	st := e.waitFor("the sync to fail on the file-size limit", 60*time.Second, func(st syncStatus) bool {
		return st.State == "error" && st.LastError != nil
	})
	msg := *st.LastError
	t.Logf("status under the limit: state %s, %d events, lastError %q", st.State, st.Events, msg)
	low := strings.ToLower(msg)
	if !strings.Contains(low, "disk") && !strings.Contains(low, "space") {
		t.Errorf("the error does not name the disk/space problem: %q", msg)
	}
	if strings.Contains(low, "disk i/o error") && !strings.Contains(low, "space") {
		t.Errorf("the error is the bare SQLite wording: %q", msg)
	}
	if st.Events == 0 || st.Events >= int64(e.tenant.Len()) {
		t.Fatalf("%d events cached before the limit: the test wants a partial cache (tenant %d)", st.Events, e.tenant.Len())
	}

	// Queries still answer what was cached: every cached event, once.
	res := e.query(nil, now.Add(-12*24*time.Hour), now, map[string]any{"queryType": "table", "limit": 10000})
	if res.Error != nil {
		t.Fatalf("table query on a full disk: %v", res.Error)
	}
	frame := res.Frames[0]
	ids := frame.Fields[fieldIndex(t, frame, "id")]
	seen := map[string]bool{}
	for i := 0; i < ids.Len(); i++ {
		id := ids.At(i).(string)
		if seen[id] {
			t.Fatalf("event %s answered twice", id)
		}
		seen[id] = true
	}
	if int64(len(seen)) != st.Events {
		t.Errorf("the table answers %d events, sync/status counts %d", len(seen), st.Events)
	}
	if ts := e.query(nil, now.Add(-12*24*time.Hour), now, map[string]any{"queryType": "timeseries"}); ts.Error != nil || len(ts.Frames) == 0 {
		t.Errorf("timeseries query on a full disk: %v", ts.Error)
	}
	if logs := e.plugin.Logs(); len(lockErrors(logs)) > 0 {
		t.Errorf("lock errors in the logs: %q", lockErrors(logs))
	}

	// The file is sound (quick_check in readCache) and holds only the tenant's events.
	e.plugin.Close()
	waitExit(t, e)
	partial := readCache(t, st.CacheFile)
	if len(partial) == 0 {
		t.Fatal("nothing in the file after the limit")
	}
	tenantIDs := map[string]string{}
	for _, w := range e.tenant.VisibleEvents() {
		tenantIDs[w.ID] = string(w.Node)
	}
	for id, raw := range partial {
		if tenantIDs[id] != raw {
			t.Fatalf("event %s in the cache is not the tenant's (%s)", id, raw)
		}
	}

	// Without the limit, the same file converges to exactly the tenant.
	e.start()
	want := e.tenant.VisibleEvents()
	st = e.waitFor("the backfill without the limit", 60*time.Second, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want)) && st.State != "error"
	})
	if st.LastError != nil {
		t.Errorf("lastError after recovery: %q", *st.LastError)
	}
	assertExactlyTenant(t, readCache(t, st.CacheFile), want)
}
