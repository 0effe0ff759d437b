// Package syncer keeps a Store (the SQLite cache or the shared PostgreSQL database) in step
// with a Wiz tenant's audit log: a live tail of
// closed, overlapping windows every poll interval, and a backfill of the history from a start
// date, newest first, in time slices small enough never to be cut by the API's result cap.
//
// Every page is one cache transaction and the checkpoint (or a backfill slice's coverage) is
// recorded only after the whole window is stored, so stopping or killing the process at any
// moment loses nothing: the next run fetches again from the last checkpoint, and the id key
// absorbs what it fetches twice. The package knows nothing of Grafana.
//
// Lifecycle in a data source instance: the factory opens the store and builds and starts the
// Syncer; Dispose calls Stop, then closes the store, which releases its leader lock.
//
// One Syncer per data source writes: the leader (SQLite: the holder of the cache file's write
// lock; PostgreSQL: of the data source's advisory lock). The others are followers: they try to
// lead every Config.PromoteInterval, read the leader's freshness and published state from the
// store meanwhile, and pass "sync now" on to the leader (Store.RequestRun).
package syncer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/settings"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// Source pages one closed time window of the audit log; *wiz.Client is one. It retries rate
// limits and transient failures itself and returns an error wiz.KindOf classifies when it
// gives up.
type Source interface {
	AuditLog(ctx context.Context, w wiz.Window, pageSize int, onPage func([]auditlog.Entry) error) (wiz.WindowResult, error)
}

// Store keeps the events and the sync state; *cache.Cache and *postgres.Store are ones.
// Writes fail with an error matching cache.ErrReadOnly while this replica does not lead.
type Store interface {
	State(ctx context.Context) (store.State, error)
	// Apply stores entries and a state update in one transaction and returns how many
	// entries were new.
	Apply(ctx context.Context, entries []auditlog.Entry, u store.Update) (inserted int, err error)
	Prune(ctx context.Context, before time.Time) (deleted int, err error)
	// IndexPending moves up to batch queued events into the search index (0 when the backend
	// indexes as it stores).
	IndexPending(ctx context.Context, batch int) (indexed int, err error)
	Stats(ctx context.Context) (store.Stats, error)

	// TryLead takes the leader lock when it is free and reports whether this replica leads.
	TryLead(ctx context.Context) (bool, error)
	Leading() bool
	// Leader names the replica that leads ("host:pid"), "" when unknown or none.
	Leader(ctx context.Context) (string, error)
	// RequestRun asks the leader, whichever replica it is, to sync now.
	RequestRun(ctx context.Context) error
	// RunRequests delivers the run requests addressed to this replica while it leads.
	RunRequests() <-chan struct{}
	// SetLeaderState publishes the leader's state for the followers; LeaderState reads it.
	SetLeaderState(ctx context.Context, state string) error
	LeaderState(ctx context.Context) (string, error)
}

// Clock is the syncer's time: Now, and After for the waits between cycles.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Logger is the subset of Grafana's backend logger (and of *slog.Logger) the syncer uses.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// Defaults of Config. PollInterval and PageSize default to settings.DefaultPollInterval and
// settings.DefaultPageSize.
const (
	DefaultOverlap         = 10 * time.Minute
	DefaultLag             = 30 * time.Second
	DefaultConcurrency     = 4
	DefaultSlice           = 7 * 24 * time.Hour
	DefaultMinSlice        = time.Minute
	DefaultPruneInterval   = time.Hour
	DefaultPromoteInterval = 5 * time.Second
	DefaultIndexPause      = 20 * time.Millisecond
	// sliceTarget is the number of entries a backfill slice aims at: half the result cap, so
	// that a burst of activity rarely makes a slice reach the cap.
	sliceTarget = wiz.ResultCap / 2
)

// Config configures a Syncer. Zero values take the defaults above.
type Config struct {
	DatasourceUID string        // label of the Prometheus metrics
	PollInterval  time.Duration // between live windows
	PageSize      int           // `first` per page
	BackfillStart time.Time     // zero: no backfill; clamped to now-wiz.Retention
	RetentionDays int           // events older than this are pruned; 0 keeps everything
	Overlap       time.Duration // how far each live window reaches back before the checkpoint
	Lag           time.Duration // how far behind now each live window ends
	Concurrency   int           // backfill slices in flight at once
	Slice         time.Duration // largest backfill (and live catch-up) slice
	MinSlice      time.Duration // smallest slice the adaptive sizing picks
	PruneInterval time.Duration // between retention pruning runs
	// PromoteInterval is how often a follower (another instance or replica leads) tries to
	// take over, when shorter than PollInterval.
	PromoteInterval time.Duration
	// IndexBatch is how many events one search indexing transaction takes (default
	// cache.DefaultIndexBatch); IndexPause is the pause between two, so that pages and
	// pruning get the write lock in between (negative: none).
	IndexBatch int
	IndexPause time.Duration
	Clock      Clock  // real time when nil
	Logger     Logger // discards when nil
	// Registerer receives the metrics; prometheus.DefaultRegisterer (served by the SDK) when nil.
	Registerer prometheus.Registerer
}

func (c *Config) defaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = settings.DefaultPollInterval
	}
	if c.PageSize <= 0 {
		c.PageSize = settings.DefaultPageSize
	}
	if c.Overlap <= 0 {
		c.Overlap = DefaultOverlap
	}
	if c.Lag < 0 {
		c.Lag = 0
	} else if c.Lag == 0 {
		c.Lag = DefaultLag
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Slice <= 0 {
		c.Slice = DefaultSlice
	}
	if c.MinSlice <= 0 {
		c.MinSlice = DefaultMinSlice
	}
	c.MinSlice = min(c.MinSlice, c.Slice)
	if c.PruneInterval <= 0 {
		c.PruneInterval = DefaultPruneInterval
	}
	if c.PromoteInterval <= 0 {
		c.PromoteInterval = DefaultPromoteInterval
	}
	if c.IndexBatch <= 0 {
		c.IndexBatch = cache.DefaultIndexBatch
	}
	if c.IndexPause == 0 {
		c.IndexPause = DefaultIndexPause
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Syncer runs the sync of one data source. Its methods are safe for concurrent use.
type Syncer struct {
	store Store
	src   Source
	cfg   Config
	log   Logger
	clock Clock

	mEvents, mSplits                       prometheus.Counter
	mLag, mBackfill, mCacheBytes, mCacheEv prometheus.Gauge
	mRequests, mRetries                    *prometheus.CounterVec

	wake chan struct{}

	mu          sync.Mutex
	cancel      context.CancelFunc // nil when not started
	wg          sync.WaitGroup     // the loop, the backfill, pruning and indexing goroutines
	liveBusy    bool
	backfilling bool
	pruning     bool
	indexing    bool
	stopErr     *wiz.Error // an error retrying cannot fix: state "error" until a window succeeds again
	nextSyncAt  time.Time
	lastPrune   time.Time
	capNotice   string // a window no split could bring under the result cap
	published   string // the state last published for followers
}

// New builds a Syncer; Start runs it.
func New(st Store, src Source, cfg Config) *Syncer {
	cfg.defaults()
	m := metricsFor(cfg.Registerer)
	ds := cfg.DatasourceUID
	return &Syncer{
		store: st, src: src, cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		mEvents:     m.events.WithLabelValues(ds),
		mSplits:     m.splits.WithLabelValues(ds),
		mLag:        m.lag.WithLabelValues(ds),
		mBackfill:   m.backfill.WithLabelValues(ds),
		mCacheBytes: m.cacheBytes.WithLabelValues(ds),
		mCacheEv:    m.cacheRows.WithLabelValues(ds),
		mRequests:   m.requests.MustCurryWith(prometheus.Labels{"datasource": ds}),
		mRetries:    m.retries.MustCurryWith(prometheus.Labels{"datasource": ds}),
		wake:        make(chan struct{}, 1),
	}
}

// Start runs the sync in the background: a cycle now, then one every PollInterval (or at
// RunNow). Starting a started Syncer does nothing.
func (s *Syncer) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.loop(ctx)
}

// Stop cancels the sync and waits for it. A page being stored is committed whole or not at
// all; the checkpoint stays where the last complete window left it. Stop may be called twice
// and without Start; the Syncer can be started again.
func (s *Syncer) Stop() {
	s.mu.Lock()
	cancel := s.cancel
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// NoteRetry counts a retry of the Source (the Wiz client reports them through its OnRetry
// hook), for the api_retries_total metric.
func (s *Syncer) NoteRetry(kind string) { s.mRetries.WithLabelValues(kind).Inc() }

// RunNow asks for a cycle at once, without waiting for it. It also retries after an error.
func (s *Syncer) RunNow() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Syncer) loop(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.cycle(ctx, false)
		wait := s.cfg.PollInterval
		if !s.store.Leading() {
			wait = min(wait, s.cfg.PromoteInterval)
		}
		next := s.clock.Now().Add(wait)
		s.mu.Lock()
		s.nextSyncAt = next
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(wait):
		case <-s.wake:
		case <-s.store.RunRequests(): // a follower's "sync now"
		}
	}
}

// RunOnce runs one full cycle in the caller's goroutine: the live window, then the backfill
// until it is complete or fails, then pruning when due, then search indexing until the queue
// is empty. It returns the first error. It is
// meant for tests and tools; a started Syncer runs cycles by itself (use RunNow with it).
func (s *Syncer) RunOnce(ctx context.Context) error {
	return s.cycle(ctx, true)
}

// cycle is one poll: lead if the leader left (a follower stops there), fetch the live window, make sure
// the backfill runs, prune when due, then index what was stored for search. With wait,
// backfill, pruning and indexing run in this goroutine.
func (s *Syncer) cycle(ctx context.Context, wait bool) error {
	defer s.updateGauges()
	if !s.store.Leading() {
		ok, err := s.store.TryLead(ctx)
		if err != nil {
			return s.noteError("leader lock", err)
		}
		if !ok {
			s.mu.Lock()
			s.stopErr = nil // a follower has no sync errors of its own: it shows the leader's
			s.mu.Unlock()
			return cache.ErrReadOnly
		}
		s.log.Info("this replica now syncs the data source: the previous leader released it")
	}
	defer s.publish(ctx)
	defer s.indexAfter(ctx, wait) // only the writer indexes; also after a failed window
	err := s.syncLive(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return s.noteError("live", err)
	}
	s.mu.Lock()
	s.stopErr = nil
	s.mu.Unlock()

	var errs []error
	if wait {
		s.setBackfilling(true)
		err := s.backfill(ctx)
		s.setBackfilling(false)
		if err != nil && ctx.Err() == nil {
			errs = append(errs, s.noteError("backfill", err))
		}
		if s.pruneDue() {
			if err := s.prune(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	pending := s.backfillPending(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pending && !s.backfilling && s.stopErr == nil {
		s.backfilling = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.backfill(ctx)
			if err != nil && ctx.Err() == nil {
				_ = s.noteError("backfill", err)
			}
			s.setBackfilling(false)
			s.updateGauges()
		}()
	}
	if !s.pruning && s.pruneDueLocked() {
		s.pruning = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.prune(ctx)
			s.mu.Lock()
			s.pruning = false
			s.mu.Unlock()
		}()
	}
	return nil
}

func (s *Syncer) setBackfilling(b bool) {
	s.mu.Lock()
	s.backfilling = b
	s.mu.Unlock()
	s.publish(context.Background())
}

// publish tells the followers the leader's state when it changed.
func (s *Syncer) publish(ctx context.Context) {
	if !s.store.Leading() {
		return
	}
	state, _ := s.localState()
	s.mu.Lock()
	same := state == s.published
	s.published = state
	s.mu.Unlock()
	if same {
		return
	}
	err := s.store.SetLeaderState(context.WithoutCancel(ctx), state)
	if err != nil && !errors.Is(err, cache.ErrReadOnly) && !errors.Is(err, cache.ErrClosed) {
		s.log.Warn("cannot publish the sync state", "error", err)
	}
}

// noteError records a failed live window or backfill: in the status, in the cache (so a
// successor instance shows it) and, for errors retrying cannot fix, as the stop error that
// puts the syncer in state "error" until a later window succeeds.
func (s *Syncer) noteError(what string, err error) error {
	if errors.Is(err, cache.ErrReadOnly) {
		// Another replica leads now (this one lost the lock): not a sync failure.
		s.log.Info("stopped syncing: another replica leads now", "part", what)
		return err
	}
	kind := wiz.KindOf(err)
	msg := err.Error()
	var we *wiz.Error
	if !errors.As(err, &we) {
		we = &wiz.Error{Kind: kind, Message: msg, Err: err}
	}
	switch kind {
	case wiz.KindTransient, wiz.KindRateLimited:
		s.log.Warn("sync failed, will retry at the next poll", "part", what, "kind", kind.String(), "error", msg)
	default:
		s.log.Error("sync stopped until the next poll", "part", what, "kind", kind.String(), "error", msg)
		s.mu.Lock()
		s.stopErr = we
		s.mu.Unlock()
		s.publish(context.Background())
	}
	if s.store.Leading() {
		if e := s.setState(context.Background(), store.Update{LastError: &msg}); e != nil {
			s.log.Warn("cannot record the sync error in the cache", "error", e)
		}
	}
	return err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// setState stores a sync state update on its own.
func (s *Syncer) setState(ctx context.Context, u store.Update) error {
	_, err := s.store.Apply(ctx, nil, u)
	return err
}
