package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestSyncEqualsTenantProperty: for seeded random tenants with heavy ties, a random result
// cap, page size, page order and concurrency, under each bound semantics, a sync leaves the
// cache equal to the tenant: nothing missing, nothing twice. Each tenant is synced twice: the
// first sync records the instants the syncer cuts at (the bounds it sends), tie groups are
// added on them, and a second sync into a fresh cache must still be exact.
func TestSyncEqualsTenantProperty(t *testing.T) {
	for seed := int64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			checkSyncEqualsTenant(t, seed)
		})
	}
}

func checkSyncEqualsTenant(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	resultCap := 100 + rng.Intn(900)
	o := wizfake.Options{
		Seed: seed, Events: 500 + rng.Intn(2500), Span: time.Duration(1+rng.Intn(72)) * time.Hour,
		EqualRate: 0.5 * rng.Float64(), ResultCap: resultCap, OldestFirst: rng.Intn(3) == 0,
		// Each bound semantics in turn, so that the seeds cover all four.
		AfterInclusive: allBounds[seed%4].afterIn, BeforeInclusive: allBounds[seed%4].beforeIn,
	}
	f := newFakeTenant(t, o)
	// Ties of up to a third of the cap at random instants: more than the cap within the 3µs a
	// widened window reaches around an instant could never be fetched whole.
	tie := func(at time.Time) { f.tenant.AddTie(at, 1+rng.Intn(resultCap/3)) }
	for range 5 + rng.Intn(20) {
		tie(t0.Add(-time.Duration(rng.Int63n(int64(o.Span)))))
	}
	cfg := testConfig(f.clock)
	cfg.PageSize = 1 + rng.Intn(min(resultCap, 500))
	cfg.BackfillStart = t0.Add(-o.Span - time.Hour)
	cfg.Concurrency = 1 + rng.Intn(4)
	t.Logf("%d events, cap %d, pages of %d, oldest first %v, %s", f.tenant.Len(), resultCap, cfg.PageSize,
		o.OldestFirst, bounds{o.AfterInclusive, o.BeforeInclusive})
	sync := func() {
		t.Helper()
		c, _ := tempCache(t)
		cfg.Registerer = prometheus.NewRegistry()
		s := New(c, f.client, cfg)
		if err := s.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := s.Status(context.Background()); len(st.Notices) > 0 {
			t.Fatalf("notices %v", st.Notices)
		}
		sameEventsWidened(t, c, f, cfg.BackfillStart, t0.Add(-DefaultLag))
	}
	f.tenant.ResetStats()
	sync()
	// The instants of the first sync's cuts: the closed windows' ends, inside the bounds sent.
	var cuts []time.Time
	for _, r := range f.tenant.Requests() {
		var fb struct {
			Timestamp struct{ After, Before string } `json:"timestamp"`
		}
		if json.Unmarshal(r.Variables["filterBy"], &fb) != nil {
			continue
		}
		if a, err := time.Parse(time.RFC3339Nano, fb.Timestamp.After); err == nil {
			cuts = append(cuts, a.Add(time.Microsecond))
		}
		if b, err := time.Parse(time.RFC3339Nano, fb.Timestamp.Before); err == nil {
			cuts = append(cuts, b.Add(-time.Microsecond))
		}
	}
	if len(cuts) < 3 {
		t.Fatalf("only %d cut instants", len(cuts))
	}
	slices.SortFunc(cuts, time.Time.Compare)
	for _, at := range slices.Compact(cuts) {
		if at.Before(t0.Add(-DefaultLag)) {
			tie(at)
		}
	}
	sync()
}
