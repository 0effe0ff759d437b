package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// where collects SQL conditions and their bound arguments. Conditions are fixed text from this
// package (column names from fieldColumns); every value a user wrote is an argument.
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

// cond is one filter on one field: the event's value is one of vals, or with not, none of
// them. Every filter of a query becomes conds (Engine.resolve): the lists as written, source
// IPs and regular expressions resolved to the matching distinct values of the cache.
type cond struct {
	field     string
	not       bool
	byID      bool // principal: the name or the id
	selection bool // the field's own positive list: a values query listing that field ignores it
	vals      []string
}

// filterOpts says how a caller wants the filters applied.
type filterOpts struct {
	skipField string // values: the field being listed ignores its own selection
	asValue   bool   // rollup_values: skipField's column is named value
}

// condsFor returns the conds of q that apply with o.
func (q *Query) condsFor(o filterOpts) []cond {
	out := make([]cond, 0, len(q.conds))
	for _, c := range q.conds {
		if c.selection && c.field == o.skipField {
			continue
		}
		out = append(out, c)
	}
	return out
}

// filters adds q's filters (resolved by Engine.resolve) and its search.
func (w *where) filters(q *Query, o filterOpts) {
	for _, c := range q.condsFor(o) {
		col := fieldColumns[c.field]
		if o.asValue && c.field == o.skipField {
			col = "value"
		}
		w.cond(col, c)
	}
	if q.Search != "" {
		w.search(q.Search, q.searchRowids)
	}
}

func (w *where) cond(col string, c cond) {
	if len(c.vals) == 0 {
		if !c.not {
			w.add("0") // a resolved list that matched nothing
		}
		return
	}
	// One value compares plainly; more are a JSON array bound as one argument (no limit on
	// their number, one statement text per shape).
	var expr string
	var args []any
	in := func(col string) {
		if len(c.vals) == 1 {
			expr += col + " = ?"
			args = append(args, c.vals[0])
		} else {
			expr += col + " IN (SELECT value FROM json_each(?))"
			args = append(args, jsonArray(c.vals))
		}
	}
	in(col)
	if c.byID {
		expr += " OR "
		in("principal_id")
		expr = "(" + expr + ")"
	}
	if c.not {
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
// spans tokens), a single instr over the raw node rules most rows out first. The raw node holds
// every searched field, so the pre-check never drops a match.
//
// With candidates (a JSON array of rowids, see Engine.planSearch: what the search index finds
// plus the events still waiting to be indexed), only those rows are looked up, by rowid; the
// exact check below stays, so the answer is the same either way.
func (w *where) search(s, candidates string) {
	needle := asciiLower(s)
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

// resolve turns q's filters into q.conds, reading the distinct cached values where a filter
// matches by prefix or pattern: once per query, and every statement then compares plain
// values (which the rollup tables can too).
func (e *Engine) resolve(ctx context.Context, db *sql.DB, q *Query) error {
	var cs []cond
	list := func(field string, not bool, vals []string) {
		if len(vals) > 0 {
			cs = append(cs, cond{field: field, not: not, byID: field == FieldPrincipal, selection: !not, vals: vals})
		}
	}
	list(FieldAction, false, q.Actions)
	list(FieldAction, true, q.NotActions)
	list(FieldStatus, false, q.Statuses)
	list(FieldStatus, true, q.NotStatuses)
	list(FieldPrincipal, false, q.Principals)
	list(FieldPrincipal, true, q.NotPrincipals)
	if q.PrincipalType != "" {
		list(FieldPrincipalType, false, []string{q.PrincipalType})
	}
	var ips []string
	ipsMatching := func(exact []string, prefixes []netip.Prefix) ([]string, error) {
		if ips == nil {
			var err error
			if ips, err = e.distinct(ctx, db, FieldSourceIP); err != nil {
				return nil, err
			}
		}
		return matchIPs(ips, exact, prefixes), nil
	}
	for _, l := range []struct {
		not      bool
		exact    []string
		prefixes []netip.Prefix
	}{{false, q.SourceIPs, q.prefixes}, {true, q.NotSourceIPs, q.notPrefixes}} {
		if len(l.exact) == 0 {
			continue
		}
		vals, err := ipsMatching(l.exact, l.prefixes)
		if err != nil {
			return err
		}
		cs = append(cs, cond{field: FieldSourceIP, not: l.not, selection: !l.not, vals: vals})
	}
	// Ad-hoc filters compare the principal's name: what labels, columns and Grafana's value
	// picker show.
	for i, f := range q.Adhoc {
		m := q.adhoc[i]
		c := cond{field: f.Key, not: f.Operator == "!=" || f.Operator == "!~", vals: []string{f.Value}}
		switch {
		case m.re != nil:
			all, err := e.distinct(ctx, db, f.Key)
			if err != nil {
				return err
			}
			c.vals = []string{}
			for _, v := range all {
				if m.re.MatchString(v) {
					c.vals = append(c.vals, v)
				}
			}
		case m.prefix.IsValid():
			var err error
			if c.vals, err = ipsMatching(nil, []netip.Prefix{m.prefix}); err != nil {
				return err
			}
		}
		cs = append(cs, c)
	}
	q.conds = cs
	return nil
}

// matchIPs returns the values of all written exactly as one of exact or holding an address
// inside one of prefixes (an IPv4-mapped IPv6 address as its IPv4 address). A value that is
// no IP (whatever Wiz sent) matches only when written exactly alike.
func matchIPs(all, exact []string, prefixes []netip.Prefix) []string {
	out := []string{}
	for _, v := range all {
		if slices.Contains(exact, v) {
			out = append(out, v)
			continue
		}
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		a = a.Unmap().WithZone("")
		for _, p := range prefixes {
			if p.Contains(a) {
				out = append(out, v)
				break
			}
		}
	}
	return out
}

// asciiLower folds ASCII letters only, as SQLite's lower() does.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// likeEscape makes s a literal inside a LIKE pattern with ESCAPE '\\'.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}
