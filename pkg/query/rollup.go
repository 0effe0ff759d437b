package query

import (
	"context"
	"database/sql"
	"time"
)

// The cache keeps, through triggers on the events table (see the cache's schema):
//   - rollup_hourly(hour, action, status, principal_type, principal, principal_id, n): event
//     counts per UTC hour (ts / 1 h) and per combination of those dimensions;
//   - rollup_values(field, value, n): how many events carry each source IP and user agent.
//
// Counting queries use rollup_hourly for the whole hours of their range when no filter or
// grouping needs what it lacks (search, source IPs, user agents); the partial hours at the two
// ends, and every other query, read the events table.

// rollupSchema says which rollup tables a database has (a file migrated by an older build
// may have none); it is read once per pool.
type rollupSchema struct {
	hourly, values, kind, daily bool
	search                      bool // events_search and search_pending (see search.go)
	terms                       bool // rollup_terms_daily and terms_pending (see newterms.go)
}

func (e *Engine) schema(ctx context.Context, db *sql.DB) (rollupSchema, error) {
	s, err := e.loadSchema(ctx, db)
	if e.noRollup {
		s = rollupSchema{search: s.search}
	}
	return s, err
}

func (e *Engine) loadSchema(ctx context.Context, db *sql.DB) (rollupSchema, error) {
	if s, ok := e.schemas.Load(db); ok {
		return s.(rollupSchema), nil
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('rollup_hourly', 'rollup_values', 'rollup_hourly_kind', 'rollup_daily', 'events_search', 'search_pending', 'rollup_terms_daily', 'terms_pending')`)
	if err != nil {
		return rollupSchema{}, queryErr("read schema", err)
	}
	defer rows.Close()
	var s rollupSchema
	searchPending, termsPending := false, false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return rollupSchema{}, queryErr("read schema", err)
		}
		switch name {
		case "rollup_hourly":
			s.hourly = true
		case "rollup_values":
			s.values = true
		case "rollup_hourly_kind":
			s.kind = true
		case "rollup_daily":
			s.daily = true
		case "events_search":
			s.search = true
		case "search_pending":
			searchPending = true
		case "rollup_terms_daily":
			s.terms = true
		case "terms_pending":
			termsPending = true
		}
	}
	if err := rows.Err(); err != nil {
		return rollupSchema{}, queryErr("read schema", err)
	}
	s.search = s.search && searchPending
	s.terms = s.terms && termsPending
	e.schemas.Store(db, s)
	return s, nil
}

// rollupDims are the fields rollup_hourly can group and filter on.
var rollupDims = map[string]bool{"": true, FieldAction: true, FieldStatus: true, FieldPrincipal: true, FieldPrincipalType: true}

// rollupable reports whether rollup_hourly has everything q filters (with o) or groups on.
func rollupable(q *Query, o filterOpts, field string) bool {
	if q.Search != "" || !rollupDims[field] {
		return false
	}
	for _, c := range q.condsFor(o) {
		if !rollupDims[c.field] {
			return false
		}
	}
	return true
}

// byPrincipal reports whether one of q's conds (with o) reads the principal.
func byPrincipal(q *Query, o filterOpts) bool {
	for _, c := range q.condsFor(o) {
		if c.field == FieldPrincipal {
			return true
		}
	}
	return false
}

// segment is a run of whole units [from, to) of a rollup table (unit: an hour or a day).
type segment struct {
	table    string
	unitExpr string // the unit column
	unit     int64  // its width in ns
	from, to int64
}

// plan is how a counting query splits its range: segments answered from rollup tables, and
// the partial hours at the ends (edges, inclusive ranges) from the events.
type plan struct {
	segments []segment
	edges    [][2]time.Time
}

// kindDims are the fields rollup_hourly_kind can group and filter on.
var kindDims = map[string]bool{"": true, FieldAction: true, FieldStatus: true, FieldPrincipalType: true}

// rollupPlan returns nil when the query must read the events table alone. Otherwise: whole
// days from rollup_daily (when the buckets are whole days and the query needs the principal),
// the remaining whole hours from rollup_hourly_kind (when it does not need the principal) or
// rollup_hourly, the partial hours at the ends from the events.
func (e *Engine) rollupPlan(ctx context.Context, db *sql.DB, q *Query, r Request, iv time.Duration) (*plan, error) {
	if !rollupable(q, filterOpts{}, q.GroupBy) || (iv != 0 && iv%time.Hour != 0) {
		return nil, nil
	}
	s, err := e.schema(ctx, db)
	if err != nil || !s.hourly {
		return nil, err
	}
	const h, d = int64(time.Hour), int64(24 * time.Hour)
	from, to := r.From.UnixNano(), r.To.UnixNano()
	if from < 0 {
		return nil, nil
	}
	fromHour := (from + h - 1) / h // first hour that starts inside the range
	toHour := (to + 1) / h         // hours before this one end inside the range
	if toHour-fromHour < 2 {
		return nil, nil // nothing worth it
	}
	p := &plan{}
	if from < fromHour*h {
		p.edges = append(p.edges, [2]time.Time{r.From, time.Unix(0, fromHour*h-1)})
	}
	if toHour*h <= to {
		p.edges = append(p.edges, [2]time.Time{time.Unix(0, toHour*h), r.To})
	}
	narrow := s.kind && !byPrincipal(q, filterOpts{}) && kindDims[q.GroupBy]
	hourly := func(a, b int64) {
		if a >= b {
			return
		}
		t := "rollup_hourly"
		if narrow {
			t = "rollup_hourly_kind"
		}
		p.segments = append(p.segments, segment{table: t, unitExpr: "hour", unit: h, from: a, to: b})
	}
	fromDay := (fromHour*h + d - 1) / d
	toDay := toHour * h / d
	if narrow || !s.daily || (iv != 0 && iv%(24*time.Hour) != 0) || toDay-fromDay < 1 {
		hourly(fromHour, toHour)
		return p, nil
	}
	hourly(fromHour, fromDay*24)
	p.segments = append(p.segments, segment{table: "rollup_daily", unitExpr: "day", unit: d, from: fromDay, to: toDay})
	hourly(toDay*24, toHour)
	return p, nil
}

// values lists the distinct values of field (see Engine.Values).
func (e *Engine) values(ctx context.Context, db *sql.DB, field, prefix string, limit int, q *Query) ([]string, error) {
	col := fieldColumns[field]
	s, err := e.schema(ctx, db)
	if err != nil {
		return nil, err
	}
	opts := filterOpts{skipField: field}
	var w where
	table := "events"
	switch {
	case s.values && (field == FieldSourceIP || field == FieldUserAgent) && onlyOn(q, opts, field):
		table = "rollup_values"
		opts.asValue = true
		w.add("field = ?", col)
		col = "value"
		w.filters(q, opts)
	case s.hourly && rollupable(q, opts, field):
		// The smallest rollup that has the field and the filters.
		table = "rollup_hourly"
		if s.kind && kindDims[field] && !byPrincipal(q, opts) {
			table = "rollup_hourly_kind"
		} else if s.daily {
			table = "rollup_daily"
		}
		w.filters(q, opts)
	default:
		w.filters(q, opts)
		table = w.from()
	}
	w.add(col + " != ''") // the empty value is no choice
	if prefix != "" {
		w.add("substr(lower("+col+"), 1, length(?)) = lower(?)", prefix, prefix)
	}
	stmt := `SELECT DISTINCT ` + col + ` FROM ` + table + ` WHERE ` + w.sql() + ` ORDER BY 1 LIMIT ?`
	rows, err := db.QueryContext(ctx, stmt, append(w.args, limit)...)
	if err != nil {
		return nil, queryErr("list values", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, queryErr("list values", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, queryErr("list values", err)
	}
	return out, nil
}

// onlyOn reports whether q filters (with o) on nothing but field.
func onlyOn(q *Query, o filterOpts, field string) bool {
	for _, c := range q.condsFor(o) {
		if c.field != field {
			return false
		}
	}
	return q.Search == ""
}

// distinct lists every value of field in the cache: from rollup_values for source IPs and
// user agents, by walking the field's index (one seek per value) for the others.
func (e *Engine) distinct(ctx context.Context, db *sql.DB, field string) ([]string, error) {
	s, err := e.schema(ctx, db)
	if err != nil {
		return nil, err
	}
	col := fieldColumns[field]
	var stmt string
	switch {
	case field == FieldPrincipalType:
		// No index; the decoder writes only these.
		return []string{"", "serviceAccount", "user"}, nil
	case field == FieldSourceIP || field == FieldUserAgent:
		stmt = `SELECT DISTINCT ` + col + ` FROM events`
		if s.values {
			stmt = `SELECT value FROM rollup_values WHERE field = '` + col + `'`
		}
	default:
		stmt = `WITH RECURSIVE v(x) AS (SELECT min(` + col + `) FROM events
			UNION ALL SELECT (SELECT min(` + col + `) FROM events WHERE ` + col + ` > v.x) FROM v WHERE v.x IS NOT NULL)
			SELECT x FROM v WHERE x IS NOT NULL`
	}
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return nil, queryErr("list values", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, queryErr("list values", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
