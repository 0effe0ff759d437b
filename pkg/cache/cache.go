// Package cache keeps a Wiz tenant's audit log in one SQLite file per data source, together
// with the sync state (checkpoint, backfill coverage) that says how complete it is.
//
// One process at a time writes a file: Open takes an exclusive lock on "<path>.lock" and holds
// it until Close. An opener that cannot get the lock works read-only (queries still answer from
// the file) and can take over later with TryLead. Queries use ReadDB, a separate read-only
// pool: in WAL mode a reader sees the last committed transaction and never waits for the
// writer, and since every page of entries is one transaction, never half a page.
//
// The package knows nothing of Grafana.
package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Errors callers can test with errors.Is.
var (
	// ErrReadOnly: another instance holds the write lock on this cache file.
	ErrReadOnly = errors.New("read-only: another instance is writing this cache")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache closed")
	// ErrNoSpace: a write failed because the file cannot grow (disk full, quota or file-size
	// limit). Nothing half-written stays: the transaction is rolled back.
	ErrNoSpace = errors.New("no space left for the cache: the disk is full or a quota or file-size limit was reached; free space and the sync resumes at the next poll")

	errNewerSchema = errors.New("cache file written by a newer version of the plugin")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Fingerprint identifies the tenant the file belongs to (a hash of the data center, API URL
	// and client id, never of a secret). A file stored under another fingerprint is set aside.
	Fingerprint string
	// BusyTimeout is how long a statement waits for a lock held by another connection
	// (default 5 s).
	BusyTimeout time.Duration
	// ReadConns bounds the read-only pool (default 4).
	ReadConns int
	// PruneBatch is how many events one pruning transaction deletes (default 5000).
	PruneBatch int
	// PrunePause is the pause between pruning transactions, so that the writer lock is free
	// for pages and checkpoints in between (default 50 ms; negative: no pause).
	PrunePause time.Duration
	// SkipQuickCheck skips PRAGMA quick_check at open. The header, the file size and the
	// schema are checked anyway.
	SkipQuickCheck bool
	// QuickCheckMaxBytes: quick_check reads the whole file (seconds on a multi-gigabyte cache,
	// in the data source factory), so a larger file is quick-checked only when its previous
	// writer did not close it cleanly (a WAL file is left). Default 512 MiB; negative: always.
	QuickCheckMaxBytes int64
	// Now stamps set-aside file names and notices (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.PruneBatch <= 0 {
		o.PruneBatch = 5000
	}
	if o.PrunePause == 0 {
		o.PrunePause = 50 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QuickCheckMaxBytes == 0 {
		o.QuickCheckMaxBytes = 512 << 20
	}
}

// NoticeKind says what Open (or TryLead) had to do.
type NoticeKind string

const (
	// NoticeCorrupt: the file was not a readable SQLite database; it was set aside.
	NoticeCorrupt NoticeKind = "corrupt"
	// NoticeForeign: the file belonged to another tenant; it was set aside.
	NoticeForeign NoticeKind = "foreign"
	// NoticeNewerSchema: the file was written by a newer plugin; it was set aside.
	NoticeNewerSchema NoticeKind = "newer-schema"
	// NoticeReadOnly: another instance holds the write lock; this one only reads.
	NoticeReadOnly NoticeKind = "read-only"
)

// Notice is something a status page should show about the cache file.
type Notice struct {
	Kind     NoticeKind `json:"kind"`
	Message  string     `json:"message"`
	SetAside string     `json:"setAside,omitempty"` // where the old file went, for the set-aside kinds
	At       time.Time  `json:"at"`
}

// Cache is one cache file. Its methods are safe for concurrent use.
type Cache struct {
	path string
	opts Options
	lock *flock.Flock

	promoteMu sync.Mutex // serialises TryLead and Close

	mu          sync.RWMutex // guards the fields below
	writeDB     *sql.DB      // nil while read-only
	insertStmt  *sql.Stmt
	readDB      *sql.DB
	placeholder bool // readDB is an empty in-memory schema, not the file
	notices     []Notice
	closed      bool

	wmu sync.Mutex // serialises write transactions (one writer connection)
}

// Open opens (creating it and its directory, owner-only, when missing) the cache file at path.
// It takes the write lock when it can, and otherwise opens the file read-only with a
// NoticeReadOnly notice. As the writer, it sets aside (renames, never deletes) a file that is
// corrupt, belongs to another tenant or was written by a newer version, and starts a fresh
// one; Notices reports it.
func Open(path string, opts Options) (*Cache, error) {
	opts.defaults()
	if err := checkFTS5(); err != nil { // before anything touches (or migrates) the file
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("create cache directory: %w", err)
	}
	c := &Cache{path: abs, opts: opts, lock: flock.New(abs+".lock", flock.SetPermissions(0o600))}
	ok, err := c.lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock cache file: %w", err)
	}
	if ok {
		if err := c.becomeWriter(); err != nil {
			_ = c.lock.Unlock()
			return nil, err
		}
		return c, nil
	}
	if err := c.openReadOnly(); err != nil {
		return nil, err
	}
	return c, nil
}

// Path is the absolute path of the cache file.
func (c *Cache) Path() string { return c.path }

// ReadOnly reports whether another instance holds the write lock.
func (c *Cache) ReadOnly() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.writeDB == nil
}

// Notices lists what Open and TryLead had to do, oldest first, and the read-only notice
// while it applies.
func (c *Cache) Notices() []Notice {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]Notice(nil), c.notices...)
}

// ReadDB is the read-only pool for queries. Ask for it per query: TryLead may replace it.
// While read-only on a file that is not yet usable (missing, another tenant's), it is an empty
// database with the current schema, so queries answer "no data" rather than someone else's.
func (c *Cache) ReadDB() *sql.DB {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.readDB
}

// TryLead takes the write lock if the instance holding it has released it, and reports
// whether this Cache is now the writer (the leader, in the syncer's terms).
func (c *Cache) TryLead(context.Context) (bool, error) {
	c.promoteMu.Lock()
	defer c.promoteMu.Unlock()
	c.mu.RLock()
	closed, writer := c.closed, c.writeDB != nil
	c.mu.RUnlock()
	if closed {
		return false, ErrClosed
	}
	if writer {
		return true, nil
	}
	ok, err := c.lock.TryLock()
	if err != nil || !ok {
		c.refreshReadOnly()
		return false, err
	}
	if err := c.becomeWriter(); err != nil {
		_ = c.lock.Unlock()
		return false, err
	}
	return true, nil
}

// Close releases the write lock and closes both pools. Closing twice is a no-op.
func (c *Cache) Close() error {
	c.promoteMu.Lock()
	defer c.promoteMu.Unlock()
	c.wmu.Lock() // let an in-flight page commit first
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.insertStmt != nil {
		errs = append(errs, c.insertStmt.Close())
	}
	// Readers first: the writer's connection, closing last, checkpoints the WAL into the file.
	if c.readDB != nil {
		errs = append(errs, c.readDB.Close())
	}
	if c.writeDB != nil {
		errs = append(errs, c.writeDB.Close())
	}
	// readDB stays set (closed): a late query gets "database is closed", not a nil pointer.
	c.writeDB, c.insertStmt = nil, nil
	errs = append(errs, c.lock.Unlock())
	return errors.Join(errs...)
}

// becomeWriter runs with the lock held: it validates the file (setting it aside when it cannot
// be used), migrates it, and installs the writer connection and a fresh read pool.
func (c *Cache) becomeWriter() error {
	var db *sql.DB
	for attempt := 0; ; attempt++ {
		if attempt == 3 {
			return errors.New("cache file keeps failing validation after being set aside")
		}
		var kind NoticeKind
		var reason string
		var err error
		db, kind, reason, err = c.openValidated()
		if err != nil {
			return err
		}
		if kind == "" {
			break
		}
		if err := c.setAside(kind, reason); err != nil {
			return err
		}
	}
	stmt, err := db.Prepare(insertSQL)
	if err != nil {
		_ = db.Close()
		return err
	}
	rdb, err := c.openReadPool()
	if err != nil {
		_ = stmt.Close()
		_ = db.Close()
		return err
	}
	c.mu.Lock()
	old := c.readDB
	c.writeDB, c.insertStmt, c.readDB, c.placeholder = db, stmt, rdb, false
	kept := c.notices[:0]
	for _, n := range c.notices {
		if n.Kind != NoticeReadOnly {
			kept = append(kept, n)
		}
	}
	c.notices = kept
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (c *Cache) openReadPool() (*sql.DB, error) {
	rdb, err := sql.Open("sqlite3", c.dsn(true))
	if err != nil {
		return nil, err
	}
	rdb.SetMaxOpenConns(c.opts.ReadConns)
	rdb.SetMaxIdleConns(c.opts.ReadConns)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.Ping(); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// dsn builds the connection string. The writer runs in WAL mode with synchronous=NORMAL: a
// commit is in the WAL (in the OS) when it returns, so it survives a crash or kill -9 of the
// process; only a power loss or OS crash can roll back the last few commits, never corrupt the
// file, and since the checkpoint rolls back together with the pages it covers, the next sync
// simply fetches them again. FULL would fsync on every page for no gain in correctness.
// Write transactions start IMMEDIATE so they never fail half-way on a lock upgrade.
func (c *Cache) dsn(readOnly bool) string {
	ms := c.opts.BusyTimeout.Milliseconds()
	if readOnly {
		return fmt.Sprintf("file:%s?mode=ro&_query_only=1&_busy_timeout=%d", escapePath(c.path), ms)
	}
	return fmt.Sprintf("file:%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&_cache_size=-16000",
		escapePath(c.path), ms)
}

// escapePath makes a file path safe inside an SQLite URI.
func escapePath(p string) string {
	p = filepath.ToSlash(p)
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}
