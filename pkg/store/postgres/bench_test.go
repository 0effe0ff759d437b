package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
)

// BenchmarkApply measures Apply with pages of 500 new entries of a realistic size (one op is
// one page, with its checkpoint), and reports events/s and the bytes in the database per event.
// The test cluster runs with fsync off: a production server's commit adds a flush per page.
func BenchmarkApply(b *testing.B) {
	const pageSize = 500
	s := open(b, pgtest.NewDatabase(b), "ds", Options{})
	mustLead(b, s, true)
	rng := rand.New(rand.NewSource(1))
	ctx := context.Background()
	var events int64
	var elapsed time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		page := entries(rng, base.Add(time.Duration(i)*pageSize*time.Minute), pageSize, 1<<62)
		for j := range page {
			// The size of a real node (about 1 kB), parameters and all.
			params := fmt.Sprintf(`{"clientID":"%x","groups":null,"name":"svc-%d","products":["*"],"role":"GLOBAL_ADMIN","scopes":["admin:audit","read:all"],"userEmail":"","userID":"u%d","userpoolID":"us-east-2_GQ3gwvxsQ","sourceIP":"%s","error":""}`,
				rng.Int63(), rng.Intn(50), rng.Intn(1000), page[j].SourceIP)
			page[j].ActionParameters = json.RawMessage(params)
			page[j].Raw = json.RawMessage(fmt.Sprintf(`{"id":%q,"action":%q,"requestId":%q,"status":%q,"timestamp":%q,"actionParameters":%s,"userAgent":"python-requests/2.31.0","sourceIP":%q,"serviceAccount":{"id":"%s","name":"%s"},"user":null}`,
				page[j].ID, page[j].Action, page[j].RequestID, page[j].Status, page[j].Timestamp.Format(time.RFC3339Nano), params, page[j].SourceIP, page[j].PrincipalID, page[j].PrincipalName))
		}
		b.StartTimer()
		start := time.Now()
		n, err := s.Apply(ctx, page, store.Update{SyncedUpTo: page[pageSize-1].Timestamp})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		events += int64(n)
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	st, err := s.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if st.Events > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(st.Events), "db-B/event")
	}
}
