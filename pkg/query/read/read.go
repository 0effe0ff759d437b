// Package read holds what the query engine and the stores it reads exchange: the filters a
// store applies (every value resolved to a plain list by the engine) and the rows it returns.
// The stores (the SQLite cache, the PostgreSQL store) choose how to answer: rollup tables,
// indexes, plain scans; the answer is the same either way.
package read

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Columns maps a field name (the query model's: action, status, principal, principalType,
// sourceIp, userAgent) to its events column, the same in every store: the only place column
// names come from. User input never reaches SQL text.
var Columns = map[string]string{
	"action":        "action",
	"status":        "status",
	"principal":     "principal",
	"principalType": "principal_type",
	"sourceIp":      "source_ip",
	"userAgent":     "user_agent",
}

// Cond is one filter on one field: the event's value is one of Vals, or with Not, none of
// them. An empty Vals matches no event (with Not: every event).
type Cond struct {
	Field string // a key of Columns
	Not   bool
	ByID  bool // principal: the name or the principal id
	Vals  []string
}

// Filter is what an event must match: every Cond, and Search when not empty.
type Filter struct {
	Conds []Cond
	// Search is free text: an ASCII-case-insensitive substring of the event's id, request
	// id, action, principal name, user agent or action parameters (SearchParams).
	Search string
}

// Only reports whether f reads nothing but field (no search either).
func (f Filter) Only(field string) bool {
	for _, c := range f.Conds {
		if c.Field != field {
			return false
		}
	}
	return f.Search == ""
}

// Event is one stored event as logs and table queries read it.
type Event struct {
	ID, RequestID, Action, Status         string
	Principal, PrincipalID, PrincipalType string
	SourceIP, UserAgent                   string
	TS                                    int64  // unix nanoseconds
	Raw                                   []byte // the node as sent; only when asked for
}

// Term is one combination a new-terms query found: its values (one per field asked), its
// first sight in the range (unix nanoseconds) and its count there.
type Term struct {
	Vals             []string
	FirstSeen, Count int64
}

// Buckets cut a range into counting buckets: bucket i holds [First + i*Width, First +
// (i+1)*Width) in unix nanoseconds. A zero Width puts everything in bucket 0.
type Buckets struct {
	First int64
	Width int64
}

// FoldASCII folds ASCII letters only, as SQLite's lower() does: search is case-insensitive
// for ASCII and exact for every other character, in every store.
func FoldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// SearchParams is the text a search reads from an event's actionParameters, as SQLite's
// json_extract(raw, '$.actionParameters') renders it: an object or array without white
// space between tokens (keys in their order, strings and numbers as sent), a string
// unescaped, true and false as 1 and 0. ok is false when there is none (absent, null, not
// JSON).
func SearchParams(p json.RawMessage) (text string, ok bool) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || !json.Valid(p) {
		return "", false
	}
	switch p[0] {
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, p) != nil {
			return "", false
		}
		return b.String(), true
	case '"':
		var s string
		if json.Unmarshal(p, &s) != nil {
			return "", false
		}
		return s, true
	case 't':
		return "1", true
	case 'f':
		return "0", true
	case 'n':
		return "", false
	}
	// A number: SQLite reads an integer as one, anything else as a double.
	if n, err := strconv.ParseInt(string(p), 10, 64); err == nil {
		return strconv.FormatInt(n, 10), true
	}
	f, err := strconv.ParseFloat(string(p), 64)
	if err != nil {
		return string(p), true
	}
	return strconv.FormatFloat(f, 'g', 15, 64), true
}
