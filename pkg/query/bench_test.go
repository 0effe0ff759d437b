package query

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/store"
)

// Benchmarks on big generated caches. The file for each size is built once (minutes for 10
// million events) and kept in the temporary directory between runs:
//
//	go test -run '^$' -bench . -benchtime 30x ./pkg/query
//	QUERY_BENCH_SIZES=1000000 go test -run '^$' -bench . ./pkg/query
//
// Each op is one query including frame building; the reported median-ms / p99-ms are over
// the ops of the run.

var benchEnd = time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)

const (
	benchSpan   = 30 * 24 * time.Hour
	benchNeedle = "zq-needle-7f3k" // in the action parameters of a few events only
)

func benchSizes() []int {
	s := os.Getenv("QUERY_BENCH_SIZES")
	if s == "" {
		s = "1000000,10000000"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// benchGen makes realistic entries fast: the fake tenant's population (24 users, 8 service
// accounts, their IPs and agents, weighted actions, 88% SUCCESS) with raw nodes of a realistic
// size, built by appending bytes.
type benchGen struct {
	s uint64
}

func (g *benchGen) next() uint64 {
	g.s += 0x9e3779b97f4a7c15
	x := g.s
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g *benchGen) intn(n int) int { return int(g.next() % uint64(n)) }

type benchPrincipal struct {
	id, name, typ string
	ips, agents   []string
}

var benchPrincipals = func() []benchPrincipal {
	g := benchGen{s: 7}
	var ps []benchPrincipal
	first := []string{"ana", "bram", "chioma", "dev", "elif", "farid", "greta", "hiro", "ines", "jonas", "kofi", "lena"}
	last := []string{"almeida", "berg", "costa", "dubois", "eriksen", "fischer", "garcia", "haddad"}
	for i := 0; i < 24; i++ {
		ps = append(ps, benchPrincipal{
			id: fmt.Sprintf("u%051x", g.next()), name: first[g.intn(len(first))] + "." + last[g.intn(len(last))] + strconv.Itoa(i), typ: auditlog.PrincipalUser,
			ips:    []string{fmt.Sprintf("198.51.100.%d", 1+g.intn(254)), fmt.Sprintf("2001:db8:%x::%x", g.intn(65536), g.intn(65536))},
			agents: []string{"Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15"},
		})
	}
	for _, n := range []string{"SOC-Pipeline", "terraform-ci", "grafana-audit", "ticket-sync", "cspm-export", "backup-auditor", "siem-forwarder", "inventory-bot"} {
		ps = append(ps, benchPrincipal{
			id: fmt.Sprintf("s%051x", g.next()), name: n, typ: auditlog.PrincipalServiceAccount,
			ips:    []string{fmt.Sprintf("203.0.113.%d", 1+g.intn(254)), fmt.Sprintf("10.%d.%d.%d", g.intn(256), g.intn(256), 1+g.intn(254))},
			agents: []string{"python-requests/2.32.3", ""},
		})
	}
	return ps
}()

var benchActions = []string{"Login", "Login", "Login", "TokenRefresh", "TokenRefresh", "Reports", "Reports", "Reports",
	"UpdateReport", "RerunReport", "UpdateUser", "CreateSAMLUser", "RevokeSessions", "Issues", "Issues", "UpdateIssue", "CloudResources"}

func (g *benchGen) entry(i int, ts time.Time, needle bool) auditlog.Entry {
	var p *benchPrincipal
	if g.intn(10) < 6 {
		p = &benchPrincipals[24+g.intn(8)]
	} else {
		p = &benchPrincipals[g.intn(24)]
	}
	status := auditlog.StatusSuccess
	switch x := g.intn(100); {
	case x < 8:
		status = auditlog.StatusFailed
	case x < 12:
		status = auditlog.StatusAccessDenied
	}
	action := benchActions[g.intn(len(benchActions))]
	id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(g.next()), g.intn(1<<16), g.intn(1<<12), g.intn(1<<12), g.next()>>16)
	req := fmt.Sprintf("%08x-%04x-4%03x-9%03x-%012x", uint32(g.next()), g.intn(1<<16), g.intn(1<<12), g.intn(1<<12), g.next()>>16)
	ip := p.ips[g.intn(len(p.ips))]
	ua := p.agents[g.intn(len(p.agents))]
	note := "Weekly posture " + strconv.Itoa(g.intn(50))
	if needle {
		note = "Weekly " + benchNeedle
	}
	params := fmt.Sprintf(`{"clientID":"%x","first":%d,"filterBy":{"status":["OPEN"]},"input":{"id":"%x","override":{"name":"%s"}},"userID":"%s"}`,
		g.next(), []int{20, 100, 500}[g.intn(3)], g.next(), note, p.id)
	b := make([]byte, 0, 640)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","action":"`...)
	b = append(b, action...)
	b = append(b, `","requestId":"`...)
	b = append(b, req...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, `","timestamp":"`...)
	b = ts.AppendFormat(b, "2006-01-02T15:04:05.999999Z")
	b = append(b, `","actionParameters":`...)
	b = append(b, params...)
	b = append(b, `,"userAgent":`...)
	if ua == "" {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, ua)
	}
	b = append(b, `,"sourceIP":"`...)
	b = append(b, ip...)
	if p.typ == auditlog.PrincipalServiceAccount {
		b = append(b, `","serviceAccount":{"id":"`...)
	} else {
		b = append(b, `","serviceAccount":null,"user":{"id":"`...)
	}
	b = append(b, p.id...)
	b = append(b, `","name":"`...)
	b = append(b, p.name...)
	if p.typ == auditlog.PrincipalServiceAccount {
		b = append(b, `"},"user":null}`...)
	} else {
		b = append(b, `"}}`...)
	}
	_ = i
	return auditlog.Entry{
		ID: id, RequestID: req, Action: action, Status: status, Timestamp: ts,
		PrincipalID: p.id, PrincipalName: p.name, PrincipalType: p.typ, SourceIP: ip, UserAgent: ua,
		ActionParameters: []byte(params), Raw: b,
	}
}

// benchCache opens (building it the first time) the cache of n events spread evenly over the
// 30 days before benchEnd.
func benchCache(b *testing.B, n int) *cache.Cache {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "wizauditlogs-query-bench")
	path := filepath.Join(dir, fmt.Sprintf("events-%d-v%d.db", n, cache.SchemaVersion()))
	done := path + ".done"
	if _, err := os.Stat(done); err != nil {
		migrated, err := adoptOlderBenchCache(b, dir, n, path)
		if err != nil {
			b.Fatal(err)
		}
		if migrated {
			return benchCache(b, n)
		}
		for _, sfx := range []string{"", "-wal", "-shm", ".lock"} {
			_ = os.Remove(path + sfx)
		}
		start := time.Now()
		c, err := cache.Open(path, cache.Options{SkipQuickCheck: true})
		if err != nil {
			b.Fatal(err)
		}
		benchPages(b, n, func(page []auditlog.Entry) error {
			_, err := c.Apply(context.Background(), page, store.Update{})
			return err
		})
		if _, err := c.Apply(context.Background(), nil, store.Update{SyncedUpTo: benchEnd}); err != nil {
			b.Fatal(err)
		}
		b.Logf("stored %d events in %s", n, time.Since(start).Round(time.Second))
		indexAll(b, c)
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d events in %s", n, time.Since(start).Round(time.Second))
	}
	c, err := cache.Open(path, cache.Options{SkipQuickCheck: true, ReadConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	// The concurrent runs' writer adds events; index them as the syncer would have.
	indexAll(b, c)
	return c
}

// benchPages generates a benchmark store's n events, spread evenly over the 30 days before
// benchEnd, and passes them to store in pages of 5,000.
func benchPages(b *testing.B, n int, store func([]auditlog.Entry) error) {
	g := benchGen{s: uint64(n)}
	step := benchSpan / time.Duration(n)
	page := make([]auditlog.Entry, 0, 5000)
	for i := 0; i < n; i++ {
		ts := benchEnd.Add(-benchSpan + time.Duration(i)*step).Truncate(time.Microsecond)
		page = append(page, g.entry(i, ts, i%(n/8) == 17))
		if len(page) == cap(page) || i == n-1 {
			if err := store(page); err != nil {
				b.Fatal(err)
			}
			page = page[:0]
		}
	}
}

// adoptOlderBenchCache takes over a complete cache file of n events built by an older schema
// (renaming it, not copying gigabytes): opening it migrates it, timed, and its events are
// then indexed for search, timed. It reports false when there is none.
func adoptOlderBenchCache(b *testing.B, dir string, n int, path string) (bool, error) {
	for v := cache.SchemaVersion() - 1; v >= 1; v-- {
		old := filepath.Join(dir, fmt.Sprintf("events-%d-v%d.db", n, v))
		if _, err := os.Stat(old + ".done"); err != nil {
			continue
		}
		for _, sfx := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(path + sfx)
			if err := os.Rename(old+sfx, path+sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, err
			}
		}
		_ = os.Remove(old + ".done")
		_ = os.Remove(old + ".lock")
		start := time.Now()
		c, err := cache.Open(path, cache.Options{SkipQuickCheck: true})
		if err != nil {
			return false, err
		}
		b.Logf("opened the %d-event cache of schema v%d: migrated to v%d in %s", n, v, cache.SchemaVersion(), time.Since(start).Round(time.Millisecond))
		indexAll(b, c)
		if err := c.Close(); err != nil {
			return false, err
		}
		return true, os.WriteFile(path+".done", nil, 0o600)
	}
	return false, nil
}

// indexAll drains the search queue as the syncer does, in batches of the default size, and
// logs the rate.
func indexAll(b *testing.B, c *cache.Cache) {
	start := time.Now()
	total := 0
	for {
		k, err := c.IndexPending(context.Background(), 0)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
		total += k
	}
	el := time.Since(start)
	b.Logf("indexed %d events for search in %s (%.0f events/s)", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
}

type benchQuery struct {
	name string
	js   string
	span time.Duration
	iv   time.Duration
}

var benchQueries = []benchQuery{
	{"logs-1h", `{"queryType":"logs","limit":1000}`, time.Hour, 0},
	{"timeseries-action-30d-1h", `{"queryType":"timeseries","groupBy":"action"}`, benchSpan, time.Hour},
	{"top-principal-30d", `{"queryType":"top","groupBy":"principal"}`, benchSpan, 0},
	{"search-rare-30d", `{"queryType":"logs","search":"` + benchNeedle + `"}`, benchSpan, 0},
	// A needle in about one event in 800 (four hex digits: ids, request ids, client ids): the
	// index path with thousands of candidates. And one in a fifth of the events: too many
	// candidates, so the range walk that stops at the limit.
	{"search-medium-30d", `{"queryType":"logs","search":"7E57"}`, benchSpan, 0},
	{"search-common-30d", `{"queryType":"logs","search":"posture 1"}`, benchSpan, 0},
	{"search-rare-30d-timeseries", `{"queryType":"timeseries","search":"` + benchNeedle + `"}`, benchSpan, time.Hour},
	{"logs-failed-logins-24h", `{"queryType":"logs","actions":["Login"],"statuses":["FAILED"]}`, 24 * time.Hour, 0},
	{"timeseries-cidr-7d-1h", `{"queryType":"timeseries","sourceIps":["10.0.0.0/8"]}`, 7 * 24 * time.Hour, time.Hour},
	{"values-principal-sa", `{"queryType":"values","field":"principal","principalType":"serviceAccount"}`, 0, 0},
	{"values-sourceIp", `{"queryType":"values","field":"sourceIp"}`, 0, 0},
	{"newterms-principal-sourceIp-1d-30d", `{"queryType":"newTerms","fields":["principal","sourceIp"],"lookback":"30d"}`, 24 * time.Hour, 0},
	{"newterms-3-fields-1d-30d", `{"queryType":"newTerms","fields":["principal","sourceIp","userAgent"],"principalType":"serviceAccount"}`, 24 * time.Hour, 0},
}

func (bq benchQuery) request(b *testing.B, end time.Time) Request {
	q, err := Parse([]byte(bq.js))
	if err != nil {
		b.Fatal(err)
	}
	// The range ends a little before the newest event and starts mid-hour, as a panel's does.
	to := end.Add(-37 * time.Second)
	return Request{Query: q, From: to.Add(-bq.span), To: to, Interval: bq.iv, MaxDataPoints: 1500, RefID: "A"}
}

func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkQuery(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			c := benchCache(b, n)
			e := NewEngine(c)
			f := Freshness{SyncedUpTo: benchEnd}
			runBenchQueries(b, e, f)
			for _, mix := range []int{4, 3} {
				name := "concurrent-8-with-writer"
				if mix == 3 {
					name += "-no-search"
				}
				b.Run(name, func(b *testing.B) { benchConcurrent(b, c, e, f, mix) })
			}
		})
	}
}

// runBenchQueries runs each of benchQueries as a sub-benchmark.
func runBenchQueries(b *testing.B, e *Engine, f Freshness) {
	for _, bq := range benchQueries {
		b.Run(bq.name, func(b *testing.B) {
			r := bq.request(b, benchEnd)
			if _, err := e.Run(context.Background(), r, f); err != nil { // warm
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				frames, err := e.Run(context.Background(), r, f)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				if i == 0 && bq.name == "search-rare-30d" && frames[0].Rows() == 0 {
					b.Fatal("search found nothing")
				}
			}
			b.StopTimer()
			reportLatencies(b, lat)
		})
	}
}

// benchConcurrent: 8 callers run the first mix target queries round-robin while a writer
// inserts pages of 500 new events (timestamped after the queried ranges, as a live sync
// would add them); b.N is the number of queries per caller.
func benchConcurrent(b *testing.B, c *cache.Cache, e *Engine, f Freshness, mix int) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var inserted atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		g := benchGen{s: uint64(time.Now().UnixNano())}
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			page := make([]auditlog.Entry, 500)
			for j := range page {
				// After the queried ranges, as a live sync adds them: the answers
				// (and later runs on the same file) stay comparable.
				page[j] = g.entry(j, benchEnd.Add(time.Hour+time.Duration(g.intn(3600))*time.Second), false)
			}
			m, err := c.Apply(context.Background(), page, store.Update{})
			if err != nil {
				b.Error(err)
				return
			}
			inserted.Add(int64(m))
		}
	}()
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var callers sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 8; w++ {
		callers.Add(1)
		go func(w int) {
			defer callers.Done()
			local := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				r := benchQueries[(w+i)%mix].request(b, benchEnd)
				t0 := time.Now()
				if _, err := e.Run(context.Background(), r, f); err != nil {
					errs.Add(1)
					b.Error(err)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(w)
	}
	callers.Wait()
	b.StopTimer()
	close(stop)
	wg.Wait()
	reportLatencies(b, lat)
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(float64(inserted.Load()), "inserted")
}
