// Package store holds the value types both storage backends (the SQLite cache in pkg/cache,
// PostgreSQL in pkg/store/postgres) and their consumers share: the sync state and its
// updates, and the statistics a status page shows. Types only, no logic.
package store

import "time"

// Interval is a closed time range [From, To].
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Update changes the sync state. Zero fields leave the stored value alone.
type Update struct {
	SyncedUpTo    time.Time  // the live checkpoint
	LiveStart     time.Time  // stored only when none is stored yet
	BackfillStart *time.Time // pointer to a zero time clears it
	LastSyncAt    time.Time
	LastError     *string // pointer to "" clears it
	Covered       []Interval
}

// State is the stored sync state. Zero times mean "not set".
type State struct {
	Fingerprint   string
	SyncedUpTo    time.Time
	LiveStart     time.Time
	BackfillStart time.Time
	LastSyncAt    time.Time
	LastError     string
	Covered       []Interval // merged, oldest first
}

// Stats is what a status page shows about the stored events. All of it is cheap to read.
type Stats struct {
	Events int64
	Oldest time.Time // zero when empty
	Newest time.Time
	Bytes  int64 // the storage this data source takes (its share, in a shared database)
}
