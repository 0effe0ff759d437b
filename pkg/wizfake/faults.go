package wizfake

import (
	"time"
)

// FaultKind is a misbehaviour the tenant can be told to show.
type FaultKind int

const (
	// FaultRateLimit answers GraphQL requests HTTP 429, with a Retry-After header when
	// Fault.RetryAfter is set (rounded up to whole seconds) and without one otherwise.
	FaultRateLimit FaultKind = iota + 1
	// FaultGraphQLRateLimit answers 200 with errors[0].message "Rate limit exceeded" and
	// extensions.retryAfter = Fault.RetryAfter in seconds (omitted when zero), data null.
	FaultGraphQLRateLimit
	// FaultServerError answers Fault.Status (503 when 0) with a small JSON body.
	FaultServerError
	// FaultDropConnection computes the normal answer, sends its headers and part of its body,
	// then closes the connection.
	FaultDropConnection
	// FaultUnauthorized answers 401 as if the token had expired (the token stays valid for a
	// retry; use Tenant.ExpireTokens to really invalidate tokens).
	FaultUnauthorized
	// FaultForbidden answers HTTP 403, as for a service account without admin:audit.
	FaultForbidden
	// FaultForbiddenGraphQL answers 200 with data null and an authorization error in errors[]
	// saying the admin:audit scope is missing.
	FaultForbiddenGraphQL
	// FaultPartialData answers the normal page plus an error in errors[] (a field that failed).
	FaultPartialData
	// FaultNullCursor answers the normal page with hasNextPage true and endCursor null.
	FaultNullCursor
	// FaultLatency waits Fault.Latency before answering normally (or until the request is
	// cancelled, in which case it answers nothing).
	FaultLatency
	// FaultTokenError answers token requests with Fault.Status (503 when 0).
	FaultTokenError
	// FaultNoData answers 200 with data null and a generic error in errors[].
	FaultNoData
)

var faultNames = map[FaultKind]string{
	FaultRateLimit: "rate_limit", FaultGraphQLRateLimit: "graphql_rate_limit", FaultServerError: "server_error",
	FaultDropConnection: "drop_connection", FaultUnauthorized: "unauthorized", FaultForbidden: "forbidden",
	FaultForbiddenGraphQL: "forbidden_graphql", FaultPartialData: "partial_data", FaultNullCursor: "null_cursor",
	FaultLatency: "latency", FaultTokenError: "token_error", FaultNoData: "no_data",
}

func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return "unknown"
}

// Fault describes when and how the tenant misbehaves. By default a fault applies to every
// request it concerns (GraphQL requests; token requests for FaultTokenError) until removed.
type Fault struct {
	Kind FaultKind
	// Skip lets this many concerned requests pass untouched first (e.g. fail the 3rd page).
	Skip int
	// Count limits the fault to the next Count concerned requests after Skip; 0 = no limit.
	Count int
	// Probability, when in (0,1), applies the fault to each concerned request with this
	// probability, drawn from a generator seeded by Options.Seed.
	Probability float64

	Status     int           // FaultServerError, FaultTokenError
	RetryAfter time.Duration // FaultRateLimit, FaultGraphQLRateLimit
	Latency    time.Duration // FaultLatency
}

type faultState struct {
	Fault
	id      int
	seen    int // concerned requests seen
	applied int
}

// FaultID identifies an injected fault, for RemoveFault.
type FaultID int

// Inject switches a fault on. Faults are consulted in the order they were injected; the first
// that applies to a request decides its answer.
func (t *Tenant) Inject(f Fault) FaultID {
	t.faultMu.Lock()
	defer t.faultMu.Unlock()
	id := 1
	if n := len(t.faults); n > 0 {
		id = t.faults[n-1].id + 1
	}
	t.faults = append(t.faults, &faultState{Fault: f, id: id})
	return FaultID(id)
}

// RemoveFault switches one fault off.
func (t *Tenant) RemoveFault(id FaultID) {
	t.faultMu.Lock()
	defer t.faultMu.Unlock()
	for i, f := range t.faults {
		if f.id == int(id) {
			t.faults = append(t.faults[:i], t.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults switches every fault off.
func (t *Tenant) ClearFaults() {
	t.faultMu.Lock()
	defer t.faultMu.Unlock()
	t.faults = nil
}

// pickFault returns the fault that applies to this request, if any. token tells a token
// request from a GraphQL one.
func (t *Tenant) pickFault(token bool) *Fault {
	t.faultMu.Lock()
	defer t.faultMu.Unlock()
	var chosen *Fault
	kept := t.faults[:0]
	for _, f := range t.faults {
		if (f.Kind == FaultTokenError) != token {
			kept = append(kept, f)
			continue
		}
		if chosen == nil {
			f.seen++
			if f.seen > f.Skip && (f.Probability <= 0 || f.Probability >= 1 || t.faultRnd.Float64() < f.Probability) {
				f.applied++
				fc := f.Fault
				chosen = &fc
			}
		}
		if f.Count > 0 && f.applied >= f.Count {
			continue // used up: drop it
		}
		kept = append(kept, f)
	}
	t.faults = kept
	return chosen
}
