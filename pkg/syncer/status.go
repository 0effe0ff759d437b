package syncer

import (
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// States of Status.State.
const (
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
	CacheFile  string     `json:"cacheFile"`
	CacheBytes int64      `json:"cacheBytes"`

	// CoveredFrom: the cache holds every event from here up to SyncedUpTo (null before the
	// first live window). Before it, events are missing: not backfilled (yet).
	CoveredFrom *time.Time `json:"coveredFrom"`

	// Beyond the contract:
	// ErrorKind classifies the error behind state "error" (authentication, authorization, …).
	ErrorKind string `json:"errorKind,omitempty"`
	// ReadOnly: another instance writes the cache; this one serves queries from it.
	ReadOnly bool `json:"readOnly"`
	// Notices are things an admin should know: a cache file set aside at open, read-only mode,
	// a window the API could not return whole.
	Notices []string `json:"notices"`
}

// Backfill is the backfill's range and progress.
type Backfill struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Done float64   `json:"done"` // 0..1, exactly 1 when complete
}

// Status reports the sync and cache state. It is cheap enough to poll every few seconds.
func (s *Syncer) Status() Status {
	now := s.clock.Now().UTC()
	st := Status{State: StateIdle, CacheFile: s.cache.Path(), ReadOnly: s.cache.ReadOnly(), Notices: []string{}}
	for _, n := range s.cache.Notices() {
		st.Notices = append(st.Notices, n.Message)
	}

	s.mu.Lock()
	stopErr, live, backfilling := s.stopErr, s.liveBusy, s.backfilling
	next, capNotice := s.nextSyncAt, s.capNotice
	s.mu.Unlock()
	if capNotice != "" {
		st.Notices = append(st.Notices, capNotice)
	}
	switch {
	case stopErr != nil:
		st.State, st.ErrorKind = StateError, stopErr.Kind.String()
	case backfilling:
		st.State = StateBackfilling
	case live:
		st.State = StateSyncing
	}
	if !next.IsZero() {
		st.NextSyncAt = timePtr(next.UTC())
	}

	if stats, err := s.cache.Stats(); err == nil {
		st.Events, st.CacheBytes = stats.Events, stats.Bytes
		st.Oldest, st.Newest = timePtr(stats.Oldest), timePtr(stats.Newest)
	} else {
		st.Notices = append(st.Notices, "cache statistics unavailable: "+err.Error())
	}
	state, err := s.cache.State()
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

// backfillStatus is the backfill part of Status; before the first live window (which fixes
// where the backfill ends) the range ends now and nothing is done.
func (s *Syncer) backfillStatus(state cache.State, now time.Time) *Backfill {
	target, ok := s.backfillTarget(state, now)
	if !ok {
		from := maxTime(s.cfg.BackfillStart.UTC(), now.Add(-MaxLookback))
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
func coveredFrom(state cache.State) time.Time {
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
	now := s.clock.Now()
	if stats, err := s.cache.Stats(); err == nil {
		s.mCacheBytes.Set(float64(stats.Bytes))
		s.mCacheEv.Set(float64(stats.Events))
	}
	state, err := s.cache.State()
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
