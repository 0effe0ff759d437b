// Package auditlog is the audit log entry as the plugin understands it: what the Wiz client
// decodes, the cache stores and the queries answer with. It depends on nothing of Grafana's.
package auditlog

import (
	"encoding/json"
	"time"
)

// Statuses Wiz reports for an entry.
const (
	StatusSuccess      = "SUCCESS"
	StatusFailed       = "FAILED"
	StatusAccessDenied = "ACCESS_DENIED"
)

// Principal types, as the query model spells them.
const (
	PrincipalUser           = "user"
	PrincipalServiceAccount = "serviceAccount"
)

// Entry is one audit log entry. The typed fields are what the plugin filters and groups on;
// Raw keeps the node exactly as Wiz sent it, so fields Wiz adds later are never lost.
type Entry struct {
	ID        string
	RequestID string
	Action    string    // trimmed of surrounding white space
	Status    string    // SUCCESS, FAILED, ACCESS_DENIED, or whatever Wiz sends
	Timestamp time.Time // UTC

	// The principal is the service account when the node names one, else the user;
	// PrincipalType is "" when the node names neither.
	PrincipalID   string
	PrincipalName string
	PrincipalType string

	SourceIP  string // "" when Wiz sends null
	UserAgent string // "" when Wiz sends null

	ActionParameters json.RawMessage // the node's actionParameters as sent ("null" when absent)
	Raw              json.RawMessage // the whole node as sent
}
