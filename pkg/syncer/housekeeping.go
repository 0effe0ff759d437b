package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/seed/wizauditlogs/pkg/cache"
)

// Housekeeping beside the live tail and the backfill: search indexing and retention pruning.

// indexAfter drains the search queue at the end of a cycle: in this goroutine with wait, else
// in the background unless a drain is already running (it also indexes what the backfill
// stores meanwhile, and the next cycle starts another).
func (s *Syncer) indexAfter(ctx context.Context, wait bool) {
	if wait {
		_ = s.indexSearch(ctx, false) // nothing else of this syncer writes meanwhile
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexing || ctx.Err() != nil {
		return
	}
	s.indexing = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.indexSearch(ctx, true)
		s.mu.Lock()
		s.indexing = false
		s.mu.Unlock()
	}()
}

// indexSearch moves queued events into the search index, a short transaction at a time (with
// a pause in between when pause is set), until the queue is empty or ctx is done. Queries find
// queued events anyway (more slowly), so a failure is only logged; the next cycle tries again.
func (s *Syncer) indexSearch(ctx context.Context, pause bool) error {
	start, total := time.Now(), 0
	for ctx.Err() == nil {
		n, err := s.store.IndexPending(ctx, s.cfg.IndexBatch)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, cache.ErrClosed) || errors.Is(err, cache.ErrReadOnly) {
				return nil
			}
			s.log.Warn("search indexing failed", "error", err)
			return err
		}
		total += n
		if n < s.cfg.IndexBatch {
			break
		}
		if pause && s.cfg.IndexPause > 0 {
			t := time.NewTimer(s.cfg.IndexPause)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	if total >= 100*s.cfg.IndexBatch {
		s.log.Info("indexed events for search", "events", total, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// pruneDue reports whether retention pruning should run now.
func (s *Syncer) pruneDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruneDueLocked()
}

func (s *Syncer) pruneDueLocked() bool {
	return s.cfg.RetentionDays > 0 &&
		(s.lastPrune.IsZero() || s.clock.Now().Sub(s.lastPrune) >= s.cfg.PruneInterval)
}

func (s *Syncer) prune(ctx context.Context) error {
	now := s.clock.Now()
	s.mu.Lock()
	s.lastPrune = now
	s.mu.Unlock()
	cut := now.Add(-time.Duration(s.cfg.RetentionDays) * 24 * time.Hour)
	n, err := s.store.Prune(ctx, cut)
	if err != nil {
		s.log.Warn("retention pruning failed", "error", err)
		return err
	}
	if n > 0 {
		s.log.Info("pruned events past retention", "deleted", n, "before", cut)
	}
	return nil
}
