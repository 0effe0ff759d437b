package postgres

import (
	"context"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/query/read"
	"github.com/seed/wizauditlogs/pkg/store"
)

// checkTermsBounds compares rollup_terms_daily's first and last timestamps with the events of
// each day and combination: equal when exact, else (after pruning) bounds around them.
func checkTermsBounds(t testing.TB, s *Store, exact bool) {
	t.Helper()
	cmp := "r.first_ts > e.first_ts OR r.last_ts < e.last_ts"
	if exact {
		cmp = "r.first_ts <> e.first_ts OR r.last_ts <> e.last_ts"
	}
	var bad int
	err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM rollup_terms_daily AS r JOIN (
			SELECT ts / 86400000000000 AS day, action, status, principal_type, principal, principal_id, source_ip, user_agent,
				min(ts) AS first_ts, max(ts) AS last_ts
			FROM events WHERE ds = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS e
		USING (day, action, status, principal_type, principal, principal_id, source_ip, user_agent)
		WHERE r.ds = $1 AND (`+cmp+`)`, s.dsID).Scan(&bad)
	if err != nil || bad != 0 {
		t.Fatalf("rollup_terms_daily: %d rows with first_ts or last_ts off the events (exact %v), %v", bad, exact, err)
	}
}

// termsEntries are entries spread over about ten days, with many source IPs and user agents:
// combinations keep appearing for the first time.
func termsEntries(rng *rand.Rand, n int) []auditlog.Entry {
	page := entries(rng, base.Add(time.Duration(rng.Intn(10*24*60))*time.Minute), n, 100_000)
	for i := range page {
		page[i].SourceIP = fmt.Sprintf("198.51.100.%d", rng.Intn(60))
		page[i].UserAgent = fmt.Sprintf("agent/%d", rng.Intn(20))
	}
	return page
}

// The migration that adds rollup_terms_daily fills it from the events already stored, with
// exact first and last timestamps.
func TestTermsRollupFilledByMigration(t *testing.T) {
	t.Parallel()
	s, url := leading(t, Options{})
	rng := rand.New(rand.NewSource(7))
	for range 5 {
		apply(t, s, termsEntries(rng, 200), store.Update{})
	}
	// Back to the version before the rollup, then migrate again.
	_, err := s.pool.Exec(context.Background(), "DROP TABLE rollup_terms_daily; UPDATE schema_version SET version = 2")
	if err != nil {
		t.Fatal(err)
	}
	s = open(t, url, "ds", Options{})
	checkRollups(t, s)
	checkTermsBounds(t, s, true)
}

// NewTerms from the rollup equals NewTerms from the events, for random fields, filters,
// windows and limits over random writes and prunes.
func TestNewTermsRollupMatchesEvents(t *testing.T) {
	t.Parallel()
	s, _ := leading(t, Options{PruneBatch: 500, PrunePause: -1})
	ctx := context.Background()
	rng := rand.New(rand.NewSource(11))
	fieldNames := []string{"action", "status", "principal", "principalType", "sourceIp", "userAgent"}
	var fromRollup, found int
	for step := range 40 {
		if step%10 == 9 {
			if _, err := s.Prune(ctx, base.Add(time.Duration(rng.Intn(3*24*60))*time.Minute)); err != nil {
				t.Fatal(err)
			}
		} else {
			apply(t, s, termsEntries(rng, 1+rng.Intn(300)), store.Update{})
		}
		for range 5 {
			perm := rng.Perm(len(fieldNames))
			fields := make([]string, 1+rng.Intn(3))
			for i := range fields {
				fields[i] = fieldNames[perm[i]]
			}
			var f read.Filter
			if rng.Intn(2) == 0 {
				f.Conds = []read.Cond{{Field: "principalType", Not: rng.Intn(2) == 0, Vals: []string{auditlog.PrincipalUser}}}
			}
			since := base.Add(time.Duration(rng.Intn(6*24*60)) * time.Minute)
			from := since.Add(time.Duration(1+rng.Intn(5*24*60)) * time.Minute)
			to := from.Add(time.Duration(rng.Intn(3*24*60)) * time.Minute)
			limit := 1 + rng.Intn(40)
			got, ok, err := s.newTermsRollup(ctx, fields, f, since, from, to, limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.newTermsEvents(ctx, fields, f, since, from, to, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			fromRollup++
			found += len(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: fields %v, filter %+v, [%s, %s, %s], limit %d:\nrollup %v\nevents %v",
					step, fields, f, since, from, to, limit, got, want)
			}
		}
	}
	if fromRollup < 50 || found == 0 {
		t.Fatalf("the rollup answered %d queries of 200, with %d terms in all: the test lost its point", fromRollup, found)
	}
}
