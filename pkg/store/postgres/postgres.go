// Package postgres keeps data sources' audit logs in a shared PostgreSQL database, for Grafana
// in high availability: every replica reads the same tables, and the one holding a data
// source's leader lock (see TryLead) syncs it. It offers the SQLite cache's write semantics
// (pkg/cache: one transaction per page with its checkpoint and coverage, deduplication by
// entry id, rollups kept in the same transaction, pruning in small batches) and uses its
// Update, State and Interval types.
//
// Errors name the server by host, port and database only: the URL's password never appears.
// The package knows nothing of Grafana.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed/wizauditlogs/pkg/cache"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotLeader: this replica does not hold the data source's leader lock (any more), so it
	// must not write. It is also a cache.ErrReadOnly, which the syncer already treats as
	// "another instance writes".
	ErrNotLeader = fmt.Errorf("not the leader: another replica syncs this data source (%w)", cache.ErrReadOnly)
	// ErrClosed: the store was closed.
	ErrClosed = cache.ErrClosed
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Fingerprint identifies the tenant and service account (see cache.Fingerprint). Data
	// stored under another fingerprint is set aside.
	Fingerprint string
	// Name identifies this replica to the others (default "<host name>:<process id>").
	Name string
	// PruneBatch is how many events one pruning transaction deletes (default 5000).
	PruneBatch int
	// PrunePause is the pause between pruning transactions (default 50 ms; negative: none).
	PrunePause time.Duration
	// KeepAlive bounds how long a dead peer goes unnoticed on a connection: TCP keepalive
	// probes start after this much silence, on both ends (default 15 s; a dead connection is
	// found after about twice this).
	KeepAlive time.Duration
	// IdleInTransactionTimeout ends a session that sits in a transaction this long, releasing
	// its locks (a frozen replica); default 60 s.
	IdleInTransactionTimeout time.Duration
	// MaxConns bounds the pool (default 4; connections open on demand). The leader lock takes
	// one more, outside the pool.
	MaxConns int32
	// Now stamps notices (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.PruneBatch <= 0 {
		o.PruneBatch = 5000
	}
	if o.PrunePause == 0 {
		o.PrunePause = 50 * time.Millisecond
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.IdleInTransactionTimeout <= 0 {
		o.IdleInTransactionTimeout = 60 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is one data source's data in the shared database. Its methods are safe for
// concurrent use.
type Store struct {
	db      target
	pool    *pgxpool.Pool
	ownPool bool // Open's own pool, closed with the Store; not a shared Pool's
	orgID   int64
	uid     string
	dsID    int32
	opts    Options
	notices []string

	closed atomic.Bool
	lead   leader
}

// Open connects to the database at databaseURL, migrates its schema and registers the data
// source (orgID, uid), with a connection pool of its own. It does not take the leader lock:
// see TryLead.
func Open(ctx context.Context, databaseURL string, orgID int64, uid string, opts Options) (*Store, error) {
	p, err := NewPool(ctx, databaseURL, opts)
	if err != nil {
		return nil, err
	}
	s, err := OpenIn(ctx, p, orgID, uid, opts)
	if err != nil {
		p.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// Pool is a connection pool to one database, which the data sources of a process share
// (OpenIn). Each Store still takes a connection of its own for its leader lock.
type Pool struct {
	db   target
	pool *pgxpool.Pool
}

// NewPool connects to the database at databaseURL. Of opts, Name, KeepAlive,
// IdleInTransactionTimeout and MaxConns apply: they configure the pool's connections.
func NewPool(ctx context.Context, databaseURL string, opts Options) (*Pool, error) {
	opts.defaults()
	db, cfg, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	configure(cfg.ConnConfig, opts)
	cfg.MaxConns = opts.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, db.wrap("connect", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, db.wrap("connect", err)
	}
	return &Pool{db: db, pool: pool}, nil
}

// Target is "host:port/database", for status pages.
func (p *Pool) Target() string { return p.db.String() }

// Close closes the pool's connections; the Stores opened in it must be closed first.
func (p *Pool) Close() { p.pool.Close() }

// OpenIn migrates the schema and registers the data source (orgID, uid) in a shared pool.
// Closing the Store leaves the pool open. opts' connection settings are the pool's.
func OpenIn(ctx context.Context, p *Pool, orgID int64, uid string, opts Options) (*Store, error) {
	opts.defaults()
	s := &Store{db: p.db, pool: p.pool, orgID: orgID, uid: uid, opts: opts}
	if err := s.migrate(ctx); err != nil {
		return nil, s.db.wrap("prepare the database", err)
	}
	s.lead.init(s)
	return s, nil
}

// configure sets what every connection (the pool's and the leader lock's) needs: the schema,
// and the timeouts that free a dead or frozen replica's locks.
func configure(cc *pgx.ConnConfig, opts Options) {
	rp := cc.RuntimeParams
	rp["search_path"] = Schema + ", public"
	rp["application_name"] = truncate("wizauditlogs "+opts.Name, 63)
	ka := strconv.Itoa(max(1, int(opts.KeepAlive.Seconds())))
	// The server probes an idle client (frees a dead leader's lock); the client probes the
	// server (a leader notices it is cut off).
	rp["tcp_keepalives_idle"], rp["tcp_keepalives_interval"], rp["tcp_keepalives_count"] = ka, ka, "1"
	// Keepalives stop while sent data waits for an acknowledgement (a run request notified
	// to a dead leader): without this bound the kernel would retry for about 15 minutes.
	rp["tcp_user_timeout"] = strconv.FormatInt(2*opts.KeepAlive.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(opts.IdleInTransactionTimeout.Milliseconds(), 10)
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: opts.KeepAlive, Interval: opts.KeepAlive, Count: 1}}
	if cc.ConnectTimeout > 0 {
		d.Timeout = cc.ConnectTimeout
	}
	cc.DialFunc = d.DialContext
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// DataSourceID is the small integer that keys this data source's rows.
func (s *Store) DataSourceID() int32 { return s.dsID }

// Pool is the connection pool, for the query engine.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Notices lists what Open had to do (a set-aside), oldest first.
func (s *Store) Notices() []string { return append([]string(nil), s.notices...) }

// Target is "host:port/database", for status pages.
func (s *Store) Target() string { return s.db.String() }

// Close releases the leader lock and closes the pool when it is the Store's own (Open).
// Closing twice is a no-op.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.lead.close()
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// target names the database in errors: host, port and database, never the user's password.
type target struct {
	host, port, database string
	secret               string // the password, scrubbed from every error text
}

func (t target) String() string {
	return net.JoinHostPort(t.host, t.port) + "/" + t.database
}

// dbError is an error of the database at a target. Its text names the target and the failed
// operation, and never contains the password.
type dbError struct {
	t   target
	op  string
	err error
}

func (e *dbError) Error() string {
	msg := fmt.Sprintf("PostgreSQL at %s: %s: %s", e.t, e.op, describe(e.err))
	if e.t.secret != "" {
		msg = strings.ReplaceAll(msg, e.t.secret, "xxxxx")
	}
	return msg
}

func (e *dbError) Unwrap() error { return e.err }

// wrap is the one way this package reports a database error.
func (t target) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *dbError
	if errors.As(err, &de) || errors.Is(err, ErrNotLeader) || errors.Is(err, ErrClosed) {
		return err
	}
	return &dbError{t: t, op: op, err: err}
}

// describe words the failures an administrator must act on.
func describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return "authentication failed: check the user name and password in the database URL (" + pe.Message + ")"
		case "3D000":
			return "the database does not exist (" + pe.Message + ")"
		case "42501":
			return "permission denied: the role needs CREATE on the database, or a schema " + Schema +
				" it owns with the pg_trgm extension installed (" + pe.Message + ")"
		case "57P01", "57P02", "57P03":
			return "the server is shutting down or restarting (" + pe.Message + ")"
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.Timeout(err) {
		// Kept whole: it says refused, timed out or unknown host.
		return "cannot reach the server: " + err.Error()
	}
	return err.Error()
}

// parseURL checks a database URL and returns the pool configuration. Its errors say what is
// wrong without quoting the URL (which holds the password).
func parseURL(raw string) (target, *pgxpool.Config, error) {
	bad := func(why string) (target, *pgxpool.Config, error) {
		return target{}, nil, errors.New("invalid database URL: " + why + " (expected postgres://user:password@host:5432/database?sslmode=require)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("it is not a URL (a special character in the password must be percent-encoded)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return bad("the scheme must be postgres:// or postgresql://")
	}
	t := target{host: u.Hostname(), port: u.Port(), database: strings.TrimPrefix(u.Path, "/")}
	t.secret, _ = u.User.Password()
	if t.host == "" {
		return bad("no host")
	}
	if t.port == "" {
		t.port = "5432"
	}
	if n, err := strconv.Atoi(t.port); err != nil || n < 1 || n > 65535 {
		return bad("the port is not a number from 1 to 65535")
	}
	if t.database == "" {
		return bad("no database name after the host")
	}
	if u.User.Username() == "" {
		return bad("no user name")
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		// ParseConfig's message quotes the URL (with the password masked); the reason alone
		// is enough, and scrubbed anyway.
		why := err.Error()
		if inner := errors.Unwrap(err); inner != nil {
			why = inner.Error()
		}
		if t.secret != "" {
			why = strings.ReplaceAll(why, t.secret, "xxxxx")
		}
		return target{}, nil, fmt.Errorf("invalid database URL for %s: %s", t, why)
	}
	return t, cfg, nil
}
