package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// The live tail, and the fetching of a window whatever the result cap cuts, which the backfill
// shares.

// syncLive fetches [checkpoint - overlap, now - lag] (in slices, oldest first, when the
// checkpoint is far behind) and moves the checkpoint after each slice is stored.
func (s *Syncer) syncLive(ctx context.Context) error {
	s.mu.Lock()
	s.liveBusy = true
	s.mu.Unlock()
	s.publish(ctx)
	defer func() {
		s.mu.Lock()
		s.liveBusy = false
		s.mu.Unlock()
	}()

	st, err := s.store.State(ctx)
	if err != nil {
		return err
	}
	now := s.clock.Now().UTC()
	end := now.Add(-s.cfg.Lag)
	var from, liveStart time.Time
	if st.SyncedUpTo.IsZero() {
		// First window: from now - overlap. The backfill ends exactly there (its target's To
		// is LiveStart): both closed windows hold that instant, so the two together leave no
		// gap whatever the API's bounds mean (wiz.Window), and the id dedup absorbs the overlap.
		liveStart = now.Add(-s.cfg.Overlap)
		from = liveStart
	} else {
		// The next window starts an overlap before the last one's end (the checkpoint), also
		// after a restart: late arrivals and the cut instant are fetched again and deduplicated.
		from = st.SyncedUpTo.Add(-s.cfg.Overlap)
	}
	from = maxTime(from, now.Add(-wiz.Retention)) // older entries are gone from Wiz anyway
	if !from.Before(end) {
		return nil
	}
	noErr := ""
	for from.Before(end) {
		to := minTime(from.Add(s.cfg.Slice), end)
		if _, err := s.fetchRange(ctx, wiz.Window{After: from, Before: to}, false); err != nil {
			return err
		}
		// to, not the newest entry seen: the whole closed window is stored, so the cache holds
		// everything up to it even when nothing happened. The checkpoint never moves back
		// (a catch-up slice shorter than the overlap, or a clock stepped backwards).
		if err := s.setState(ctx, store.Update{SyncedUpTo: maxTime(to, st.SyncedUpTo), LiveStart: liveStart,
			LastSyncAt: s.clock.Now().UTC(), LastError: &noErr}); err != nil {
			return err
		}
		from = to // the next catch-up slice shares the instant to (closed windows)
	}
	return nil
}

// fetchRange fetches a closed window and every window a split of it needs until no fetch
// reaches the result cap. Splits are fetched newer part first. It returns the number of
// entries received.
//
// Every cut is closed on both sides and shares its cut instant with its neighbour: the
// instant is fetched twice, which the client's widened bounds (wiz.Window) make safe under
// any bound semantics, and the cache's id dedup absorbs. Nothing here relies on whether the
// API's bounds are inclusive.
//
// Termination: every window pushed is strictly narrower than the one it replaces (a cap
// continuation ends at a timestamp strictly inside it; each half of a midpoint split is
// narrower when the window is at least 2µs wide), and a window under 2µs is never split. A
// cap continuation also moves to a strictly older (newer) entry timestamp each time, and
// midpoint splits halve, so the work is bounded by the window's distinct timestamps plus
// about log2(width/2µs) levels of halving.
func (s *Syncer) fetchRange(ctx context.Context, w wiz.Window, backfill bool) (int, error) {
	stack := []wiz.Window{w}
	total := 0
	for len(stack) > 0 {
		win := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		res, err := s.fetchWindow(ctx, win)
		total += res.Entries
		if err != nil {
			return total, err
		}
		if !res.Truncated {
			continue
		}
		s.mSplits.Inc()
		rest, done := capRest(win, res)
		if done {
			continue
		}
		if rest == nil {
			// More than ResultCap entries within a microsecond: no filter can page past them
			// (nor, under some bound semantics, reach the entries a microsecond beside them).
			msg := fmt.Sprintf("more than %d audit entries at %s: the API cannot return them all",
				wiz.ResultCap, win.After.Format(time.RFC3339Nano))
			s.log.Error(msg)
			s.mu.Lock()
			s.capNotice = msg
			s.mu.Unlock()
			continue
		}
		s.log.Debug("window reached the result cap; splitting", "after", win.After, "before", win.Before,
			"order", res.Order, "backfill", backfill)
		stack = append(stack, rest...) // the newest part is on top
	}
	return total, nil
}

// capRest is what is left to fetch of a window whose result reached the cap, oldest first;
// done when nothing is, nil when the window cannot be split (under 2µs wide).
//
// A result in a known order is complete from one end of the window down (or up) to its last
// timestamp O. If O lies beyond the window's other end (an entry the widened bounds brought
// in), the window is complete. Else the rest is [After, O] (or [O, Before]): O itself is
// fetched again, since entries tied at O may have been cut. That is taken only when it is
// strictly narrower than the window; otherwise, and for an unknown order, the window is
// split at its midpoint into [After, mid] and [mid, Before].
func capRest(win wiz.Window, res wiz.WindowResult) (rest []wiz.Window, done bool) {
	switch res.Order {
	case wiz.OrderNewestFirst:
		if res.Oldest.Before(win.After) {
			return nil, true
		}
		if res.Oldest.Before(win.Before) {
			return []wiz.Window{{After: win.After, Before: res.Oldest}}, false
		}
	case wiz.OrderOldestFirst:
		if res.Newest.After(win.Before) {
			return nil, true
		}
		if res.Newest.After(win.After) {
			return []wiz.Window{{After: res.Newest, Before: win.Before}}, false
		}
	}
	if win.Before.Sub(win.After) < 2*time.Microsecond {
		return nil, false
	}
	mid := win.After.Add(win.Before.Sub(win.After) / 2)
	return []wiz.Window{{After: win.After, Before: mid}, {After: mid, Before: win.Before}}, false
}

// fetchWindow pages one window into the cache, a transaction per page.
func (s *Syncer) fetchWindow(ctx context.Context, w wiz.Window) (wiz.WindowResult, error) {
	res, err := s.src.AuditLog(ctx, w, s.cfg.PageSize, func(page []auditlog.Entry) error {
		n, err := s.store.Apply(ctx, page, store.Update{})
		if err != nil {
			return fmt.Errorf("store a page in the cache: %w", err)
		}
		s.mEvents.Add(float64(n))
		return nil
	})
	outcome := "ok"
	if err != nil {
		outcome = wiz.KindOf(err).String()
		if ctx.Err() != nil {
			outcome = "canceled"
		}
	}
	s.mRequests.WithLabelValues("window", outcome).Inc()
	s.mRequests.WithLabelValues("page", "ok").Add(float64(res.Pages))
	if err != nil {
		s.mRequests.WithLabelValues("page", outcome).Inc()
	}
	return res, err
}
