package wizfake

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// filter is a parsed auditLogEntries query.
type filter struct {
	first     int
	after     *time.Time // exclusive unless Options.AfterInclusive
	before    *time.Time // exclusive unless Options.BeforeInclusive
	statuses  map[string]bool
	action    string
	userTypes map[string]bool
	search    string
	users     map[string]bool
	cursor    *cursorPos
}

// cursorPos is what an endCursor encodes: the last entry's key, and how many results the
// query has returned so far (for the result cap).
type cursorPos struct {
	ts    int64
	id    string
	count int
}

type cursorField struct {
	Field string `json:"Field"`
	Value string `json:"Value"`
}

type cursorJSON struct {
	Fields []cursorField `json:"fields"`
	Count  int           `json:"count,omitempty"`
}

func encodeCursor(c cursorPos) string {
	b, _ := json.Marshal(cursorJSON{
		Fields: []cursorField{
			{Field: "Timestamp", Value: FormatTimestamp(time.Unix(0, c.ts))},
			{Field: "Id", Value: c.id},
		},
		Count: c.count,
	})
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*cursorPos, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("invalid cursor")
	}
	var cj cursorJSON
	if json.Unmarshal(b, &cj) != nil {
		return nil, errors.New("invalid cursor")
	}
	c := &cursorPos{count: cj.Count}
	haveTS := false
	for _, f := range cj.Fields {
		switch f.Field {
		case "Timestamp":
			ts, err := time.Parse(time.RFC3339Nano, f.Value)
			if err != nil {
				return nil, errors.New("invalid cursor")
			}
			c.ts, haveTS = ts.UnixNano(), true
		case "Id":
			c.id = f.Value
		}
	}
	if !haveTS {
		return nil, errors.New("invalid cursor")
	}
	return c, nil
}

// inputError is a query the API would reject (BAD_USER_INPUT).
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func parseFilter(vars map[string]json.RawMessage, maxFirst int) (*filter, error) {
	f := &filter{}
	raw, ok := vars["first"]
	if !ok || string(raw) == "null" {
		return nil, &inputError{`Variable "$first" is required: you must include a value for first`}
	}
	if err := json.Unmarshal(raw, &f.first); err != nil || f.first < 1 {
		return nil, &inputError{`Variable "$first" must be a positive integer`}
	}
	f.first = min(f.first, maxFirst)
	if raw, ok := vars["after"]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, &inputError{`Variable "$after" must be a string`}
		}
		if s != "" {
			c, err := decodeCursor(s)
			if err != nil {
				return nil, &inputError{"Invalid cursor"}
			}
			f.cursor = c
		}
	}
	raw, ok = vars["filterBy"]
	if !ok || string(raw) == "null" {
		return f, nil
	}
	var fb struct {
		Timestamp *struct {
			After  *string `json:"after"`
			Before *string `json:"before"`
		} `json:"timestamp"`
		Status   []string        `json:"status"`
		Action   json.RawMessage `json:"action"`
		UserType []string        `json:"userType"`
		Search   string          `json:"search"`
		User     []string        `json:"user"`
	}
	if err := json.Unmarshal(raw, &fb); err != nil {
		return nil, &inputError{"Invalid filterBy: " + err.Error()}
	}
	if ts := fb.Timestamp; ts != nil {
		for _, p := range []struct {
			in  *string
			out **time.Time
		}{{ts.After, &f.after}, {ts.Before, &f.before}} {
			if p.in == nil || *p.in == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, *p.in)
			if err != nil {
				return nil, &inputError{fmt.Sprintf("Invalid DateTime %q", *p.in)}
			}
			*p.out = &t
		}
	}
	if len(fb.Status) > 0 {
		f.statuses = map[string]bool{}
		for _, s := range fb.Status {
			f.statuses[strings.ToUpper(s)] = true
		}
	}
	if len(fb.Action) > 0 && string(fb.Action) != "null" {
		// One string per public clients; a one-element list is tolerated.
		var s string
		if json.Unmarshal(fb.Action, &s) != nil {
			var l []string
			if json.Unmarshal(fb.Action, &l) != nil || len(l) > 1 {
				return nil, &inputError{"filterBy.action must be a string"}
			}
			if len(l) == 1 {
				s = l[0]
			}
		}
		f.action = strings.ToLower(strings.TrimSpace(s))
	}
	if len(fb.UserType) > 0 {
		f.userTypes = map[string]bool{}
		for _, s := range fb.UserType {
			f.userTypes[strings.ToUpper(s)] = true
		}
	}
	f.search = strings.TrimSpace(fb.Search)
	if len(fb.User) > 0 {
		f.users = map[string]bool{}
		for _, u := range fb.User {
			f.users[u] = true
		}
	}
	return f, nil
}

// matches applies the non-time filters to an event.
func (f *filter) matches(ev *Event) bool {
	if f.statuses != nil && !f.statuses[ev.Status] {
		return false
	}
	if f.action != "" && strings.ToLower(strings.TrimSpace(ev.Action)) != f.action {
		return false
	}
	if f.userTypes != nil {
		typ := "USER_ACCOUNT"
		if ev.ServiceAccount != nil {
			typ = "SERVICE_ACCOUNT"
		}
		if !f.userTypes[typ] {
			return false
		}
	}
	if f.search != "" && ev.ID != f.search && ev.RequestID != f.search {
		return false
	}
	if f.users != nil {
		ok := (ev.User != nil && f.users[ev.User.ID]) || (ev.ServiceAccount != nil && f.users[ev.ServiceAccount.ID])
		if !ok {
			return false
		}
	}
	return true
}

func (f *filter) needsEvent() bool {
	return f.statuses != nil || f.action != "" || f.userTypes != nil || f.search != "" || f.users != nil
}

// page is one answer to an auditLogEntries query.
type page struct {
	nodes     []json.RawMessage
	hasNext   bool
	endCursor *string
}

// run executes a query against the store at time now.
func (t *Tenant) run(f *filter, now time.Time) page {
	t.mu.RLock()
	defer t.mu.RUnlock()
	nowNs := now.UnixNano()

	count := 0
	if f.cursor != nil {
		count = f.cursor.count
	}
	limit := f.first
	capped := t.opts.ResultCap > 0
	if capped {
		limit = min(limit, t.opts.ResultCap-count)
	}
	if limit <= 0 {
		return page{}
	}

	// The index range the time window allows.
	lo, hi := 0, len(t.recs)
	if f.after != nil {
		a := f.after.UnixNano()
		if !t.opts.AfterInclusive {
			a++
		}
		lo = sort.Search(len(t.recs), func(i int) bool { return t.recs[i].ts >= a })
	}
	if t.opts.Retention > 0 {
		r := nowNs - int64(t.opts.Retention)
		lo = max(lo, sort.Search(len(t.recs), func(i int) bool { return t.recs[i].ts >= r }))
	}
	if f.before != nil {
		b := f.before.UnixNano()
		if !t.opts.BeforeInclusive {
			b--
		}
		hi = sort.Search(len(t.recs), func(i int) bool { return t.recs[i].ts > b })
	}
	hi = min(hi, sort.Search(len(t.recs), func(i int) bool { return t.recs[i].ts > nowNs }))

	// Continue strictly past the cursor's (timestamp, id).
	if c := f.cursor; c != nil {
		p := sort.Search(len(t.recs), func(i int) bool {
			r := t.recs[i]
			if r.ts != c.ts {
				return r.ts > c.ts
			}
			return t.id(r) >= c.id
		})
		if t.opts.OldestFirst {
			if p < len(t.recs) && t.recs[p].ts == c.ts && t.id(t.recs[p]) == c.id {
				p++
			}
			lo = max(lo, p)
		} else {
			hi = min(hi, p)
		}
	}

	var out page
	var last rec
	taken := 0
	more := false
	visit := func(r rec) bool { // false stops the scan
		if t.visibleFrom(r) > nowNs {
			return true
		}
		var ev Event
		if f.needsEvent() || taken < limit {
			ev = t.event(r)
		}
		if f.needsEvent() && !f.matches(&ev) {
			return true
		}
		if taken == limit {
			more = true
			return false
		}
		out.nodes = append(out.nodes, renderNode(ev))
		last = r
		taken++
		return true
	}
	if t.opts.OldestFirst {
		for i := lo; i < hi && visit(t.recs[i]); i++ {
		}
	} else {
		for i := hi - 1; i >= lo && visit(t.recs[i]); i-- {
		}
	}
	if taken > 0 {
		c := encodeCursor(cursorPos{ts: last.ts, id: t.id(last), count: count + taken})
		out.endCursor = &c
	}
	// The result cap: once a query has returned ResultCap entries, it says there is no more.
	out.hasNext = more && !(capped && count+taken >= t.opts.ResultCap)
	return out
}
