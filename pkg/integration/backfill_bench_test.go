package integration

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// BenchmarkBackfill measures the backfill of the built plugin against a tenant whose every API
// call takes 500 ms, at requestsPerSecond 3 and pages of 500: the ceiling is 3 × 500 = 1,500
// events/s. It reports the achieved rate, its fraction of that ceiling and the plugin's peak
// RSS. BACKFILL_EVENTS sets the tenant's size (1,000,000 by default: about 11 minutes).
//
//	go test -run '^$' -bench Backfill -benchtime 1x ./pkg/integration/
func BenchmarkBackfill(b *testing.B) {
	events := 1_000_000
	if s := os.Getenv("BACKFILL_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BACKFILL_EVENTS=%q", s)
		}
		events = n
	}
	const rps, pageSize = 3, 500
	for i := 0; i < b.N; i++ {
		now := time.Now().UTC()
		e := newEnv(b, wizfake.Options{Seed: int64(i + 1), Events: events, Span: 170 * 24 * time.Hour, End: now.Add(-time.Minute)},
			map[string]any{"backfillStart": now.Add(-175 * 24 * time.Hour).Format(time.RFC3339),
				"requestsPerSecond": rps, "pageSize": pageSize})
		e.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 500 * time.Millisecond})
		start := time.Now()
		e.status() // creates the instance: the sync starts
		st := e.waitFor("the backfill", 2*time.Hour, func(st syncStatus) bool {
			return st.Backfill != nil && st.Backfill.Done == 1 && st.Events >= int64(events)
		})
		took := time.Since(start)
		rate := float64(st.Events) / took.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(rate/(rps*pageSize), "of-ceiling")
		b.ReportMetric(float64(peakRSS(b, e.plugin.PID())>>20), "peak-RSS-MiB")
		b.ReportMetric(float64(st.CacheBytes)/float64(st.Events), "bytes/event")
		e.plugin.Close()
	}
}
