package read

import "time"

// Both stores keep the same rollup tables beside their events, in the same transaction as
// the events they count (the schema contract this file plans against):
//   - rollup_hourly(hour, action, status, principal_type, principal, principal_id, n): event
//     counts per UTC hour (ts / 1 h) and per combination of those dimensions;
//   - rollup_hourly_kind(hour, action, status, principal_type, n): the same without the
//     principal (long time series by action or status);
//   - rollup_daily(day, action, status, principal_type, principal, principal_id, n): per UTC
//     day with it (top principals over weeks);
//   - rollup_values(field, value, n): how many events carry each source IP and user agent
//     (field is the column name).
//
// Counting reads use them for the whole hours (or days) of their range when no filter or
// grouping needs what they lack (search, source IPs, user agents); the partial hours at the
// two ends, and every other read, use the events.

// rollupDims are the fields rollup_hourly and rollup_daily group and filter on.
var rollupDims = map[string]bool{"": true, "action": true, "status": true, "principal": true, "principalType": true}

// kindDims are the fields rollup_hourly_kind groups and filters on.
var kindDims = map[string]bool{"": true, "action": true, "status": true, "principalType": true}

// rollupable reports whether rollup_hourly has everything f filters on, and field.
func rollupable(f Filter, field string) bool {
	if f.Search != "" || !rollupDims[field] {
		return false
	}
	for _, c := range f.Conds {
		if !rollupDims[c.Field] {
			return false
		}
	}
	return true
}

// byPrincipal reports whether one of f's conds reads the principal.
func byPrincipal(f Filter) bool {
	for _, c := range f.Conds {
		if c.Field == "principal" {
			return true
		}
	}
	return false
}

// Segment is a run of whole units [From, To) of a rollup table: hours or days.
type Segment struct {
	Table string
	Unit  string // the unit column: hour or day
	Width int64  // the unit in ns
	From  int64
	To    int64
}

// Plan is how a counting read splits its range: segments answered from rollup tables, and
// the partial hours at the ends (Edges, inclusive ranges) from the events.
type Plan struct {
	Segments []Segment
	Edges    [][2]time.Time
}

// CountPlan returns nil when counting f over [from, to] by groupBy in buckets width ns wide
// (0: one bucket) must read the events alone. Otherwise: whole days from rollup_daily (when
// the buckets are whole days and the read needs the principal), the remaining whole hours
// from rollup_hourly_kind (when it does not need the principal) or rollup_hourly, the partial
// hours at the ends from the events.
func CountPlan(f Filter, groupBy string, rFrom, rTo time.Time, width int64) *Plan {
	const h, d = int64(time.Hour), int64(24 * time.Hour)
	if !rollupable(f, groupBy) || (width != 0 && width%h != 0) {
		return nil
	}
	from, to := rFrom.UnixNano(), rTo.UnixNano()
	if from < 0 {
		return nil
	}
	fromHour := (from + h - 1) / h // first hour that starts inside the range
	toHour := (to + 1) / h         // hours before this one end inside the range
	if toHour-fromHour < 2 {
		return nil // nothing worth it
	}
	p := &Plan{}
	if from < fromHour*h {
		p.Edges = append(p.Edges, [2]time.Time{rFrom, time.Unix(0, fromHour*h-1)})
	}
	if toHour*h <= to {
		p.Edges = append(p.Edges, [2]time.Time{time.Unix(0, toHour*h), rTo})
	}
	narrow := !byPrincipal(f) && kindDims[groupBy]
	hourly := func(a, b int64) {
		if a >= b {
			return
		}
		t := "rollup_hourly"
		if narrow {
			t = "rollup_hourly_kind"
		}
		p.Segments = append(p.Segments, Segment{Table: t, Unit: "hour", Width: h, From: a, To: b})
	}
	fromDay := (fromHour*h + d - 1) / d
	toDay := toHour * h / d
	if narrow || (width != 0 && width%d != 0) || toDay-fromDay < 1 {
		hourly(fromHour, toHour)
		return p
	}
	hourly(fromHour, fromDay*24)
	p.Segments = append(p.Segments, Segment{Table: "rollup_daily", Unit: "day", Width: d, From: fromDay, To: toDay})
	hourly(toDay*24, toHour)
	return p
}

// ValuesTable is the smallest table that lists field's values under f: rollup_values (whose
// column is value, and f's conds on field read it), a rollup with the field and the filters,
// or the events.
func ValuesTable(field string, f Filter) string {
	switch {
	case (field == "sourceIp" || field == "userAgent") && f.Only(field):
		return "rollup_values"
	case rollupable(f, field) && kindDims[field] && !byPrincipal(f):
		return "rollup_hourly_kind"
	case rollupable(f, field):
		return "rollup_daily"
	}
	return "events"
}
