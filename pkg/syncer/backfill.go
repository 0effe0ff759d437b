package syncer

import (
	"context"
	"time"

	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// backfillTarget is the range the backfill must cover: from the configured start (clamped to
// what Wiz still keeps and to what retention would keep) to where the live tail began. ok is
// false when no backfill is configured, or before the first live window has set its start.
func (s *Syncer) backfillTarget(st store.State, now time.Time) (target store.Interval, ok bool) {
	if s.cfg.BackfillStart.IsZero() || st.LiveStart.IsZero() {
		return store.Interval{}, false
	}
	from := maxTime(s.cfg.BackfillStart.UTC(), now.Add(-wiz.Retention))
	if s.cfg.RetentionDays > 0 {
		from = maxTime(from, now.Add(-time.Duration(s.cfg.RetentionDays)*24*time.Hour))
	}
	// To is the first live window's After: both closed windows hold that instant, so the cut
	// relies on the id dedup, not on the API's bound semantics.
	return store.Interval{From: from, To: st.LiveStart}, true
}

// backfillPending reports whether part of the backfill range is still missing.
func (s *Syncer) backfillPending(ctx context.Context) bool {
	st, err := s.store.State(ctx)
	if err != nil {
		return true // let the backfill run and report the error
	}
	target, ok := s.backfillTarget(st, s.clock.Now().UTC())
	return ok && len(missing(target, st.Covered)) > 0
}

// missing returns the parts of target that covered (merged, oldest first) leaves out, newest
// first. Intervals are closed: a gap ends a nanosecond before a covered interval begins, and a
// covered interval is a closed window the syncer fetched whole (wiz.Window holds every entry
// of it whatever the API's bounds mean), so a restart resumes with no instant left out.
func missing(target store.Interval, covered []store.Interval) []store.Interval {
	if target.To.Before(target.From) {
		return nil
	}
	var gaps []store.Interval
	cur := target.From // first instant not yet known to be covered
	for _, c := range covered {
		if c.To.Before(cur) {
			continue
		}
		if c.From.After(target.To) {
			break
		}
		if c.From.After(cur) {
			gaps = append(gaps, store.Interval{From: cur, To: c.From.Add(-time.Nanosecond)})
		}
		cur = c.To.Add(time.Nanosecond)
		if cur.After(target.To) {
			break
		}
	}
	if !cur.After(target.To) {
		gaps = append(gaps, store.Interval{From: cur, To: target.To})
	}
	for i, j := 0, len(gaps)-1; i < j; i, j = i+1, j-1 {
		gaps[i], gaps[j] = gaps[j], gaps[i]
	}
	return gaps
}

// progress is the covered share of target: exactly 1 when nothing is missing.
func progress(target store.Interval, covered []store.Interval) float64 {
	gaps := missing(target, covered)
	if len(gaps) == 0 {
		return 1
	}
	total := float64(target.To.Sub(target.From)) + 1
	var gap float64
	for _, g := range gaps {
		gap += float64(g.To.Sub(g.From)) + 1
	}
	return min(max(1-gap/total, 0), 0.9999)
}

type sliceResult struct {
	slice   store.Interval
	entries int
	err     error
}

// backfill fetches what the target range is missing, newest first, in slices sized to hold
// about sliceTarget entries, up to Concurrency of them at once. Each slice's coverage is
// recorded as soon as it is stored, so a restart continues where this one stopped. It returns
// the first error after letting the slices in flight finish.
func (s *Syncer) backfill(ctx context.Context) error {
	st, err := s.store.State(ctx)
	if err != nil {
		return err
	}
	target, ok := s.backfillTarget(st, s.clock.Now().UTC())
	if !ok {
		return nil
	}
	if bs := s.cfg.BackfillStart.UTC(); !bs.Equal(st.BackfillStart) {
		if err := s.setState(ctx, store.Update{BackfillStart: &bs}); err != nil {
			return err
		}
	}
	gaps := missing(target, st.Covered)
	if len(gaps) == 0 {
		return nil
	}
	s.log.Info("backfill starting", "from", target.From, "to", target.To, "gaps", len(gaps))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sliceLen := s.cfg.Slice
	results := make(chan sliceResult)
	inflight := 0
	var firstErr error
	// next cuts the next slice off the top of the newest gap. Slices are closed windows and
	// the next one ends a nanosecond before this one begins: adjacent windows miss no instant,
	// and the client's widened bounds fetch the shared microsecond on both sides anyway (the
	// id dedup absorbs it), so no slice boundary relies on the API's bound semantics.
	next := func() (store.Interval, bool) {
		if firstErr != nil || ctx.Err() != nil || len(gaps) == 0 {
			return store.Interval{}, false
		}
		g := &gaps[0]
		sl := store.Interval{From: maxTime(g.From, g.To.Add(-sliceLen)), To: g.To}
		if sl.From.Equal(g.From) {
			gaps = gaps[1:]
		} else {
			g.To = sl.From.Add(-time.Nanosecond)
		}
		return sl, true
	}
	for {
		for inflight < s.cfg.Concurrency {
			sl, ok := next()
			if !ok {
				break
			}
			inflight++
			go func() {
				n, err := s.fetchRange(ctx, wiz.Window{After: sl.From, Before: sl.To}, true)
				if err == nil {
					err = s.setState(ctx, store.Update{Covered: []store.Interval{sl}})
				}
				results <- sliceResult{slice: sl, entries: n, err: err}
			}()
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		sliceLen = s.nextSliceLen(sliceLen, r)
		s.updateGauges()
	}
	if firstErr == nil && ctx.Err() == nil {
		s.log.Info("backfill complete", "from", target.From, "to", target.To)
	}
	return firstErr
}

// nextSliceLen adapts the slice length to the density just seen: about sliceTarget entries
// per slice, growing at most twofold per step, within [MinSlice, Slice].
func (s *Syncer) nextSliceLen(cur time.Duration, r sliceResult) time.Duration {
	span := r.slice.To.Sub(r.slice.From)
	want := 2 * cur
	if r.entries > 0 && span > 0 {
		want = min(want, time.Duration(float64(span)*sliceTarget/float64(r.entries)))
	}
	return min(max(want, s.cfg.MinSlice), s.cfg.Slice)
}
