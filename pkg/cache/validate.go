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
	"strings"
)

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
