package query

import (
	"context"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// Request is one query with what Grafana sends along with it.
type Request struct {
	Query         Query
	From, To      time.Time     // the panel's time range, both ends inclusive
	Interval      time.Duration // Grafana's intervalMs; 0 when unknown
	MaxDataPoints int64         // 0 when unknown
	RefID         string
	ForAlert      bool // an alert rule asks: frames that Grafana's expressions read (see termsFrame)
}

// Freshness is what the syncer knows about how complete the cache is; Run turns it into
// frame notices.
type Freshness struct {
	SyncedUpTo   time.Time // the live checkpoint; zero before the first sync completed
	BackfillFrom time.Time // backfill covers the cache from here on; zero if no backfill configured or unknown
	BackfillDone bool
	SyncError    string // the last sync error, "" while syncing works
	// StaleAfter is how far behind the range's end the checkpoint may be before the notice
	// is a warning rather than information (default 5 minutes).
	StaleAfter time.Duration
}

// Store is what the engine reads: typed reads whose filters the engine has resolved to plain
// value lists (see read.Filter). A store answers each from whatever it keeps (rollup tables,
// indexes, the events), always exactly; the engine never sees its schema. The SQLite cache
// and the PostgreSQL store implement it. A read of a closed store fails.
type Store interface {
	// Events returns the events of [from, to] that match f, newest first (ties by id,
	// descending, so pages are stable), at most limit; Raw only when withRaw.
	Events(ctx context.Context, f read.Filter, from, to time.Time, limit int, withRaw bool) ([]read.Event, error)
	// Counts calls add with the number of events of [from, to] matching f per bucket index
	// and groupBy value ("" for all when groupBy is ""), possibly several times for one pair
	// (the sums count).
	Counts(ctx context.Context, f read.Filter, from, to time.Time, groupBy string, b read.Buckets, add func(group string, bucket, n int64)) error
	// Values lists the distinct non-empty values of field among the events matching f (all
	// time), sorted, those starting with prefix (ASCII-case-insensitive), at most limit.
	Values(ctx context.Context, field string, f read.Filter, prefix string, limit int) ([]string, error)
	// Distinct lists every value of field, the empty one included, in any order.
	Distinct(ctx context.Context, field string) ([]string, error)
	// NewTerms lists the combinations of fields' values among the events matching f whose
	// earliest event in [since, to] is in [from, to], with their first sight and count in
	// [from, to]: newest first sight first, then by the values; at most limit.
	NewTerms(ctx context.Context, fields []string, f read.Filter, since, from, to time.Time, limit int) ([]read.Term, error)
}

// Engine runs queries against a Store. It is safe for concurrent use.
type Engine struct {
	store Store
	now   func() time.Time
}

// NewEngine returns an engine reading from s.
func NewEngine(s Store) *Engine {
	return &Engine{store: s, now: time.Now}
}

// Run answers one query. A *Error is the user's mistake (a bad time range); any other error
// is the store's or the plugin's. The frames carry freshness notices (see Freshness).
func (e *Engine) Run(ctx context.Context, r Request, f Freshness) (data.Frames, error) {
	q := r.Query
	if q.Type == "" {
		q.Type = TypeLogs
	}
	if q.Type != TypeValues {
		if r.From.IsZero() || r.To.IsZero() {
			return nil, errorf("", "the query has no time range")
		}
		if r.To.Before(r.From) {
			return nil, errorf("", "the time range ends (%s) before it starts (%s)", rfc(r.To), rfc(r.From))
		}
	}
	// Limits were defaulted by Parse; a Query built by hand gets them here.
	if err := q.validate(); err != nil {
		return nil, err
	}
	if err := e.resolve(ctx, &q); err != nil {
		return nil, err
	}
	var frames data.Frames
	var err error
	switch q.Type {
	case TypeLogs:
		frames, err = e.logs(ctx, &q, r)
	case TypeTable:
		frames, err = e.table(ctx, &q, r)
	case TypeTimeSeries:
		frames, err = e.timeSeries(ctx, &q, r)
	case TypeTop:
		frames, err = e.top(ctx, &q, r)
	case TypeNewTerms:
		frames, err = e.newTerms(ctx, &q, r)
	case TypeValues:
		var vals []string
		vals, err = e.store.Values(ctx, q.Field, q.filter(q.Field), "", q.Limit)
		if err == nil {
			frames = data.Frames{valuesFrame(r.RefID, vals)}
		}
	default:
		return nil, errorf("queryType", "unknown queryType %q", q.Type)
	}
	if err != nil {
		return nil, err
	}
	addNotices(frames, &q, r, f, e.now())
	return frames, nil
}

// Values lists the distinct values of field in the whole cache (not bound to a time range),
// sorted, at most limit (1 to MaxValuesLimit; 0 means DefaultValuesLimit) of them, the ones
// starting with prefix (case-insensitive) when prefix is not empty, never the empty value.
// filters' filters apply but its positive list on field itself (a dropdown lists every
// choice; negations and ad-hoc filters on field do apply); its Type, GroupBy, Field and Limit
// are ignored.
func (e *Engine) Values(ctx context.Context, field, prefix string, limit int, filters Query) ([]string, error) {
	if _, ok := fieldColumns[field]; !ok {
		return nil, errorf("field", "unknown field %q: use one of %s", clip(field, 64), joinFields())
	}
	if limit == 0 {
		limit = DefaultValuesLimit
	}
	if limit < 1 || limit > MaxValuesLimit {
		return nil, errorf("limit", "limit %d is out of range: 1 to %d", limit, MaxValuesLimit)
	}
	q := filters
	q.Type, q.GroupBy, q.Field, q.Limit, q.prefixes = TypeValues, "", field, limit, nil
	if err := q.validate(); err != nil {
		return nil, err
	}
	if err := e.resolve(ctx, &q); err != nil {
		return nil, err
	}
	return e.store.Values(ctx, field, q.filter(field), prefix, limit)
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func joinFields() string {
	s := ""
	for i, f := range fieldNames {
		if i > 0 {
			s += ", "
		}
		s += f
	}
	return s
}
