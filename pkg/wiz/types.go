package wiz

import (
	"time"
)

// ResultCap is how many entries the Wiz API returns for one query (one filter, all its pages)
// before it stops answering with more, even though more exist.
const ResultCap = 10000

// Retention is how long Wiz keeps audit entries: nothing older can be fetched.
const Retention = 180 * 24 * time.Hour

// MaxPageSize is the largest `first` the client sends.
const MaxPageSize = 500

// Window is a closed time window of audit log entries: After <= timestamp <= Before.
// A zero After or Before leaves that side open.
//
// Closed whatever the API's bounds mean: the client sends bounds widened by a microsecond on
// each side (see windowFilter), so every entry of the window comes back, under inclusive and
// exclusive bounds alike, possibly with a few entries just outside it. Two windows that share
// an instant (one's Before is the other's After) therefore never lose an entry between them,
// and the entries fetched twice are dropped by the cache's id dedup.
type Window struct {
	After  time.Time
	Before time.Time
}

// Order is the order in which the API returned the entries of a window, as observed.
type Order int

const (
	OrderUnknown     Order = iota // fewer than two distinct timestamps, or no order at all
	OrderNewestFirst              // timestamps never increased from one entry to the next
	OrderOldestFirst              // timestamps never decreased
)

// WindowResult sums up one fully paged window.
type WindowResult struct {
	Entries int // entries received, duplicates included
	Pages   int
	// Truncated is true when the window reached ResultCap: the API may have stopped short,
	// so the caller must split the window (or continue past Oldest/Newest, see Order).
	Truncated bool
	// Oldest and Newest are the extreme timestamps received (zero when no entries), the
	// entries just outside the window that the widened bounds bring included: an Oldest before
	// the window's After (or a Newest after its Before) shows the result went past that end.
	Oldest time.Time
	Newest time.Time
	Order  Order
}

// Kind classifies an error so that callers act on it without reading its text.
type Kind int

const (
	KindPermanent      Kind = iota // anything not classified below; not retried
	KindSettings                   // the data source settings are wrong (URL, credentials missing)
	KindAuthentication             // client id or secret refused by the token endpoint, or 401 after a fresh token
	KindAuthorization              // 403, or the admin:audit scope is missing
	KindRateLimited                // HTTP 429 or a GraphQL "Rate limit exceeded" error
	KindTransient                  // 5xx, timeouts, connection resets, 200 with errors and no data
)

func (k Kind) String() string {
	switch k {
	case KindSettings:
		return "settings"
	case KindAuthentication:
		return "authentication"
	case KindAuthorization:
		return "authorization"
	case KindRateLimited:
		return "rate limited"
	case KindTransient:
		return "transient"
	default:
		return "permanent"
	}
}
