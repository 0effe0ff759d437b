package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestLoadWhileBackfilling: 50 concurrent QueryData callers hammer the built plugin while its
// backfill runs at full speed. No call may fail (in particular never "database is locked"),
// and the plugin's memory stays bounded. LOAD_SECONDS sets the duration (10 by default; the
// README's figures come from a 60-second run).
func TestLoadWhileBackfilling(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("load test")
	}
	seconds := 10
	if s := os.Getenv("LOAD_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("LOAD_SECONDS=%q", s)
		}
		seconds = n
	}
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 13, Events: 400000, Span: 60 * 24 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-61 * 24 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the first events", 30*time.Second, func(st syncStatus) bool { return st.Events > 0 })

	queries := []struct {
		name  string
		from  time.Duration
		model map[string]any
	}{
		{"logs 1h", time.Hour, map[string]any{"queryType": "logs", "limit": 1000}},
		{"timeseries 30d by action", 30 * 24 * time.Hour, map[string]any{"queryType": "timeseries", "groupBy": "action"}},
		{"top principals 30d", 30 * 24 * time.Hour, map[string]any{"queryType": "top", "groupBy": "principal"}},
		{"search 30d", 30 * 24 * time.Hour, map[string]any{"queryType": "logs", "search": "no-such-needle", "limit": 100}},
		{"table failed logins 7d", 7 * 24 * time.Hour, map[string]any{"queryType": "table", "actions": []string{"Login"}, "statuses": []string{"FAILED"}, "limit": 500}},
		{"values principal", 0, map[string]any{"queryType": "values", "field": "principal"}},
	}
	raw := make([][]byte, len(queries))
	for i, q := range queries {
		raw[i], _ = json.Marshal(q.model)
	}

	const callers = 50
	var (
		mu        sync.Mutex
		latencies = map[string][]time.Duration{}
		failures  []string
		wg        sync.WaitGroup
	)
	before := e.status().Events
	stop := time.Now().Add(time.Duration(seconds) * time.Second)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := c; time.Now().Before(stop); i++ {
				q := queries[i%len(queries)]
				to := time.Now().UTC()
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := e.plugin.QueryData(ctx, e.ds, pluginharness.QueryRequest{Queries: []backend.DataQuery{{
					RefID: "A", JSON: raw[i%len(queries)], TimeRange: backend.TimeRange{From: to.Add(-q.from), To: to},
					Interval: time.Hour, MaxDataPoints: 1000,
				}}})
				cancel()
				took := time.Since(start)
				mu.Lock()
				latencies[q.name] = append(latencies[q.name], took)
				switch {
				case err != nil:
					failures = append(failures, q.name+": "+err.Error())
				case res.Responses["A"].Error != nil:
					failures = append(failures, q.name+": "+res.Responses["A"].Error.Error())
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	after := e.status()

	total := 0
	for _, q := range queries {
		l := latencies[q.name]
		slices.Sort(l)
		total += len(l)
		t.Logf("%-26s %6d calls  p50 %8s  p99 %8s  max %8s", q.name, len(l), pct(l, 50), pct(l, 99), pct(l, 100))
	}
	peak := peakRSS(t, e.plugin.PID())
	t.Logf("%d callers, %d s: %d calls, %d failed; backfill %d → %d events (%.0f events/s); plugin peak RSS %d MiB",
		callers, seconds, total, len(failures), before, after.Events, float64(after.Events-before)/float64(seconds), peak>>20)
	if len(failures) > 0 {
		t.Errorf("%d calls failed, first: %s", len(failures), failures[0])
	}
	if strings.Contains(e.plugin.Logs(), "database is locked") {
		t.Error(`"database is locked" in the plugin's logs`)
	}
	if after.Events <= before {
		t.Error("the backfill made no progress under load")
	}
	if peak > 512<<20 {
		t.Errorf("peak RSS %d MiB: memory is not bounded", peak>>20)
	}
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return sorted[i].Round(100 * time.Microsecond).String()
}

// peakRSS reads the process's high-water mark of resident memory, in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("peak RSS unavailable: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
