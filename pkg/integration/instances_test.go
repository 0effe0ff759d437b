package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// slowBackfillEnv is a tenant whose backfill takes the plugin ten seconds or more: 5,000 events
// in pages of 50 at 10 requests per second.
func slowBackfillEnv(t *testing.T, seed int64) *env {
	t.Helper()
	now := time.Now().UTC()
	return prepareEnv(t, wizfake.Options{Seed: seed, Events: 5000, Span: 10 * 24 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-11 * 24 * time.Hour).Format(time.RFC3339), "pageSize": 50})
}

// writerStatus is sync/status with the admin fields (docs/sync.md) this test needs.
type writerStatus struct {
	syncStatus
	ReadOnly bool     `json:"readOnly"`
	Notices  []string `json:"notices"`
}

func (e *env) writerStatus() writerStatus {
	e.t.Helper()
	res := e.call(viewer, "GET", "sync/status", nil)
	var st writerStatus
	if res.Status != 200 {
		e.t.Fatalf("sync/status: %d %s", res.Status, res.Body)
	}
	if err := jsonUnmarshal(res.Body, &st); err != nil {
		e.t.Fatalf("sync/status: %v: %s", err, res.Body)
	}
	return st
}

// tableCount runs a table query over the whole tenant span and returns the number of rows.
func (e *env) tableCount() int {
	e.t.Helper()
	now := time.Now()
	res := e.query(nil, now.Add(-12*24*time.Hour), now, map[string]any{"queryType": "table", "limit": 10000})
	if res.Error != nil {
		e.t.Fatalf("table query: %v", res.Error)
	}
	if len(res.Frames) == 0 {
		return 0
	}
	return res.Frames[0].Rows()
}

// TestSettingsChangeMidBackfill: saving the data source's settings while its backfill runs makes
// Grafana's instance manager build a new instance at once and dispose the old one about 5 s
// later. The new instance must read only until then, take over afterwards, and the cache must
// end with exactly the tenant's events.
func TestSettingsChangeMidBackfill(t *testing.T) {
	t.Parallel()
	e := slowBackfillEnv(t, 41)
	e.start()
	e.waitFor("the backfill to be under way", 30*time.Second, func(st syncStatus) bool {
		return st.State == "backfilling" && st.Events > 200
	})

	// Settings saved: a later Updated and another pollInterval.
	e.ds = withJSON(e.ds, time.Unix(1700000000, 0).Add(time.Hour), map[string]any{"pollInterval": "15s"})
	changed := time.Now()
	st := e.writerStatus()
	if !st.ReadOnly {
		t.Fatalf("the new instance writes while the old one still runs: %+v", st)
	}
	if !containsAny(st.Notices, "read-only") {
		t.Errorf("no read-only notice: %q", st.Notices)
	}
	if n := e.tableCount(); n == 0 {
		t.Error("the read-only instance answers no events")
	}

	// Take-over: never before the old instance is disposed (5 s after the change), soon after.
	var tookOver time.Duration
	for {
		st = e.writerStatus()
		if !st.ReadOnly {
			tookOver = time.Since(changed)
			break
		}
		if time.Since(changed) > 30*time.Second {
			t.Fatalf("the new instance never took over: %+v\n%s", st, tail(e.plugin.Logs(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("took over %v after the settings change, with %d of %d events cached", tookOver.Round(time.Millisecond), st.Events, e.tenant.Len())
	if tookOver < 4500*time.Millisecond {
		t.Errorf("the new instance took over %v after the change, before the old one was disposed (5 s)", tookOver)
	}
	if containsAny(st.Notices, "read-only") {
		t.Errorf("read-only notice left after the take-over: %q", st.Notices)
	}

	want := e.tenant.VisibleEvents()
	st2 := e.waitFor("the backfill", 60*time.Second, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want))
	})
	if st2.State == "error" || st2.LastError != nil {
		t.Errorf("status: state %s, lastError %s", st2.State, deref(st2.LastError))
	}
	if l := lockErrors(e.plugin.Logs()); len(l) > 0 {
		t.Errorf("lock errors in the logs: %q", l)
	}
	assertExactlyTenant(t, readCache(t, st2.CacheFile), want)
}

// TestTwoProcessesOneCache: two plugin processes (as after a Grafana restart that overlaps, or
// two Grafana servers sharing a directory) with the same data source on one cache directory:
// one writer at a time, both answer queries, no lock errors, and when the writer goes the
// other takes over and completes the sync.
func TestTwoProcessesOneCache(t *testing.T) {
	t.Parallel()
	a := slowBackfillEnv(t, 43)
	a.start()
	a.waitFor("the backfill to be under way", 30*time.Second, func(st syncStatus) bool {
		return st.State == "backfilling" && st.Events > 200
	})
	b := *a
	b.plugin = pluginharness.Start(t, pluginharness.Options{Env: []string{"GF_PLUGIN_CACHE_DIR=" + a.cacheDir}})

	stB := b.writerStatus()
	if !stB.ReadOnly || !containsAny(stB.Notices, "read-only") {
		t.Fatalf("the second process is not read-only: %+v", stB)
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		stA, stB := a.writerStatus(), b.writerStatus()
		if stA.ReadOnly == stB.ReadOnly {
			t.Fatalf("writers: first %v, second %v (want exactly one)", !stA.ReadOnly, !stB.ReadOnly)
		}
		if stA.ReadOnly {
			t.Fatal("the first process lost the write lock while running")
		}
		if na, nb := a.tableCount(), b.tableCount(); na == 0 || nb == 0 {
			t.Errorf("queries answer %d events in the writer, %d in the reader", na, nb)
		}
		time.Sleep(200 * time.Millisecond)
	}

	a.plugin.Close()
	waitExit(t, a)
	closed := time.Now()
	for b.writerStatus().ReadOnly {
		if time.Since(closed) > 20*time.Second {
			t.Fatalf("the second process never took over\n%s", tail(b.plugin.Logs(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the second process took over %v after the first exited", time.Since(closed).Round(time.Millisecond))
	want := b.tenant.VisibleEvents()
	st := b.waitFor("the backfill in the second process", 60*time.Second, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.Events == int64(len(want))
	})
	if st.State == "error" || st.LastError != nil {
		t.Errorf("status: state %s, lastError %s", st.State, deref(st.LastError))
	}
	for name, logs := range map[string]string{"first": a.plugin.Logs(), "second": b.plugin.Logs()} {
		if l := lockErrors(logs); len(l) > 0 {
			t.Errorf("lock errors in the %s process's logs: %q", name, l)
		}
	}
	assertExactlyTenant(t, readCache(t, st.CacheFile), want)
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
