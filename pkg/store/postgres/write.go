package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
)

// applySQL stores a page and its rollups in one statement: the rows arrive as arrays
// (unnest), the insert skips ids already stored and returns the rows it inserted, and each
// rollup adds exactly those. Being one statement in the page's transaction, the rollups can
// never drift from the events.
var applySQL = `
WITH ins AS (
	INSERT INTO events (ds, id, ts, request_id, action, status, principal, principal_id, principal_type,
		source_ip, user_agent, params, raw, search)
	SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
	ON CONFLICT DO NOTHING
	RETURNING ts, action, status, principal_type, principal, principal_id, source_ip, user_agent
), hourly AS (
	INSERT INTO rollup_hourly AS r (ds, hour, action, status, principal_type, principal, principal_id, n)
	SELECT $1, ts / 3600000000000, action, status, principal_type, principal, principal_id, count(*)
	FROM ins GROUP BY 2, 3, 4, 5, 6, 7
	ON CONFLICT (ds, hour, action, status, principal_type, principal, principal_id) DO UPDATE SET n = r.n + excluded.n
), kind AS (
	INSERT INTO rollup_hourly_kind AS r (ds, hour, action, status, principal_type, n)
	SELECT $1, ts / 3600000000000, action, status, principal_type, count(*)
	FROM ins GROUP BY 2, 3, 4, 5
	ON CONFLICT (ds, hour, action, status, principal_type) DO UPDATE SET n = r.n + excluded.n
), daily AS (
	INSERT INTO rollup_daily AS r (ds, day, action, status, principal_type, principal, principal_id, n)
	SELECT $1, ts / 86400000000000, action, status, principal_type, principal, principal_id, count(*)
	FROM ins GROUP BY 2, 3, 4, 5, 6, 7
	ON CONFLICT (ds, day, action, status, principal_type, principal, principal_id) DO UPDATE SET n = r.n + excluded.n
), vals AS (
	INSERT INTO rollup_values AS r (ds, field, value, n)
	SELECT $1, v.field, v.value, count(*)
	FROM ins CROSS JOIN LATERAL (VALUES ('source_ip', ins.source_ip), ('user_agent', ins.user_agent)) AS v (field, value)
	GROUP BY 2, 3
	ON CONFLICT (ds, field, md5(value)) DO UPDATE SET n = r.n + excluded.n
), terms AS (
	INSERT INTO rollup_terms_daily AS r (ds, day, action, status, principal_type, principal, principal_id,
		source_ip, user_agent, n, first_ts, last_ts)
	SELECT $1, ts / 86400000000000, action, status, principal_type, principal, principal_id, source_ip, user_agent,
		count(*), min(ts), max(ts)
	FROM ins GROUP BY 2, 3, 4, 5, 6, 7, 8, 9
	ON CONFLICT (ds, day, (` + termsKey("") + `)) DO UPDATE SET n = r.n + excluded.n,
		first_ts = least(r.first_ts, excluded.first_ts), last_ts = greatest(r.last_ts, excluded.last_ts)
)
SELECT count(*) FROM ins`

// pruneSQL deletes the oldest events before a time, a batch at a time, and takes them out of
// the rollups (Prune deletes the rows left at zero in the same transaction).
var pruneSQL = `
WITH del AS (
	DELETE FROM events AS e
	USING (SELECT id FROM events WHERE ds = $1 AND ts < $2 ORDER BY ts LIMIT $3) AS old
	WHERE e.ds = $1 AND e.id = old.id
	RETURNING e.ts, e.action, e.status, e.principal_type, e.principal, e.principal_id, e.source_ip, e.user_agent
), hourly AS (
	UPDATE rollup_hourly AS r SET n = r.n - d.n
	FROM (SELECT ts / 3600000000000 AS hour, action, status, principal_type, principal, principal_id, count(*) AS n
		FROM del GROUP BY 1, 2, 3, 4, 5, 6) AS d
	WHERE r.ds = $1 AND r.hour = d.hour AND r.action = d.action AND r.status = d.status
		AND r.principal_type = d.principal_type AND r.principal = d.principal AND r.principal_id = d.principal_id
), kind AS (
	UPDATE rollup_hourly_kind AS r SET n = r.n - d.n
	FROM (SELECT ts / 3600000000000 AS hour, action, status, principal_type, count(*) AS n
		FROM del GROUP BY 1, 2, 3, 4) AS d
	WHERE r.ds = $1 AND r.hour = d.hour AND r.action = d.action AND r.status = d.status
		AND r.principal_type = d.principal_type
), daily AS (
	UPDATE rollup_daily AS r SET n = r.n - d.n
	FROM (SELECT ts / 86400000000000 AS day, action, status, principal_type, principal, principal_id, count(*) AS n
		FROM del GROUP BY 1, 2, 3, 4, 5, 6) AS d
	WHERE r.ds = $1 AND r.day = d.day AND r.action = d.action AND r.status = d.status
		AND r.principal_type = d.principal_type AND r.principal = d.principal AND r.principal_id = d.principal_id
), vals AS (
	UPDATE rollup_values AS r SET n = r.n - d.n
	FROM (SELECT v.field, v.value, count(*) AS n
		FROM del CROSS JOIN LATERAL (VALUES ('source_ip', del.source_ip), ('user_agent', del.user_agent)) AS v (field, value)
		GROUP BY 1, 2) AS d
	WHERE r.ds = $1 AND r.field = d.field AND md5(r.value) = md5(d.value) AND r.value = d.value
), terms AS (
	UPDATE rollup_terms_daily AS r SET n = r.n - d.n
	FROM (SELECT ts / 86400000000000 AS day, action, status, principal_type, principal, principal_id,
			source_ip, user_agent, count(*) AS n
		FROM del GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS d
	WHERE r.ds = $1 AND r.day = d.day AND ` + termsKey("r.") + ` = ` + termsKey("d.") + `
		AND r.action = d.action AND r.status = d.status AND r.principal_type = d.principal_type
		AND r.principal = d.principal AND r.principal_id = d.principal_id
		AND r.source_ip = d.source_ip AND r.user_agent = d.user_agent
)
SELECT count(*) FROM del`

// write runs fn in one transaction, committed only when fn succeeds and this replica still
// leads (see leader). It is the only way this package writes a data source's rows.
func (s *Store) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	epoch, err := s.fence()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, epoch); err != nil {
			return err
		}
		return fn(tx)
	})
	return s.db.wrap(op, err)
}

// Apply stores entries and a state update in one transaction: all of it or nothing. Entries
// already stored (same id, whatever their timestamp) are skipped; inserted counts the new
// ones. Unlike the SQLite cache, a cancelled ctx rolls the page back (with its checkpoint, so
// the next sync fetches it again).
func (s *Store) Apply(ctx context.Context, entries []auditlog.Entry, u store.Update) (inserted int, err error) {
	err = s.write(ctx, "store events", func(tx pgx.Tx) error {
		inserted = 0
		if len(entries) > 0 {
			if err := tx.QueryRow(ctx, applySQL, columns(s.dsID, entries)...).Scan(&inserted); err != nil {
				return err
			}
		}
		return applyState(ctx, tx, s.dsID, inserted, u)
	})
	if err != nil {
		return 0, err
	}
	return inserted, nil
}

// columns turns a page into applySQL's arguments: the data source and one array per column.
func columns(ds int32, entries []auditlog.Entry) []any {
	n := len(entries)
	ids, reqs, acts, sts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	pns, pids, pts, ips := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	uas, params, raws, search := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	tss := make([]int64, n)
	for i := range entries {
		e := &entries[i]
		ids[i] = text(entryID(e))
		tss[i] = e.Timestamp.UnixNano()
		reqs[i], acts[i], sts[i] = text(e.RequestID), text(e.Action), text(e.Status)
		pns[i], pids[i], pts[i] = text(e.PrincipalName), text(e.PrincipalID), text(e.PrincipalType)
		ips[i], uas[i] = text(e.SourceIP), text(e.UserAgent)
		params[i], raws[i] = text(string(e.ActionParameters)), text(string(e.Raw))
		search[i] = searchText(ids[i], e)
	}
	return []any{ds, ids, tss, reqs, acts, sts, pns, pids, pts, ips, uas, params, raws, search}
}

// text makes s storable: PostgreSQL refuses text that is not UTF-8, which would fail the
// whole page at every retry and stop the sync. JSON is UTF-8 by definition, so this changes
// nothing Wiz sends correctly; invalid bytes become U+FFFD (the SQLite cache keeps them).
func text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// entryID is the entry's Wiz id or, when it has none, the one the SQLite cache gives it (a
// hash of the node): never drop an entry, never store it twice.
func entryID(e *auditlog.Entry) string {
	if e.ID != "" {
		return e.ID
	}
	sum := sha256.Sum256(e.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// applyState applies u (zero fields leave the stored value alone, as in store.Update) and
// counts the inserted events.
func applyState(ctx context.Context, tx pgx.Tx, ds int32, inserted int, u store.Update) error {
	var lastErr *string
	if u.LastError != nil && *u.LastError != "" {
		lastErr = u.LastError
	}
	var bstart *int64
	if u.BackfillStart != nil {
		bstart = ns(*u.BackfillStart)
	}
	_, err := tx.Exec(ctx, `UPDATE sync_state SET
		event_count    = event_count + $2,
		synced_up_to   = coalesce($3, synced_up_to),
		live_start     = coalesce(live_start, $4),
		backfill_start = CASE WHEN $5 THEN $6 ELSE backfill_start END,
		last_sync_at   = coalesce($7, last_sync_at),
		last_error     = CASE WHEN $8 THEN $9 ELSE last_error END
		WHERE ds = $1`,
		ds, inserted, ns(u.SyncedUpTo), ns(u.LiveStart), u.BackfillStart != nil, bstart, ns(u.LastSyncAt),
		u.LastError != nil, lastErr)
	if err != nil {
		return err
	}
	for _, iv := range u.Covered {
		if err := addCovered(ctx, tx, ds, iv); err != nil {
			return err
		}
	}
	return nil
}

// ns is t in unix nanoseconds, nil for the zero time.
func ns(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixNano()
	return &v
}

func nsTime(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.Unix(0, *v).UTC()
}

// addCovered records [from, to] as covered, merging it with every range it overlaps or
// touches (as the SQLite cache does).
func addCovered(ctx context.Context, tx pgx.Tx, ds int32, iv store.Interval) error {
	from, to := iv.From.UnixNano(), iv.To.UnixNano()
	if to < from {
		return nil
	}
	rows, err := tx.Query(ctx, `DELETE FROM backfill_covered WHERE ds = $1 AND from_ts <= $2 AND to_ts >= $3
		RETURNING from_ts, to_ts`, ds, to+1, from-1)
	if err != nil {
		return err
	}
	var f, t int64
	_, err = pgx.ForEachRow(rows, []any{&f, &t}, func() error {
		from, to = min(from, f), max(to, t)
		return nil
	})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO backfill_covered (ds, from_ts, to_ts) VALUES ($1, $2, $3)", ds, from, to)
	return err
}

// State reads the stored sync state.
func (s *Store) State(ctx context.Context) (store.State, error) {
	if s.closed.Load() {
		return store.State{}, ErrClosed
	}
	var st store.State
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var synced, live, bstart, last *int64
		var lastErr *string
		err := tx.QueryRow(ctx, `SELECT d.fingerprint, s.synced_up_to, s.live_start, s.backfill_start, s.last_sync_at, s.last_error
			FROM sync_state s JOIN data_sources d ON d.id = s.ds WHERE s.ds = $1`, s.dsID).
			Scan(&st.Fingerprint, &synced, &live, &bstart, &last, &lastErr)
		if err != nil {
			return err
		}
		st.SyncedUpTo, st.LiveStart, st.BackfillStart, st.LastSyncAt = nsTime(synced), nsTime(live), nsTime(bstart), nsTime(last)
		if lastErr != nil {
			st.LastError = *lastErr
		}
		rows, err := tx.Query(ctx, "SELECT from_ts, to_ts FROM backfill_covered WHERE ds = $1 ORDER BY from_ts", s.dsID)
		if err != nil {
			return err
		}
		var f, t int64
		_, err = pgx.ForEachRow(rows, []any{&f, &t}, func() error {
			st.Covered = append(st.Covered, store.Interval{From: time.Unix(0, f).UTC(), To: time.Unix(0, t).UTC()})
			return nil
		})
		return err
	})
	if err != nil {
		return store.State{}, s.db.wrap("read the sync state", err)
	}
	return st, nil
}

// Prune deletes events older than before, a batch per transaction with a pause in between,
// and returns how many it deleted. It stops early, without error, when ctx is done.
func (s *Store) Prune(ctx context.Context, before time.Time) (deleted int, err error) {
	for ctx.Err() == nil {
		var n int
		// A batch runs to its end even when ctx ends meanwhile: it is short.
		bctx := context.WithoutCancel(ctx)
		err := s.write(bctx, "prune old events", func(tx pgx.Tx) error {
			if err := tx.QueryRow(bctx, pruneSQL, s.dsID, before.UnixNano(), s.opts.PruneBatch).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			if _, err := tx.Exec(bctx, "UPDATE sync_state SET event_count = greatest(0, event_count - $2) WHERE ds = $1", s.dsID, n); err != nil {
				return err
			}
			for _, table := range []string{"rollup_hourly", "rollup_hourly_kind", "rollup_daily", "rollup_values", "rollup_terms_daily"} {
				if _, err := tx.Exec(bctx, "DELETE FROM "+table+" WHERE ds = $1 AND n <= 0", s.dsID); err != nil {
					return err
				}
			}
			return nil
		})
		deleted += n
		if err != nil || n < s.opts.PruneBatch {
			return deleted, err
		}
		if s.opts.PrunePause > 0 {
			t := time.NewTimer(s.opts.PrunePause)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return deleted, nil
}

// Stats reads the event count (a counter kept by every write), the oldest and newest event
// (from the time index), and the data source's share of the database: the size of the
// plugin's tables with their indexes, times this data source's share of all events stored.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	if s.closed.Load() {
		return store.Stats{}, ErrClosed
	}
	var st store.Stats
	var oldest, newest *int64
	var all, size int64
	err := s.pool.QueryRow(ctx, `SELECT s.event_count,
			(SELECT min(ts) FROM events WHERE ds = $1), (SELECT max(ts) FROM events WHERE ds = $1),
			(SELECT coalesce(sum(event_count), 0) FROM sync_state)::bigint,
			(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $2 AND c.relkind = 'r')::bigint
		FROM sync_state s WHERE s.ds = $1`, s.dsID, Schema).Scan(&st.Events, &oldest, &newest, &all, &size)
	if err != nil {
		return store.Stats{}, s.db.wrap("read statistics", err)
	}
	st.Oldest, st.Newest = nsTime(oldest), nsTime(newest)
	if all > 0 {
		st.Bytes = int64(float64(size) * float64(st.Events) / float64(all))
	}
	return st, nil
}

// IndexPending does nothing and returns 0: the pg_trgm search index is kept by PostgreSQL as
// events are stored (the SQLite cache queues them instead).
func (s *Store) IndexPending(context.Context, int) (int, error) { return 0, nil }
