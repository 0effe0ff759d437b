package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/wiz"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// soakSleeps records the waits the client asked for (it never really sleeps).
type soakSleeps struct {
	mu    sync.Mutex
	count map[time.Duration]int
	total time.Duration
	n     int
}

func (s *soakSleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.count[d]++
	s.total += d
	s.n++
	s.mu.Unlock()
	return ctx.Err()
}

func (s *soakSleeps) seen(d time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[d]
}

// soakBackground is the steady drizzle of faults of the soak: every kind the client must
// survive, each drawn per request from the tenant's seeded generator. The first that applies
// to a request decides its answer.
func soakBackground() []wizfake.Fault {
	return []wizfake.Fault{
		{Kind: wizfake.FaultRateLimit, Probability: 0.04, RetryAfter: 3 * time.Second}, // Retry-After: 3
		{Kind: wizfake.FaultRateLimit, Probability: 0.04},                              // no Retry-After
		{Kind: wizfake.FaultGraphQLRateLimit, Probability: 0.04, RetryAfter: 1250 * time.Millisecond},
		{Kind: wizfake.FaultGraphQLRateLimit, Probability: 0.03},
		{Kind: wizfake.FaultServerError, Probability: 0.04, Status: 503},
		{Kind: wizfake.FaultServerError, Probability: 0.03, Status: 500},
		{Kind: wizfake.FaultDropConnection, Probability: 0.05},
		{Kind: wizfake.FaultUnauthorized, Probability: 0.03},
		{Kind: wizfake.FaultPartialData, Probability: 0.04},
		{Kind: wizfake.FaultNullCursor, Probability: 0.04},
		{Kind: wizfake.FaultNoData, Probability: 0.03},
		{Kind: wizfake.FaultLatency, Probability: 0.02, Latency: 3 * time.Millisecond},
		{Kind: wizfake.FaultTokenError, Probability: 0.3, Status: 503},
	}
}

// TestSoakOneHourLiveTailWithFaults runs an hour of simulated time of live tail, with a two-day
// backfill running concurrently, against a fake tenant served over loopback HTTP through the
// real client, while the tenant keeps receiving events (bursts, equal timestamps, entries
// made visible up to 10 minutes late) and misbehaves at random: rate limits with and without
// a wait, GraphQL rate limits, 5xx, connections dropped mid-body, 401s and revoked tokens,
// failing token requests, partial data, null cursors, slow answers and answers slower than the
// request timeout, plus stretches where every request fails. Once the faults stop and a cycle
// or two have run, the cache must equal the tenant exactly.
//
// The tenant, the client and the syncer share one manual clock; the syncer runs as in
// production (Start), one cycle per simulated minute, fired by the clock. The client never
// sleeps: it records the waits it asks for. Data, faults and jitter are seeded; which request
// draws which fault depends on how the live loop and the backfill goroutines interleave, which
// the assertions do not depend on.
//
// Runs under each bound semantics (wizfake.BoundsForTests; WIZ_BOUNDS picks one). Tie
// groups sit on every live window's end (and so on later windows' overlap starts), and the
// busy hour of the history is made of ties, so that cap splits cut tie groups.
func TestSoakOneHourLiveTailWithFaults(t *testing.T) {
	t.Parallel()
	wizfake.RunUnderBounds(t, soak)
}

func soak(t *testing.T, afterIn, beforeIn bool) {
	const (
		seed     = 20261101
		minutes  = 60
		backfill = 2 * 24 * time.Hour
	)
	realStart := time.Now()
	clock := newFakeClock(t0)
	tenant := wizfake.New(wizfake.Options{
		Seed: seed, Events: 12000, Span: backfill, End: t0, EqualRate: 0.15,
		Now: clock.Now, TokenLifetime: 20 * time.Minute, AfterInclusive: afterIn, BeforeInclusive: beforeIn,
	})
	// A busy hour of the history, over the 10,000-result cap: the backfill must split it.
	tenant.AddTieBurst(t0.Add(-30*time.Hour), 21, 500, 3*time.Minute)
	tenant.AddTie(t0.Add(-DefaultLag), 150) // the first live window's end
	srv := httptest.NewServer(tenant)
	t.Cleanup(srv.Close)

	sleeps := &soakSleeps{count: map[time.Duration]int{}}
	jitter := rand.New(rand.NewSource(seed))
	client, err := wiz.New(wiz.Config{
		APIURL:            srv.URL,
		AuthURL:           wizfake.TokenURL(srv.URL),
		ClientID:          tenant.ClientID(),
		ClientSecret:      tenant.ClientSecret(),
		RequestsPerSecond: 10000,
		RequestTimeout:    500 * time.Millisecond, // real time: the slow-answer faults outlast it
		Now:               clock.Now,
		Sleep:             sleeps.sleep,
		Rand:              jitter.Float64, // the client serialises its calls
	})
	if err != nil {
		t.Fatal(err)
	}

	c, _ := tempCache(t)
	cfg := testConfig(clock)
	cfg.BackfillStart = t0.Add(-backfill)
	cfg.Slice = 6 * time.Hour
	cfg.Concurrency = 3
	cfg.RetentionDays = 30 // pruning runs too (it finds nothing to prune)
	s := New(c, client, cfg)

	// The checkpoint must never move backwards: a watcher reads it as often as it can, besides
	// the per-cycle samples below. Reads are serialised under cpMu, so that each sees a state
	// at least as new as the one before.
	var (
		cpMu      sync.Mutex
		cpLast    time.Time
		cpBackErr string
	)
	observeCP := func(cp time.Time, where string) { // with cpMu held
		if cp.Before(cpLast) && cpBackErr == "" {
			cpBackErr = fmt.Sprintf("%s: checkpoint moved backwards from %s to %s", where,
				cpLast.Format(time.RFC3339Nano), cp.Format(time.RFC3339Nano))
		}
		if cp.After(cpLast) {
			cpLast = cp
		}
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(2 * time.Millisecond):
			}
			cpMu.Lock()
			if st, err := c.State(context.Background()); err == nil {
				observeCP(st.SyncedUpTo, "watcher")
			}
			cpMu.Unlock()
		}
	}()
	defer func() {
		close(stopWatch)
		<-watchDone
	}()

	waitCycle := func(what string) {
		t.Helper()
		select {
		case <-clock.waiting:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the sync loop did not finish its cycle", what)
		}
	}
	// samples[m] is the status after the cycle of minute m.
	samples := make([]Status, 0, minutes+10)
	sample := func(m int) Status {
		cpMu.Lock()
		st := s.Status(context.Background())
		if st.SyncedUpTo != nil {
			observeCP(*st.SyncedUpTo, fmt.Sprintf("minute %d", m))
		}
		cpMu.Unlock()
		samples = append(samples, st)
		return st
	}

	rng := rand.New(rand.NewSource(seed + 1))
	custom := 0
	newEvent := func(ts time.Time) wizfake.Event {
		custom++
		ev := wizfake.Event{
			ID:               fmt.Sprintf("soak-%05d", custom),
			RequestID:        fmt.Sprintf("req-%05d", custom),
			Action:           []string{"Login", "UpdateUser", " CreateServiceAccount ", "DeleteProject"}[rng.Intn(4)],
			Status:           []string{"SUCCESS", "SUCCESS", "FAILED", "ACCESS_DENIED"}[rng.Intn(4)],
			Timestamp:        ts.Truncate(time.Microsecond),
			ActionParameters: []byte(fmt.Sprintf(`{"n":%d,"note":"caf\u00e9 \"quoted\""}`, custom)),
			SourceIP:         fmt.Sprintf("203.0.113.%d", rng.Intn(255)),
		}
		if rng.Intn(3) == 0 {
			ev.ServiceAccount = &wizfake.Principal{ID: "sa-1", Name: "robot"}
		} else {
			ev.User = &wizfake.Principal{ID: fmt.Sprintf("u-%d", rng.Intn(5)), Name: "alice"}
		}
		return ev
	}
	mustAdd := func(at time.Time, evs ...wizfake.Event) {
		t.Helper()
		if err := tenant.AddVisibleAt(at, evs...); err != nil {
			t.Fatal(err)
		}
	}
	// traffic is what the tenant receives during the minute that starts now.
	late := 0
	traffic := func(m int, now time.Time) {
		// New entries, stamped over the coming minute: each becomes visible when the clock
		// reaches it. Every 7th minute is a burst.
		n := 20 + rng.Intn(40)
		if m%7 == 3 {
			n += 200 + rng.Intn(100)
		}
		tenant.AddGenerated(n, now, now.Add(time.Minute))
		if m%3 == 0 {
			tenant.AddTie(now.Add(time.Minute-DefaultLag), 100+rng.Intn(100)) // this minute's window end
		}
		// A group of entries sharing one timestamp, visible at once.
		ts := now.Add(-time.Duration(rng.Intn(20)) * time.Second)
		var group []wizfake.Event
		for range 2 + rng.Intn(6) {
			group = append(group, newEvent(ts))
		}
		mustAdd(now, group...)
		// Late entries: stamped up to 10 minutes before they become visible, now or later in
		// this minute (never past what docs/sync.md promises).
		for range rng.Intn(6) {
			vis := now.Add(time.Duration(rng.Int63n(int64(time.Minute))))
			back := time.Duration(rng.Int63n(int64(10*time.Minute) + 1))
			if rng.Intn(4) == 0 {
				back = 10 * time.Minute // exactly at the promise
			}
			e := newEvent(vis.Add(-back))
			if rng.Intn(3) == 0 && len(group) > 0 {
				e.Timestamp = group[0].Timestamp // late and equal to entries already synced
				vis = now
			}
			mustAdd(vis, e)
			late++
		}
	}

	// The fault schedule by simulated minute.
	setFaults := func(fs ...wizfake.Fault) {
		tenant.ClearFaults()
		for _, f := range fs {
			tenant.Inject(f)
		}
	}
	const (
		outageFrom, outageTo = 20, 24 // every GraphQL request answers 502
		rlFrom, rlTo         = 40, 42 // every request rate limited with a 10-minute Retry-After
		slowAt               = 33     // two answers slower than the request timeout
	)
	schedule := func(m int) {
		switch {
		case m == 1, m == outageTo+1, m == rlTo+1:
			setFaults(soakBackground()...)
		case m == outageFrom:
			setFaults(wizfake.Fault{Kind: wizfake.FaultServerError, Status: 502})
		case m == rlFrom:
			setFaults(wizfake.Fault{Kind: wizfake.FaultRateLimit, RetryAfter: 10 * time.Minute})
		case m == slowAt:
			setFaults(append([]wizfake.Fault{{Kind: wizfake.FaultLatency, Count: 2, Latency: 2 * time.Second}},
				soakBackground()...)...)
		}
		if m%9 == 0 {
			tenant.ExpireTokens() // tokens revoked early: the next calls get 401
		}
	}

	s.Start()
	defer s.Stop()
	waitCycle("minute 0")
	sample(0)
	for m := 1; m <= minutes; m++ {
		now := clock.Now()
		schedule(m)
		traffic(m, now)
		clock.Advance(time.Minute)
		waitCycle(fmt.Sprintf("minute %d", m))
		sample(m)
	}
	simulated := clock.Now().Sub(t0)

	// The faults stop; no new entries. A cycle or two (and whatever backfill they restart)
	// must bring the cache level with the tenant.
	tenant.ClearFaults()
	faultStats := tenant.Stats()
	busy := func() bool { // the backfill or pruning a cycle started is still running
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.backfilling || s.pruning
	}
	var final Status
	for i := 0; ; i++ {
		if i == 5 {
			t.Fatalf("no convergence after the faults stopped: %+v (backfill %+v)", final, final.Backfill)
		}
		clock.Advance(time.Minute)
		waitCycle("final cycle")
		deadline := time.Now().Add(20 * time.Second)
		for busy() {
			if time.Now().After(deadline) {
				t.Fatal("the backfill did not finish after the faults stopped")
			}
			time.Sleep(time.Millisecond)
		}
		final = sample(minutes + 1 + i)
		if i >= 1 && final.Backfill.Done == 1 && final.LastError == nil {
			break
		}
	}
	s.Stop()
	now := clock.Now()

	// The cache is the tenant: same ids, same raw JSON, nothing missing, nothing twice.
	truth := tenant.VisibleEvents()
	want := make(map[string]auditlog.Entry, len(truth))
	for _, e := range truth {
		want[e.ID] = auditlog.Entry{ID: e.ID, Timestamp: e.Timestamp, Raw: json.RawMessage(e.Node)}
	}
	if len(want) != len(truth) {
		t.Fatalf("the tenant shows %d events under %d ids", len(truth), len(want))
	}
	sameEvents(t, c, want)
	if final.Events != int64(len(truth)) {
		t.Fatalf("status events %d, tenant %d", final.Events, len(truth))
	}

	// The status is healthy and fresh.
	if final.State == StateError || final.LastError != nil || final.ErrorKind != "" {
		t.Fatalf("final status in error: %+v", final)
	}
	if final.Backfill == nil || final.Backfill.Done != 1 {
		t.Fatalf("backfill not complete: %+v", final.Backfill)
	}
	if final.SyncedUpTo == nil || now.Sub(*final.SyncedUpTo) > cfg.PollInterval+DefaultLag || final.SyncedUpTo.After(now) {
		t.Fatalf("syncedUpTo %v, now %s", final.SyncedUpTo, now)
	}
	cpMu.Lock()
	if cpBackErr != "" {
		t.Error(cpBackErr)
	}
	cpMu.Unlock()

	// The stretches where everything failed did fail, held the checkpoint, and were caught up.
	for _, stretch := range [][2]int{{outageFrom, outageTo}, {rlFrom, rlTo}} {
		before := samples[stretch[0]-1].SyncedUpTo
		for m := stretch[0]; m <= stretch[1]; m++ {
			st := samples[m]
			if st.LastError == nil {
				t.Errorf("minute %d: every request failed, yet no error in the status", m)
			}
			if before == nil || st.SyncedUpTo == nil || !st.SyncedUpTo.Equal(*before) {
				t.Errorf("minute %d: the checkpoint moved during a total outage: %v -> %v", m, before, st.SyncedUpTo)
			}
		}
		// Within two cycles: the background faults may still fail the first window after it.
		after := samples[stretch[1]+2]
		if after.SyncedUpTo == nil || !after.SyncedUpTo.After(*before) {
			t.Errorf("minute %d: the checkpoint did not catch up after the outage: %v", stretch[1]+2, after.SyncedUpTo)
		}
	}
	errorMinutes, backfillMinutes := 0, 0
	for _, st := range samples {
		if st.LastError != nil {
			errorMinutes++
		}
		if st.State == StateBackfilling {
			backfillMinutes++
		}
	}

	// The fake really misbehaved, so the test cannot pass vacuously.
	o := faultStats.Outcomes
	failed := faultStats.GraphQLRequests - o[wizfake.OutcomeOK]
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var desc []string
	for _, k := range keys {
		desc = append(desc, fmt.Sprintf("%s=%d", k, o[k]))
	}
	t.Logf("simulated %s in %s real: %d GraphQL requests (%s), %d failed; token requests %d, refused %d; "+
		"client waits %d (%s simulated); %d events (%d late); %d minutes with an error, %d with the backfill running",
		simulated, time.Since(realStart).Round(time.Millisecond), faultStats.GraphQLRequests, strings.Join(desc, " "),
		failed, faultStats.TokenRequests, faultStats.TokenRefused, sleeps.n, sleeps.total, len(truth), late,
		errorMinutes, backfillMinutes)
	if failed < 300 || failed*5 < faultStats.GraphQLRequests {
		t.Errorf("only %d of %d requests failed", failed, faultStats.GraphQLRequests)
	}
	for _, k := range []string{wizfake.OutcomeRateLimited, wizfake.OutcomeGraphQLRateLimited, wizfake.OutcomeServerError,
		wizfake.OutcomeDropped, wizfake.OutcomeUnauthorized, wizfake.OutcomePartial, wizfake.OutcomeNullCursor,
		wizfake.OutcomeNoData, wizfake.OutcomeCanceled} {
		if o[k] < 2 {
			t.Errorf("outcome %s seen %d times", k, o[k])
		}
	}
	if faultStats.TokenRefused < 2 || faultStats.TokensIssued < 6 {
		t.Errorf("token requests: %d refused, %d issued", faultStats.TokenRefused, faultStats.TokensIssued)
	}
	// Waits: Retry-After, then extensions.retryAfter (the backoff's jittered steps never land
	// exactly on them).
	if sleeps.seen(3*time.Second) == 0 || sleeps.seen(1250*time.Millisecond) == 0 {
		t.Errorf("the client did not wait as the API asked: %d waits of 3s, %d of 1.25s",
			sleeps.seen(3*time.Second), sleeps.seen(1250*time.Millisecond))
	}
	if metricValue(t, s.mSplits) == 0 {
		t.Error("no window reached the result cap")
	}
}
