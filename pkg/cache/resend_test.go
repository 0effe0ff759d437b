package cache

import (
	"context"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
)

// TestIDResentAtAnotherTimestamp: events are unique by id. An id sent again with another
// timestamp within ResendWindow (a millisecond, ten minutes later; in a later page or the
// same one) is dropped: the first copy stored wins, and the rollups count it once. Beyond
// ResendWindow the two are stored as two events.
func TestIDResentAtAnotherTimestamp(t *testing.T) {
	ctx := context.Background()
	c := mustOpen(t, filepath.Join(t.TempDir(), "ds.db"), Options{})
	page := genEntries(rand.New(rand.NewSource(7)), base, 20)
	if n, err := c.Apply(ctx, page, store.Update{}); err != nil || n != 20 {
		t.Fatalf("first insert %d %v", n, err)
	}
	moved := func(e auditlog.Entry, d time.Duration) auditlog.Entry {
		e.Timestamp = e.Timestamp.Add(d)
		return e
	}
	fresh := genEntries(rand.New(rand.NewSource(8)), base.Add(time.Minute), 2)
	again := []auditlog.Entry{
		moved(page[0], time.Millisecond), moved(page[1], 10*time.Minute), moved(page[2], -10*time.Minute),
		fresh[0], moved(fresh[0], time.Millisecond), // the same id twice in one page
		moved(page[3], 2*time.Hour), // beyond the window: a second event
		fresh[1],
	}
	if n, err := c.Apply(ctx, again, store.Update{}); err != nil || n != 3 {
		t.Fatalf("inserted %d %v, want the 2 fresh entries and the one 2 hours away", n, err)
	}
	var storedTS int64
	if err := c.ReadDB().QueryRow("SELECT ts FROM events WHERE id = ?", page[1].ID).Scan(&storedTS); err != nil || storedTS != page[1].Timestamp.UnixNano() {
		t.Fatalf("the first copy did not win: %d %v", storedTS, err)
	}
	var copies, rolled int
	if err := c.ReadDB().QueryRow("SELECT count(*) FROM events WHERE id = ?", page[3].ID).Scan(&copies); err != nil || copies != 2 {
		t.Fatalf("%d copies of the id resent 2 hours away (%v), want 2", copies, err)
	}
	if err := c.ReadDB().QueryRow("SELECT sum(n) FROM rollup_hourly").Scan(&rolled); err != nil || rolled != 23 {
		t.Fatalf("rollups count %d (%v), want 23", rolled, err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Events != 23 || countRows(t, c.ReadDB()) != 23 {
		t.Fatalf("stats %+v %v", st, err)
	}
}
