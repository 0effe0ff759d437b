package query

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// A newTerms query lists the combinations of its fields seen in the range [from, to] but never
// in the lookback window [from - lookback, from) before it, newest first sight first.
//
// A combination is new exactly when its earliest event in [from - lookback, to] is at or after
// from: its count and first sight over that span are then those of the range. The events
// answer that directly (one pass over the lookback and the range); rollup_terms_daily (see the
// cache's schema, step 6) answers it from whole days: a day's first and last timestamp per
// combination tell on which side of from, or of the window's start, it has events. It reads
// the range's days first, then checks the few candidates against the window's days.

const (
	DefaultLookback = 30 * 24 * time.Hour
	MaxLookback     = 365 * 24 * time.Hour
	MaxTermsFields  = 3
)

// termRow is one new combination.
type termRow struct {
	vals      []string
	firstSeen int64
	count     int64
}

const day = int64(24 * time.Hour)

func (e *Engine) newTerms(ctx context.Context, db *sql.DB, q *Query, r Request) (data.Frames, error) {
	rows, ok, err := e.newTermsRollup(ctx, db, q, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		if rows, err = e.newTermsEvents(ctx, db, q, r); err != nil {
			return nil, err
		}
	}
	return data.Frames{termsFrame(q, r, rows)}, nil
}

func termCols(q *Query) string {
	cols := make([]string, len(q.Fields))
	for i, f := range q.Fields {
		cols[i] = fieldColumns[f]
	}
	return strings.Join(cols, ", ")
}

// termsOrder: newest first sight first, then by the values.
func termsOrder(q *Query, firstSeen string) string {
	s := " ORDER BY " + firstSeen + " DESC"
	for i := range q.Fields {
		s += ", " + string(rune('1'+i))
	}
	return s
}

func (e *Engine) newTermsEvents(ctx context.Context, db *sql.DB, q *Query, r Request) ([]termRow, error) {
	var w where
	w.timeRange(r.From.Add(-q.Lookback), r.To)
	w.filters(q, filterOpts{})
	cols := termCols(q)
	stmt := `SELECT ` + cols + `, min(ts), count(*), 0 FROM ` + w.from() + ` WHERE ` + w.sql() +
		` GROUP BY ` + cols + ` HAVING min(ts) >= ?` + termsOrder(q, "min(ts)") + ` LIMIT ?`
	return scanTerms(ctx, db, q, stmt, append(w.args, r.From.UnixNano(), q.Limit), r.To.UnixNano())
}

// newTermsRollup answers from rollup_terms_daily when it can be exact: a complete rollup, no
// search, the window's start on an earlier UTC day than the range's, and no returned
// combination with events after the range's end on its last day (its count would include
// them). ok is false otherwise.
func (e *Engine) newTermsRollup(ctx context.Context, db *sql.DB, q *Query, r Request) (rows []termRow, ok bool, err error) {
	s, err := e.schema(ctx, db)
	if err != nil || !s.terms || q.Search != "" {
		return nil, false, err
	}
	t0, from, to := r.From.Add(-q.Lookback).UnixNano(), r.From.UnixNano(), r.To.UnixNano()
	if t0 < 0 || t0/day >= from/day {
		return nil, false, nil
	}
	var pending bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM terms_pending)`).Scan(&pending); err != nil {
		return nil, false, queryErr("new terms", err)
	}
	if pending {
		return nil, false, nil
	}
	d0, d1 := t0/day, from/day
	var in, before where
	in.add("day >= ? AND day <= ?", d1, to/day)
	in.filters(q, filterOpts{})
	before.add("day >= ? AND day < ? AND (day > ? OR last_ts >= ?)", d0, d1, d0, t0)
	before.filters(q, filterOpts{})
	cols := termCols(q)
	// The candidates come from the range's days (few rows): none may have an event on d1
	// before from. Then none may have one in the window's other days: whole days between d0
	// and d1, and on d0 an event at last_ts >= t0.
	stmt := `WITH cand AS (SELECT ` + cols + `, min(first_ts) AS first_seen, sum(n) AS cnt, max(last_ts) AS last
			FROM rollup_terms_daily WHERE ` + in.sql() + ` GROUP BY ` + cols + `
			HAVING max(day = ? AND first_ts < ?) = 0 AND last >= ? AND first_seen <= ?)
		SELECT * FROM cand WHERE (` + cols + `) NOT IN (SELECT ` + cols + ` FROM rollup_terms_daily WHERE ` + before.sql() + `)` +
		termsOrder(q, "first_seen") + ` LIMIT ?`
	args := append(in.args, d1, from, from, to)
	args = append(args, before.args...)
	args = append(args, q.Limit)
	rows, err = scanTerms(ctx, db, q, stmt, args, to)
	if err != nil {
		return nil, false, err
	}
	for _, row := range rows {
		if row.count < 0 { // scanTerms marks a combination with events after to
			return nil, false, nil
		}
	}
	return rows, true, nil
}

// scanTerms reads rows of the fields' values, first sight, count and last timestamp (0 when
// not known); a last timestamp after the range marks the count as not exact (-1).
func scanTerms(ctx context.Context, db *sql.DB, q *Query, stmt string, args []any, to int64) ([]termRow, error) {
	rs, err := db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, queryErr("new terms", err)
	}
	defer rs.Close()
	var out []termRow
	for rs.Next() {
		row := termRow{vals: make([]string, len(q.Fields))}
		var last int64
		dest := make([]any, 0, len(q.Fields)+3)
		for i := range row.vals {
			dest = append(dest, &row.vals[i])
		}
		dest = append(dest, &row.firstSeen, &row.count, &last)
		if err := rs.Scan(dest...); err != nil {
			return nil, queryErr("new terms", err)
		}
		if last > to {
			row.count = -1
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		return nil, queryErr("new terms", err)
	}
	return out, nil
}

// termsFrame is one frame: a string column per field, firstSeen and count. For an alert rule,
// a numeric-long frame without firstSeen: Grafana's expressions turn the string columns and
// the one number into a labelled number per combination.
func termsFrame(q *Query, r Request, rows []termRow) *data.Frame {
	f := data.NewFrame(r.RefID)
	for i, name := range q.Fields {
		vals := make([]string, len(rows))
		for j, row := range rows {
			vals[j] = row.vals[i]
		}
		f.Fields = append(f.Fields, data.NewField(name, nil, vals))
	}
	seen := make([]time.Time, len(rows))
	counts := make([]int64, len(rows))
	for j, row := range rows {
		seen[j], counts[j] = time.Unix(0, row.firstSeen).UTC(), row.count
	}
	if !r.ForAlert {
		f.Fields = append(f.Fields, data.NewField("firstSeen", nil, seen))
	}
	f.Fields = append(f.Fields, data.NewField("count", nil, counts))
	f.RefID = r.RefID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTable}
	if r.ForAlert {
		f.Meta = &data.FrameMeta{Type: data.FrameTypeNumericLong, TypeVersion: data.FrameTypeVersion{0, 1}}
	}
	return f
}
