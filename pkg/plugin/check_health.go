package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/syncer"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// healthTimeout keeps "Save & test" answering within a few seconds even when Wiz is slow.
const healthTimeout = 8 * time.Second

// CheckHealth answers "Save & test": settings first, then authentication and scope, then how
// far the sync has come.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	run, err := d.current()
	if err != nil {
		return healthError(err.Error()), nil
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if err := d.client.CheckAccess(ctx); err != nil {
		return healthError(accessMessage(err)), nil
	}
	st := d.status(ctx, run)
	parts := []string{fmt.Sprintf("%s events cached", thousands(st.Events))}
	if st.Role == syncer.RoleFollower && d.backend == backendPostgres {
		if st.Leader != nil {
			parts = append(parts, "synced by the replica "+*st.Leader)
		} else {
			parts = append(parts, "no replica syncs right now (one takes over within a poll)")
		}
	}
	if st.SyncedUpTo != nil {
		parts = append(parts, "synced up to "+st.SyncedUpTo.UTC().Format(time.RFC3339))
	} else {
		parts = append(parts, "first sync in progress")
	}
	if st.Backfill != nil {
		parts = append(parts, fmt.Sprintf("backfill %d%%", int(st.Backfill.Done*100)))
	}
	msg := "OK: " + strings.Join(parts, ", ")
	var warnings []string
	if d.settings.BackfillClamped {
		warnings = append(warnings, fmt.Sprintf("backfillStart is older than the %d days Wiz keeps: the backfill starts at %s",
			wiz.Retention/(24*time.Hour), d.settings.BackfillStart.Format(time.DateOnly)))
	}
	if st.LastError != nil {
		warnings = append(warnings, "the last sync failed: "+*st.LastError)
	}
	warnings = append(warnings, st.Notices...)
	if w := d.location.Warning(); w != "" && d.backend == backendSQLite {
		warnings = append(warnings, w)
	}
	if len(warnings) > 0 {
		msg += ". Warning: " + strings.Join(warnings, "; ")
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg}, nil
}

// accessMessage words a failed access check as the health check documents it (docs/sync.md).
func accessMessage(err error) string {
	msg := err.Error()
	switch wiz.KindOf(err) {
	case wiz.KindAuthentication:
		if !strings.HasPrefix(msg, "authentication failed") {
			msg = "authentication failed: " + msg
		}
	case wiz.KindAuthorization:
		if !strings.Contains(msg, "admin:audit") {
			msg = "the service account lacks the admin:audit scope: " + msg
		}
	default:
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "Wiz did not answer within " + healthTimeout.String() + ": " + msg
		}
	}
	return msg
}

func healthError(msg string) *backend.CheckHealthResult {
	details, _ := json.Marshal(map[string]string{"verboseMessage": msg})
	return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: msg, JSONDetails: details}
}

func joinLines(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// thousands writes 123456 as 123,456.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
