package integration

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestSIGKILLLosesNothing kills the built plugin with SIGKILL at seeded random moments of its
// backfill and live tail — a dozen times, with new and late events arriving in between — and
// restarts it each time. In the end the cache file holds exactly the tenant's events: every
// id once, each with the node JSON the tenant sent. The tenant has tie groups of up to 600
// entries and a burst of them over the result cap (a cap split cuts a tie group at a page
// boundary); it runs under each bound semantics (wizfake.BoundsForTests).
func TestSIGKILLLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the plugin a dozen times")
	}
	wizfake.RunUnderBounds(t, sigkillLosesNothing)
}

func sigkillLosesNothing(t *testing.T, afterIn, beforeIn bool) {
	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 11, Events: 8000, Span: 20 * 24 * time.Hour, End: now.Add(-time.Minute),
		AfterInclusive: afterIn, BeforeInclusive: beforeIn},
		map[string]any{"backfillStart": now.Add(-21 * 24 * time.Hour).Format(time.RFC3339), "pageSize": 100})
	rng := rand.New(rand.NewSource(42))
	e.tenant.AddTieBurst(now.Add(-5*24*time.Hour), 20, 600, time.Millisecond)
	addTiesAndBursts(e.tenant, rng, now.Add(-20*24*time.Hour), now.Add(-2*time.Minute), 4000)
	// A little latency per call spreads the sync over enough requests to kill it in the middle.
	e.tenant.Inject(wizfake.Fault{Kind: wizfake.FaultLatency, Latency: 5 * time.Millisecond})

	const kills = 12
	for round := 0; round < kills; round++ {
		e.tenant.ResetStats()
		e.status() // the first call creates the instance, which starts the syncer
		killAt := 1 + rng.Intn(15)
		deadline := time.Now().Add(30 * time.Second)
		for e.tenant.Stats().GraphQLRequests < killAt && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		e.plugin.Kill()

		// Meanwhile the tenant goes on: a fresh event, and one that shows up late with a
		// timestamp a few minutes in the past (within the promised 10 minutes).
		at := time.Now().UTC()
		fresh := wizfake.Event{ID: fmt.Sprintf("fresh-%02d", round), RequestID: "r", Action: "UpdateUser", Status: "SUCCESS",
			Timestamp: at.Add(-40 * time.Second), ActionParameters: []byte(`{"round":` + fmt.Sprint(round) + `}`)}
		late := fresh
		late.ID, late.Timestamp = fmt.Sprintf("late-%02d", round), at.Add(-time.Duration(3+rng.Intn(5))*time.Minute)
		if err := e.tenant.Add(fresh, late); err != nil {
			t.Fatal(err)
		}
		e.start()
	}

	// The last run's live windows reach past the last added events (stamped 40 s or more in
	// the past, the lag is 30 s); waitFor polls until the cache holds them all.
	e.waitFor("the backfill", 120*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })
	e.call(editor, "POST", "sync/run", nil)
	want := e.tenant.VisibleEvents()
	st := e.waitFor("every event", 60*time.Second, func(st syncStatus) bool { return st.Events == int64(len(want)) })
	e.plugin.Close()

	assertExactlyTenant(t, readCache(t, st.CacheFile), want)
}
