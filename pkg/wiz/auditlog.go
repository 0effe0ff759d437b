package wiz

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
)

// AuditLogQuery is the canonical audit log query (Wiz's own tutorial query).
const AuditLogQuery = `query AuditLogTable($first: Int $after: String $filterBy: AuditLogEntryFilters) {
  auditLogEntries(first: $first after: $after filterBy: $filterBy) {
    nodes {
      id action requestId status timestamp actionParameters userAgent sourceIP
      serviceAccount { id name }
      user { id name }
    }
    pageInfo { hasNextPage endCursor }
  }
}`

// timestampLayout is how window bounds are sent: UTC, whole microseconds (see windowFilter),
// trailing zeros trimmed.
const timestampLayout = "2006-01-02T15:04:05.999999Z"

type pageData struct {
	AuditLogEntries *struct {
		Nodes    []json.RawMessage `json:"nodes"`
		PageInfo struct {
			HasNextPage bool    `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
	} `json:"auditLogEntries"`
}

// AuditLog pages through the entries of one window, calling onPage with each non-empty page's
// decoded entries in the order the API sent them. An error from onPage aborts paging and is
// returned as is. Other errors are *Error, returned once retrying is pointless or exhausted.
//
// pageSize is clamped to 1..MaxPageSize. A page is handed to onPage only once it is whole:
// every node decoded, and a cursor present when the API says more pages follow. A missing
// cursor is treated as a transient API fault (the same page is asked again, with backoff) and,
// if it persists, reported as KindTransient wrapping ErrMissingCursor: the window is then
// incomplete and must be paged again later, never marked done. A node that cannot be decoded
// (no id, bad timestamp) fails the window with KindPermanent wrapping ErrBadEntry.
func (c *Client) AuditLog(ctx context.Context, w Window, pageSize int, onPage func([]auditlog.Entry) error) (WindowResult, error) {
	var res WindowResult
	if !w.After.IsZero() && !w.Before.IsZero() && w.After.After(w.Before) {
		return res, &Error{Kind: KindPermanent, Message: fmt.Sprintf("invalid window: %s is after %s",
			w.After.UTC().Format(time.RFC3339Nano), w.Before.UTC().Format(time.RFC3339Nano))}
	}
	first := min(max(pageSize, 1), MaxPageSize)
	filter := windowFilter(w)

	var (
		cursor   string
		prev     time.Time
		havePrev bool
		rose     bool // a timestamp was later than the one before it
		fell     bool // a timestamp was earlier than the one before it
	)
	for {
		vars := map[string]any{"first": first, "after": nil}
		if cursor != "" {
			vars["after"] = cursor
		}
		if filter != nil {
			vars["filterBy"] = filter
		}
		var (
			entries []auditlog.Entry
			more    bool
			next    string
		)
		err := c.do(ctx, gqlRequest{Query: AuditLogQuery, OperationName: "AuditLogTable", Variables: vars},
			c.cfg.MaxAttempts, func(data json.RawMessage) *Error {
				var e *Error
				entries, more, next, e = c.decodePage(data)
				return e
			})
		if err != nil {
			return res, err
		}
		res.Pages++
		res.Entries += len(entries)
		for _, e := range entries {
			ts := e.Timestamp
			if res.Oldest.IsZero() || ts.Before(res.Oldest) {
				res.Oldest = ts
			}
			if ts.After(res.Newest) {
				res.Newest = ts
			}
			if havePrev {
				rose = rose || ts.After(prev)
				fell = fell || ts.Before(prev)
			}
			prev, havePrev = ts, true
		}
		if len(entries) > 0 {
			if err := onPage(entries); err != nil {
				return res, err
			}
		}
		// The API stops answering after ResultCap entries anyway; stopping here too also bounds
		// a server that keeps sending fresh cursors. The caller splits a truncated window.
		if !more || res.Entries >= c.cfg.ResultCap {
			break
		}
		if next == cursor {
			return res, &Error{Kind: KindPermanent, Message: "the Wiz API sent the same page cursor twice; paging stopped to avoid a loop"}
		}
		cursor = next
	}
	res.Truncated = res.Entries >= c.cfg.ResultCap
	switch {
	case fell && !rose:
		res.Order = OrderNewestFirst
	case rose && !fell:
		res.Order = OrderOldestFirst
	}
	return res, nil
}

// windowFilter is the one place where a Window becomes API bounds. Whether Wiz's
// timestamp.after and timestamp.before are inclusive or exclusive is not documented, so the
// bounds are aligned to whole microseconds (the API's timestamp precision) and widened by one
// microsecond on each side: after = floor(After) - 1µs, before = ceil(Before) + 1µs. Every
// entry with After <= timestamp <= Before then lies strictly inside the bounds, which every
// combination of inclusive and exclusive bounds returns. The few entries just outside the
// window that come with them are stored like any other (the cache drops what it already
// holds), so no caller depends on the bounds' semantics.
func windowFilter(w Window) map[string]any {
	ts := map[string]any{}
	if !w.After.IsZero() {
		ts["after"] = w.After.UTC().Truncate(time.Microsecond).Add(-time.Microsecond).Format(timestampLayout)
	}
	if !w.Before.IsZero() {
		b := w.Before.UTC()
		if c := b.Truncate(time.Microsecond); c.Before(b) {
			b = c.Add(time.Microsecond)
		}
		ts["before"] = b.Add(time.Microsecond).Format(timestampLayout)
	}
	if len(ts) == 0 {
		return nil
	}
	return map[string]any{"timestamp": ts}
}

func (c *Client) decodePage(data json.RawMessage) ([]auditlog.Entry, bool, string, *Error) {
	var pd pageData
	if err := json.Unmarshal(data, &pd); err != nil {
		return nil, false, "", &Error{Kind: KindPermanent, Err: err,
			Message: "the Wiz API sent an audit log page of an unexpected shape: " + truncate(err.Error(), 200)}
	}
	if pd.AuditLogEntries == nil {
		return nil, false, "", &Error{Kind: KindTransient, Message: "the Wiz API answered without auditLogEntries"}
	}
	conn := pd.AuditLogEntries
	entries := make([]auditlog.Entry, 0, len(conn.Nodes))
	for i, raw := range conn.Nodes {
		e, err := DecodeEntry(raw)
		if err != nil {
			return nil, false, "", &Error{Kind: KindPermanent, Err: err,
				Message: fmt.Sprintf("the Wiz API sent an audit log entry that cannot be read (node %d of the page): %s", i, err)}
		}
		entries = append(entries, e)
	}
	next := ""
	if conn.PageInfo.EndCursor != nil {
		next = *conn.PageInfo.EndCursor
	}
	if conn.PageInfo.HasNextPage && next == "" {
		return nil, false, "", &Error{Kind: KindTransient, Err: ErrMissingCursor,
			Message: "the Wiz API said another page follows but sent no cursor; the window will be paged again"}
	}
	return entries, conn.PageInfo.HasNextPage, next, nil
}

type wirePrincipal struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type wireNode struct {
	ID               *string         `json:"id"`
	Action           *string         `json:"action"`
	RequestID        *string         `json:"requestId"`
	Status           *string         `json:"status"`
	Timestamp        *string         `json:"timestamp"`
	ActionParameters json.RawMessage `json:"actionParameters"`
	UserAgent        *string         `json:"userAgent"`
	SourceIP         *string         `json:"sourceIP"`
	ServiceAccount   *wirePrincipal  `json:"serviceAccount"`
	User             *wirePrincipal  `json:"user"`
}

// DecodeEntry decodes one audit log node. The entry keeps raw (copied) as Raw. It fails, with
// an error wrapping ErrBadEntry, when the node is not a JSON object, has no id, or has a
// missing or unreadable timestamp.
func DecodeEntry(raw json.RawMessage) (auditlog.Entry, error) {
	var n wireNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return auditlog.Entry{}, fmt.Errorf("%w: %s", ErrBadEntry, truncate(err.Error(), 200))
	}
	if n.ID == nil || strings.TrimSpace(*n.ID) == "" {
		return auditlog.Entry{}, fmt.Errorf("%w: no id", ErrBadEntry)
	}
	if n.Timestamp == nil {
		return auditlog.Entry{}, fmt.Errorf("%w: entry %q has no timestamp", ErrBadEntry, truncate(*n.ID, 64))
	}
	ts, err := ParseTimestamp(*n.Timestamp)
	if err != nil {
		return auditlog.Entry{}, fmt.Errorf("%w: entry %q: %v", ErrBadEntry, truncate(*n.ID, 64), err)
	}
	e := auditlog.Entry{
		ID:               *n.ID,
		RequestID:        deref(n.RequestID),
		Action:           strings.TrimSpace(deref(n.Action)),
		Status:           deref(n.Status),
		Timestamp:        ts,
		SourceIP:         deref(n.SourceIP),
		UserAgent:        deref(n.UserAgent),
		ActionParameters: n.ActionParameters,
		Raw:              append(json.RawMessage(nil), raw...),
	}
	if len(e.ActionParameters) == 0 {
		e.ActionParameters = json.RawMessage("null")
	}
	switch {
	case n.ServiceAccount != nil && (n.ServiceAccount.ID != "" || n.ServiceAccount.Name != ""):
		e.PrincipalID, e.PrincipalName, e.PrincipalType = n.ServiceAccount.ID, n.ServiceAccount.Name, auditlog.PrincipalServiceAccount
	case n.User != nil && (n.User.ID != "" || n.User.Name != ""):
		e.PrincipalID, e.PrincipalName, e.PrincipalType = n.User.ID, n.User.Name, auditlog.PrincipalUser
	}
	return e, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ParseTimestamp parses an audit log timestamp: RFC 3339 with 0 to 9 fractional digits. A
// timestamp without a zone is taken as UTC. The result is in UTC.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", truncate(s, 64))
}

// CheckAccess gets a token and asks for a single entry, so that a health check can tell
// settings, authentication and authorization (scope) errors apart. It retries little: a health
// check must answer quickly.
func (c *Client) CheckAccess(ctx context.Context) error {
	if _, _, err := c.tokens.get(ctx); err != nil {
		return err
	}
	req := gqlRequest{Query: AuditLogQuery, OperationName: "AuditLogTable", Variables: map[string]any{"first": 1}}
	return c.do(ctx, req, 2, func(data json.RawMessage) *Error {
		_, _, _, e := c.decodePage(data)
		if e != nil && e.Kind == KindTransient {
			return nil // the API answered: access works, even if this page is odd
		}
		return e
	})
}
