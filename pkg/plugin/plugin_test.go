package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/settings"
	"github.com/seed/wizauditlogs/pkg/syncer"
)

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 123456: "123,456", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestStalenessForAlerts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := &Datasource{settings: settings.Settings{PollInterval: time.Minute}}
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	msg := "sync failed"
	cases := []struct {
		name string
		st   syncer.Status
		want string
	}{
		{"fresh", syncer.Status{State: syncer.StateIdle, SyncedUpTo: at(90 * time.Second)}, ""},
		{"within 5 minutes", syncer.Status{State: syncer.StateSyncing, SyncedUpTo: at(4 * time.Minute)}, ""},
		{"older than max(3 polls, 5 min)", syncer.Status{State: syncer.StateIdle, SyncedUpTo: at(6 * time.Minute)}, "stale"},
		{"never synced", syncer.Status{State: syncer.StateSyncing}, "first sync"},
		{"sync failing", syncer.Status{State: syncer.StateError, SyncedUpTo: at(time.Minute), LastError: &msg}, "not syncing: sync failed"},
	}
	for _, tc := range cases {
		got := d.staleness(tc.st, now)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	d.settings.PollInterval = 10 * time.Minute // 3 polls = 30 minutes
	if got := d.staleness(syncer.Status{SyncedUpTo: at(20 * time.Minute)}, now); got != "" {
		t.Errorf("a slow poll interval widens the limit: %q", got)
	}
}
