package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Schema is the PostgreSQL schema that holds every table of the plugin, so that the database
// may be shared with other applications (Grafana's own, for example).
const Schema = "wizauditlogs"

// searchText1 is the expression step 1's search index covered (step 2 replaced it by the
// search column): kept as step 1 shipped it.
const searchText1 = `lower(id || chr(31) || request_id || chr(31) || action || chr(31) || principal || chr(31) ||
	principal_id || chr(31) || user_agent || chr(31) || params)`

// migrations is the schema as ordered forward steps. Step i (0-based) takes the database from
// version i to i+1, in one transaction with the version bump; replicas migrate under an
// advisory lock, one at a time.
//
// Rules for whoever adds a step: append only, never edit a shipped step; a step must work on
// a database holding tens of millions of events; replicas of the previous version keep
// running while one of this version migrates (a rolling upgrade), so a step adds, it never
// renames or drops what they use.
//
// Every row belongs to a data source (ds, the small integer of data_sources). Times are unix
// nanoseconds in bigint columns, as in the SQLite cache, so both stores hold the same values.
var migrations = []string{
	// 1: data sources, events, sync state, coverage, rollups, search.
	`
CREATE TABLE data_sources (
	id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id      bigint  NOT NULL,
	uid         text    NOT NULL,
	fingerprint text    NOT NULL DEFAULT '', -- the tenant and service account (a hash, never a secret)
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (org_id, uid)
);

-- Unique per data source by Wiz's entry id: an entry re-sent, even with another timestamp,
-- is stored once. No foreign key to data_sources: it would cost a lookup per event.
CREATE TABLE events (
	ds             integer NOT NULL,
	id             text    NOT NULL,
	ts             bigint  NOT NULL,
	request_id     text    NOT NULL,
	action         text    NOT NULL,
	status         text    NOT NULL,
	principal      text    NOT NULL,
	principal_id   text    NOT NULL,
	principal_type text    NOT NULL,
	source_ip      text    NOT NULL,
	user_agent     text    NOT NULL,
	params         text    NOT NULL, -- actionParameters exactly as sent
	raw            text    NOT NULL, -- the node exactly as sent
	PRIMARY KEY (ds, id)
);
CREATE INDEX events_ds_ts           ON events (ds, ts);
CREATE INDEX events_ds_action_ts    ON events (ds, action, ts);
CREATE INDEX events_ds_status_ts    ON events (ds, status, ts);
CREATE INDEX events_ds_principal_ts ON events (ds, principal, ts);
CREATE INDEX events_search ON events USING gin ((` + searchText1 + `) gin_trgm_ops);

CREATE TABLE sync_state (
	ds             integer PRIMARY KEY REFERENCES data_sources (id),
	event_count    bigint  NOT NULL DEFAULT 0, -- kept in step with events by every write
	synced_up_to   bigint,
	live_start     bigint,
	backfill_start bigint,
	last_sync_at   bigint,
	last_error     text,
	leader_state   text    NOT NULL DEFAULT '', -- the leader's sync state, for followers to show
	leader_epoch   bigint  NOT NULL DEFAULT 0   -- bumped by each new leader: fences off a former one
);

CREATE TABLE backfill_covered (
	ds      integer NOT NULL,
	from_ts bigint  NOT NULL, -- inclusive
	to_ts   bigint  NOT NULL, -- inclusive; ranges never overlap or touch (merged on insert)
	PRIMARY KEY (ds, from_ts)
);

-- The SQLite cache's rollups, per data source. Rows whose count falls to zero are deleted
-- through the partial indexes on n <= 0 (almost always empty).
CREATE TABLE rollup_hourly (
	ds integer NOT NULL, hour bigint NOT NULL,
	action text NOT NULL, status text NOT NULL, principal_type text NOT NULL,
	principal text NOT NULL, principal_id text NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (ds, hour, action, status, principal_type, principal, principal_id)
);
CREATE INDEX rollup_hourly_zero ON rollup_hourly (ds) WHERE n <= 0;

CREATE TABLE rollup_hourly_kind (
	ds integer NOT NULL, hour bigint NOT NULL,
	action text NOT NULL, status text NOT NULL, principal_type text NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (ds, hour, action, status, principal_type)
);
CREATE INDEX rollup_hourly_kind_zero ON rollup_hourly_kind (ds) WHERE n <= 0;

CREATE TABLE rollup_daily (
	ds integer NOT NULL, day bigint NOT NULL,
	action text NOT NULL, status text NOT NULL, principal_type text NOT NULL,
	principal text NOT NULL, principal_id text NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (ds, day, action, status, principal_type, principal, principal_id)
);
CREATE INDEX rollup_daily_zero ON rollup_daily (ds) WHERE n <= 0;

-- Keyed by a hash of the value: a user agent is whatever the client sent, and a B-tree entry
-- must stay under about 2.7 kB.
CREATE TABLE rollup_values (
	ds integer NOT NULL, field text NOT NULL, value text NOT NULL,
	n bigint NOT NULL
);
CREATE UNIQUE INDEX rollup_values_key ON rollup_values (ds, field, md5(value));
CREATE INDEX rollup_values_zero ON rollup_values (ds) WHERE n <= 0;
`,
	// 2: search reads a column computed at insert (see searchText): the expression of step 1
	// read actionParameters as sent, with white space SQLite's json_extract leaves out, and
	// folded non-ASCII case as SQLite does not. Its trigram index goes with it.
	`
ALTER TABLE events ADD COLUMN search text NOT NULL DEFAULT '';
DROP INDEX events_search;
CREATE INDEX events_search_text ON events USING gin (search gin_trgm_ops);
`,
	// 3: what newTerms queries read, as the SQLite cache's rollup_terms_daily: per data source
	// and UTC day, every distinct combination of the fields a query can filter or group on,
	// with its event count and the timestamps of its first and last event that day. Keyed by
	// a hash of the combination (termsKey): a user agent is whatever the client sent, too long
	// for a B-tree entry. Filled here for the events already stored; Apply and Prune keep it.
	// A pruned event leaves first_ts and last_ts as they were (bounds, no longer exact): only
	// pruning deletes, from the oldest day on, which queries are then told is not covered.
	`
CREATE TABLE rollup_terms_daily (
	ds integer NOT NULL, day bigint NOT NULL,
	action text NOT NULL, status text NOT NULL, principal_type text NOT NULL,
	principal text NOT NULL, principal_id text NOT NULL, source_ip text NOT NULL, user_agent text NOT NULL,
	n bigint NOT NULL, first_ts bigint NOT NULL, last_ts bigint NOT NULL
);
INSERT INTO rollup_terms_daily
SELECT ds, ts / 86400000000000, action, status, principal_type, principal, principal_id, source_ip, user_agent,
	count(*), min(ts), max(ts)
FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
CREATE UNIQUE INDEX rollup_terms_daily_key ON rollup_terms_daily (ds, day, (` + termsKey("") + `));
CREATE INDEX rollup_terms_daily_zero ON rollup_terms_daily (ds) WHERE n <= 0;
`,
}

// termsKey is the key of a combination in rollup_terms_daily (step 3: never change it), with
// the columns of the table or alias t ("" for none): a hash of the hashes of its values, so
// that no value's content can make two combinations one.
func termsKey(t string) string {
	k := ""
	for _, c := range []string{"action", "status", "principal_type", "principal", "principal_id", "source_ip", "user_agent"} {
		if k != "" {
			k += " || "
		}
		k += "md5(" + t + c + ")"
	}
	return "md5(" + k + ")"
}

// SchemaVersion is the version of a database this package has fully migrated.
func SchemaVersion() int { return len(migrations) }

// errNewerSchema: the database was migrated by a newer build.
var errNewerSchema = errors.New("the database was migrated by a newer version of the plugin: upgrade this Grafana's plugin")

// Advisory lock keys are pairs (lockSpace, n): lockSpace is this plugin's, n is 0 for
// migrations and the data source id for its leader.
const (
	lockSpace     = 0x57495a41 // "WIZA"
	migrationLock = 0
)

// migrate creates the schema when missing and brings it up to SchemaVersion, and registers
// the data source, under the migration lock: replicas starting together take turns.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockSpace, migrationLock); err != nil {
		return err
	}
	defer func() {
		// A failed unlock leaves the lock with the session: close it rather than pool it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockSpace, migrationLock); err != nil {
			_ = conn.Conn().Close(context.Background())
		}
	}()
	// pg_trgm is trusted (any role with CREATE on the database may create it); one a
	// database administrator installed anywhere on the search path is used as it is.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+Schema+"; CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA "+Schema+
		"; CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"); err != nil {
		return fmt.Errorf("create the %s schema: %w", Schema, err)
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w (database at version %d, this build knows %d)", errNewerSchema, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DELETE FROM schema_version; INSERT INTO schema_version VALUES ("+fmt.Sprint(v+1)+")")
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate the schema to version %d: %w", v+1, err)
		}
	}
	return s.register(ctx, conn.Conn())
}

// register finds or creates the data source's row and sync state. A data source whose
// fingerprint changed (pointed at another tenant) is set aside, as the SQLite cache sets its
// file aside: its rows stay under a renamed uid, and a fresh data source starts.
func (s *Store) register(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var id int32
		var fp string
		err := tx.QueryRow(ctx, "SELECT id, fingerprint FROM data_sources WHERE org_id = $1 AND uid = $2",
			s.orgID, s.uid).Scan(&id, &fp)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case fp == s.opts.Fingerprint:
			s.dsID = id
			return nil
		default:
			aside := fmt.Sprintf("%s~set-aside-%s", s.uid, s.opts.Now().UTC().Format("20060102T150405.000000000Z"))
			if _, err := tx.Exec(ctx, "UPDATE data_sources SET uid = $2 WHERE id = $1", id, aside); err != nil {
				return err
			}
			s.notices = append(s.notices, fmt.Sprintf(
				"the cached data belonged to another Wiz tenant or service account; it was set aside as data source uid %q and a fresh cache started", aside))
		}
		if err := tx.QueryRow(ctx, "INSERT INTO data_sources (org_id, uid, fingerprint) VALUES ($1, $2, $3) RETURNING id",
			s.orgID, s.uid, s.opts.Fingerprint).Scan(&s.dsID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO sync_state (ds) VALUES ($1)", s.dsID)
		return err
	})
}
