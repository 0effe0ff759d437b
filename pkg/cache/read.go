package cache

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// The query engine's reads (query.Store), answered from the read pool. The file's schema is
// this build's (the read pool opens nothing else), so every table exists: the rollups both
// stores keep (see read.CountPlan), rollup_terms_daily for new terms (complete once
// terms_pending is empty), and events_search, the trigram search index, with search_pending
// (see read_search.go).

// ReadOptions choose how the reads are answered; the zero value is what ships. Tests compare
// the paths.
type ReadOptions struct {
	NoRollup      bool // read the events table only
	NoSearchIndex bool // search by scanning, never through the search index
	// MaxSearchCandidates bounds the candidates (index hits plus queued events) for which a
	// search looks events up by rowid; beyond it, walking the range is faster (0:
	// DefaultMaxSearchCandidates).
	MaxSearchCandidates int
	// Trace, when set, is called with the table each statement reads.
	Trace func(table string)
}

// DefaultMaxSearchCandidates is ReadOptions.MaxSearchCandidates' default: a needle found in a
// large share of the events, or a queue not drained yet after an upgrade, walks the range.
const DefaultMaxSearchCandidates = 50_000

// Reader answers the query engine's reads with options. Cache's own read methods use the zero
// options.
type Reader struct {
	c *Cache
	o ReadOptions
}

// Reader returns the cache's reads with o.
func (c *Cache) Reader(o ReadOptions) *Reader { return &Reader{c: c, o: o} }

// Events: see query.Store.
func (c *Cache) Events(ctx context.Context, f read.Filter, from, to time.Time, limit int, withRaw bool) ([]read.Event, error) {
	return c.Reader(ReadOptions{}).Events(ctx, f, from, to, limit, withRaw)
}

// Counts: see query.Store.
func (c *Cache) Counts(ctx context.Context, f read.Filter, from, to time.Time, groupBy string, b read.Buckets, add func(string, int64, int64)) error {
	return c.Reader(ReadOptions{}).Counts(ctx, f, from, to, groupBy, b, add)
}

// Values: see query.Store.
func (c *Cache) Values(ctx context.Context, field string, f read.Filter, prefix string, limit int) ([]string, error) {
	return c.Reader(ReadOptions{}).Values(ctx, field, f, prefix, limit)
}

// Distinct: see query.Store.
func (c *Cache) Distinct(ctx context.Context, field string) ([]string, error) {
	return c.Reader(ReadOptions{}).Distinct(ctx, field)
}

// NewTerms: see query.Store.
func (c *Cache) NewTerms(ctx context.Context, fields []string, f read.Filter, since, from, to time.Time, limit int) ([]read.Term, error) {
	return c.Reader(ReadOptions{}).NewTerms(ctx, fields, f, since, from, to, limit)
}

// db is the read pool; ask per read (TryPromote may replace it).
func (r *Reader) db() (*sql.DB, error) {
	db := r.c.ReadDB()
	if db == nil {
		return nil, ErrClosed
	}
	return db, nil
}

func (r *Reader) trace(table string) {
	if r.o.Trace != nil {
		r.o.Trace(table)
	}
}

// readErr wraps a database error with what was being done, keeping context errors visible
// to errors.Is.
func readErr(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}

// where collects SQL conditions and their bound arguments. Conditions are fixed text from this
// file (column names from read.Columns); every value a user wrote is an argument.
type where struct {
	conds []string
	args  []any

	byRowid bool // a condition reads the search index's candidates: see from
}

// from is the table the conditions read. With search index candidates it is the events
// table without its indexes, so that SQLite looks the few candidates up by rowid rather
// than walking a time or action index through millions of entries and testing each.
func (w *where) from() string {
	if w.byRowid {
		return "events NOT INDEXED"
	}
	return "events"
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return "1"
	}
	return strings.Join(w.conds, " AND ")
}

func jsonArray(vals []string) string {
	b, _ := json.Marshal(vals) // strings always marshal
	return string(b)
}

// timeRange bounds ts to [from, to], both inclusive.
func (w *where) timeRange(from, to time.Time) {
	w.add("ts >= ? AND ts <= ?", from.UnixNano(), to.UnixNano())
}

// filters adds f's conds and its search (with candidates: see search); in rollup_values,
// valueField's column is named value.
func (w *where) filters(f read.Filter, candidates, valueField string) {
	for _, c := range f.Conds {
		col := read.Columns[c.Field]
		if c.Field == valueField {
			col = "value"
		}
		w.cond(col, c)
	}
	if f.Search != "" {
		w.search(f.Search, candidates)
	}
}

func (w *where) cond(col string, c read.Cond) {
	if len(c.Vals) == 0 {
		if !c.Not {
			w.add("0") // a resolved list that matched nothing
		}
		return
	}
	// One value compares plainly; more are a JSON array bound as one argument (no limit on
	// their number, one statement text per shape).
	var expr string
	var args []any
	in := func(col string) {
		if len(c.Vals) == 1 {
			expr += col + " = ?"
			args = append(args, c.Vals[0])
		} else {
			expr += col + " IN (SELECT value FROM json_each(?))"
			args = append(args, jsonArray(c.Vals))
		}
	}
	in(col)
	if c.ByID {
		expr += " OR "
		in("principal_id")
		expr = "(" + expr + ")"
	}
	if c.Not {
		expr = "NOT " + expr
	}
	w.add(expr, args...)
}

// search adds the free-text condition: a case-insensitive (ASCII case folding, as SQLite's
// lower) substring of id, request id, action, principal name, user agent or the action
// parameters' JSON text.
//
// Decoding actionParameters per row is the expensive part, so when the needle can only occur
// in the same form in the raw node (no character JSON escapes or spaces out, nothing that
// spans tokens), a single LIKE over the raw node rules most rows out first. The raw node holds
// every searched field, so the pre-check never drops a match.
//
// With candidates (a JSON array of rowids, see searchCandidates: what the search index finds
// plus the events still waiting to be indexed), only those rows are looked up, by rowid; the
// exact check below stays, so the answer is the same either way.
func (w *where) search(s, candidates string) {
	needle := read.FoldASCII(s)
	if candidates != "" {
		w.byRowid = true
		w.add(`rowid IN (SELECT value FROM json_each(?))`, candidates)
	} else if rawSafe(needle) {
		// LIKE folds ASCII case itself: no lowered copy of every node.
		w.add(`raw LIKE ? ESCAPE '\'`, "%"+likeEscape(needle)+"%")
	}
	w.add(`(instr(lower(id), ?) OR instr(lower(request_id), ?) OR instr(lower(action), ?)
		OR instr(lower(principal), ?) OR instr(lower(user_agent), ?)
		OR instr(lower(json_extract(raw, '$.actionParameters')), ?))`,
		needle, needle, needle, needle, needle, needle)
}

// rawSafe reports whether a needle found in a field's value is necessarily found, byte for
// byte, in the raw node JSON: only characters JSON never escapes and that never sit between
// tokens.
func rawSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '@', c == '+', c == '=', c == '!', c == '~', c == '*', c == '#', c == '$', c == '%', c == '^', c == '(', c == ')', c == ';', c == '?', c == '|', c == '\'':
		default:
			return false
		}
	}
	return s != ""
}

// likeEscape makes s a literal inside a LIKE pattern with ESCAPE '\\'.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// scan runs a statement and calls fn per row with dest filled.
func scan(ctx context.Context, db *sql.DB, what, stmt string, args []any, dest []any, fn func() error) error {
	rows, err := db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return readErr(what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return readErr(what, err)
		}
		if err := fn(); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return readErr(what, err)
	}
	return nil
}

// Events: see query.Store.
func (r *Reader) Events(ctx context.Context, f read.Filter, from, to time.Time, limit int, withRaw bool) ([]read.Event, error) {
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	cand, err := r.searchCandidates(ctx, db, f.Search)
	if err != nil {
		return nil, err
	}
	var w where
	w.timeRange(from, to)
	w.filters(f, cand, "")
	rawCol := "''"
	if withRaw {
		rawCol = "raw"
	}
	stmt := `SELECT id, request_id, action, status, principal, principal_id, principal_type,
		source_ip, user_agent, ts, ` + rawCol + ` FROM ` + w.from() + ` WHERE ` + w.sql() + `
		ORDER BY ts DESC, id DESC LIMIT ?`
	r.trace("events")
	out := make([]read.Event, 0, min(limit, 1024))
	var ev read.Event
	dest := []any{&ev.ID, &ev.RequestID, &ev.Action, &ev.Status, &ev.Principal, &ev.PrincipalID,
		&ev.PrincipalType, &ev.SourceIP, &ev.UserAgent, &ev.TS, &ev.Raw}
	err = scan(ctx, db, "read events", stmt, append(w.args, limit), dest, func() error {
		out = append(out, ev) // Scan gives each row its own Raw
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Counts: see query.Store. The hourly rollups answer where they can, the events otherwise
// (and for the partial hours at both ends).
func (r *Reader) Counts(ctx context.Context, f read.Filter, from, to time.Time, groupBy string, b read.Buckets, add func(string, int64, int64)) error {
	db, err := r.db()
	if err != nil {
		return err
	}
	groupCol := "''"
	if groupBy != "" {
		groupCol = read.Columns[groupBy]
	}
	bucketExpr := func(tsExpr string) (string, []any) {
		if b.Width == 0 {
			return "0", nil
		}
		return "(" + tsExpr + " - ?) / ?", []any{b.First, b.Width}
	}
	var v string
	var bucket, n int64
	dest := []any{&bucket, &v, &n}
	emit := func() error { add(v, bucket, n); return nil }
	var cand string
	rawCount := func(from, to time.Time) error {
		var w where
		w.timeRange(from, to)
		w.filters(f, cand, "")
		be, bargs := bucketExpr("ts")
		stmt := `SELECT ` + be + `, ` + groupCol + `, count(*) FROM ` + w.from() + ` WHERE ` + w.sql() + ` GROUP BY 1, 2`
		r.trace("events")
		return scan(ctx, db, "count events", stmt, append(bargs, w.args...), dest, emit)
	}
	var p *read.Plan
	if !r.o.NoRollup {
		p = read.CountPlan(f, groupBy, from, to, b.Width)
	}
	if p == nil {
		if cand, err = r.searchCandidates(ctx, db, f.Search); err != nil {
			return err
		}
		return rawCount(from, to)
	}
	for _, seg := range p.Segments {
		var w where
		w.add(seg.Unit+" >= ? AND "+seg.Unit+" < ?", seg.From, seg.To)
		w.filters(f, "", "")
		be, bargs := bucketExpr(seg.Unit + " * " + strconv.FormatInt(seg.Width, 10))
		stmt := `SELECT ` + be + `, ` + groupCol + `, sum(n) FROM ` + seg.Table + ` WHERE ` + w.sql() + ` GROUP BY 1, 2`
		r.trace(seg.Table)
		if err := scan(ctx, db, "count events", stmt, append(bargs, w.args...), dest, emit); err != nil {
			return err
		}
	}
	for _, edge := range p.Edges {
		if err := rawCount(edge[0], edge[1]); err != nil {
			return err
		}
	}
	return nil
}

// Values: see query.Store. The smallest table that has the field and the filters answers.
func (r *Reader) Values(ctx context.Context, field string, f read.Filter, prefix string, limit int) ([]string, error) {
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	col := read.Columns[field]
	var w where
	table := "events"
	if !r.o.NoRollup {
		table = read.ValuesTable(field, f)
	}
	switch table {
	case "rollup_values":
		w.add("field = ?", col)
		col = "value"
		w.filters(f, "", field)
	case "events":
		cand, err := r.searchCandidates(ctx, db, f.Search)
		if err != nil {
			return nil, err
		}
		w.filters(f, cand, "")
		table = w.from()
	default:
		w.filters(f, "", "")
	}
	w.add(col + " != ''") // the empty value is no choice
	if prefix != "" {
		w.add("substr(lower("+col+"), 1, length(?)) = lower(?)", prefix, prefix)
	}
	stmt := `SELECT DISTINCT ` + col + ` FROM ` + table + ` WHERE ` + w.sql() + ` ORDER BY 1 LIMIT ?`
	r.trace(strings.TrimSuffix(table, " NOT INDEXED"))
	out := []string{}
	var v string
	err = scan(ctx, db, "list values", stmt, append(w.args, limit), []any{&v}, func() error {
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Distinct: see query.Store. Source IPs and user agents come from rollup_values; the others
// by walking the field's index, one seek per value.
func (r *Reader) Distinct(ctx context.Context, field string) ([]string, error) {
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	col := read.Columns[field]
	var stmt string
	switch {
	case field == "sourceIp" || field == "userAgent":
		stmt = `SELECT value FROM rollup_values WHERE field = '` + col + `'`
		if r.o.NoRollup {
			stmt = `SELECT DISTINCT ` + col + ` FROM events`
		}
	case field == "principalType":
		stmt = `SELECT DISTINCT ` + col + ` FROM events` // no index; only used by a few queries
	default:
		stmt = `WITH RECURSIVE v(x) AS (SELECT min(` + col + `) FROM events
			UNION ALL SELECT (SELECT min(` + col + `) FROM events WHERE ` + col + ` > v.x) FROM v WHERE v.x IS NOT NULL)
			SELECT x FROM v WHERE x IS NOT NULL`
	}
	var out []string
	var v string
	err = scan(ctx, db, "list values", stmt, nil, []any{&v}, func() error {
		out = append(out, v)
		return nil
	})
	return out, err
}

// NewTerms: see query.Store. A combination is new exactly when its earliest event in [since,
// to] is at or after from: its count and first sight over that span are then those of the
// range. The events answer that directly (one pass over the lookback and the range);
// rollup_terms_daily answers it from whole days when it can be exact (newTermsRollup).
func (r *Reader) NewTerms(ctx context.Context, fields []string, f read.Filter, since, from, to time.Time, limit int) ([]read.Term, error) {
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	rows, ok, err := r.newTermsRollup(ctx, db, fields, f, since, from, to, limit)
	if err != nil || ok {
		return rows, err
	}
	cand, err := r.searchCandidates(ctx, db, f.Search)
	if err != nil {
		return nil, err
	}
	var w where
	w.timeRange(since, to)
	w.filters(f, cand, "")
	cols := termCols(fields)
	stmt := `SELECT ` + cols + `, min(ts), count(*), 0 FROM ` + w.from() + ` WHERE ` + w.sql() +
		` GROUP BY ` + cols + ` HAVING min(ts) >= ?` + termsOrder(fields, "min(ts)") + ` LIMIT ?`
	r.trace("events")
	return scanTerms(ctx, db, len(fields), stmt, append(w.args, from.UnixNano(), limit), to.UnixNano())
}

func termCols(fields []string) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = read.Columns[f]
	}
	return strings.Join(cols, ", ")
}

// termsOrder: newest first sight first, then by the values.
func termsOrder(fields []string, firstSeen string) string {
	s := " ORDER BY " + firstSeen + " DESC"
	for i := range fields {
		s += ", " + strconv.Itoa(i+1)
	}
	return s
}

const day = int64(24 * time.Hour)

// newTermsRollup answers from rollup_terms_daily when it can be exact: a complete rollup, no
// search, the window's start on an earlier UTC day than the range's, and no returned
// combination with events after the range's end on its last day (its count would include
// them). ok is false otherwise.
//
// A day's first and last timestamp per combination tell on which side of from, or of the
// window's start, it has events. It reads the range's days first, then checks the few
// candidates against the window's days.
func (r *Reader) newTermsRollup(ctx context.Context, db *sql.DB, fields []string, f read.Filter, since, fromT, toT time.Time, limit int) (rows []read.Term, ok bool, err error) {
	t0, from, to := since.UnixNano(), fromT.UnixNano(), toT.UnixNano()
	if r.o.NoRollup || f.Search != "" || t0 < 0 || t0/day >= from/day {
		return nil, false, nil
	}
	var pending bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM terms_pending)`).Scan(&pending); err != nil {
		return nil, false, readErr("new terms", err)
	}
	if pending {
		return nil, false, nil
	}
	d0, d1 := t0/day, from/day
	var in, before where
	in.add("day >= ? AND day <= ?", d1, to/day)
	in.filters(f, "", "")
	before.add("day >= ? AND day < ? AND (day > ? OR last_ts >= ?)", d0, d1, d0, t0)
	before.filters(f, "", "")
	cols := termCols(fields)
	// The candidates come from the range's days (few rows): none may have an event on d1
	// before from. Then none may have one in the window's other days: whole days between d0
	// and d1, and on d0 an event at last_ts >= t0.
	stmt := `WITH cand AS (SELECT ` + cols + `, min(first_ts) AS first_seen, sum(n) AS cnt, max(last_ts) AS last
			FROM rollup_terms_daily WHERE ` + in.sql() + ` GROUP BY ` + cols + `
			HAVING max(day = ? AND first_ts < ?) = 0 AND last >= ? AND first_seen <= ?)
		SELECT * FROM cand WHERE (` + cols + `) NOT IN (SELECT ` + cols + ` FROM rollup_terms_daily WHERE ` + before.sql() + `)` +
		termsOrder(fields, "first_seen") + ` LIMIT ?`
	args := append(in.args, d1, from, from, to)
	args = append(args, before.args...)
	args = append(args, limit)
	r.trace("rollup_terms_daily")
	rows, err = scanTerms(ctx, db, len(fields), stmt, args, to)
	if err != nil {
		return nil, false, err
	}
	for _, row := range rows {
		if row.Count < 0 { // scanTerms marks a combination with events after to
			return nil, false, nil
		}
	}
	return rows, true, nil
}

// scanTerms reads rows of the fields' values, first sight, count and last timestamp (0 when
// not known); a last timestamp after the range marks the count as not exact (-1).
func scanTerms(ctx context.Context, db *sql.DB, nFields int, stmt string, args []any, to int64) ([]read.Term, error) {
	var out []read.Term
	vals := make([]string, nFields)
	var first, count, last int64
	dest := make([]any, 0, nFields+3)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	dest = append(dest, &first, &count, &last)
	err := scan(ctx, db, "new terms", stmt, args, dest, func() error {
		t := read.Term{Vals: append([]string(nil), vals...), FirstSeen: first, Count: count}
		if last > to {
			t.Count = -1
		}
		out = append(out, t)
		return nil
	})
	return out, err
}
