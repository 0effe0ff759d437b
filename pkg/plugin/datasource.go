// Package plugin is the Grafana glue: it builds one instance per data source from its settings
// and answers Grafana's calls (health, queries, resources) with the domain packages.
package plugin

import (
	"context"
	"os"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/seed/wizauditlogs/pkg/settings"
)

// ID is the plugin id Grafana knows it by.
const ID = "seed-wizauditlogs-datasource"

var (
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Datasource is one data source instance. A settings error does not fail the factory (Grafana
// would then show a bare error for every call): the instance keeps it and every call reports it.
type Datasource struct {
	settings    settings.Settings
	settingsErr error
	location    settings.CacheLocation
	logger      log.Logger
}

// NewDatasource is the instance factory Grafana's instance manager calls.
func NewDatasource(_ context.Context, dsi backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	d := &Datasource{
		location: settings.ResolveCacheLocation(os.Getenv),
		logger:   log.DefaultLogger.With("datasource", dsi.UID),
	}
	d.settings, d.settingsErr = settings.Load(dsi.JSONData, dsi.DecryptedSecureJSONData, time.Now())
	return d, nil
}

// Dispose releases what the factory built; Grafana calls it when the settings change.
func (d *Datasource) Dispose() {}
