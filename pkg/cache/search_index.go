package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrNoFTS5: the SQLite compiled into this binary has no FTS5, which the search index needs.
var ErrNoFTS5 = errors.New(`this build of SQLite lacks FTS5: build with the Magefile, or set CGO_CFLAGS="-O2 -g -DSQLITE_ENABLE_FTS5" CGO_LDFLAGS=-lm`)

// hasFTS5 asks the linked SQLite whether it was compiled with FTS5 (a variable for tests).
var hasFTS5 = func() (bool, error) {
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		return false, err
	}
	defer db.Close()
	var used bool
	if err := db.QueryRow("SELECT sqlite_compileoption_used('ENABLE_FTS5')").Scan(&used); err != nil {
		return false, fmt.Errorf("check the SQLite build: %w", err)
	}
	return used, nil
}

// fts5Status turns has's answer into the error Open returns.
func fts5Status(has func() (bool, error)) error {
	ok, err := has()
	if err != nil {
		return err
	}
	if !ok {
		return ErrNoFTS5
	}
	return nil
}

// checkFTS5 fails with ErrNoFTS5 when the binary's SQLite lacks FTS5; the build is the same
// for the whole process, so it asks once (a variable for tests).
var checkFTS5 = sync.OnceValue(func() error { return fts5Status(hasFTS5) })

// DefaultIndexBatch is a batch size for IndexPending that keeps one transaction short (tens of
// milliseconds), so that pages being stored and checkpoints wait little for the write lock.
const DefaultIndexBatch = 1000

// indexSQL moves the queued events up to a rowid into the search index. The columns are the
// expressions the query's exact check reads (see the schema's step 5). The raw node is JSON
// as Wiz sent it; should one not be, json_extract fails the batch, and indexSQLGuarded (an
// eighth slower: it parses every node twice) redoes it, indexing no parameters for that row.
// Both index exactly what the schema's delete trigger (which uses the guarded expression)
// takes out again: FTS5's 'delete' command needs the values that were indexed.
const (
	indexSQL        = indexSQLHead + `json_extract(e.raw, '$.actionParameters')` + indexSQLTail
	indexSQLGuarded = indexSQLHead + `iif(json_valid(e.raw), json_extract(e.raw, '$.actionParameters'))` + indexSQLTail
	indexSQLHead    = `INSERT INTO events_search
	(rowid, id, request_id, action, principal, principal_id, user_agent, params)
	SELECT e.rowid, e.id, e.request_id, e.action, e.principal, e.principal_id, e.user_agent, `
	indexSQLTail = `
	FROM search_pending AS p CROSS JOIN events AS e ON e.rowid = p.rowid
	WHERE p.rowid <= ?`
)

// termsSQL adds the queued events up to a rowid to the new-terms rollup (the schema's step 6).
const termsSQL = `INSERT INTO rollup_terms_daily
	SELECT e.ts / 86400000000000, e.action, e.status, e.principal_type, e.principal,
		e.principal_id, e.source_ip, e.user_agent, count(*), min(e.ts), max(e.ts)
	FROM terms_pending AS p CROSS JOIN events AS e ON e.rowid = p.rowid
	WHERE p.rowid <= ? GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
	ON CONFLICT DO UPDATE SET n = n + excluded.n, first_ts = min(first_ts, excluded.first_ts),
		last_ts = max(last_ts, excluded.last_ts)`

// IndexPending moves up to batch queued events (oldest rowids first) into the search index in
// one write transaction, and as many of the events queued for the new-terms rollup (a file
// migrated from an older schema) into it in another, and returns the larger of the two
// counts: 0 when both queues are empty. batch <= 0 means DefaultIndexBatch. It returns
// ErrReadOnly on a cache this instance does not write.
func (c *Cache) IndexPending(ctx context.Context, batch int) (indexed int, err error) {
	if batch <= 0 {
		batch = DefaultIndexBatch
	}
	indexed, err = c.indexBatch(ctx, batch, "search_pending", indexSQL)
	if err != nil && strings.Contains(err.Error(), "malformed JSON") {
		indexed, err = c.indexBatch(ctx, batch, "search_pending", indexSQLGuarded)
	}
	if err != nil {
		return 0, err
	}
	terms, err := c.indexBatch(ctx, batch, "terms_pending", termsSQL)
	return max(indexed, terms), err
}

// indexBatch moves the first batch rowids of queue (a table this package names) with stmt.
func (c *Cache) indexBatch(ctx context.Context, batch int, queue, stmt string) (indexed int, err error) {
	err = c.inWriteTx(ctx, func(tx *sql.Tx, _ *sql.Stmt) error {
		var hi sql.NullInt64
		if err := tx.QueryRowContext(ctx,
			"SELECT max(rowid) FROM (SELECT rowid FROM "+queue+" ORDER BY rowid LIMIT ?)", batch).Scan(&hi); err != nil {
			return fmt.Errorf("read the %s queue: %w", queue, err)
		}
		if !hi.Valid {
			return nil // the queue is empty
		}
		if _, err := tx.ExecContext(ctx, stmt, hi.Int64); err != nil {
			return fmt.Errorf("index events (%s): %w", queue, err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM "+queue+" WHERE rowid <= ?", hi.Int64)
		if err != nil {
			return fmt.Errorf("index events (%s): %w", queue, err)
		}
		n, err := res.RowsAffected()
		indexed = int(n)
		return err
	})
	if err != nil {
		return 0, err
	}
	return indexed, nil
}

// SearchPending counts the events not yet in the search index (through the read pool, so it
// works read-only too). It reads the whole queue: for a status page, not for every query.
func (c *Cache) SearchPending(ctx context.Context) (int64, error) {
	db := c.ReadDB()
	if db == nil {
		return 0, ErrClosed
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM search_pending").Scan(&n); err != nil {
		return 0, fmt.Errorf("count events waiting for the search index: %w", err)
	}
	return n, nil
}
