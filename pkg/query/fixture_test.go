package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/seed/wizauditlogs/pkg/store"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/store/postgres"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
	"github.com/seed/wizauditlogs/pkg/wiz"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// The shared data set: a seeded fake tenant's events decoded as the syncer would, plus a few
// hand-made oddities (IPv6 and mapped addresses, a source IP that is no IP, SQL metacharacters,
// quotes, no principal, no source IP), stored once in each store: real SQLite cache files
// and a fresh database on the package's PostgreSQL cluster. Every engine test runs over both
// and expects the same answers.

var fixEnd = time.Date(2026, 6, 10, 12, 34, 56, 0, time.UTC)

type fixture struct {
	entries []auditlog.Entry
	cache   *cache.Cache // search index fully built
	partial *cache.Cache // the same events, the first half indexed and the rest still queued
	pg      *postgres.Store
	dir     string
}

// backends returns an engine per store, as shipped.
func backends(f *fixture) map[string]*Engine {
	return map[string]*Engine{"sqlite": NewEngine(f.cache), "postgres": NewEngine(f.pg)}
}

// Both stores implement the engine's reads.
var _, _ Store = (*cache.Cache)(nil), (*postgres.Store)(nil)

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if fix != nil {
		_ = fix.cache.Close()
		_ = fix.partial.Close()
		_ = fix.pg.Close()
		_ = os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture(&fixtureTB{TB: t}) })
	if fixErr != nil {
		t.Fatalf("fixture: %v", fixErr)
	}
	return fix
}

// fixtureTB lends pgtest the test that builds the shared fixture, without tying the fixture's
// database to that test's end: the database lives as long as the package's cluster
// (pgtest.Main removes it).
type fixtureTB struct {
	testing.TB
	err error
}

func (t *fixtureTB) Helper()        {}
func (t *fixtureTB) Cleanup(func()) {}
func (t *fixtureTB) Fatalf(format string, args ...any) {
	t.err = fmt.Errorf(format, args...)
}

func buildFixture(t *fixtureTB) (*fixture, error) {
	ten := wizfake.New(wizfake.Options{Seed: 42, Events: 6000, Span: 72 * time.Hour, End: fixEnd})
	var entries []auditlog.Entry
	for _, ev := range ten.Events() {
		e, err := wiz.DecodeEntry(ev.Node)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	entries = append(entries, oddEntries()...)
	dir, err := os.MkdirTemp("", "querytest")
	if err != nil {
		return nil, err
	}
	f := &fixture{entries: entries, dir: dir}
	for _, c := range []struct {
		name    string
		to      **cache.Cache
		indexTo int // index the queue after the pages below this entry
	}{{"cache.db", &f.cache, len(entries)}, {"partial.db", &f.partial, len(entries) / 2}} {
		var err error
		if *c.to, err = cache.Open(filepath.Join(dir, c.name), cache.Options{}); err != nil {
			return nil, err
		}
		for i := 0; i < len(entries); i += 500 {
			if _, err := (*c.to).Apply(context.Background(), entries[i:min(i+500, len(entries))], store.Update{}); err != nil {
				return nil, err
			}
			if i+500 >= c.indexTo && i < c.indexTo {
				for {
					n, err := (*c.to).IndexPending(context.Background(), 1000)
					if err != nil {
						return nil, err
					}
					if n == 0 {
						break
					}
				}
			}
		}
	}
	url := pgtest.NewDatabase(t)
	if t.err != nil {
		return nil, t.err
	}
	ctx := context.Background()
	if f.pg, err = postgres.Open(ctx, url, 1, "fixture", postgres.Options{}); err != nil {
		return nil, err
	}
	if ok, err := f.pg.TryLead(ctx); !ok || err != nil {
		return nil, fmt.Errorf("lead the PostgreSQL store: %v, %w", ok, err)
	}
	for i := 0; i < len(entries); i += 500 {
		if _, err := f.pg.Apply(ctx, entries[i:min(i+500, len(entries))], store.Update{}); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func node(id, action, status string, ts time.Time, params string, ua, ip *string, sa, user map[string]string) json.RawMessage {
	m := map[string]any{
		"id": id, "action": action, "requestId": "req-" + id, "status": status,
		"timestamp": wizfake.FormatTimestamp(ts), "actionParameters": json.RawMessage(params),
		"userAgent": ua, "sourceIP": ip, "serviceAccount": nil, "user": nil,
	}
	if sa != nil {
		m["serviceAccount"] = sa
	}
	if user != nil {
		m["user"] = user
	}
	b, _ := json.Marshal(m)
	return b
}

func sp(s string) *string { return &s }

func oddEntries() []auditlog.Entry {
	at := func(h int) time.Time { return fixEnd.Add(-time.Duration(h)*time.Hour - 17*time.Minute) }
	sa := map[string]string{"id": "sa-odd-1", "name": "MetronLabs"}
	u := map[string]string{"id": "u-odd-2", "name": "Robert'); DROP TABLE events;--"}
	nodes := []json.RawMessage{
		node("odd-1", "Login", "SUCCESS", at(1), `{"clientID": "abc", "note": "Zebra-Crossing"}`, sp("curl/8.0"), sp("2001:db8::7"), sa, nil),
		node("odd-2", "Login", "FAILED", at(2), `{"q":"100% \"quoted\" \\ back"}`, sp(`Agent "quoted" <b>`), sp("::ffff:10.1.2.3"), sa, nil),
		node("odd-3", "UpdateUser", "ACCESS_DENIED", at(3), `null`, nil, sp("not-an-ip"), nil, u),
		node("odd-4", "  Weird Action  ", "SUCCESS", at(4), `{"x":[1,2,{"y":"Ünïcödé"}]}`, sp("ua%_*"), sp("2001:db8:0:0:1::9"), nil, nil),
		node("odd-5", "Login", "ACCESS_DENIED", at(5), `{}`, sp("curl/8.0"), sp("10.255.255.255"), nil, map[string]string{"id": "u-odd-5", "name": ""}),
		node("odd-6", "Login", "FAILED", at(6), `{}`, nil, nil, nil, map[string]string{"id": "u-odd-6", "name": "ipless"}),
	}
	var out []auditlog.Entry
	for _, n := range nodes {
		e, err := wiz.DecodeEntry(n)
		if err != nil {
			panic(err)
		}
		out = append(out, e)
	}
	return out
}

// ---- the independent model of the query semantics ----

func asciiLowerT(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func matches(e *auditlog.Entry, q *Query) bool {
	if len(q.Actions) > 0 && !slices.Contains(q.Actions, e.Action) {
		return false
	}
	if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, e.Status) {
		return false
	}
	if len(q.Principals) > 0 && !slices.Contains(q.Principals, e.PrincipalName) && !slices.Contains(q.Principals, e.PrincipalID) {
		return false
	}
	if q.PrincipalType != "" && e.PrincipalType != q.PrincipalType {
		return false
	}
	if len(q.SourceIPs) > 0 && !slices.ContainsFunc(q.SourceIPs, func(s string) bool { return ipMatchesT(s, e.SourceIP) }) {
		return false
	}
	if slices.Contains(q.NotActions, e.Action) || slices.Contains(q.NotStatuses, e.Status) ||
		slices.Contains(q.NotPrincipals, e.PrincipalName) || slices.Contains(q.NotPrincipals, e.PrincipalID) ||
		slices.ContainsFunc(q.NotSourceIPs, func(s string) bool { return ipMatchesT(s, e.SourceIP) }) {
		return false
	}
	for _, f := range q.Adhoc {
		v := fieldOf(e, f.Key)
		var ok bool
		switch f.Operator {
		case "=", "!=":
			ok = v == f.Value || (f.Key == FieldSourceIP && ipMatchesT(f.Value, v))
		default:
			ok = regexp.MustCompile(`\A(?:` + f.Value + `)\z`).MatchString(v)
		}
		if ok == strings.HasPrefix(f.Operator, "!") {
			return false
		}
	}
	if q.Search != "" {
		n := asciiLowerT(q.Search)
		var params []byte
		if string(e.ActionParameters) != "null" {
			var buf bytes.Buffer
			_ = json.Compact(&buf, e.ActionParameters) // minified, as SQLite's json_extract returns it
			params = buf.Bytes()
		}
		found := false
		for _, f := range []string{e.ID, e.RequestID, e.Action, e.PrincipalName, e.UserAgent, string(params)} {
			if strings.Contains(asciiLowerT(f), n) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ipMatchesT: the filter value s (an address or a CIDR prefix) matches the event's source IP
// ip, an IPv4-mapped address being its IPv4 address; a value that is no IP matches itself.
func ipMatchesT(s, ip string) bool {
	if s == ip {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err == nil && p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return err == nil && p.Contains(a)
	}
	b, err := netip.ParseAddr(s)
	return err == nil && b.Unmap() == a
}

func inRange(e *auditlog.Entry, from, to time.Time) bool {
	return !e.Timestamp.Before(from) && !e.Timestamp.After(to)
}

func fieldOf(e *auditlog.Entry, field string) string {
	switch field {
	case FieldAction:
		return e.Action
	case FieldStatus:
		return e.Status
	case FieldPrincipal:
		return e.PrincipalName
	case FieldPrincipalType:
		return e.PrincipalType
	case FieldSourceIP:
		return e.SourceIP
	case FieldUserAgent:
		return e.UserAgent
	case FieldLevel:
		if lv, ok := map[string]string{"SUCCESS": "info", "FAILED": "error", "ACCESS_DENIED": "warning"}[e.Status]; ok {
			return lv
		}
		return "unknown"
	}
	return ""
}

// expected returns the matching entries in range, newest first (ties by id, descending).
func (f *fixture) expected(q *Query, from, to time.Time) []auditlog.Entry {
	var out []auditlog.Entry
	for i := range f.entries {
		e := &f.entries[i]
		if inRange(e, from, to) && matches(e, q) {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b auditlog.Entry) int {
		if c := b.Timestamp.Compare(a.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

func mustParse(t testing.TB, js string) Query {
	t.Helper()
	q, err := Parse(json.RawMessage(js))
	if err != nil {
		t.Fatalf("Parse(%s): %v", js, err)
	}
	return q
}
