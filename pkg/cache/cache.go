// Package cache keeps a Wiz tenant's audit log in one SQLite file per data source, together
// with the sync state (checkpoint, backfill coverage) that says how complete it is.
//
// One process at a time writes a file: Open takes an exclusive lock on "<path>.lock" and holds
// it until Close. An opener that cannot get the lock works read-only (queries still answer from
// the file) and can take over later with TryPromote. Queries use ReadDB, a separate read-only
// pool: in WAL mode a reader sees the last committed transaction and never waits for the
// writer, and since every page of entries is one transaction, never half a page.
//
// The package knows nothing of Grafana.
package cache

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/mattn/go-sqlite3"
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

// NoticeKind says what Open (or TryPromote) had to do.
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

	promoteMu sync.Mutex // serialises TryPromote and Close

	mu          sync.RWMutex // guards the fields below
	writeDB     *sql.DB      // nil while read-only
	insertStmt  *sql.Stmt
	readDB      *sql.DB
	placeholder bool // readDB is an empty in-memory schema, not the file
	notices     []Notice
	closed      bool

	wmu sync.Mutex // serialises write transactions (one writer connection)
}

var placeholderSeq atomic.Int64

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

// Notices lists what Open and TryPromote had to do, oldest first, and the read-only notice
// while it applies.
func (c *Cache) Notices() []Notice {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]Notice(nil), c.notices...)
}

// ReadDB is the read-only pool for queries. Ask for it per query: TryPromote may replace it.
// While read-only on a file that is not yet usable (missing, another tenant's), it is an empty
// database with the current schema, so queries answer "no data" rather than someone else's.
func (c *Cache) ReadDB() *sql.DB {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.readDB
}

// TryPromote takes the write lock if the instance holding it has released it, and reports
// whether this Cache is now the writer.
func (c *Cache) TryPromote() (bool, error) {
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

// openValidated opens the writer connection on a usable file. When the file cannot be used it
// returns the notice kind and reason instead (and no db); err is for failures that say nothing
// about the file (permissions, disk), which must never make us set a file aside.
func (c *Cache) openValidated() (db *sql.DB, kind NoticeKind, reason string, err error) {
	// A file found damaged while in use is set aside at the next open, however it looks now.
	if why, err := os.ReadFile(c.path + damagedSuffix); err == nil {
		_ = os.Remove(c.path + damagedSuffix)
		if _, err := os.Stat(c.path); err == nil {
			return nil, NoticeCorrupt, "found damaged while in use: " + strings.TrimSpace(string(why)), nil
		}
	}
	fresh := false
	fi, statErr := os.Stat(c.path)
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		fresh = true
		f, err := os.OpenFile(c.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", "", fmt.Errorf("create cache file: %w", err)
		}
		_ = f.Close()
		// A journal left behind by a file that is gone belongs to nothing: drop it.
		_ = os.Remove(c.path + "-wal")
		_ = os.Remove(c.path + "-shm")
	case statErr != nil:
		return nil, "", "", statErr
	default:
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(c.path, 0o600); err != nil {
				return nil, "", "", fmt.Errorf("restrict cache file permissions: %w", err)
			}
		}
		if fi.Size() == 0 {
			fresh = true
		} else if why, err := checkHeader(c.path); err != nil {
			return nil, "", "", err
		} else if why != "" {
			return nil, NoticeCorrupt, why, nil
		}
	}

	ctx := context.Background()
	if !fresh {
		// Judge the file through a read-only connection first: nothing may change a file
		// (not even its journal mode) before we know it is ours.
		if kind, why, err := c.inspect(ctx); err != nil || kind != "" {
			return nil, kind, why, err
		}
	}
	db, err = sql.Open("sqlite3", c.dsn(false))
	if err != nil {
		return nil, "", "", err
	}
	db.SetMaxOpenConns(1) // the single writer connection
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	fail := func(k NoticeKind, why string, e error) (*sql.DB, NoticeKind, string, error) {
		_ = db.Close()
		return nil, k, why, e
	}
	if err := migrate(ctx, db); err != nil {
		if isCorrupt(err) {
			return fail(NoticeCorrupt, err.Error(), nil)
		}
		return fail("", "", fmt.Errorf("open cache file: %w", err))
	}
	// inspect let through only this tenant's file or an empty one: stamp it (a no-op for ours).
	if _, err := db.ExecContext(ctx, "UPDATE sync_state SET fingerprint = ?", c.opts.Fingerprint); err != nil {
		return fail("", "", err)
	}
	return db, "", "", nil
}

// inspect decides, through a read-only connection, whether an existing file can be used.
func (c *Cache) inspect(ctx context.Context) (kind NoticeKind, why string, err error) {
	db, err := sql.Open("sqlite3", c.dsn(true))
	if err != nil {
		return "", "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// classify turns an error into a verdict on the file, or passes it on.
	classify := func(err error) (NoticeKind, string, error) {
		if isCorrupt(err) {
			return NoticeCorrupt, err.Error(), nil
		}
		return "", "", fmt.Errorf("check cache file: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		return classify(err)
	}
	var v, tables int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return classify(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'").Scan(&tables); err != nil {
		return classify(err)
	}
	if c.wantQuickCheck() {
		if why, err := quickCheck(ctx, db); err != nil {
			return classify(err)
		} else if why != "" {
			return NoticeCorrupt, "integrity check failed: " + why, nil
		}
	}
	switch {
	case v == 0 && tables == 0:
		return "", "", nil // an empty database: ours to initialise
	case v == 0:
		return NoticeCorrupt, "an SQLite file that is not a cache of this plugin", nil
	case v > len(migrations):
		return NoticeNewerSchema, fmt.Sprintf("schema version %d, this build knows %d", v, len(migrations)), nil
	}
	var fp string
	var count int64
	if err := db.QueryRowContext(ctx, "SELECT fingerprint, event_count FROM sync_state").Scan(&fp, &count); err != nil {
		if isCorrupt(err) {
			return classify(err)
		}
		return NoticeCorrupt, "no readable sync state: " + err.Error(), nil
	}
	if fp != c.opts.Fingerprint {
		return NoticeForeign, "", nil
	}
	return "", "", nil
}

// damagedSuffix names the marker file left next to a cache file found damaged while in use.
const damagedSuffix = ".damaged"

// checkDamage notes a write that failed because the file is damaged: a notice now, and a
// marker so that the next Open sets the file aside (a large file is not quick-checked after a
// clean close, so it could not tell otherwise).
func (c *Cache) checkDamage(err error) {
	if !isCorrupt(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.notices {
		if n.Kind == NoticeCorrupt && n.SetAside == "" {
			return
		}
	}
	_ = os.WriteFile(c.path+damagedSuffix, []byte(err.Error()+"\n"), 0o600)
	c.notices = append(c.notices, Notice{Kind: NoticeCorrupt, At: c.opts.Now().UTC(),
		Message: "the cache file is damaged (" + err.Error() + "); restart the data source (for example, save its settings) to set it aside and start a fresh cache"})
}

// setAside renames the cache file and its WAL and shared-memory files with a suffix that says
// why, and records a notice. Nothing is deleted.
func (c *Cache) setAside(kind NoticeKind, reason string) error {
	now := c.opts.Now().UTC()
	dst := fmt.Sprintf("%s.%s-%s", c.path, kind, now.Format("20060102T150405.000000000Z"))
	if err := os.Rename(c.path, dst); err != nil {
		return fmt.Errorf("set aside cache file: %w", err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if err := os.Rename(c.path+sfx, dst+sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("set aside cache file: %w", err)
		}
	}
	var msg string
	switch kind {
	case NoticeForeign:
		msg = "the cache file belonged to another Wiz tenant or service account"
	case NoticeNewerSchema:
		msg = "the cache file was written by a newer version of the plugin"
	default:
		msg = "the cache file was damaged (" + reason + ")"
	}
	// Say where it went: an admin may want it back (or delete it to free the space).
	msg += "; it was set aside as " + dst + " and a fresh cache started"
	c.mu.Lock()
	c.notices = append(c.notices, Notice{Kind: kind, Message: msg, SetAside: dst, At: now})
	c.mu.Unlock()
	return nil
}

// openReadOnly is Open's path when another instance holds the lock.
func (c *Cache) openReadOnly() error {
	c.notices = append(c.notices, Notice{Kind: NoticeReadOnly, Message: ErrReadOnly.Error(), At: c.opts.Now().UTC()})
	if rdb := c.openFileReadOnly(); rdb != nil {
		c.readDB = rdb
		return nil
	}
	// Nothing this instance may show yet: an empty database with the current schema.
	name := fmt.Sprintf("file:wizauditlogs-empty-%d-%d?mode=memory&cache=shared", os.Getpid(), placeholderSeq.Add(1))
	rdb, err := sql.Open("sqlite3", name)
	if err != nil {
		return err
	}
	rdb.SetMaxIdleConns(2)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	if err := migrate(context.Background(), rdb); err != nil {
		_ = rdb.Close()
		return err
	}
	c.readDB, c.placeholder = rdb, true
	return nil
}

// refreshReadOnly swaps the placeholder for the file once the writer has made it usable.
func (c *Cache) refreshReadOnly() {
	c.mu.RLock()
	placeholder := c.placeholder
	c.mu.RUnlock()
	if !placeholder {
		return
	}
	rdb := c.openFileReadOnly()
	if rdb == nil {
		return
	}
	c.mu.Lock()
	old := c.readDB
	c.readDB, c.placeholder = rdb, false
	c.mu.Unlock()
	_ = old.Close()
}

// openFileReadOnly opens the read pool on the file when it is a complete cache of this
// tenant, and returns nil otherwise.
func (c *Cache) openFileReadOnly() *sql.DB {
	if fi, err := os.Stat(c.path); err != nil || fi.Size() == 0 {
		return nil
	}
	rdb, err := c.openReadPool()
	if err != nil {
		return nil
	}
	var fp string
	var v int
	err = rdb.QueryRow("PRAGMA user_version").Scan(&v)
	if err == nil && v == len(migrations) {
		err = rdb.QueryRow("SELECT fingerprint FROM sync_state").Scan(&fp)
		if err == nil && fp == c.opts.Fingerprint {
			return rdb
		}
	}
	_ = rdb.Close()
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

var sqliteMagic = []byte("SQLite format 3\x00")

// wantQuickCheck: see Options.QuickCheckMaxBytes.
func (c *Cache) wantQuickCheck() bool {
	if c.opts.SkipQuickCheck {
		return false
	}
	fi, err := os.Stat(c.path)
	if err != nil || c.opts.QuickCheckMaxBytes < 0 || fi.Size() <= c.opts.QuickCheckMaxBytes {
		return true
	}
	wal, err := os.Stat(c.path + "-wal")
	return err == nil && wal.Size() > 0
}

// checkHeader reads the header of a non-empty file; why is set when it is no SQLite file, or
// a truncated one.
func checkHeader(path string) (why string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open cache file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 100)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read cache file: %w", err)
	}
	if n < 100 || !bytes.Equal(buf[:16], sqliteMagic) {
		return "file is not a database", nil
	}
	// The header's page count is valid when its version-valid-for number matches the change
	// counter. While a WAL file holds frames, a crash mid-checkpoint can leave page 1 ahead of
	// the rest of the file (the WAL repairs it), so the size is only judged without one.
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
		return "", nil
	}
	pageSize := int64(binary.BigEndian.Uint16(buf[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(buf[28:32]))
	if binary.BigEndian.Uint32(buf[92:96]) == binary.BigEndian.Uint32(buf[24:28]) && pages > 0 {
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		if want := pages * pageSize; fi.Size() < want {
			return fmt.Sprintf("file is truncated: %d of %d bytes", fi.Size(), want), nil
		}
	}
	return "", nil
}

func quickCheck(ctx context.Context, db *sql.DB) (why string, err error) {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return "", nil
	}
	return strings.Join(msgs, "; "), nil
}

// noSpace words a write error caused by a full disk (SQLite says "database or disk is full", or
// a bare "disk I/O error" when the file-size limit or quota errno is not ENOSPC) so that an
// admin knows what to fix.
func noSpace(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) || errors.Is(err, ErrNoSpace) {
		return err
	}
	switch {
	case se.Code == sqlite3.ErrFull,
		se.SystemErrno == syscall.ENOSPC, se.SystemErrno == syscall.EFBIG, se.SystemErrno == syscall.EDQUOT:
		return fmt.Errorf("%w (%w)", ErrNoSpace, err)
	}
	return err
}

func isCorrupt(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB
	}
	return false
}
