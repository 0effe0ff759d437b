package plugin

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// CheckHealth answers "Save & test": settings first, then authentication and scope, then how
// far the sync has come.
func (d *Datasource) CheckHealth(_ context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if d.settingsErr != nil {
		return healthError(settingsMessage(d.settingsErr)), nil
	}
	msg := "OK: settings are valid"
	if w := d.location.Warning(); w != "" {
		msg += "; warning: " + w
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg}, nil
}

func settingsMessage(err error) string {
	return "invalid settings: " + strings.ReplaceAll(err.Error(), "\n", "; ")
}

func healthError(msg string) *backend.CheckHealthResult {
	details, _ := json.Marshal(map[string]string{"verboseMessage": msg})
	return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: msg, JSONDetails: details}
}
