package cache

import (
	"context"
	"database/sql"
	"errors"
	"os"

	"github.com/seed/wizauditlogs/pkg/store"
)

// Stats reads the counters of the file (through the read pool).
func (c *Cache) Stats(ctx context.Context) (store.Stats, error) {
	db := c.ReadDB()
	if db == nil {
		return store.Stats{}, ErrClosed
	}
	var s store.Stats
	var oldest, newest sql.NullInt64
	// Two sub-selects: SQLite answers a lone min() or max() from the index, not both in one.
	err := db.QueryRowContext(ctx, `SELECT event_count, (SELECT min(ts) FROM events), (SELECT max(ts) FROM events)
		FROM sync_state`).Scan(&s.Events, &oldest, &newest)
	if err != nil {
		return store.Stats{}, err
	}
	s.Oldest, s.Newest = nsTime(oldest), nsTime(newest)
	for _, p := range []string{c.path, c.path + "-wal"} {
		fi, err := os.Stat(p)
		if err == nil {
			s.Bytes += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return store.Stats{}, err
		}
	}
	return s, nil
}
