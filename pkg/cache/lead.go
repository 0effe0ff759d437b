package cache

import (
	"context"
	"fmt"
	"os"
)

// Leadership, in the terms the syncer shares with the PostgreSQL store: the writer of the
// file leads. The followers are instances of this process (a successor opened before its
// predecessor was disposed) or of another process on the same file; both take the write lock
// at their next TryLead once it is released, so a run request needs no message.

// Leading reports whether this Cache holds the write lock.
func (c *Cache) Leading() bool { return !c.ReadOnly() }

// Leader names this process ("host:pid") while it writes the file, "" otherwise: the lock
// file does not say who holds it.
func (c *Cache) Leader(context.Context) (string, error) {
	if c.ReadOnly() {
		return "", nil
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid()), nil
}

// RequestRun does nothing: a follower takes over at its next TryLead once the writer is gone.
func (c *Cache) RequestRun(context.Context) error { return nil }

// RunRequests never delivers: see RequestRun.
func (c *Cache) RunRequests() <-chan struct{} { return nil }

// SetLeaderState does nothing: a follower of a file reports its own state.
func (c *Cache) SetLeaderState(context.Context, string) error { return nil }

// LeaderState is always "": see SetLeaderState.
func (c *Cache) LeaderState(context.Context) (string, error) { return "", nil }
