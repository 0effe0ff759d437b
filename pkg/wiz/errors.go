package wiz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is every error the client returns once it has given up. Kind says what the caller
// should do about it; Message is a sentence a Grafana admin can act on. Neither Message nor
// Error() ever contains the client secret or an access token: the client scrubs both out of
// any text it copies from a server or a lower layer before it builds an Error.
type Error struct {
	Kind       Kind
	HTTPStatus int           // the last HTTP status seen, 0 when there was no response
	Message    string        // readable, already scrubbed of secrets
	RetryAfter time.Duration // for KindRateLimited: how long the API asked us to wait, if it said
	Err        error         // the underlying cause, for errors.Is/As (may be nil)
}

func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err: the Kind of the first *Error in its chain, KindTransient for
// context cancellation and deadlines (the work can be done later), and KindPermanent for
// anything else (including nil, which callers should not ask about).
func KindOf(err error) Kind {
	var we *Error
	if errors.As(err, &we) {
		return we.Kind
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return KindTransient
	}
	return KindPermanent
}

// RetryAfterOf returns the wait the API asked for, when err carries one.
func RetryAfterOf(err error) time.Duration {
	var we *Error
	if errors.As(err, &we) {
		return we.RetryAfter
	}
	return 0
}

// Sentinel causes, usable with errors.Is on a returned *Error.
var (
	// ErrScopeMissing is the cause of a KindAuthorization error: the service account may not
	// read the audit log.
	ErrScopeMissing = errors.New("the service account lacks the admin:audit scope")
	// ErrMissingCursor is the cause when the API says another page exists but sends no cursor.
	ErrMissingCursor = errors.New("the API reported another page but sent no cursor")
	// ErrResponseTooLarge is the cause when a response body exceeds Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response body too large")
	// ErrBadEntry is the cause when an audit log node cannot be decoded.
	ErrBadEntry = errors.New("malformed audit log entry")
)

// scopeMessage is the sentence the health check shows when the audit scope is missing.
const scopeMessage = "the service account lacks the admin:audit scope: grant it to the service account in Wiz " +
	"(Settings > Service Accounts), and leave its Projects empty: a project-scoped account cannot have it"

// redactor scrubs known secrets out of text that came from elsewhere.
type redactor struct {
	secrets func() []string
}

func (r redactor) scrub(s string) string {
	if r.secrets == nil {
		return s
	}
	for _, sec := range r.secrets() {
		if len(sec) >= 4 { // a shorter "secret" would shred ordinary text; New refuses such secrets anyway
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// errorf builds an *Error whose message is scrubbed.
func (r redactor) errorf(kind Kind, status int, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, HTTPStatus: status, Err: cause, Message: r.scrub(fmt.Sprintf(format, args...))}
}

// causeText is the scrubbed, shortened text of a lower-level error, for use inside a message.
func (r redactor) causeText(err error) string {
	if err == nil {
		return ""
	}
	return truncate(r.scrub(err.Error()), 300)
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
