package cache

import (
	"database/sql"
	"errors"
	"os"
	"time"
)

// Stats is what a status page shows about the cache. All of it is cheap to read: the event
// count is a counter kept by every write, oldest and newest come from the timestamp index.
type Stats struct {
	Events int64
	Oldest time.Time // zero when empty
	Newest time.Time
	Bytes  int64 // database file plus its WAL
}

// Stats reads the counters of the file (through the read pool).
func (c *Cache) Stats() (Stats, error) {
	db := c.ReadDB()
	if db == nil {
		return Stats{}, ErrClosed
	}
	var s Stats
	var oldest, newest sql.NullInt64
	// Two sub-selects: SQLite answers a lone min() or max() from the index, not both in one.
	err := db.QueryRow(`SELECT event_count, (SELECT min(ts) FROM events), (SELECT max(ts) FROM events)
		FROM sync_state`).Scan(&s.Events, &oldest, &newest)
	if err != nil {
		return Stats{}, err
	}
	s.Oldest, s.Newest = nsTime(oldest), nsTime(newest)
	for _, p := range []string{c.path, c.path + "-wal"} {
		fi, err := os.Stat(p)
		if err == nil {
			s.Bytes += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return Stats{}, err
		}
	}
	return s, nil
}
