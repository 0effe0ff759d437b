package query

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// cond is one filter of a query, its value list resolved (Engine.resolve): the lists as
// written, source IPs and regular expressions resolved to the matching distinct values of the
// store. Every statement then compares plain values (which rollup tables can too).
type cond struct {
	read.Cond
	selection bool // the field's own positive list: a values query listing that field ignores it
}

// filter is what a store reads for q: its resolved conds and its search. skipField's own
// selection is left out (a dropdown lists every choice; negations and ad-hoc filters on the
// field do apply); "" keeps every cond.
func (q *Query) filter(skipField string) read.Filter {
	f := read.Filter{Search: q.Search, Conds: make([]read.Cond, 0, len(q.conds))}
	for _, c := range q.conds {
		if c.selection && c.Field == skipField {
			continue
		}
		f.Conds = append(f.Conds, c.Cond)
	}
	return f
}

// resolve turns q's filters into q.conds, reading the distinct values of the store where a
// filter matches by prefix or pattern: once per query.
func (e *Engine) resolve(ctx context.Context, q *Query) error {
	var cs []cond
	list := func(field string, not bool, vals []string) {
		if len(vals) > 0 {
			cs = append(cs, cond{read.Cond{Field: field, Not: not, ByID: field == FieldPrincipal, Vals: vals}, !not})
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
			if ips, err = e.distinct(ctx, FieldSourceIP); err != nil {
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
		cs = append(cs, cond{read.Cond{Field: FieldSourceIP, Not: l.not, Vals: vals}, !l.not})
	}
	// Ad-hoc filters compare the principal's name: what labels, columns and Grafana's value
	// picker show.
	for i, f := range q.Adhoc {
		m := q.adhoc[i]
		c := cond{Cond: read.Cond{Field: f.Key, Not: f.Operator == "!=" || f.Operator == "!~", Vals: []string{f.Value}}}
		switch {
		case m.re != nil:
			all, err := e.distinct(ctx, f.Key)
			if err != nil {
				return err
			}
			c.Vals = []string{}
			for _, v := range all {
				if m.re.MatchString(v) {
					c.Vals = append(c.Vals, v)
				}
			}
		case m.prefix.IsValid():
			var err error
			if c.Vals, err = ipsMatching(nil, []netip.Prefix{m.prefix}); err != nil {
				return err
			}
		}
		cs = append(cs, c)
	}
	q.conds = cs
	return nil
}

// distinct lists every value of field in the store.
func (e *Engine) distinct(ctx context.Context, field string) ([]string, error) {
	if field == FieldPrincipalType {
		return []string{"", "serviceAccount", "user"}, nil // the decoder writes only these
	}
	return e.store.Distinct(ctx, field)
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
