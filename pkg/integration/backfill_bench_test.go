package integration

import (
	"cmp"
	"database/sql"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// BenchmarkBackfill measures the backfill of the built plugin against a tenant whose every API
// call takes 500 ms, at requestsPerSecond 3 and pages of 500: the ceiling is 3 × 500 = 1,500
// events/s. It reports the achieved rate, its fraction of that ceiling, the plugin's peak RSS,
// and the entries missing from the cache and stored twice (it fails unless both are 0).
//
//	go test -run '^$' -bench Backfill -benchtime 1x -timeout 3h ./pkg/integration/
//
// The tenant has tie groups of up to 600 entries at one instant and bursts of ties over the
// 10,000-result cap (see addTiesAndBursts). Environment:
//   - BACKFILL_EVENTS: the tenant's size (1,000,000 by default: about 11 minutes);
//   - BACKFILL_DAYS: the span of its history (170 by default);
//   - BACKFILL_BOUNDS: the fake's timestamp bounds (wizfake.BoundNames), "exclusive" by default;
//   - BACKFILL_KILLS: SIGKILL the plugin this many times during the backfill, restarting it
//     each time (0 by default; the rate then includes the restarts).
func BenchmarkBackfill(b *testing.B) {
	events, days, kills := envInt(b, "BACKFILL_EVENTS", 1_000_000), envInt(b, "BACKFILL_DAYS", 170), envInt(b, "BACKFILL_KILLS", 0)
	afterIn, beforeIn, err := wizfake.ParseBounds(cmp.Or(os.Getenv("BACKFILL_BOUNDS"), "exclusive"))
	if err != nil {
		b.Fatal(err)
	}
	const rps, pageSize = 3, 500
	for i := 0; i < b.N; i++ {
		now := time.Now().UTC()
		span := time.Duration(days) * 24 * time.Hour
		rng := rand.New(rand.NewSource(int64(i + 1)))
		o := wizfake.Options{Seed: int64(i + 1), Events: events * 9 / 10, Span: span, End: now.Add(-time.Minute),
			AfterInclusive: afterIn, BeforeInclusive: beforeIn}
		e := prepareEnv(b, o, map[string]any{"backfillStart": now.Add(-span - 5*24*time.Hour).Format(time.RFC3339),
			"requestsPerSecond": rps, "pageSize": pageSize})
		addTiesAndBursts(e.tenant, rng, now.Add(-span), now.Add(-2*time.Minute), events-o.Events)
		total := e.tenant.Len()
		e.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 500 * time.Millisecond})
		start := time.Now()
		e.start()
		e.status() // creates the instance: the sync starts
		for k := 0; k < kills; k++ {
			// Kill at a random moment: after 5 to 40 s of work, while the backfill is not done.
			time.Sleep(time.Duration(5+rng.Intn(36)) * time.Second)
			if st := e.status(); st.Backfill != nil && st.Backfill.Done == 1 {
				b.Logf("the backfill finished after %d kills", k)
				break
			}
			e.plugin.Kill()
			e.start()
			e.status()
		}
		st := e.waitFor("the backfill", 3*time.Hour, func(st syncStatus) bool {
			return st.Backfill != nil && st.Backfill.Done == 1 && st.Events >= int64(total)
		})
		took := time.Since(start)
		rate := float64(st.Events) / took.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(rate/(rps*pageSize), "of-ceiling")
		if kills == 0 {
			b.ReportMetric(float64(peakRSS(b, e.plugin.PID())>>20), "peak-RSS-MiB")
		}
		e.plugin.Close()
		missing, dups := compareIDs(b, st.CacheFile, e.tenant.VisibleIDs())
		b.ReportMetric(float64(st.CacheBytes)/float64(st.Events), "bytes/event")
		b.ReportMetric(float64(missing), "missing")
		b.ReportMetric(float64(dups), "duplicates")
		b.Logf("%d tenant events, %d cached in %s, %d kills: %d missing, %d duplicates", total, st.Events, took.Round(time.Second), kills, missing, dups)
		if missing != 0 || dups != 0 {
			b.Fatalf("%d missing, %d duplicates", missing, dups)
		}
	}
}

// addTiesAndBursts adds n entries in [from, to] made only of ties: a third in bursts of 20
// tie groups of 600 entries 1 ms apart (12,000, over the result cap, which then cuts a tie
// group at a page boundary), the rest in tie groups of 2 to 600 entries at random instants.
func addTiesAndBursts(tenant *wizfake.Tenant, rng *rand.Rand, from, to time.Time, n int) {
	at := func() time.Time { return from.Add(time.Duration(rng.Int63n(int64(to.Sub(from))))) }
	for left := n / 3; left >= 12_000; left -= 12_000 {
		tenant.AddTieBurst(at(), 20, 600, time.Millisecond)
	}
	for left := n - n/3/12_000*12_000; left > 0; {
		k := min(2+rng.Intn(599), left)
		tenant.AddTie(at(), k)
		left -= k
	}
}

// compareIDs counts the tenant's ids missing from a cache file and the ids stored twice.
func compareIDs(t testing.TB, file string, want []string) (missing, dups int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(file)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]bool, len(want))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if got[id] {
			dups++
		}
		got[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range want {
		if !got[id] {
			missing++
		}
	}
	return missing, dups
}

func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q", name, s)
	}
	return n
}
