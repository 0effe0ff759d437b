package cache

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema, as an ordered list of forward steps. Step i (0-based) takes a file
// from PRAGMA user_version i to i+1; each step runs in its own transaction together with the
// user_version bump, so a crash mid-migration leaves the file at the previous version.
//
// Rules for whoever adds a step (indexes, rollups for the query engine, …):
//   - append only; never edit or reorder a step that has shipped;
//   - a step must work on a file holding millions of events (no full rewrites unless needed);
//   - a step sees the data of every earlier version: it migrates, it never drops the events.
var migrations = []string{
	// 1: events, unique by Wiz entry id (with its timestamp), and the single-row sync state.
	`
CREATE TABLE events (
	id             TEXT    NOT NULL,
	ts             INTEGER NOT NULL, -- unix nanoseconds, UTC
	request_id     TEXT    NOT NULL DEFAULT '',
	action         TEXT    NOT NULL DEFAULT '',
	status         TEXT    NOT NULL DEFAULT '',
	principal      TEXT    NOT NULL DEFAULT '', -- name of the user or service account
	principal_id   TEXT    NOT NULL DEFAULT '',
	principal_type TEXT    NOT NULL DEFAULT '', -- user, serviceAccount or ''
	source_ip      TEXT    NOT NULL DEFAULT '',
	user_agent     TEXT    NOT NULL DEFAULT '',
	raw            TEXT    NOT NULL             -- the node JSON exactly as sent (TEXT: json_extract must not read it as JSONB)
);
-- The key is (ts, id): a Wiz id is unique and its entry's timestamp never changes, so a
-- repeated entry (overlap, retry, restart) is the same (ts, id) and INSERT OR IGNORE drops it.
-- Time first keeps every insert near the newest end of the index (an index on id alone takes
-- a random leaf per row: several times the bytes written per page, and random reads once it
-- outgrows the page cache), and the same index serves every time-range scan.
CREATE UNIQUE INDEX events_ts_id ON events(ts, id);

CREATE TABLE sync_state (
	singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
	fingerprint    TEXT    NOT NULL DEFAULT '',
	event_count    INTEGER NOT NULL DEFAULT 0, -- kept in step with events by every write
	synced_up_to   INTEGER,                    -- live checkpoint, unix ns; NULL before the first window
	live_start     INTEGER,                    -- where the first live window began: backfill ends here
	backfill_start INTEGER,                    -- the backfill target start last configured
	last_sync_at   INTEGER,
	last_error     TEXT
);
INSERT INTO sync_state (singleton) VALUES (1);
`,
	// 2: what the query engine filters on over time, and the backfill's covered ranges.
	`
CREATE INDEX events_action_ts    ON events(action, ts);
CREATE INDEX events_status_ts    ON events(status, ts);
CREATE INDEX events_principal_ts ON events(principal, ts);

CREATE TABLE backfill_covered (
	from_ts INTEGER PRIMARY KEY, -- unix ns, inclusive
	to_ts   INTEGER NOT NULL     -- unix ns, inclusive; ranges never overlap or touch (merged on insert)
);
`,
	// 3: pre-aggregated counts for the query engine (pkg/query), kept in step with events by
	// triggers, so the write path needs no change: event counts per UTC hour and per
	// (action, status, principal) combination, and how many events carry each source IP and
	// user agent (distinct values without scanning the events).
	`
CREATE TABLE rollup_hourly (
	hour           INTEGER NOT NULL, -- ts / 1 h: the UTC hour since the epoch
	action         TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	principal_type TEXT    NOT NULL,
	principal      TEXT    NOT NULL,
	principal_id   TEXT    NOT NULL,
	n              INTEGER NOT NULL,
	PRIMARY KEY (hour, action, status, principal_type, principal, principal_id)
) WITHOUT ROWID;

CREATE TABLE rollup_values (
	field TEXT    NOT NULL, -- source_ip or user_agent
	value TEXT    NOT NULL,
	n     INTEGER NOT NULL,
	PRIMARY KEY (field, value)
) WITHOUT ROWID;

INSERT INTO rollup_hourly
	SELECT ts / 3600000000000, action, status, principal_type, principal, principal_id, count(*)
	FROM events GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO rollup_values SELECT 'source_ip', source_ip, count(*) FROM events GROUP BY 2;
INSERT INTO rollup_values SELECT 'user_agent', user_agent, count(*) FROM events GROUP BY 2;

CREATE TRIGGER events_rollup_insert AFTER INSERT ON events BEGIN
	INSERT INTO rollup_hourly VALUES (new.ts / 3600000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_values VALUES ('source_ip', new.source_ip, 1) ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_values VALUES ('user_agent', new.user_agent, 1) ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER events_rollup_delete AFTER DELETE ON events BEGIN
	UPDATE rollup_hourly SET n = n - 1 WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id;
	DELETE FROM rollup_hourly WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id AND n <= 0;
	UPDATE rollup_values SET n = n - 1 WHERE field = 'source_ip' AND value = old.source_ip;
	DELETE FROM rollup_values WHERE field = 'source_ip' AND value = old.source_ip AND n <= 0;
	UPDATE rollup_values SET n = n - 1 WHERE field = 'user_agent' AND value = old.user_agent;
	DELETE FROM rollup_values WHERE field = 'user_agent' AND value = old.user_agent AND n <= 0;
END;

-- Events are never updated in place; should one be, its counts move with it.
CREATE TRIGGER events_rollup_update AFTER UPDATE OF ts, action, status, principal_type, principal,
	principal_id, source_ip, user_agent ON events BEGIN
	UPDATE rollup_hourly SET n = n - 1 WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id;
	DELETE FROM rollup_hourly WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id AND n <= 0;
	UPDATE rollup_values SET n = n - 1 WHERE field = 'source_ip' AND value = old.source_ip;
	DELETE FROM rollup_values WHERE field = 'source_ip' AND value = old.source_ip AND n <= 0;
	UPDATE rollup_values SET n = n - 1 WHERE field = 'user_agent' AND value = old.user_agent;
	DELETE FROM rollup_values WHERE field = 'user_agent' AND value = old.user_agent AND n <= 0;
	INSERT INTO rollup_hourly VALUES (new.ts / 3600000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_values VALUES ('source_ip', new.source_ip, 1) ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_values VALUES ('user_agent', new.user_agent, 1) ON CONFLICT DO UPDATE SET n = n + 1;
END;
`,
	// 4: two coarser rollups, because rollup_hourly holds about one row per ten events on a
	// busy tenant: per hour without the principal (time series by action or status over long
	// ranges) and per UTC day with it (top principals over weeks). Filled from rollup_hourly.
	`
CREATE TABLE rollup_hourly_kind (
	hour           INTEGER NOT NULL,
	action         TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	principal_type TEXT    NOT NULL,
	n              INTEGER NOT NULL,
	PRIMARY KEY (hour, action, status, principal_type)
) WITHOUT ROWID;

CREATE TABLE rollup_daily (
	day            INTEGER NOT NULL, -- ts / 24 h: the UTC day since the epoch
	action         TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	principal_type TEXT    NOT NULL,
	principal      TEXT    NOT NULL,
	principal_id   TEXT    NOT NULL,
	n              INTEGER NOT NULL,
	PRIMARY KEY (day, action, status, principal_type, principal, principal_id)
) WITHOUT ROWID;

INSERT INTO rollup_hourly_kind
	SELECT hour, action, status, principal_type, sum(n) FROM rollup_hourly GROUP BY 1, 2, 3, 4;
INSERT INTO rollup_daily
	SELECT hour / 24, action, status, principal_type, principal, principal_id, sum(n)
	FROM rollup_hourly GROUP BY 1, 2, 3, 4, 5, 6;

CREATE TRIGGER events_rollup2_insert AFTER INSERT ON events BEGIN
	INSERT INTO rollup_hourly_kind VALUES (new.ts / 3600000000000, new.action, new.status, new.principal_type, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_daily VALUES (new.ts / 86400000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER events_rollup2_delete AFTER DELETE ON events BEGIN
	UPDATE rollup_hourly_kind SET n = n - 1 WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type;
	DELETE FROM rollup_hourly_kind WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND n <= 0;
	UPDATE rollup_daily SET n = n - 1 WHERE day = old.ts / 86400000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id;
	DELETE FROM rollup_daily WHERE day = old.ts / 86400000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id AND n <= 0;
END;

CREATE TRIGGER events_rollup2_update AFTER UPDATE OF ts, action, status, principal_type, principal,
	principal_id ON events BEGIN
	UPDATE rollup_hourly_kind SET n = n - 1 WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type;
	DELETE FROM rollup_hourly_kind WHERE hour = old.ts / 3600000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND n <= 0;
	UPDATE rollup_daily SET n = n - 1 WHERE day = old.ts / 86400000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id;
	DELETE FROM rollup_daily WHERE day = old.ts / 86400000000000 AND action = old.action
		AND status = old.status AND principal_type = old.principal_type AND principal = old.principal
		AND principal_id = old.principal_id AND n <= 0;
	INSERT INTO rollup_hourly_kind VALUES (new.ts / 3600000000000, new.action, new.status, new.principal_type, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
	INSERT INTO rollup_daily VALUES (new.ts / 86400000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, 1)
		ON CONFLICT DO UPDATE SET n = n + 1;
END;
`,
	// 5: the search index (pkg/query's free-text search), maintained lazily so that the write
	// path pays one integer insert per event: the AFTER INSERT trigger queues the event's rowid
	// in search_pending, and Cache.IndexPending moves queued events into events_search in short
	// transactions. A query searches events_search and checks every queued event directly.
	//
	// events_search is a contentless FTS5 table keyed by the events rowid over the searched text
	// (the same expressions the query's final check reads, so an indexed event can only be
	// found, never missed). The trigram tokenizer folds case; detail=none keeps no positions:
	// about a fifth of the size of detail=full and twice as fast to build, and a query asks for
	// all of the needle's trigrams instead of a phrase (the query's exact check then drops the
	// rows that hold the trigrams apart).
	//
	// Deleting from it uses FTS5's 'delete' command with the row's indexed values, which the
	// delete trigger recomputes from the old row (the indexer's expressions, see indexSQL),
	// and only for a row that is indexed, that is not queued. (contentless_delete=1 would take
	// a bare rowid, but on a big index its tombstones made single pruning batches of 500 to
	// 5,000 events take 4 to 20 seconds, holding the write lock; the 'delete' command costs
	// about what indexing the row did, steadily.)
	//
	// Rowids of events can be reused once the newest row is deleted: the delete trigger takes
	// the old row out of the index and the queue, and a new row under that rowid is queued
	// again, so a queued rowid is never in the index and an indexed one never queued.
	//
	// On a file with events, the step only queues them all (no indexing here: opening a large
	// old cache stays quick); the syncer indexes them in the background.
	`
CREATE VIRTUAL TABLE events_search USING fts5(
	id, request_id, action, principal, principal_id, user_agent, params,
	content = '', detail = none, tokenize = 'trigram case_sensitive 0'
);

CREATE TABLE search_pending (rowid INTEGER PRIMARY KEY);
-- In rowid order, read from the smallest index (not the table: gigabytes on a big file).
INSERT INTO search_pending SELECT rowid FROM events INDEXED BY events_status_ts ORDER BY rowid;

CREATE TRIGGER events_search_insert AFTER INSERT ON events BEGIN
	INSERT OR IGNORE INTO search_pending VALUES (new.rowid);
END;

CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN
	INSERT INTO events_search (events_search, rowid, id, request_id, action, principal,
			principal_id, user_agent, params)
		SELECT 'delete', old.rowid, old.id, old.request_id, old.action, old.principal,
			old.principal_id, old.user_agent,
			iif(json_valid(old.raw), json_extract(old.raw, '$.actionParameters'))
		WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE rowid = old.rowid);
	DELETE FROM search_pending WHERE rowid = old.rowid;
END;

-- Events are never updated in place; should one be, it is indexed again.
CREATE TRIGGER events_search_update AFTER UPDATE ON events BEGIN
	INSERT INTO events_search (events_search, rowid, id, request_id, action, principal,
			principal_id, user_agent, params)
		SELECT 'delete', old.rowid, old.id, old.request_id, old.action, old.principal,
			old.principal_id, old.user_agent,
			iif(json_valid(old.raw), json_extract(old.raw, '$.actionParameters'))
		WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE rowid = old.rowid);
	DELETE FROM search_pending WHERE rowid = old.rowid;
	INSERT OR IGNORE INTO search_pending VALUES (new.rowid);
END;
`,
	// 6: what newTerms queries read: per UTC day, every distinct combination of the fields a
	// query can filter or group on, with its event count and the timestamps of its first and
	// last event that day. A day's first and last tell whether a combination occurs before or
	// after an instant inside that day, so a query reads whole days only.
	//
	// Kept by triggers for new events. The events of an existing file are queued in
	// terms_pending (opening a large old cache stays quick) and Cache.IndexPending adds them in
	// the background, with the search index's batches; until the queue is empty, queries read
	// the events instead. A deleted event leaves first_ts and last_ts as they were (bounds, no
	// longer exact): only pruning deletes, from the oldest day on, which queries are then told
	// the cache no longer covers.
	`
CREATE TABLE rollup_terms_daily (
	day            INTEGER NOT NULL, -- ts / 24 h: the UTC day since the epoch
	action         TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	principal_type TEXT    NOT NULL,
	principal      TEXT    NOT NULL,
	principal_id   TEXT    NOT NULL,
	source_ip      TEXT    NOT NULL,
	user_agent     TEXT    NOT NULL,
	n              INTEGER NOT NULL,
	first_ts       INTEGER NOT NULL,
	last_ts        INTEGER NOT NULL,
	PRIMARY KEY (day, action, status, principal_type, principal, principal_id, source_ip, user_agent)
) WITHOUT ROWID;

CREATE TABLE terms_pending (rowid INTEGER PRIMARY KEY);
INSERT INTO terms_pending SELECT rowid FROM events INDEXED BY events_status_ts ORDER BY rowid;

CREATE TRIGGER events_terms_insert AFTER INSERT ON events BEGIN
	INSERT INTO rollup_terms_daily VALUES (new.ts / 86400000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, new.source_ip, new.user_agent, 1, new.ts, new.ts)
		ON CONFLICT DO UPDATE SET n = n + 1, first_ts = min(first_ts, excluded.first_ts),
			last_ts = max(last_ts, excluded.last_ts);
END;

CREATE TRIGGER events_terms_delete AFTER DELETE ON events BEGIN` + termsRemoveOld + `	DELETE FROM terms_pending WHERE rowid = old.rowid;
END;

-- Events are never updated in place; should one be, its combination moves with it (a queued
-- event stays queued and is added with its new values).
CREATE TRIGGER events_terms_update AFTER UPDATE OF ts, action, status, principal_type, principal,
	principal_id, source_ip, user_agent ON events BEGIN` + termsRemoveOld + `	INSERT INTO rollup_terms_daily SELECT new.ts / 86400000000000, new.action, new.status,
		new.principal_type, new.principal, new.principal_id, new.source_ip, new.user_agent, 1, new.ts, new.ts
		WHERE NOT EXISTS (SELECT 1 FROM terms_pending WHERE rowid = new.rowid)
		ON CONFLICT DO UPDATE SET n = n + 1, first_ts = min(first_ts, excluded.first_ts),
			last_ts = max(last_ts, excluded.last_ts);
END;
`,
}

// termsRemoveOld takes a deleted or updated event out of the new-terms rollup (step 6), unless
// it is still queued.
const termsRemoveOld = `
	UPDATE rollup_terms_daily SET n = n - 1 WHERE day = old.ts / 86400000000000 AND action = old.action AND status = old.status
		AND principal_type = old.principal_type AND principal = old.principal AND principal_id = old.principal_id
		AND source_ip = old.source_ip AND user_agent = old.user_agent
		AND NOT EXISTS (SELECT 1 FROM terms_pending WHERE rowid = old.rowid);
	DELETE FROM rollup_terms_daily WHERE day = old.ts / 86400000000000 AND action = old.action AND status = old.status
		AND principal_type = old.principal_type AND principal = old.principal AND principal_id = old.principal_id
		AND source_ip = old.source_ip AND user_agent = old.user_agent AND n <= 0;
`

// SchemaVersion is the user_version of a file this package has fully migrated.
func SchemaVersion() int { return len(migrations) }

// migrate brings the file behind db from its user_version up to SchemaVersion. It returns
// errNewerSchema when the file was written by a newer build.
func migrate(ctx context.Context, db *sql.DB) error {
	return migrateTo(ctx, db, len(migrations))
}

func migrateTo(ctx context.Context, db *sql.DB, target int) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: file has version %d, this build knows %d", errNewerSchema, v, len(migrations))
	}
	for ; v < target; v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	return nil
}
