package wiz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
)

// Secrets the fuzz harness hands to the client; finding either in an error is a leak.
const (
	fzSecret = "FUZZ-client-secret-4b1d9e"
	fzToken  = "FUZZ-access-token-c07f3a"
)

// FuzzDecodeEntry: DecodeEntry never panics. What it accepts is whole: a non-blank ID, a UTC
// timestamp, Raw equal to (and not aliasing) the input, a trimmed action, actionParameters that
// are JSON, a known principal type. What it refuses comes back as the zero Entry and an error
// wrapping ErrBadEntry whose text stays short.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"id":"a","timestamp":"2025-02-06T13:39:25.30484Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := append([]byte(nil), raw...)
		e, err := DecodeEntry(json.RawMessage(in))
		if err != nil {
			if !reflect.ValueOf(e).IsZero() {
				t.Fatalf("failed (%v) but returned a half-decoded entry: %+v", err, e)
			}
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error %v does not wrap ErrBadEntry", err)
			}
			if n := len(err.Error()); n > 512 {
				t.Fatalf("error text is %d bytes long: hostile input must not be copied into messages whole", n)
			}
			return
		}
		checkEntry(t, e)
		if !bytes.Equal(e.Raw, raw) {
			t.Fatalf("Raw %q differs from the input %q", e.Raw, raw)
		}
		// Raw is a copy: the caller may reuse its buffer.
		for i := range in {
			in[i] = 'x'
		}
		if len(raw) > 0 && !bytes.Equal(e.Raw, raw) {
			t.Fatalf("Raw aliases the input buffer")
		}
	})
}

// checkEntry asserts what every decoded entry must satisfy.
func checkEntry(t testing.TB, e auditlog.Entry) {
	t.Helper()
	if strings.TrimSpace(e.ID) == "" {
		t.Fatalf("entry without an id: %+v", e)
	}
	if e.Timestamp.Location() != time.UTC {
		t.Fatalf("entry %q timestamp %s is not UTC", e.ID, e.Timestamp)
	}
	if e.Action != strings.TrimSpace(e.Action) {
		t.Fatalf("entry %q action %q is not trimmed", e.ID, e.Action)
	}
	if !json.Valid(e.ActionParameters) {
		t.Fatalf("entry %q actionParameters %q is not JSON", e.ID, e.ActionParameters)
	}
	if !json.Valid(e.Raw) {
		t.Fatalf("entry %q Raw is not JSON", e.ID)
	}
	switch e.PrincipalType {
	case "", auditlog.PrincipalUser, auditlog.PrincipalServiceAccount:
	default:
		t.Fatalf("entry %q principal type %q", e.ID, e.PrincipalType)
	}
}

// FuzzParseTimestamp: ParseTimestamp never panics and answers in UTC; whatever it accepts it
// accepts again once formatted; and every RFC 3339 timestamp with 0 to 9 fractional digits
// (trailing zeros kept), with Z, a numeric offset or no zone at all, is accepted as the right
// instant. The generated timestamp is built from (unix, nanos, digits, offsetMinutes, zone).
func FuzzParseTimestamp(f *testing.F) {
	f.Add("2025-02-06T13:39:25.30484Z", int64(1738849165), uint32(304840000), uint8(5), int16(0), uint8(0))
	f.Fuzz(func(t *testing.T, s string, unix int64, nanos uint32, digits uint8, offsetMinutes int16, zone uint8) {
		if got, err := ParseTimestamp(s); err == nil {
			if got.Location() != time.UTC {
				t.Fatalf("ParseTimestamp(%q) = %s, not UTC", s, got)
			}
			// (An offset can move a four-digit year out of four digits once in UTC.)
			again, err := ParseTimestamp(got.Format(time.RFC3339Nano))
			if y := got.Year(); y >= 1 && y <= 9999 && (err != nil || !again.Equal(got)) {
				t.Fatalf("ParseTimestamp(%q) = %s, which does not parse back (%v, %s)", s, got, err, again)
			}
		} else if len(err.Error()) > 512 { // 64 input bytes, quoted
			t.Fatalf("error text is %d bytes long", len(err.Error()))
		}

		// Years 0001..9999 only: RFC 3339 has four year digits.
		const minUnix, maxUnix = -62135596800, 253402300799
		span := int64(maxUnix - minUnix + 1)
		sec := minUnix + ((unix%span)+span)%span
		n := int(digits % 10)
		ns := int64(nanos % 1e9)
		scale := int64(1)
		for range 9 - n {
			scale *= 10
		}
		ns -= ns % scale // keep n digits
		want := time.Unix(sec, ns).UTC()

		var loc *time.Location
		suffix := ""
		switch zone % 3 {
		case 0:
			loc, suffix = time.UTC, "Z"
		case 1:
			off := int(offsetMinutes) % (24 * 60) // RFC 3339 offsets stay under 24 hours
			loc = time.FixedZone("", off*60)
			sign := '+'
			if off < 0 {
				sign, off = '-', -off
			}
			suffix = fmt.Sprintf("%c%02d:%02d", sign, off/60, off%60)
		default:
			loc = time.UTC // no zone: taken as UTC
		}
		local := want.In(loc)
		if y := local.Year(); y < 1 || y > 9999 {
			return // the offset moved the wall clock out of four-digit years
		}
		ts := local.Format("2006-01-02T15:04:05")
		if n > 0 {
			ts += "." + fmt.Sprintf("%09d", local.Nanosecond())[:n]
		}
		ts += suffix
		got, err := ParseTimestamp(ts)
		if err != nil {
			t.Fatalf("ParseTimestamp(%q): %v", ts, err)
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("ParseTimestamp(%q) = %s, want %s UTC", ts, got, want)
		}
		// Surrounding white space is tolerated.
		if got2, err := ParseTimestamp(" " + ts + "\n"); err != nil || !got2.Equal(want) {
			t.Fatalf("ParseTimestamp of padded %q: %s, %v", ts, got2, err)
		}
	})
}

// fzServer serves a token endpoint that answers normally and a GraphQL endpoint that answers
// every POST with the current body, HTTP 200.
type fzServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	body     []byte
	gqlCalls atomic.Int64
}

func newFzServer(t testing.TB) *fzServer {
	s := &fzServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth/token":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"`+fzToken+`","token_type":"Bearer","expires_in":3600}`)
		case "/graphql":
			s.gqlCalls.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			s.mu.Lock()
			body := s.body
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fzServer) serve(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
	s.gqlCalls.Store(0)
}

// fzClient is a client of s that retries at most once, never really sleeps and is not slowed
// by its rate limiter.
func fzClient(t testing.TB, s *fzServer, hc *http.Client, maxBytes int64) *Client {
	c, err := New(Config{
		APIURL:            s.srv.URL,
		AuthURL:           s.srv.URL + "/oauth/token",
		ClientID:          "fuzz-client",
		ClientSecret:      fzSecret,
		RequestsPerSecond: 1e6,
		HTTPClient:        hc,
		MaxAttempts:       2,
		BaseBackoff:       time.Millisecond,
		MaxBackoff:        time.Millisecond,
		RequestTimeout:    5 * time.Second,
		MaxResponseBytes:  maxBytes,
		Sleep:             func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		Rand:              func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// fzMaxBytes is the response cap of the fuzzed client: small, so that the fuzzer reaches it.
const fzMaxBytes = 64 << 10

var fzWindow = Window{After: time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC), Before: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}

// runWindow pages fzWindow against whatever s serves and checks the outcome: AuditLog ends
// before the deadline with either a classified, scrubbed, readable error or pages of fully
// decoded entries, and never retries or pages without bound. It returns the error.
func runWindow(t testing.TB, s *fzServer, c *Client, maxBytes int64, deadline time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var got []auditlog.Entry
	pages := 0
	res, err := c.AuditLog(ctx, fzWindow, 500, func(es []auditlog.Entry) error {
		pages++
		if len(es) == 0 {
			t.Errorf("onPage called with an empty page")
		}
		got = append(got, es...)
		return nil
	})
	if ctx.Err() != nil {
		t.Fatalf("AuditLog ran into the %s test deadline (a loop?): %v", deadline, err)
	}
	s.mu.Lock()
	body := s.body
	s.mu.Unlock()
	if int64(len(body)) > maxBytes {
		if !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("a %d-byte body with a %d-byte cap gave %v, want ErrResponseTooLarge", len(body), maxBytes, err)
		}
	} else if errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("a %d-byte body under the %d-byte cap was called too large", len(body), maxBytes)
	}
	// Same body on every call: page 2 repeats page 1's cursor, so at most 2 pages, each with
	// at most MaxAttempts attempts plus one retry after a refused token.
	if calls := s.gqlCalls.Load(); calls > 6 {
		t.Fatalf("%d GraphQL requests for one window of a constant body", calls)
	}
	if err != nil {
		var we *Error
		if !errors.As(err, &we) {
			t.Fatalf("unclassified error %T: %v", err, err)
		}
		if we.Kind < KindPermanent || we.Kind > KindTransient {
			t.Fatalf("unknown kind %d: %v", we.Kind, err)
		}
		text := err.Error()
		if strings.TrimSpace(text) == "" {
			t.Fatalf("error of kind %s without a message", we.Kind)
		}
		if len(text) > 2048 {
			t.Fatalf("error text is %d bytes long", len(text))
		}
		if strings.Contains(text, fzSecret) || strings.Contains(text, fzToken) {
			t.Fatalf("error leaks a secret: %q", text)
		}
	}
	for _, e := range got {
		checkEntry(t, e)
		again, derr := DecodeEntry(e.Raw)
		if derr != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("entry %q was not decoded whole: again %+v, %v", e.ID, again, derr)
		}
	}
	if res.Entries != len(got) || res.Pages < pages {
		t.Fatalf("result %+v does not match %d entries on %d pages", res, len(got), pages)
	}
	return err
}

// FuzzGraphQLResponse serves the fuzzed bytes as the body of every POST /graphql and runs
// AuditLog over one window (see runWindow for what is checked).
func FuzzGraphQLResponse(f *testing.F) {
	f.Add([]byte(`{"data":{"auditLogEntries":{"nodes":[],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}`))
	f.Add([]byte(strings.Repeat("[", 100000)))                       // 100k levels of nesting, over the cap
	f.Add([]byte(`{"data":` + strings.Repeat(`{"a":`, 12000) + `1`)) // deep, under the cap, cut short
	s := newFzServer(f)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	f.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	f.Fuzz(func(t *testing.T, body []byte) {
		s.serve(body)
		runWindow(t, s, fzClient(t, s, hc, fzMaxBytes), fzMaxBytes, 10*time.Second)
	})
}

// TestHostileGraphQLBodies runs the checks of FuzzGraphQLResponse over bodies too big to keep
// in a seed corpus.
func TestHostileGraphQLBodies(t *testing.T) {
	s := newFzServer(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	node := func(action string) string {
		return `{"id":"0b8d6e9c-4d3e-4a71-9a55-3f1c2b7f0e11","action":` + action +
			`,"timestamp":"2026-05-31T10:00:00.123456Z","actionParameters":{},"user":null,"serviceAccount":null}`
	}
	page := func(nodes string) []byte {
		return []byte(`{"data":{"auditLogEntries":{"nodes":[` + nodes + `],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}`)
	}
	huge := `"` + strings.Repeat("A", 10<<20) + `"`
	cases := []struct {
		name     string
		body     []byte
		maxBytes int64
		wantErr  bool
	}{
		{"10 MB string over the cap", page(node(huge)), fzMaxBytes, true},
		{"10 MB string under the default cap", page(node(huge)), DefaultMaxResponseBytes, false},
		{"100k levels of arrays", []byte(`{"data":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`), 1 << 20, true},
		{"100k levels in actionParameters", page(strings.Replace(node(`"Login"`), `{}`,
			strings.Repeat(`{"a":`, 100000)+`1`+strings.Repeat(`}`, 100000), 1)), 1 << 20, true},
		{"100k nulls", page(strings.TrimSuffix(strings.Repeat("null,", 100000), ",")), 1 << 20, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.serve(tc.body)
			err := runWindow(t, s, fzClient(t, s, hc, tc.maxBytes), tc.maxBytes, 20*time.Second)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

// TestEndlessBodyIsCutOff: a server that never stops sending makes the client stop at its cap
// without allocating much more than the cap.
func TestEndlessBodyIsCutOff(t *testing.T) {
	const maxBytes = 256 << 10
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth/token" {
			_, _ = io.WriteString(w, `{"access_token":"`+fzToken+`","token_type":"Bearer","expires_in":3600}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":{"auditLogEntries":{"nodes":[{"id":"`)
		chunk := bytes.Repeat([]byte("a"), 32<<10)
		for written.Load() < 1<<30 { // stops when the client hangs up, or after 1 GiB
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "id", ClientSecret: fzSecret,
		RequestsPerSecond: 1e6, MaxAttempts: 2, MaxResponseBytes: maxBytes,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = c.AuditLog(ctx, fzWindow, 500, func([]auditlog.Entry) error { return nil })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrResponseTooLarge) || KindOf(err) != KindPermanent {
		t.Fatalf("err = %v (kind %s), want a permanent ErrResponseTooLarge", err, KindOf(err))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte cap", alloc, maxBytes)
	}
}
