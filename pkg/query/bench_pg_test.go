package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/store/postgres"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
)

// BenchmarkQueryPostgres runs BenchmarkQuery's queries on PostgreSQL: the same generated events
// (QUERY_BENCH_SIZES, default 1 million), stored through Apply in pages of 5,000 into a fresh
// database of the package's throwaway cluster (fsync off), then analyzed.
//
//	QUERY_BENCH_SIZES=1000000 go test -run '^$' -bench QueryPostgres -benchtime 20x -timeout 2h ./pkg/query
func BenchmarkQueryPostgres(b *testing.B) {
	for _, n := range benchSizes()[:1] {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := postgres.Open(ctx, pgtest.NewDatabase(b), 1, "bench", postgres.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			if ok, err := s.TryLead(ctx); !ok || err != nil {
				b.Fatalf("TryLead: %v, %v", ok, err)
			}
			start := time.Now()
			benchPages(b, n, func(page []auditlog.Entry) error {
				_, err := s.Apply(ctx, page, store.Update{SyncedUpTo: benchEnd})
				return err
			})
			if _, err := s.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
				b.Fatal(err)
			}
			b.Logf("stored %d events in %s (%.0f events/s)", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
			runBenchQueries(b, NewEngine(s), Freshness{SyncedUpTo: benchEnd})
		})
	}
}
