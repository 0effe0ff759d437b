package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Leader election. One replica per data source syncs: the one holding a session advisory lock
// (lockSpace, data source id) on a connection of its own, outside the pool (a pooled
// connection would carry the lock back into the pool). The lock lives as long as that
// session: when the replica dies, or its connection does, the server ends the session (TCP
// keepalives on both ends, and idle_in_transaction_session_timeout for a replica frozen in a
// transaction, see Options) and the lock is free for a follower's next TryLead.
//
// A leader that lost its lock must stop writing before the new one starts. Two fences:
//   - the lock connection is watched (the leader waits on it for notifications, so a dead
//     connection is noticed at once): Leading turns false, and the next write fails with the
//     reason, an ErrNotLeader;
//   - each new leader bumps the data source's leader_epoch, and every write transaction locks
//     the sync state row and checks the epoch it was granted: a former leader's in-flight
//     write commits before the new leader starts, and its next one fails.
//
// "Sync now" on a follower asks the leader through LISTEN/NOTIFY: RequestRun notifies the
// data source's channel, which only the leader listens to (on its lock connection), and the
// leader receives it on RunRequests. The request reaches the leader whatever replica the
// user's request landed on, so sync/run keeps one meaning everywhere; when no replica leads,
// the notification is dropped, and the next leader syncs at its first poll anyway.
type leader struct {
	s    *Store
	runs chan struct{}

	mu   sync.Mutex // serialises TryLead and Close; guards the fields below
	conn *pgx.Conn  // the lock connection, nil when none
	stop context.CancelFunc
	done chan struct{} // closed when the watcher ends

	leading atomic.Bool
	epoch   atomic.Int64
	lost    atomic.Pointer[error] // why the lock was lost, until it is taken again
}

func (l *leader) init(s *Store) {
	l.s = s
	l.runs = make(chan struct{}, 1)
}

func (s *Store) channel() string { return fmt.Sprintf("wizauditlogs_run_%d", s.dsID) }

// TryLead takes the data source's leader lock when it is free, and reports whether this
// replica leads. Followers call it at every poll; for the leader it is a cheap check.
func (s *Store) TryLead(ctx context.Context) (bool, error) {
	l := &s.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed.Load() {
		return false, ErrClosed
	}
	if l.leading.Load() {
		return true, nil
	}
	l.dropConn()
	if l.conn == nil {
		cfg := s.pool.Config().ConnConfig.Copy()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, s.db.wrap("connect for the leader lock", err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", lockSpace, s.dsID).Scan(&ok); err != nil {
		l.closeConn()
		return false, s.db.wrap("take the leader lock", err)
	}
	if !ok {
		return false, nil
	}
	if _, err := l.conn.Exec(ctx, "LISTEN "+s.channel()); err != nil {
		l.closeConn() // also releases the lock
		return false, s.db.wrap("take the leader lock", err)
	}
	var epoch int64
	if err := s.pool.QueryRow(ctx, "UPDATE sync_state SET leader_epoch = leader_epoch + 1 WHERE ds = $1 RETURNING leader_epoch",
		s.dsID).Scan(&epoch); err != nil {
		l.closeConn()
		return false, s.db.wrap("take the leader lock", err)
	}
	l.epoch.Store(epoch)
	l.lost.Store(nil)
	wctx, stop := context.WithCancel(context.Background())
	l.stop, l.done = stop, make(chan struct{})
	l.leading.Store(true)
	go l.watch(wctx, l.conn, l.done)
	return true, nil
}

// watch owns the lock connection while this replica leads: it passes run requests on, and
// notices when the connection (and so the lock) is gone.
func (l *leader) watch(ctx context.Context, conn *pgx.Conn, done chan struct{}) {
	defer close(done)
	for {
		_, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() == nil {
				lost := fmt.Errorf("%w: %w", ErrNotLeader, &dbError{t: l.s.db, op: "the leader lock's connection was lost", err: err})
				l.lost.Store(&lost)
				l.leading.Store(false)
			}
			return
		}
		select {
		case l.runs <- struct{}{}:
		default: // one pending request is enough
		}
	}
}

// dropConn discards the lock connection once its watcher has ended (the lock was lost).
func (l *leader) dropConn() {
	if l.done == nil {
		return
	}
	<-l.done
	l.stop()
	l.stop, l.done = nil, nil
	l.closeConn()
}

func (l *leader) closeConn() {
	if l.conn != nil {
		_ = l.conn.Close(context.Background())
		l.conn = nil
	}
}

// close stops the watcher and closes the lock connection, releasing the lock.
func (l *leader) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading.Store(false)
	if l.stop != nil {
		l.stop()
	}
	l.dropConn()
	l.closeConn()
}

// Leading reports whether this replica holds the leader lock. It turns false as soon as the
// lock connection is found lost.
func (s *Store) Leading() bool { return s.lead.leading.Load() }

// fence is the epoch a write must find, or why this replica may not write.
func (s *Store) fence() (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if !s.lead.leading.Load() {
		if lost := s.lead.lost.Load(); lost != nil {
			return 0, *lost
		}
		return 0, ErrNotLeader
	}
	return s.lead.epoch.Load(), nil
}

// checkFence locks the data source's sync state row for the transaction and checks that this
// replica still leads (see leader).
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx, epoch int64) error {
	var cur int64
	if err := tx.QueryRow(ctx, "SELECT leader_epoch FROM sync_state WHERE ds = $1 FOR UPDATE", s.dsID).Scan(&cur); err != nil {
		return err
	}
	if cur != epoch {
		return ErrNotLeader
	}
	return nil
}

// Leader names the replica holding the data source's leader lock ("host:pid", see
// Options.Name), or "" when none does.
func (s *Store) Leader(ctx context.Context) (string, error) {
	var name string
	err := s.pool.QueryRow(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = $1 AND l.objid::bigint = $2`, lockSpace, s.dsID).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", s.db.wrap("find the leader", err)
	}
	return strings.TrimPrefix(name, "wizauditlogs "), nil
}

// RequestRun asks the data source's leader, whichever replica it is, to sync now (see
// leader). It does not wait for the run.
func (s *Store) RequestRun(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "SELECT pg_notify($1, '')", s.channel())
	return s.db.wrap("ask the leader to sync", err)
}

// RunRequests delivers the run requests this replica receives while it leads.
func (s *Store) RunRequests() <-chan struct{} { return s.lead.runs }

// SetLeaderState publishes the leader's sync state (idle, syncing, error…) for the
// followers' status pages.
func (s *Store) SetLeaderState(ctx context.Context, state string) error {
	return s.write(ctx, "publish the sync state", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE sync_state SET leader_state = $2 WHERE ds = $1", s.dsID, state)
		return err
	})
}

// LeaderState is the state the leader last published ("" before any).
func (s *Store) LeaderState(ctx context.Context) (string, error) {
	var st string
	err := s.pool.QueryRow(ctx, "SELECT leader_state FROM sync_state WHERE ds = $1", s.dsID).Scan(&st)
	return st, s.db.wrap("read the sync state", err)
}
