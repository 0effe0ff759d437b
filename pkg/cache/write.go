package cache

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
)

const (
	insertCols  = 11
	insertChunk = 64
)

// insertSQLFor is INSERT OR IGNORE of n rows in one statement.
func insertSQLFor(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR IGNORE INTO events
	(id, ts, request_id, action, status, principal, principal_id, principal_type, source_ip, user_agent, raw) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// insertSQL is the prepared statement for a full group.
var insertSQL = insertSQLFor(insertChunk)

// entryID is the id an entry is stored under.
func entryID(e *auditlog.Entry) string {
	if e.ID == "" {
		// Never drop an entry, never store it twice: a stable id from its content.
		sum := sha256.Sum256(e.Raw)
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return e.ID
}

func appendRow(args []any, e *auditlog.Entry) []any {
	return append(args, entryID(e), e.Timestamp.UnixNano(), e.RequestID, e.Action, e.Status,
		e.PrincipalName, e.PrincipalID, e.PrincipalType, e.SourceIP, e.UserAgent, string(e.Raw))
}

// ResendWindow is how far apart in time an id sent again with another timestamp is still
// recognised as the same event.
const ResendWindow = time.Hour

// dropResent drops the entries whose id is already stored, or comes earlier in the page, at
// another timestamp within ResendWindow of theirs: events are unique by id, and the first copy
// stored wins (the stored key is (ts, id), which INSERT OR IGNORE dedups only at the same
// timestamp). One index-only range query per page, on events_ts_id over the page's time range
// widened by ResendWindow, keeps inserts local in that index: a unique index on id alone
// would cost a random page write per event. An id sent again more than ResendWindow away is
// stored a second time.
func dropResent(ctx context.Context, tx *sql.Tx, entries []auditlog.Entry) ([]auditlog.Entry, error) {
	if len(entries) == 0 {
		return entries, nil
	}
	lo, hi := entries[0].Timestamp.UnixNano(), entries[0].Timestamp.UnixNano()
	args := make([]any, 2, len(entries)+2)
	for i := range entries {
		ts := entries[i].Timestamp.UnixNano()
		lo, hi = min(lo, ts), max(hi, ts)
		args = append(args, entryID(&entries[i]))
	}
	args[0], args[1] = lo-int64(ResendWindow), hi+int64(ResendWindow)
	rows, err := tx.QueryContext(ctx, `SELECT id, ts FROM events INDEXED BY events_ts_id
		WHERE ts BETWEEN ? AND ? AND id IN (?`+strings.Repeat(",?", len(entries)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("look up resent ids: %w", err)
	}
	defer rows.Close()
	seen := map[string][]int64{} // id -> timestamps stored or kept
	for rows.Next() {
		var id string
		var ts int64
		if err := rows.Scan(&id, &ts); err != nil {
			return nil, err
		}
		seen[id] = append(seen[id], ts)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	kept := make([]auditlog.Entry, 0, len(entries))
next:
	for i := range entries {
		id, ts := args[i+2].(string), entries[i].Timestamp.UnixNano()
		for _, other := range seen[id] {
			if d := max(ts-other, other-ts); d != 0 && d <= int64(ResendWindow) {
				continue next
			}
		}
		seen[id] = append(seen[id], ts)
		kept = append(kept, entries[i])
	}
	return kept, nil
}

// Apply stores entries and a state update in one transaction: all of it or nothing. Entries
// already cached (same id) are skipped; inserted counts the new ones.
func (c *Cache) Apply(ctx context.Context, entries []auditlog.Entry, u store.Update) (inserted int, err error) {
	ctx = context.WithoutCancel(ctx) // a page is committed whole even when the caller is stopping
	err = c.inWriteTx(ctx, func(tx *sql.Tx, stmt *sql.Stmt) error {
		entries, err := dropResent(ctx, tx, entries)
		if err != nil {
			return err
		}
		// Rows go in groups of insertChunk per statement: one cgo round trip per group
		// instead of one per row roughly doubles the ingest rate.
		args := make([]any, 0, insertChunk*insertCols)
		for len(entries) > 0 {
			n := min(len(entries), insertChunk)
			args = args[:0]
			for i := range entries[:n] {
				args = appendRow(args, &entries[i])
			}
			var res sql.Result
			var err error
			if n == insertChunk {
				res, err = tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
			} else {
				res, err = tx.ExecContext(ctx, insertSQLFor(n), args...)
			}
			if err != nil {
				return fmt.Errorf("insert entries: %w", err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			inserted += int(k)
			entries = entries[n:]
		}
		if inserted > 0 {
			if _, err := tx.ExecContext(ctx, "UPDATE sync_state SET event_count = event_count + ?", inserted); err != nil {
				return err
			}
		}
		return applyState(ctx, tx, u)
	})
	if err != nil {
		return 0, err
	}
	return inserted, nil
}

// inWriteTx runs fn in one write transaction, committed only when fn succeeds. Writers take
// turns (one writer connection); a failure is checked for a damaged file and a full disk is
// reported as such. stmt is the prepared insert of insertChunk rows.
func (c *Cache) inWriteTx(ctx context.Context, fn func(tx *sql.Tx, stmt *sql.Stmt) error) (err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer func() { c.checkDamage(err) }()
	defer func() { err = noSpace(err) }()
	db, stmt, err := c.writer()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx, stmt); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func applyState(ctx context.Context, tx *sql.Tx, u store.Update) error {
	set := func(col string, v any) error {
		_, err := tx.ExecContext(ctx, "UPDATE sync_state SET "+col+" = ?", v)
		return err
	}
	if !u.SyncedUpTo.IsZero() {
		if err := set("synced_up_to", u.SyncedUpTo.UnixNano()); err != nil {
			return err
		}
	}
	if !u.LiveStart.IsZero() {
		if _, err := tx.ExecContext(ctx, "UPDATE sync_state SET live_start = ? WHERE live_start IS NULL", u.LiveStart.UnixNano()); err != nil {
			return err
		}
	}
	if u.BackfillStart != nil {
		var v any
		if !u.BackfillStart.IsZero() {
			v = u.BackfillStart.UnixNano()
		}
		if err := set("backfill_start", v); err != nil {
			return err
		}
	}
	if !u.LastSyncAt.IsZero() {
		if err := set("last_sync_at", u.LastSyncAt.UnixNano()); err != nil {
			return err
		}
	}
	if u.LastError != nil {
		var v any
		if *u.LastError != "" {
			v = *u.LastError
		}
		if err := set("last_error", v); err != nil {
			return err
		}
	}
	for _, iv := range u.Covered {
		if err := addCovered(ctx, tx, iv); err != nil {
			return err
		}
	}
	return nil
}

// addCovered records [from, to] as covered, merging it with every range it overlaps or touches.
func addCovered(ctx context.Context, tx *sql.Tx, iv store.Interval) error {
	from, to := iv.From.UnixNano(), iv.To.UnixNano()
	if to < from {
		return nil
	}
	rows, err := tx.QueryContext(ctx,
		"SELECT from_ts, to_ts FROM backfill_covered WHERE from_ts <= ? AND to_ts >= ?", to+1, from-1)
	if err != nil {
		return err
	}
	var olds []int64
	for rows.Next() {
		var f, t int64
		if err := rows.Scan(&f, &t); err != nil {
			rows.Close()
			return err
		}
		olds = append(olds, f)
		from, to = min(from, f), max(to, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range olds {
		if _, err := tx.ExecContext(ctx, "DELETE FROM backfill_covered WHERE from_ts = ?", f); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO backfill_covered (from_ts, to_ts) VALUES (?, ?)", from, to)
	return err
}

// State reads the stored sync state (through the read pool, so it works read-only too).
func (c *Cache) State(ctx context.Context) (store.State, error) {
	db := c.ReadDB()
	if db == nil {
		return store.State{}, ErrClosed
	}
	var s store.State
	var synced, live, bstart, last sql.NullInt64
	var lastErr sql.NullString
	err := db.QueryRowContext(ctx, `SELECT fingerprint, synced_up_to, live_start, backfill_start, last_sync_at, last_error
		FROM sync_state`).Scan(&s.Fingerprint, &synced, &live, &bstart, &last, &lastErr)
	if err != nil {
		return store.State{}, fmt.Errorf("read sync state: %w", err)
	}
	s.SyncedUpTo, s.LiveStart, s.BackfillStart, s.LastSyncAt = nsTime(synced), nsTime(live), nsTime(bstart), nsTime(last)
	s.LastError = lastErr.String
	rows, err := db.QueryContext(ctx, "SELECT from_ts, to_ts FROM backfill_covered ORDER BY from_ts")
	if err != nil {
		return store.State{}, fmt.Errorf("read backfill coverage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f, t int64
		if err := rows.Scan(&f, &t); err != nil {
			return store.State{}, err
		}
		s.Covered = append(s.Covered, store.Interval{From: time.Unix(0, f).UTC(), To: time.Unix(0, t).UTC()})
	}
	return s, rows.Err()
}

func nsTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

// Prune deletes events older than before, a batch per transaction with a pause in between, and
// returns how many it deleted. It stops early, without error, when ctx is done.
func (c *Cache) Prune(ctx context.Context, before time.Time) (deleted int, err error) {
	cut := before.UnixNano()
	for ctx.Err() == nil {
		n, err := c.pruneBatch(cut)
		deleted += n
		if err != nil || n < c.opts.PruneBatch {
			return deleted, err
		}
		if c.opts.PrunePause > 0 {
			t := time.NewTimer(c.opts.PrunePause)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return deleted, nil
}

func (c *Cache) pruneBatch(cut int64) (n int, err error) {
	err = c.inWriteTx(context.Background(), func(tx *sql.Tx, _ *sql.Stmt) error {
		res, err := tx.Exec(`DELETE FROM events WHERE rowid IN
			(SELECT rowid FROM events WHERE ts < ? ORDER BY ts LIMIT ?)`, cut, c.opts.PruneBatch)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		n = int(k)
		if k > 0 {
			_, err = tx.Exec("UPDATE sync_state SET event_count = max(0, event_count - ?)", k)
		}
		return err
	})
	return n, err
}

func (c *Cache) writer() (*sql.DB, *sql.Stmt, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	if c.writeDB == nil {
		return nil, nil, ErrReadOnly
	}
	return c.writeDB, c.insertStmt, nil
}
