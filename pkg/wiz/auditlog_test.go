package wiz

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func TestAuditLogPagesAWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 1, Events: 1234, Span: 24 * time.Hour}, nil)
	w := Window{After: t0.Add(-20 * time.Hour), Before: t0.Add(-2 * time.Hour)}
	got, res := f.collect(t, w, 200)
	want := truthIn(f.tenant, w)
	if len(want) < 500 {
		t.Fatalf("fixture too small: %d entries in window", len(want))
	}
	checkExactlyOnce(t, got, want)
	if res.Entries != len(got) || res.Pages != (len(got)+199)/200 {
		t.Errorf("result %+v for %d entries", res, len(got))
	}
	if res.Truncated {
		t.Error("Truncated for a small window")
	}
	if res.Order != OrderNewestFirst {
		t.Errorf("Order = %v, want newest first", res.Order)
	}
	var oldest, newest time.Time
	for _, e := range got {
		if oldest.IsZero() || e.Timestamp.Before(oldest) {
			oldest = e.Timestamp
		}
		if e.Timestamp.After(newest) {
			newest = e.Timestamp
		}
		if e.Action != strings.TrimSpace(e.Action) || e.Action == "" {
			t.Errorf("action %q not trimmed", e.Action)
		}
		if e.Timestamp.Location() != time.UTC {
			t.Errorf("timestamp %v not UTC", e.Timestamp)
		}
	}
	if !res.Oldest.Equal(oldest) || !res.Newest.Equal(newest) {
		t.Errorf("Oldest/Newest = %v/%v, want %v/%v", res.Oldest, res.Newest, oldest, newest)
	}

	// What the client sent: the canonical query, clamped first, the closed window, our UA.
	reqs := f.tenant.Requests()
	if len(reqs) != res.Pages {
		t.Fatalf("%d requests for %d pages", len(reqs), res.Pages)
	}
	var fb struct {
		Timestamp struct{ After, Before string } `json:"timestamp"`
	}
	if err := json.Unmarshal(reqs[0].Variables["filterBy"], &fb); err != nil {
		t.Fatal(err)
	}
	if fb.Timestamp.After != "2026-05-31T15:59:59.999999Z" || fb.Timestamp.Before != "2026-06-01T10:00:00.000001Z" {
		t.Errorf("filterBy = %+v", fb)
	}
	if string(reqs[0].Variables["first"]) != "200" || string(reqs[0].Variables["after"]) != "null" {
		t.Errorf("first page variables: %s", reqs[0].Variables)
	}
	if reqs[1].Variables["after"] == nil || string(reqs[1].Variables["after"]) == "null" {
		t.Error("second page sent no cursor")
	}
	if reqs[0].UserAgent != "seed-wizauditlogs-datasource/test" {
		t.Errorf("User-Agent %q", reqs[0].UserAgent)
	}
}

func TestAuditLogClampsPageSize(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 2, Events: 30}, nil)
	for _, tc := range []struct{ in, want int }{{0, 1}, {-5, 1}, {1000, 500}, {7, 7}} {
		f.tenant.ResetStats()
		if _, _, err := f.tryCollect(context.Background(), Window{After: t0.Add(-time.Hour), Before: t0}, tc.in); err != nil {
			t.Fatal(err)
		}
		if got := string(f.tenant.Requests()[0].Variables["first"]); got != itoa(tc.want) {
			t.Errorf("pageSize %d: sent first=%s, want %d", tc.in, got, tc.want)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestAuditLogEqualTimestampsAcrossPages(t *testing.T) {
	t.Parallel()
	// Most events share their timestamp with the one before: long runs of equal timestamps.
	f := newFixture(t, wizfake.Options{Seed: 3, Events: 600, Span: time.Hour, EqualRate: 0.8}, nil)
	// Plus a block of 25 events with one timestamp, added explicitly.
	same := t0.Add(-30 * time.Minute).Add(123456 * time.Nanosecond)
	var evs []wizfake.Event
	for i := 0; i < 25; i++ {
		evs = append(evs, wizfake.Event{ID: "same-" + itoa(100+i), Action: "Login", Status: "SUCCESS", Timestamp: same})
	}
	if err := f.tenant.AddVisibleAt(t0.Add(-time.Hour), evs...); err != nil {
		t.Fatal(err)
	}
	w := Window{After: t0.Add(-2 * time.Hour), Before: t0}
	for _, ps := range []int{1, 3, 4, 7, 500} {
		got, _ := f.collect(t, w, ps)
		checkExactlyOnce(t, got, truthIn(f.tenant, w))
	}
}

func TestAuditLogOldestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 4, Events: 300, OldestFirst: true}, nil)
	w := Window{After: t0.Add(-24 * time.Hour), Before: t0}
	got, res := f.collect(t, w, 50)
	checkExactlyOnce(t, got, truthIn(f.tenant, w))
	if res.Order != OrderOldestFirst {
		t.Errorf("Order = %v, want oldest first", res.Order)
	}
}

func TestAuditLogTruncatedAtResultCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 5, Events: ResultCap + 700, Span: 10 * time.Hour}, nil)
	w := Window{After: t0.Add(-11 * time.Hour), Before: t0}
	got, res := f.collect(t, w, 500)
	if !res.Truncated {
		t.Fatalf("a window of %d entries was not reported truncated: %+v", ResultCap+700, res)
	}
	if res.Entries != ResultCap || len(got) != ResultCap {
		t.Errorf("received %d entries (result says %d), want the cap %d", len(got), res.Entries, ResultCap)
	}
	// The newest-first walk stopped early: entries older than res.Oldest were not sent. The
	// caller splits at res.Oldest and gets the rest.
	rest, res2 := f.collect(t, Window{After: w.After, Before: res.Oldest}, 500)
	if res2.Truncated {
		t.Errorf("the remainder is truncated too: %+v", res2)
	}
	all := map[string]auditlog.Entry{}
	for _, e := range append(got, rest...) {
		all[e.ID] = e
	}
	if len(all) != ResultCap+700 {
		t.Errorf("after splitting: %d distinct entries, want %d", len(all), ResultCap+700)
	}

	// Just under the cap is not truncated.
	g := newFixture(t, wizfake.Options{Seed: 6, Events: ResultCap - 1, Span: 10 * time.Hour}, nil)
	_, res3 := g.collect(t, w, 500)
	if res3.Truncated || res3.Entries != ResultCap-1 {
		t.Errorf("%d entries: %+v", ResultCap-1, res3)
	}
}

func TestAuditLogOnPageErrorReturnedAsIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 7, Events: 100}, nil)
	stop := errors.New("disk full")
	calls := 0
	_, err := f.client.AuditLog(context.Background(), Window{After: t0.Add(-24 * time.Hour), Before: t0}, 10,
		func([]auditlog.Entry) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("err = %v after %d calls, want the onPage error after 1", err, calls)
	}
}

func TestAuditLogRejectsInvertedWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{}, nil)
	_, err := f.client.AuditLog(context.Background(), Window{After: t0, Before: t0.Add(-time.Second)}, 10,
		func([]auditlog.Entry) error { return nil })
	if KindOf(err) != KindPermanent {
		t.Fatalf("err = %v", err)
	}
}

func TestAuditLogLateEntriesVisibleOnlyAfterAdd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wizfake.Options{Seed: 8, Events: 50}, nil)
	w := Window{After: t0.Add(-time.Hour), Before: t0}
	before, _ := f.collect(t, w, 500)
	late := wizfake.Event{ID: "late-1", Action: "UpdateUser", Status: "SUCCESS", Timestamp: t0.Add(-30 * time.Minute)}
	if err := f.tenant.Add(late); err != nil {
		t.Fatal(err)
	}
	after, _ := f.collect(t, w, 500)
	if len(after) != len(before)+1 {
		t.Fatalf("late entry: %d then %d entries", len(before), len(after))
	}
}

func TestDecodeEntry(t *testing.T) {
	t.Parallel()
	node := `{"id":"e1","action":"  user Login ","requestId":"r1","status":"FAILED","timestamp":"2026-01-02T03:04:05.1Z",` +
		`"actionParameters":{"a":[1, 2]},"userAgent":null,"sourceIP":"192.0.2.1",` +
		`"serviceAccount":{"id":"sa","name":"robot"},"user":{"id":"u","name":"human"}}`
	e, err := DecodeEntry(json.RawMessage(node))
	if err != nil {
		t.Fatal(err)
	}
	want := auditlog.Entry{ID: "e1", RequestID: "r1", Action: "user Login", Status: "FAILED",
		Timestamp:   time.Date(2026, 1, 2, 3, 4, 5, 100_000_000, time.UTC),
		PrincipalID: "sa", PrincipalName: "robot", PrincipalType: auditlog.PrincipalServiceAccount, SourceIP: "192.0.2.1"}
	if e.ID != want.ID || e.RequestID != want.RequestID || e.Action != want.Action || e.Status != want.Status ||
		!e.Timestamp.Equal(want.Timestamp) || e.PrincipalID != want.PrincipalID || e.PrincipalName != want.PrincipalName ||
		e.PrincipalType != want.PrincipalType || e.SourceIP != want.SourceIP || e.UserAgent != "" {
		t.Errorf("got %+v", e)
	}
	if string(e.Raw) != node || string(e.ActionParameters) != `{"a":[1, 2]}` {
		t.Errorf("raw %s / params %s", e.Raw, e.ActionParameters)
	}

	user, err := DecodeEntry(json.RawMessage(`{"id":"e2","timestamp":"2026-01-02T03:04:05Z","serviceAccount":null,"user":{"id":"u","name":"human"}}`))
	if err != nil || user.PrincipalType != auditlog.PrincipalUser || user.PrincipalName != "human" || string(user.ActionParameters) != "null" {
		t.Errorf("user principal: %+v %v", user, err)
	}
	none, err := DecodeEntry(json.RawMessage(`{"id":"e3","timestamp":"2026-01-02T03:04:05Z","actionParameters":null}`))
	if err != nil || none.PrincipalType != "" || string(none.ActionParameters) != "null" {
		t.Errorf("no principal: %+v %v", none, err)
	}

	for _, bad := range []string{
		`{"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"","timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"x"}`,
		`{"id":"x","timestamp":"yesterday"}`,
		`[1]`,
	} {
		if _, err := DecodeEntry(json.RawMessage(bad)); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: err = %v, want ErrBadEntry", bad, err)
		}
	}
}

func TestParseTimestampFractions(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 2, 6, 13, 39, 25, 0, time.UTC)
	frac := "123456789"
	for n := 0; n <= 9; n++ {
		s := "2025-02-06T13:39:25"
		var want time.Time
		if n == 0 {
			s += "Z"
			want = base
		} else {
			s += "." + frac[:n] + "Z"
			ns := 0
			for i := 0; i < 9; i++ {
				ns *= 10
				if i < n {
					ns += int(frac[i] - '0')
				}
			}
			want = base.Add(time.Duration(ns))
		}
		got, err := ParseTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", s, got, err, want)
		}
	}
	if got, err := ParseTimestamp("2025-02-06T14:39:25.5+01:00"); err != nil || got.Location() != time.UTC || got.Hour() != 13 {
		t.Errorf("offset: %v %v", got, err)
	}
}
