package query

import (
	"context"
	"database/sql"
	"github.com/seed/wizauditlogs/pkg/store"
	"path/filepath"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
)

// BenchmarkIngestRollups measures what the insert triggers cost the write path: the same
// pages of 500 entries into a cache with the triggers and into one whose triggers were
// dropped. One op is one page; compare the events/s of the two. Every variant but the last
// two keeps the search queue's trigger, and all but without-terms-trigger and the last the
// new-terms rollup's.
func BenchmarkIngestRollups(b *testing.B) {
	for _, v := range []struct {
		name string
		drop []string
	}{
		{"without-rollup-triggers", []string{"events_rollup_insert", "events_rollup2_insert"}},
		{"step3-triggers-only", []string{"events_rollup2_insert"}},
		{"step4-triggers-only", []string{"events_rollup_insert"}},
		{"with-rollup-triggers", nil},
		// The new-terms rollup's trigger (schema step 6) against all of them.
		{"without-terms-trigger", []string{"events_terms_insert"}},
		// The search queue's trigger (one integer insert per event) against the rest.
		{"without-search-trigger", []string{"events_search_insert"}},
		{"without-any-trigger", []string{"events_rollup_insert", "events_rollup2_insert", "events_search_insert", "events_terms_insert"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "ingest.db")
			c, err := cache.Open(path, cache.Options{SkipQuickCheck: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if len(v.drop) > 0 {
				db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
				if err != nil {
					b.Fatal(err)
				}
				for _, t := range v.drop {
					if _, err := db.Exec("DROP TRIGGER IF EXISTS " + t); err != nil {
						b.Fatal(err)
					}
				}
				_ = db.Close()
			}
			g := benchGen{s: 99}
			start := benchEnd.Add(-benchSpan)
			step := time.Second
			k := 0
			page := make([]auditlog.Entry, 500)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range page {
					page[j] = g.entry(k, start.Add(time.Duration(k)*step), false)
					k++
				}
				b.StartTimer()
				if _, err := c.Apply(context.Background(), page, store.Update{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(page))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
