// Package query answers the plugin's query model (docs/query-model.md) from a Store (the
// SQLite cache or the PostgreSQL store): it parses and validates a query's JSON, resolves its
// filters to plain value lists, reads through the Store's typed reads, and builds the data
// frames Grafana shows.
//
// It knows Grafana's data frames but not its backend types: the Grafana glue maps a returned
// *Error (a user's mistake) to a downstream error response, any other error to a plugin one.
package query

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// Query types.
const (
	TypeLogs       = "logs"
	TypeTable      = "table"
	TypeTimeSeries = "timeseries"
	TypeTop        = "top"
	TypeValues     = "values"
	TypeNewTerms   = "newTerms"
)

// Fields are the names groupBy and field take.
const (
	FieldAction        = "action"
	FieldStatus        = "status"
	FieldPrincipal     = "principal"
	FieldPrincipalType = "principalType"
	FieldSourceIP      = "sourceIp"
	FieldUserAgent     = "userAgent"
	// FieldLevel groups a time series by the log level of the status (see severity): what
	// Explore's logs volume asks. Not a field of the events: timeseries groupBy only.
	FieldLevel = "level"
)

// Limit is a query type's default and largest limit.
type Limit struct {
	Default int `json:"default"` // for a limit of 0 or none; timeseries: 0, all series
	Max     int `json:"max"`
}

// limitsJSON is the one table of limits; the query editors import the same file.
//
//go:embed limits.json
var limitsJSON []byte

// Limits per query type.
var Limits = func() map[string]Limit {
	var m map[string]Limit
	if err := json.Unmarshal(limitsJSON, &m); err != nil {
		panic("query: limits.json: " + err.Error())
	}
	return m
}()

// The values limits, for the values resource.
var (
	DefaultValuesLimit = Limits[TypeValues].Default
	MaxValuesLimit     = Limits[TypeValues].Max
)

// MaxListLen bounds the number of entries of a list filter.
const MaxListLen = 1000

// fieldColumns maps a groupBy/field name to its column in the stores: its keys are the fields.
var fieldColumns = read.Columns

// fieldNames in the order error messages list them.
var fieldNames = []string{FieldAction, FieldStatus, FieldPrincipal, FieldPrincipalType, FieldSourceIP, FieldUserAgent}

var queryTypes = []string{TypeLogs, TypeTable, TypeTimeSeries, TypeTop, TypeValues, TypeNewTerms}

// ErrInvalidQuery is what every *Error matches with errors.Is: the query itself is wrong
// (the user's side), as opposed to a failure of the cache or of the plugin.
var ErrInvalidQuery = errors.New("invalid query")

// Error is a problem with a query a user wrote. Field names the JSON field at fault ("" for
// the whole document); Message is a sentence that says what to change.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalidQuery) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalidQuery }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Query is a parsed, defaulted and validated query.
type Query struct {
	Type          string
	Actions       []string
	Statuses      []string
	Principals    []string // names or ids
	PrincipalType string   // "", "user" or "serviceAccount"
	SourceIPs     []string // as written: IPs or CIDR prefixes
	Search        string
	// The negations: an event matching any of their values is left out (same matching as
	// the positive twin). An event without a source IP is never left out by NotSourceIPs.
	NotActions    []string
	NotStatuses   []string
	NotPrincipals []string
	NotSourceIPs  []string
	Adhoc         []AdhocFilter // Grafana's ad-hoc filters, ANDed with the rest
	GroupBy       string        // "" or a field name
	Field         string        // values: the field whose values are listed
	Fields        []string      // newTerms: 1 to MaxTermsFields field names
	Lookback      time.Duration // newTerms: the window before the range (0: DefaultLookback)
	Limit         int           // defaulted for logs, table, top and values; 0 for timeseries means all series

	prefixes    []netip.Prefix // SourceIPs parsed, single addresses as /32 or /128
	notPrefixes []netip.Prefix // NotSourceIPs parsed
	conds       []cond         // the filters with their value lists resolved (Engine.resolve)
	adhoc       []adhocMatch   // Adhoc parsed, in the same order
}

// AdhocFilter is one of Grafana's ad-hoc filters: key is a field name; operator = and !=
// compare exactly (sourceIp: an address or a CIDR prefix), =~ and !~ match an RE2 regular
// expression against the whole value.
type AdhocFilter struct {
	Key      string `json:"key"`
	Operator string `json:"operator"`
	Value    string `json:"value"`
}

// MaxRegexLen bounds an ad-hoc filter's regular expression, in characters.
const MaxRegexLen = 256

var adhocOperators = []string{"=", "!=", "=~", "!~"}

// adhocMatch is an AdhocFilter made ready to match: its compiled, anchored expression, or
// its source IP prefix when the value is one.
type adhocMatch struct {
	re     *regexp.Regexp
	prefix netip.Prefix // valid when a sourceIp value is an address or a prefix
}

// stringList accepts a JSON array of strings, a single string (a template variable that
// interpolated to one value), or null.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("must be a list of strings")
	}
	*l = ss
	return nil
}

// wire is the query JSON. Fields Grafana adds (refId, datasource, hide, …) are ignored.
type wire struct {
	QueryType     string          `json:"queryType"`
	Actions       json.RawMessage `json:"actions"`
	Statuses      json.RawMessage `json:"statuses"`
	Principals    json.RawMessage `json:"principals"`
	PrincipalType string          `json:"principalType"`
	SourceIPs     json.RawMessage `json:"sourceIps"`
	NotActions    json.RawMessage `json:"notActions"`
	NotStatuses   json.RawMessage `json:"notStatuses"`
	NotPrincipals json.RawMessage `json:"notPrincipals"`
	NotSourceIPs  json.RawMessage `json:"notSourceIps"`
	AdhocFilters  json.RawMessage `json:"adhocFilters"`
	Search        string          `json:"search"`
	GroupBy       string          `json:"groupBy"`
	Field         string          `json:"field"`
	Fields        json.RawMessage `json:"fields"`
	Lookback      string          `json:"lookback"`
	Limit         json.RawMessage `json:"limit"`
}

// Parse decodes a query's JSON, applies the defaults (queryType logs, the limits above) and
// validates it. Every error it returns is an *Error naming the field.
func Parse(raw json.RawMessage) (Query, error) {
	var w wire
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Query{}, errorf(te.Field, "%s has the wrong type: want %s", te.Field, te.Type.String())
		}
		return Query{}, errorf("", "the query is not valid JSON: %s", clip(err.Error(), 200))
	}
	var lists [9]stringList
	for i, l := range []struct {
		name string
		raw  json.RawMessage
	}{{"actions", w.Actions}, {"statuses", w.Statuses}, {"principals", w.Principals}, {"sourceIps", w.SourceIPs},
		{"notActions", w.NotActions}, {"notStatuses", w.NotStatuses}, {"notPrincipals", w.NotPrincipals}, {"notSourceIps", w.NotSourceIPs}, {"fields", w.Fields}} {
		if len(l.raw) == 0 {
			continue
		}
		if err := json.Unmarshal(l.raw, &lists[i]); err != nil {
			return Query{}, errorf(l.name, "%s must be a list of strings", l.name)
		}
	}
	q := Query{
		Type:          w.QueryType,
		Actions:       compact(lists[0]),
		Statuses:      compact(lists[1]),
		Principals:    compact(lists[2]),
		PrincipalType: strings.TrimSpace(w.PrincipalType),
		SourceIPs:     compact(lists[3]),
		NotActions:    compact(lists[4]),
		NotStatuses:   compact(lists[5]),
		NotPrincipals: compact(lists[6]),
		NotSourceIPs:  compact(lists[7]),
		Fields:        compact(lists[8]),
		Search:        w.Search,
		GroupBy:       strings.TrimSpace(w.GroupBy),
		Field:         strings.TrimSpace(w.Field),
	}
	if len(w.AdhocFilters) > 0 && !bytes.Equal(bytes.TrimSpace(w.AdhocFilters), []byte("null")) {
		if err := json.Unmarshal(w.AdhocFilters, &q.Adhoc); err != nil {
			return Query{}, errorf("adhocFilters", "adhocFilters must be a list of {key, operator, value} objects")
		}
	}
	if q.Type == "" {
		q.Type = TypeLogs
	}
	if !contains(queryTypes, q.Type) {
		return Query{}, errorf("queryType", "unknown queryType %q: use one of %s", clip(q.Type, 64), strings.Join(queryTypes, ", "))
	}
	lookback, err := parseLookback(w.Lookback)
	if err != nil {
		return Query{}, err
	}
	q.Lookback = lookback
	limit, err := parseLimit(w.Limit)
	if err != nil {
		return Query{}, err
	}
	q.Limit = limit
	if err := q.validate(); err != nil {
		return Query{}, err
	}
	return q, nil
}

// parseLookback reads a Go duration ("36h") or a number of days ("30d"); "" is 0.
func parseLookback(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.ParseFloat(n, 64); err == nil && d >= -1e6 && d <= 1e6 {
			return time.Duration(d * float64(24*time.Hour)), nil
		}
	} else if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	return 0, errorf("lookback", "lookback %q is neither a duration (like 36h) nor a number of days (like 30d)", clip(s, 32))
}

// formatDays writes whole days as "Nd", anything else as a Go duration.
func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func parseLimit(b json.RawMessage) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte(`""`)) {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		// A template variable may arrive as a string.
		var s string
		if json.Unmarshal(b, &s) != nil {
			return 0, errorf("limit", "limit must be a whole number")
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%g", &f); err != nil {
			return 0, errorf("limit", "limit must be a whole number, not %q", clip(s, 32))
		}
	}
	if f != float64(int64(f)) || f < -1e9 || f > 1e9 {
		return 0, errorf("limit", "limit must be a whole number, not %s", clip(string(b), 32))
	}
	return int(f), nil
}

// validate applies the per-type defaults and checks every field. q.Limit is the raw limit.
func (q *Query) validate() error {
	for _, l := range []struct {
		name string
		vals []string
	}{{"actions", q.Actions}, {"statuses", q.Statuses}, {"principals", q.Principals}, {"sourceIps", q.SourceIPs},
		{"notActions", q.NotActions}, {"notStatuses", q.NotStatuses}, {"notPrincipals", q.NotPrincipals}, {"notSourceIps", q.NotSourceIPs}} {
		if len(l.vals) > MaxListLen {
			return errorf(l.name, "%s has %d entries: at most %d", l.name, len(l.vals), MaxListLen)
		}
	}
	switch q.PrincipalType {
	case "", "user", "serviceAccount":
	default:
		return errorf("principalType", "unknown principalType %q: use user or serviceAccount (or leave it empty for both)", clip(q.PrincipalType, 64))
	}
	if q.GroupBy == FieldLevel && q.Type != TypeTimeSeries {
		return errorf("groupBy", "groupBy level is for timeseries queries only")
	}
	if q.GroupBy != "" && q.GroupBy != FieldLevel {
		if _, ok := fieldColumns[q.GroupBy]; !ok {
			return errorf("groupBy", "unknown groupBy %q: use one of %s", clip(q.GroupBy, 64), strings.Join(fieldNames, ", "))
		}
	}
	if q.Field != "" {
		if _, ok := fieldColumns[q.Field]; !ok {
			return errorf("field", "unknown field %q: use one of %s", clip(q.Field, 64), strings.Join(fieldNames, ", "))
		}
	}
	var err error
	if q.prefixes, err = parsePrefixes("sourceIps", q.SourceIPs); err != nil {
		return err
	}
	if q.notPrefixes, err = parsePrefixes("notSourceIps", q.NotSourceIPs); err != nil {
		return err
	}
	if q.adhoc, err = parseAdhoc(q.Adhoc); err != nil {
		return err
	}
	// Like groupBy and field, fields is checked whatever the query type (it only applies to
	// newTerms).
	for _, f := range q.Fields {
		if _, ok := fieldColumns[f]; !ok {
			return errorf("fields", "unknown field %q in fields: use %s", clip(f, 64), strings.Join(fieldNames, ", "))
		}
	}
	switch q.Type {
	case TypeTop:
		if q.GroupBy == "" {
			return errorf("groupBy", "a top query needs groupBy: one of %s", strings.Join(fieldNames, ", "))
		}
	case TypeNewTerms:
		if len(q.Fields) == 0 && q.Field != "" {
			q.Fields = []string{q.Field}
		}
		if len(q.Fields) == 0 || len(q.Fields) > MaxTermsFields {
			return errorf("fields", "a newTerms query takes 1 to %d fields, not %d: from %s", MaxTermsFields, len(q.Fields), strings.Join(fieldNames, ", "))
		}
		if q.Lookback == 0 {
			q.Lookback = DefaultLookback
		}
		if q.Lookback < 0 || q.Lookback > MaxLookback {
			return errorf("lookback", "lookback %s is out of range: more than 0 and at most 365d", formatDays(q.Lookback))
		}
	case TypeValues:
		if q.Field == "" {
			// The editor may send groupBy for a values query; accept it as the field.
			q.Field = q.GroupBy
		}
		if q.Field == "" {
			return errorf("field", "a values query needs field: one of %s", strings.Join(fieldNames, ", "))
		}
	}
	l := Limits[q.Type]
	lim := q.Limit
	if lim == 0 {
		lim = l.Default
	}
	if lim < 0 || lim > l.Max || (lim == 0 && q.Type != TypeTimeSeries) {
		if q.Type == TypeTimeSeries {
			return errorf("limit", "limit %d is out of range: timeseries queries take 1 to %d series (or none for all)", q.Limit, l.Max)
		}
		return errorf("limit", "limit %d is out of range: %s queries take 1 to %d", q.Limit, q.Type, l.Max)
	}
	q.Limit = lim
	return nil
}

func parseAdhoc(fs []AdhocFilter) ([]adhocMatch, error) {
	if len(fs) > MaxListLen {
		return nil, errorf("adhocFilters", "adhocFilters has %d entries: at most %d", len(fs), MaxListLen)
	}
	out := make([]adhocMatch, len(fs))
	for i, f := range fs {
		if _, ok := fieldColumns[f.Key]; !ok {
			return nil, errorf("adhocFilters", "adhocFilters[%d]: unknown key %q: use one of %s", i, clip(f.Key, 64), strings.Join(fieldNames, ", "))
		}
		switch f.Operator {
		case "=", "!=":
			if f.Key == FieldSourceIP {
				if p, err := parseIPOrPrefix(f.Value); err == nil {
					out[i].prefix = p
				}
			}
		case "=~", "!~":
			if n := utf8.RuneCountInString(f.Value); n > MaxRegexLen {
				return nil, errorf("adhocFilters", "adhocFilters[%d] (%s): the regular expression has %d characters: at most %d", i, f.Key, n, MaxRegexLen)
			}
			re, err := regexp.Compile("^(?:" + f.Value + ")$")
			if err != nil {
				return nil, errorf("adhocFilters", "adhocFilters[%d] (%s): %q is not a valid regular expression: %s", i, f.Key, clip(f.Value, 64), clip(err.Error(), 200))
			}
			out[i].re = re
		default:
			return nil, errorf("adhocFilters", "adhocFilters[%d] (%s): unknown operator %q: use one of %s", i, f.Key, clip(f.Operator, 16), strings.Join(adhocOperators, " "))
		}
	}
	return out, nil
}

func parsePrefixes(name string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := parseIPOrPrefix(s)
		if err != nil {
			return nil, errorf(name, "%s: %q is neither an IP address nor a CIDR prefix (like 203.0.113.7 or 10.0.0.0/8)", name, clip(s, 64))
		}
		out = append(out, p)
	}
	return out, nil
}

// parseIPOrPrefix reads an IP address (as a one-address prefix) or a CIDR prefix, masked.
func parseIPOrPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8.
			bits := p.Bits() - 96
			if bits < 0 {
				return netip.Prefix{}, errors.New("prefix too short for a mapped address")
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// compact drops empty entries (an unset template variable) and duplicates, keeping order.
func compact(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// clip shortens s for an error message, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
