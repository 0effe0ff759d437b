package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/netip"
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

// in adds "col matches any of vals": a plain comparison for one value, else a JSON array
// bound as one argument (no limit on the number of values, one statement text per shape).
func (w *where) in(col string, vals []string) {
	switch len(vals) {
	case 0:
	case 1:
		w.add(col+" = ?", vals[0])
	default:
		w.add(col+" IN (SELECT value FROM json_each(?))", jsonArray(vals))
	}
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

// filterOpts says which filters a caller wants left out.
type filterOpts struct {
	skipField string // values: the field being listed ignores its own filter
}

// filters adds q's filters. Source IPs are resolved to the distinct cached values that match
// (ips), computed once per query by resolveIPs; a nil ips with a SourceIPs filter is a bug.
func (w *where) filters(q *Query, ips []string, o filterOpts) {
	if o.skipField != FieldAction {
		w.in("action", q.Actions)
	}
	if o.skipField != FieldStatus {
		w.in("status", q.Statuses)
	}
	if o.skipField != FieldPrincipal && len(q.Principals) > 0 {
		if len(q.Principals) == 1 {
			w.add("(principal = ? OR principal_id = ?)", q.Principals[0], q.Principals[0])
		} else {
			a := jsonArray(q.Principals)
			w.add("(principal IN (SELECT value FROM json_each(?)) OR principal_id IN (SELECT value FROM json_each(?)))", a, a)
		}
	}
	if o.skipField != FieldPrincipalType && q.PrincipalType != "" {
		w.add("principal_type = ?", q.PrincipalType)
	}
	if o.skipField != FieldSourceIP && len(q.SourceIPs) > 0 {
		if len(ips) == 0 {
			w.add("0")
		} else {
			w.in("source_ip", ips)
		}
	}
	if q.Search != "" {
		w.search(q.Search, q.searchRowids)
	}
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

// resolveIPs returns the distinct cached source IPs matching q's SourceIPs filter, or nil when
// the query has none. A value that is not an IP (whatever Wiz sent) matches only an entry
// written exactly like it.
func (e *Engine) resolveIPs(ctx context.Context, db *sql.DB, q *Query) ([]string, error) {
	if len(q.SourceIPs) == 0 {
		return nil, nil
	}
	all, err := e.distinctSourceIPs(ctx, db)
	if err != nil {
		return nil, err
	}
	exact := map[string]bool{}
	for _, s := range q.SourceIPs {
		exact[strings.TrimSpace(s)] = true
	}
	out := []string{}
	for _, v := range all {
		if exact[v] {
			out = append(out, v)
			continue
		}
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		a = a.Unmap().WithZone("")
		for _, p := range q.prefixes {
			if p.Contains(a) {
				out = append(out, v)
				break
			}
		}
	}
	return out, nil
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
