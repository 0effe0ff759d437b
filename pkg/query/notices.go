package query

import (
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// DefaultStaleAfter is Freshness.StaleAfter's default.
const DefaultStaleAfter = 5 * time.Minute

// Notices says, as frame notices, where the cache may not hold everything the query asked
// for, so a user never mistakes "not synced yet" for "nothing happened":
//   - the range reaches past the sync checkpoint (information while the gap is within
//     StaleAfter, which is the normal lag of polling; a warning beyond);
//   - nothing has been synced yet;
//   - the range starts before what the backfill has covered so far (a warning while the
//     backfill runs; information once it is done, since older events are never fetched);
//   - a newTerms lookback starts before the backfill's start (its "new" may be old);
//   - the sync is failing.
//
// A values query is not bound to a time range: it only gets the last two.
func Notices(q *Query, r Request, f Freshness, now time.Time) []data.Notice {
	var out []data.Notice
	add := func(sev data.NoticeSeverity, format string, args ...any) {
		out = append(out, data.Notice{Severity: sev, Text: fmt.Sprintf(format, args...)})
	}
	stale := f.StaleAfter
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	ranged := q.Type != TypeValues
	switch {
	case f.SyncedUpTo.IsZero():
		add(data.NoticeSeverityWarning, "the cache has not completed its first sync yet: events are not shown until it has")
	case ranged && r.To.After(f.SyncedUpTo):
		// The end of the range is usually "now", and the cache always trails it by up to a
		// poll interval; say so plainly, and warn when it trails by more.
		sev := data.NoticeSeverityInfo
		end := r.To
		if end.After(now) {
			end = now
		}
		if end.Sub(f.SyncedUpTo) > stale {
			sev = data.NoticeSeverityWarning
		}
		add(sev, "the cache is synced up to %s; newer events are not shown yet", rfc(f.SyncedUpTo))
	}
	if ranged && !f.BackfillFrom.IsZero() && r.From.Before(f.BackfillFrom) {
		if f.BackfillDone {
			add(data.NoticeSeverityInfo, "the cache holds events from %s on; older events were not fetched (see the data source's backfill start)", rfc(f.BackfillFrom))
		} else {
			add(data.NoticeSeverityWarning, "the backfill has covered events from %s on so far; older events in the range are not shown yet", rfc(f.BackfillFrom))
		}
	}
	if q.Type == TypeNewTerms && !f.BackfillFrom.IsZero() && r.From.Add(-q.Lookback).Before(f.BackfillFrom) {
		add(data.NoticeSeverityWarning, "the lookback starts at %s, before the cache's events (from %s on): a term seen only before then is listed as new", rfc(r.From.Add(-q.Lookback)), rfc(f.BackfillFrom))
	}
	if f.SyncError != "" {
		add(data.NoticeSeverityWarning, "syncing with Wiz is failing (%s): recent events may be missing", clip(f.SyncError, 300))
	}
	return out
}

// addNotices puts the notices on the first frame (a time series answer is many frames, one
// per series: one copy is enough).
func addNotices(frames data.Frames, q *Query, r Request, f Freshness, now time.Time) {
	ns := Notices(q, r, f, now)
	if len(ns) == 0 || len(frames) == 0 {
		return
	}
	fr := frames[0]
	if fr.Meta == nil {
		fr.Meta = &data.FrameMeta{}
	}
	fr.Meta.Notices = append(fr.Meta.Notices, ns...)
}
