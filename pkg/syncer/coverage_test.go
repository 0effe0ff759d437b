package syncer

import (
	"github.com/seed/wizauditlogs/pkg/store"
	"testing"
	"time"
)

func TestCoveredFrom(t *testing.T) {
	t.Parallel()
	h := func(n int) time.Time { return time.Date(2026, 11, 1, n, 0, 0, 0, time.UTC) }
	st := store.State{LiveStart: h(20), Covered: []store.Interval{{From: h(1), To: h(5)}, {From: h(10), To: h(20)}}}
	if got := coveredFrom(st); !got.Equal(h(10)) {
		t.Errorf("covered from %v, want %v: the gap before 10:00 breaks the coverage", got, h(10))
	}
	st.Covered = nil
	if got := coveredFrom(st); !got.Equal(h(20)) {
		t.Errorf("no backfill: covered from %v, want the live start", got)
	}
}
