package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/query/read"
)

// The query engine's reads (query.Store), with the SQLite cache's answers: the same rollups
// (see read.CountPlan), the same search, byte order for every sort and comparison (COLLATE
// "C", SQLite's BINARY), ASCII-only case folding. Every value is a bound parameter.

// searchSep joins the searched fields in the search column: a needle never matches across two
// fields unless it holds the separator (see pgWhere.search).
const searchSep = "\x1f"

// searchText is an event's search column: its searched fields (id, request id, action,
// principal name, user agent, and the action parameters as SQLite's json_extract renders them:
// read.SearchParams), ASCII-folded, joined by searchSep. Computed here rather than with jsonb,
// which reorders keys and adds spaces.
func searchText(id string, e *auditlog.Entry) string {
	params, _ := read.SearchParams(e.ActionParameters)
	return text(read.FoldASCII(strings.Join([]string{id, e.RequestID, e.Action, e.PrincipalName, e.UserAgent, params}, searchSep)))
}

// pgWhere collects conditions with numbered parameters; $1 is always the data source.
type pgWhere struct {
	conds []string
	args  []any
}

func newWhere(ds int32) *pgWhere { return &pgWhere{conds: []string{"ds = $1"}, args: []any{ds}} }

// arg binds v and returns its placeholder.
func (w *pgWhere) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *pgWhere) sql() string { return strings.Join(w.conds, " AND ") }

func (w *pgWhere) timeRange(from, to time.Time) {
	w.conds = append(w.conds, "ts >= "+w.arg(from.UnixNano())+" AND ts <= "+w.arg(to.UnixNano()))
}

// filters adds f's conds and search; in rollup_values, valueField's column is named value.
func (w *pgWhere) filters(f read.Filter, valueField string) {
	for _, c := range f.Conds {
		col := read.Columns[c.Field]
		if c.Field == valueField {
			col = "value"
		}
		vals := storable(c.Vals)
		if len(vals) == 0 {
			if !c.Not {
				w.conds = append(w.conds, "false") // a resolved list that matched nothing
			}
			continue
		}
		p := w.arg(vals)
		expr := col + " = ANY(" + p + "::text[])"
		if c.ByID {
			expr = "(" + expr + " OR principal_id = ANY(" + p + "::text[]))"
		}
		if c.Not {
			expr = "NOT " + expr
		}
		w.conds = append(w.conds, expr)
	}
	if f.Search != "" {
		w.search(f.Search)
	}
}

// storable drops the values PostgreSQL cannot hold as text (a NUL, bytes that are not UTF-8):
// no stored value is one of them.
func storable(vals []string) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if utf8.ValidString(v) && !strings.Contains(v, "\x00") {
			out = append(out, v)
		}
	}
	return out
}

// search: the needle, ASCII-folded, is a substring of the search column (LIKE, which the
// trigram index serves, compares characters exactly). A needle PostgreSQL cannot hold as text
// (a NUL, bytes that are not UTF-8), or holding the field separator, is in no stored field.
func (w *pgWhere) search(s string) {
	needle := read.FoldASCII(s)
	if !utf8.ValidString(needle) || strings.ContainsAny(needle, "\x00"+searchSep) {
		w.conds = append(w.conds, "false")
		return
	}
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(needle)
	w.conds = append(w.conds, "search LIKE "+w.arg("%"+esc+"%"))
}

// searchWindow is how many of the newest events of the range a search looks at first (see
// Events).
const searchWindow = 10_000

// Events: see query.Store. A search for a common needle is answered among the newest events
// of the range: when searchWindow of them (in the answer's order) hold limit matches, those
// are the answer. Otherwise the trigram index finds the matches (the planner, not knowing how
// common a needle is, would also take that path for a common one, and sort most of the range).
func (s *Store) Events(ctx context.Context, f read.Filter, from, to time.Time, limit int, withRaw bool) ([]read.Event, error) {
	if f.Search != "" {
		out, err := s.events(ctx, f, from, to, limit, withRaw, searchWindow)
		if err != nil || len(out) == limit {
			return out, err
		}
	}
	return s.events(ctx, f, from, to, limit, withRaw, 0)
}

// events reads the answer of Events from the newest window events of the range (0: all).
func (s *Store) events(ctx context.Context, f read.Filter, from, to time.Time, limit int, withRaw bool, window int) ([]read.Event, error) {
	const order = ` ORDER BY ts DESC, id COLLATE "C" DESC`
	cols := `id, request_id, action, status, principal, principal_id, principal_type, source_ip, user_agent, ts, `
	rawCol := "''"
	if withRaw {
		rawCol = "raw"
	}
	w := newWhere(s.dsID)
	w.timeRange(from, to)
	table := "events"
	if window > 0 {
		table = `(SELECT ` + cols + `search, ` + rawCol + ` AS raw FROM events WHERE ` + w.sql() + order +
			` LIMIT ` + w.arg(window) + `) AS recent`
		w.conds, rawCol = nil, "raw"
	}
	w.filters(f, "")
	where := ""
	if len(w.conds) > 0 {
		where = ` WHERE ` + w.sql()
	}
	stmt := `SELECT ` + cols + rawCol + ` FROM ` + table + where + order + ` LIMIT ` + w.arg(limit)
	out := make([]read.Event, 0, min(limit, 1024))
	var ev read.Event
	var raw string
	err := s.query(ctx, "read events", stmt, w.args, []any{&ev.ID, &ev.RequestID, &ev.Action, &ev.Status, &ev.Principal,
		&ev.PrincipalID, &ev.PrincipalType, &ev.SourceIP, &ev.UserAgent, &ev.TS, &raw}, func() {
		ev.Raw = []byte(raw)
		out = append(out, ev)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// query runs a read and calls fn per row with dest filled.
func (s *Store) query(ctx context.Context, op, stmt string, args, dest []any, fn func()) error {
	if s.closed.Load() {
		return ErrClosed
	}
	rows, err := s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return s.db.wrap(op, err)
	}
	_, err = pgx.ForEachRow(rows, dest, func() error { fn(); return nil })
	return s.db.wrap(op, err)
}

// Counts: see query.Store. The rollups answer the whole hours (or days) they can, the events
// the rest.
func (s *Store) Counts(ctx context.Context, f read.Filter, from, to time.Time, groupBy string, b read.Buckets, add func(string, int64, int64)) error {
	groupCol := "''"
	if groupBy != "" {
		groupCol = read.Columns[groupBy]
	}
	var v string
	var bucket, n int64
	dest := []any{&bucket, &v, &n}
	emit := func() { add(v, bucket, n) }
	count := func(w *pgWhere, table, tsExpr, countExpr string) error {
		be := "0::bigint"
		if b.Width != 0 {
			be = "(" + tsExpr + " - " + w.arg(b.First) + "::bigint) / " + w.arg(b.Width) + "::bigint"
		}
		stmt := `SELECT ` + be + `, ` + groupCol + `, ` + countExpr + `::bigint FROM ` + table + ` WHERE ` + w.sql() + ` GROUP BY 1, 2`
		return s.query(ctx, "count events", stmt, w.args, dest, emit)
	}
	events := func(from, to time.Time) error {
		w := newWhere(s.dsID)
		w.timeRange(from, to)
		w.filters(f, "")
		return count(w, "events", "ts", "count(*)")
	}
	p := read.CountPlan(f, groupBy, from, to, b.Width)
	if p == nil {
		return events(from, to)
	}
	for _, seg := range p.Segments {
		w := newWhere(s.dsID)
		w.conds = append(w.conds, seg.Unit+" >= "+w.arg(seg.From)+" AND "+seg.Unit+" < "+w.arg(seg.To))
		w.filters(f, "")
		if err := count(w, seg.Table, seg.Unit+" * "+strconv.FormatInt(seg.Width, 10), "sum(n)"); err != nil {
			return err
		}
	}
	for _, edge := range p.Edges {
		if err := events(edge[0], edge[1]); err != nil {
			return err
		}
	}
	return nil
}

// Values: see query.Store.
func (s *Store) Values(ctx context.Context, field string, f read.Filter, prefix string, limit int) ([]string, error) {
	if len(storable([]string{prefix})) == 0 {
		return []string{}, nil
	}
	col := read.Columns[field]
	table := read.ValuesTable(field, f)
	w := newWhere(s.dsID)
	if table == "rollup_values" {
		w.conds = append(w.conds, "field = "+w.arg(col))
		col = "value"
		w.filters(f, field)
	} else {
		w.filters(f, "")
	}
	w.conds = append(w.conds, col+" <> ''") // the empty value is no choice
	if prefix != "" {
		// SQLite's lower() folds ASCII only; so does translate.
		w.conds = append(w.conds, "translate(left("+col+", "+w.arg(utf8.RuneCountInString(prefix))+
			"), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = "+w.arg(read.FoldASCII(prefix)))
	}
	stmt := `SELECT v FROM (SELECT DISTINCT ` + col + ` COLLATE "C" AS v FROM ` + table + ` WHERE ` + w.sql() + `) AS d
		ORDER BY v LIMIT ` + w.arg(limit)
	out := []string{}
	var v string
	if err := s.query(ctx, "list values", stmt, w.args, []any{&v}, func() { out = append(out, v) }); err != nil {
		return nil, err
	}
	return out, nil
}

// Distinct: see query.Store. The rollups hold every value, in few rows.
func (s *Store) Distinct(ctx context.Context, field string) ([]string, error) {
	col := read.Columns[field]
	stmt := `SELECT DISTINCT ` + col + ` FROM rollup_daily WHERE ds = $1`
	args := []any{s.dsID}
	if field == "sourceIp" || field == "userAgent" {
		stmt = `SELECT value FROM rollup_values WHERE ds = $1 AND field = $2`
		args = append(args, col)
	}
	var out []string
	var v string
	if err := s.query(ctx, "list values", stmt, args, []any{&v}, func() { out = append(out, v) }); err != nil {
		return nil, err
	}
	return out, nil
}

// NewTerms: see query.Store. A combination is new exactly when its earliest event in [since,
// to] is at or after from: its count and first sight over that span are then those of the
// range. rollup_terms_daily answers from whole days when it can be exact (newTermsRollup), the
// events otherwise (one pass over the lookback and the range).
func (s *Store) NewTerms(ctx context.Context, fields []string, f read.Filter, since, from, to time.Time, limit int) ([]read.Term, error) {
	out, ok, err := s.newTermsRollup(ctx, fields, f, since, from, to, limit)
	if err != nil || ok {
		return out, err
	}
	return s.newTermsEvents(ctx, fields, f, since, from, to, limit)
}

// newTermsEvents answers NewTerms from the events.
func (s *Store) newTermsEvents(ctx context.Context, fields []string, f read.Filter, since, from, to time.Time, limit int) ([]read.Term, error) {
	w := newWhere(s.dsID)
	w.timeRange(since, to)
	w.filters(f, "")
	cols := strings.Join(termCols(fields, ""), ", ")
	stmt := `SELECT ` + cols + `, min(ts), count(*), 0::bigint FROM events WHERE ` + w.sql() +
		` GROUP BY ` + cols + ` HAVING min(ts) >= ` + w.arg(from.UnixNano()) +
		termsOrder(fields, "", "min(ts)") + ` LIMIT ` + w.arg(limit)
	return s.scanTerms(ctx, len(fields), stmt, w.args, to.UnixNano())
}

// termCols are the fields' columns, of the table or alias t ("" for none).
func termCols(fields []string, t string) []string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = t + read.Columns[f]
	}
	return cols
}

// termsOrder: newest first sight first, then by the values (byte order, as SQLite).
func termsOrder(fields []string, t, firstSeen string) string {
	o := " ORDER BY " + firstSeen + " DESC"
	for _, c := range termCols(fields, t) {
		o += ", " + c + ` COLLATE "C"`
	}
	return o
}

const day = int64(24 * time.Hour)

// newTermsRollup answers from rollup_terms_daily when it can be exact, in the SQLite cache's
// cases: no search, the window's start on an earlier UTC day than the range's, and no returned
// combination with events after the range's end on its last day (its count would include
// them). ok is false otherwise.
//
// A day's first and last timestamp per combination tell on which side of from, or of the
// window's start, it has events. The candidates come from the range's days (few rows): none
// may have an event on from's day before from. Then none may have one in the window's other
// days: whole days after since's, and on since's day an event at last_ts >= since.
func (s *Store) newTermsRollup(ctx context.Context, fields []string, f read.Filter, since, fromT, toT time.Time, limit int) (out []read.Term, ok bool, err error) {
	t0, from, to := since.UnixNano(), fromT.UnixNano(), toT.UnixNano()
	if f.Search != "" || t0 < 0 || t0/day >= from/day {
		return nil, false, nil
	}
	d0, d1 := t0/day, from/day
	w := newWhere(s.dsID)
	w.conds = append(w.conds, "day >= "+w.arg(d1)+" AND day <= "+w.arg(to/day))
	w.filters(f, "")
	in := w.sql()
	w.conds = []string{"ds = $1", "day >= " + w.arg(d0) + " AND day < " + w.arg(d1) +
		" AND (day > " + w.arg(d0) + " OR last_ts >= " + w.arg(t0) + ")"}
	w.filters(f, "")
	for i, c := range termCols(fields, "") {
		w.conds = append(w.conds, c+" = "+termCols(fields, "c.")[i])
	}
	before := w.sql()
	cols := strings.Join(termCols(fields, ""), ", ")
	stmt := `WITH cand AS (SELECT ` + cols + `, min(first_ts) AS first_seen, sum(n)::bigint AS cnt, max(last_ts) AS last
			FROM rollup_terms_daily WHERE ` + in + ` GROUP BY ` + cols + `
			HAVING NOT bool_or(day = ` + w.arg(d1) + ` AND first_ts < ` + w.arg(from) + `)
				AND max(last_ts) >= ` + w.arg(from) + ` AND min(first_ts) <= ` + w.arg(to) + `)
		SELECT c.* FROM cand AS c WHERE NOT EXISTS (SELECT FROM rollup_terms_daily WHERE ` + before + `)` +
		termsOrder(fields, "c.", "c.first_seen") + ` LIMIT ` + w.arg(limit)
	out, err = s.scanTerms(ctx, len(fields), stmt, w.args, to)
	if err != nil {
		return nil, false, err
	}
	for _, t := range out {
		if t.Count < 0 { // scanTerms marks a combination with events after to
			return nil, false, nil
		}
	}
	return out, true, nil
}

// scanTerms reads rows of the fields' values, first sight, count and last timestamp (0 when
// not known); a last timestamp after the range marks the count as not exact (-1).
func (s *Store) scanTerms(ctx context.Context, nFields int, stmt string, args []any, to int64) ([]read.Term, error) {
	vals := make([]string, nFields)
	var first, count, last int64
	dest := make([]any, 0, nFields+3)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	dest = append(dest, &first, &count, &last)
	var out []read.Term
	err := s.query(ctx, "new terms", stmt, args, dest, func() {
		t := read.Term{Vals: append([]string(nil), vals...), FirstSeen: first, Count: count}
		if last > to {
			t.Count = -1
		}
		out = append(out, t)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
