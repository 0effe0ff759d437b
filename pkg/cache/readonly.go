package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// placeholderSeq names each placeholder database uniquely within the process.
var placeholderSeq atomic.Int64

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
