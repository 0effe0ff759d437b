package cache

import (
	"context"
	"github.com/seed/wizauditlogs/pkg/store"
	"math/rand"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkIngest measures Apply with decoded pages of 500 realistic entries (one op is
// one page), and reports events/s and the bytes on disk per event next to the raw JSON size.
func BenchmarkIngest(b *testing.B) {
	const pageSize = 500
	pool := genEntries(rand.New(rand.NewSource(1)), base, 200_000)
	c := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
	var rawBytes, events int64
	next := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if next+pageSize > len(pool) { // fresh ids once the pool is used up
			b.StopTimer()
			pool = genEntries(rand.New(rand.NewSource(int64(i))), base.Add(time.Duration(i)*time.Hour), len(pool))
			next = 0
			b.StartTimer()
		}
		page := pool[next : next+pageSize]
		next += pageSize
		n, err := c.Apply(context.Background(), page, store.Update{})
		if err != nil {
			b.Fatal(err)
		}
		events += int64(n)
		for j := range page {
			rawBytes += int64(len(page[j].Raw))
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	if _, err := c.writeDB.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if events > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(st.Events), "disk-B/event")
		b.ReportMetric(float64(rawBytes)/float64(events), "raw-B/event")
	}
}
