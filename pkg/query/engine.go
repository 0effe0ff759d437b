package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
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

// Engine runs queries against a cache's read-only pool. It is safe for concurrent use.
type Engine struct {
	db      func() *sql.DB
	now     func() time.Time
	schemas sync.Map // *sql.DB → rollupSchema

	noRollup            bool // tests: read the events table only
	noSearchIndex       bool // tests: search by scanning, never through the search index
	maxSearchCandidates int  // 0: DefaultMaxSearchCandidates
}

// NewEngine returns an engine reading from db.
func NewEngine(db *sql.DB) *Engine {
	return NewEngineFunc(func() *sql.DB { return db })
}

// NewEngineFunc returns an engine that asks db for the pool on every query, so that it
// follows a cache whose read pool is replaced (cache.(*Cache).ReadDB after TryPromote).
func NewEngineFunc(db func() *sql.DB) *Engine {
	return &Engine{db: db, now: time.Now}
}

// ErrNoCache is returned when the engine has no database to read (the cache is closed).
var ErrNoCache = errors.New("the cache is not open")

func (e *Engine) pool() (*sql.DB, error) {
	db := e.db()
	if db == nil {
		return nil, ErrNoCache
	}
	return db, nil
}

// Run answers one query. A *Error is the user's mistake (a bad time range); any other error
// is the cache's or the plugin's. The frames carry freshness notices (see Freshness).
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
	db, err := e.pool()
	if err != nil {
		return nil, err
	}
	if err := e.prepare(ctx, db, &q); err != nil {
		return nil, err
	}
	var frames data.Frames
	switch q.Type {
	case TypeLogs:
		frames, err = e.logs(ctx, db, &q, r)
	case TypeTable:
		frames, err = e.table(ctx, db, &q, r)
	case TypeTimeSeries:
		frames, err = e.timeSeries(ctx, db, &q, r)
	case TypeTop:
		frames, err = e.top(ctx, db, &q, r)
	case TypeNewTerms:
		frames, err = e.newTerms(ctx, db, &q, r)
	case TypeValues:
		var vals []string
		vals, err = e.values(ctx, db, q.Field, "", q.Limit, &q)
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
	db, err := e.pool()
	if err != nil {
		return nil, err
	}
	if err := e.prepare(ctx, db, &q); err != nil {
		return nil, err
	}
	return e.values(ctx, db, field, prefix, limit, &q)
}

// prepare reads what q's statements need once: the search candidates and the resolved filters.
func (e *Engine) prepare(ctx context.Context, db *sql.DB, q *Query) error {
	if err := e.planSearch(ctx, db, q); err != nil {
		return err
	}
	return e.resolve(ctx, db, q)
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

// queryErr wraps a database error with what was being done, keeping context errors visible
// to errors.Is.
func queryErr(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}
