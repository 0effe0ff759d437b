// Command gpx_wizauditlogs is the backend of the Wiz Audit Logs data source; Grafana starts it.
package main

import (
	"net"
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/seed/wizauditlogs/pkg/plugin"
)

func main() {
	// The Linux binaries are linked statically; glibc's resolver would then need the host's NSS
	// libraries at run time (absent on Alpine images), so always use Go's own resolver.
	net.DefaultResolver.PreferGo = true
	err := datasource.Manage(plugin.ID, plugin.NewDatasource, datasource.ManageOpts{})
	plugin.CloseAll() // Manage returns once Grafana has stopped the plugin: close the caches cleanly
	if err != nil {
		log.DefaultLogger.Error("plugin stopped", "error", err.Error())
		os.Exit(1)
	}
}
