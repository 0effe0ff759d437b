package syncer

import (
	"context"
	"time"

	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// States of Status.State.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"

	StateIdle        = "idle"
	StateSyncing     = "syncing"
	StateBackfilling = "backfilling"
	StateError       = "error"
)

// Status is the answer of GET sync/status. Times are RFC 3339 in UTC, null when unknown.
type Status struct {
	State      string     `json:"state"`
	Events     int64      `json:"events"`
	Oldest     *time.Time `json:"oldest"`
	Newest     *time.Time `json:"newest"`
	SyncedUpTo *time.Time `json:"syncedUpTo"`
	LastSyncAt *time.Time `json:"lastSyncAt"`
	LastError  *string    `json:"lastError"`
	Backfill   *Backfill  `json:"backfill"`
	NextSyncAt *time.Time `json:"nextSyncAt"`
	CacheBytes int64      `json:"cacheBytes"`
	// Role is RoleLeader when this replica syncs, RoleFollower when another does; Leader
	// names the one that syncs ("host:pid"), null when unknown or none.
	Role   string  `json:"role"`
	Leader *string `json:"leader"`

	// CoveredFrom: the cache holds every event from here up to SyncedUpTo (null before the
	// first live window). Before it, events are missing: not backfilled (yet).
	CoveredFrom *time.Time `json:"coveredFrom"`

	// Beyond the documented endpoint (docs/sync.md):
	// ErrorKind classifies the error behind state "error" (authentication, authorization, …).
	ErrorKind string `json:"errorKind,omitempty"`
	// ReadOnly: another instance or replica writes; this one serves queries (a follower).
	ReadOnly bool `json:"readOnly"`
	// Notices are things an admin should know: a window the API could not return whole (the
	// caller adds its store's).
	Notices []string `json:"notices"`
}

// Backfill is the backfill's range and progress.
type Backfill struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Done float64   `json:"done"` // 0..1, exactly 1 when complete
}

// Status reports the sync state. It is cheap enough to poll every few seconds. A follower
// reports the leader's state and the shared freshness.
func (s *Syncer) Status(ctx context.Context) Status {
	now := s.clock.Now().UTC()
	st := Status{Role: RoleLeader, Notices: []string{}}
	st.State, st.ErrorKind = s.localState()
	if name, err := s.store.Leader(ctx); err == nil && name != "" {
		st.Leader = &name
	}
	if !s.store.Leading() {
		st.Role, st.ReadOnly = RoleFollower, true
		// The state the leader published; none while no replica leads.
		if st.State != StateError && st.Leader != nil {
			if published, err := s.store.LeaderState(ctx); err == nil && published != "" {
				st.State = published
			}
		}
	}

	s.mu.Lock()
	stopErr, next, capNotice := s.stopErr, s.nextSyncAt, s.capNotice
	s.mu.Unlock()
	if capNotice != "" {
		st.Notices = append(st.Notices, capNotice)
	}
	if !next.IsZero() {
		st.NextSyncAt = timePtr(next.UTC())
	}

	if stats, err := s.store.Stats(ctx); err == nil {
		st.Events, st.CacheBytes = stats.Events, stats.Bytes
		st.Oldest, st.Newest = timePtr(stats.Oldest), timePtr(stats.Newest)
	} else {
		st.Notices = append(st.Notices, "cache statistics unavailable: "+err.Error())
	}
	state, err := s.store.State(ctx)
	if err != nil {
		st.Notices = append(st.Notices, "sync state unavailable: "+err.Error())
	}
	st.SyncedUpTo, st.LastSyncAt = timePtr(state.SyncedUpTo), timePtr(state.LastSyncAt)
	if !state.LiveStart.IsZero() {
		st.CoveredFrom = timePtr(coveredFrom(state))
	}
	switch {
	case stopErr != nil:
		msg := stopErr.Message
		st.LastError = &msg
	case state.LastError != "":
		msg := state.LastError
		st.LastError = &msg
	}
	if !s.cfg.BackfillStart.IsZero() {
		st.Backfill = s.backfillStatus(state, now)
	}
	return st
}

// localState is this syncer's own state, and the kind of its error.
func (s *Syncer) localState() (state, errorKind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopErr != nil:
		return StateError, s.stopErr.Kind.String()
	case s.backfilling:
		return StateBackfilling, ""
	case s.liveBusy:
		return StateSyncing, ""
	}
	return StateIdle, ""
}

// backfillStatus is the backfill part of Status; before the first live window (which fixes
// where the backfill ends) the range ends now and nothing is done.
func (s *Syncer) backfillStatus(state store.State, now time.Time) *Backfill {
	target, ok := s.backfillTarget(state, now)
	if !ok {
		from := maxTime(s.cfg.BackfillStart.UTC(), now.Add(-wiz.Retention))
		return &Backfill{From: from, To: now}
	}
	b := &Backfill{From: target.From, To: target.To, Done: progress(target, state.Covered)}
	if target.To.Before(target.From) {
		b.To = b.From
	}
	return b
}

// coveredFrom is where the cache's unbroken coverage begins: the live tail holds everything
// from LiveStart on, and the backfilled intervals that reach it extend that back.
func coveredFrom(state store.State) time.Time {
	from := state.LiveStart
	for i := len(state.Covered) - 1; i >= 0; i-- {
		iv := state.Covered[i]
		if iv.From.Before(from) && !iv.To.Before(from.Add(-time.Second)) {
			from = iv.From
		}
	}
	return from
}

// updateGauges refreshes the gauges from the cache.
func (s *Syncer) updateGauges() {
	ctx := context.Background()
	now := s.clock.Now()
	if stats, err := s.store.Stats(ctx); err == nil {
		s.mCacheBytes.Set(float64(stats.Bytes))
		s.mCacheEv.Set(float64(stats.Events))
	}
	state, err := s.store.State(ctx)
	if err != nil {
		return
	}
	if !state.SyncedUpTo.IsZero() {
		s.mLag.Set(now.Sub(state.SyncedUpTo).Seconds())
	}
	if !s.cfg.BackfillStart.IsZero() {
		s.mBackfill.Set(s.backfillStatus(state, now.UTC()).Done)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var _ Source = (*wiz.Client)(nil)
