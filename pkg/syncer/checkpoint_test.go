package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// watchCheckpoint is a Source that records, at every call, the checkpoint stored so far.
type watchCheckpoint struct {
	*memSource
	c    *cache.Cache
	seen []time.Time
}

func (w *watchCheckpoint) AuditLog(ctx context.Context, win wiz.Window, pageSize int, onPage func([]auditlog.Entry) error) (wiz.WindowResult, error) {
	if st, err := w.c.State(context.Background()); err == nil {
		w.seen = append(w.seen, st.SyncedUpTo)
	}
	return w.memSource.AuditLog(ctx, win, pageSize, onPage)
}

// TestCheckpointNeverMovesBack: catching up after downtime in slices shorter than the overlap
// must not store a checkpoint older than the one already stored.
func TestCheckpointNeverMovesBack(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	c, _ := tempCache(t)
	src := &watchCheckpoint{memSource: newMemSource(clock, wiz.OrderNewestFirst), c: c}
	cfg := testConfig(clock)
	cfg.Slice = 9 * time.Minute // shorter than the 10-minute overlap
	s := New(c, src, cfg)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, _ := c.State(context.Background())
	src.seen = nil
	clock.Advance(30 * time.Minute) // downtime
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, cp := range src.seen {
		if !cp.IsZero() && cp.Before(first.SyncedUpTo) {
			t.Fatalf("the checkpoint moved back from %v to %v", first.SyncedUpTo, cp)
		}
	}
	if last, _ := c.State(context.Background()); !last.SyncedUpTo.After(first.SyncedUpTo) {
		t.Fatalf("no progress: %v", last.SyncedUpTo)
	}
}
