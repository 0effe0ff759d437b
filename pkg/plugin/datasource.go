// Package plugin is the Grafana glue: it builds one instance per data source from its settings
// and answers Grafana's calls (health, queries, resources) with the domain packages.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/httpclient"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/build/buildinfo"

	"github.com/seed/wizauditlogs/pkg/cache"
	"github.com/seed/wizauditlogs/pkg/query"
	"github.com/seed/wizauditlogs/pkg/settings"
	"github.com/seed/wizauditlogs/pkg/store/postgres"
	"github.com/seed/wizauditlogs/pkg/syncer"
	"github.com/seed/wizauditlogs/pkg/wiz"
)

// ID is the plugin id Grafana knows it by.
const ID = "seed-wizauditlogs-datasource"

// userAgent names the plugin and the version the SDK's build recorded (package.json's).
func userAgent() string {
	version := "dev"
	if info, err := buildinfo.GetBuildInfo(); err == nil && info.Version != "" {
		version = info.Version
	}
	return ID + "/" + version
}

var (
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Backends of sync/status's "backend".
const (
	backendSQLite   = "sqlite"
	backendPostgres = "postgres"
)

// DatabaseURLEnv is how Grafana passes grafana.ini's [plugin.seed-wizauditlogs-datasource]
// database_url: set, every data source keeps its events in that PostgreSQL database.
const DatabaseURLEnv = "GF_PLUGIN_DATABASE_URL"

// Datasource is one data source instance: its settings, Wiz client, store, syncer and query
// engine. A settings or store error does not fail the factory (Grafana would then answer every
// call with a bare error): the instance keeps it and every call reports it.
type Datasource struct {
	settings  settings.Settings
	setupErr  error // settings or cache problem; nothing below is set when it is
	location  settings.CacheLocation
	backend   string
	client    *wiz.Client
	transport *http.Transport // under the client's middlewares: Dispose closes its idle connections
	resources backend.CallResourceHandler
	logger    log.Logger

	stopRetry context.CancelFunc // ends the retries of opening the database
	retryDone chan struct{}

	mu      sync.Mutex
	run     *running // nil until the store is open
	openErr error    // why the database could not be opened yet
}

// running is an instance whose store is open.
type running struct {
	store     syncer.Store
	close     func() error
	notices   func() []string
	cacheFile *string // the SQLite file; nil on PostgreSQL
	syncer    *syncer.Syncer
	engine    *query.Engine // nil on PostgreSQL: see readFromStore
}

// current is the running instance, or why there is none.
func (d *Datasource) current() (*running, error) {
	if d.setupErr != nil {
		return nil, d.setupErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run == nil {
		return nil, d.openErr
	}
	return d.run, nil
}

// NewDatasource is the instance factory Grafana's instance manager calls.
func NewDatasource(ctx context.Context, dsi backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	d := &Datasource{
		location: settings.ResolveCacheLocation(os.Getenv),
		backend:  backendSQLite,
		logger:   log.DefaultLogger.With("datasource", dsi.UID),
	}
	databaseURL := os.Getenv(DatabaseURLEnv)
	if databaseURL != "" {
		d.backend = backendPostgres
	}
	d.resources = newResources(d)
	instances.add(d)
	var err error
	d.settings, err = settings.Load(dsi.JSONData, dsi.DecryptedSecureJSONData, time.Now())
	if err != nil {
		d.setupErr = &settingsError{err}
		return d, nil
	}
	if err := d.start(ctx, dsi, databaseURL); err != nil {
		d.logger.Error("data source not started", "error", err.Error())
		d.setupErr = err
		d.Dispose()
	}
	return d, nil
}

// settingsError marks problems of the user's settings, reported as such.
type settingsError struct{ err error }

func (e *settingsError) Error() string { return "invalid settings: " + joinLines(e.err.Error()) }
func (e *settingsError) Unwrap() error { return e.err }

func (d *Datasource) start(ctx context.Context, dsi backend.DataSourceInstanceSettings, databaseURL string) error {
	hc, transport, err := newHTTPClient(ctx, dsi)
	if err != nil {
		return err
	}
	d.transport = transport
	d.client, err = wiz.New(wiz.Config{
		APIURL:            d.settings.APIURL,
		AuthURL:           d.settings.AuthURL,
		ClientID:          d.settings.ClientID,
		ClientSecret:      d.settings.ClientSecret,
		RequestsPerSecond: d.settings.RequestsPerSecond,
		UserAgent:         userAgent(),
		HTTPClient:        hc,
		// The syncer is built below, before anything can call the client.
		OnRetry: func(kind wiz.Kind, _ time.Duration) {
			if run, err := d.current(); err == nil {
				run.syncer.NoteRetry(kind.String())
			}
		},
	})
	if err != nil {
		return &settingsError{err}
	}
	orgID := backend.PluginConfigFromContext(ctx).OrgID
	if databaseURL != "" {
		d.openPostgres(ctx, databaseURL, orgID, dsi.UID)
		return nil
	}
	file := d.location.CacheFile(orgID, dsi.UID)
	c, err := cache.Open(file, cache.Options{Fingerprint: d.settings.Fingerprint()})
	if err != nil {
		return fmt.Errorf("the cache file %s could not be opened: %w", file, err)
	}
	d.begin(&running{
		store: c, close: c.Close, cacheFile: &file,
		notices: func() []string {
			var msgs []string
			for _, n := range c.Notices() {
				msgs = append(msgs, n.Message)
			}
			return msgs
		},
		engine: query.NewEngine(c),
	}, dsi.UID)
	return nil
}

// openPostgres opens the data source's store in the shared database. When the database cannot
// be reached, the instance reports why and tries again every poll until it can.
func (d *Datasource) openPostgres(ctx context.Context, databaseURL string, orgID int64, uid string) {
	open := func(ctx context.Context) error {
		st, err := pools.open(ctx, databaseURL, orgID, uid, postgres.Options{Fingerprint: d.settings.Fingerprint()})
		if err != nil {
			d.mu.Lock()
			d.openErr = err
			d.mu.Unlock()
			return err
		}
		d.begin(&running{store: st, close: st.Close, notices: st.Notices, engine: query.NewEngine(st)}, uid)
		return nil
	}
	err := open(ctx)
	if err == nil {
		return
	}
	d.logger.Error("the database could not be opened; retrying at every poll", "error", err.Error())
	rctx, stop := context.WithCancel(context.Background())
	d.stopRetry, d.retryDone = stop, make(chan struct{})
	go func() {
		defer close(d.retryDone)
		every := min(d.settings.PollInterval, syncer.DefaultPromoteInterval)
		for {
			select {
			case <-rctx.Done():
				return
			case <-time.After(every):
			}
			if err := open(rctx); err == nil {
				d.logger.Info("the database is reachable again: the data source syncs")
				return
			}
		}
	}()
}

// begin builds and starts the syncer of an open store.
func (d *Datasource) begin(run *running, uid string) {
	run.syncer = syncer.New(run.store, d.client, syncer.Config{
		DatasourceUID: uid,
		PollInterval:  d.settings.PollInterval,
		PageSize:      d.settings.PageSize,
		BackfillStart: d.settings.BackfillStart,
		RetentionDays: d.settings.RetentionDays,
		Logger:        d.logger,
	})
	d.mu.Lock()
	d.run, d.openErr = run, nil
	d.mu.Unlock()
	run.syncer.Start()
}

// newHTTPClient builds the client from Grafana's settings (proxy, tracing), with TLS
// verification always on and no basic auth: the Wiz client sets its own bearer token. It also
// returns the transport under the SDK's middlewares, which do not pass CloseIdleConnections on.
func newHTTPClient(ctx context.Context, dsi backend.DataSourceInstanceSettings) (*http.Client, *http.Transport, error) {
	opts, err := dsi.HTTPClientOptions(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("HTTP client options: %w", err)
	}
	opts.BasicAuth = nil
	if opts.TLS != nil {
		opts.TLS.InsecureSkipVerify = false
	}
	opts.Timeouts = nil // the Wiz client bounds each attempt itself
	var transport *http.Transport
	configure := opts.ConfigureTransport
	opts.ConfigureTransport = func(o httpclient.Options, t *http.Transport) {
		if configure != nil {
			configure(o, t)
		}
		transport = t
	}
	hc, err := httpclient.New(opts)
	return hc, transport, err
}

// Dispose stops the syncer (an in-flight page is committed whole or not at all), closes the
// store and the idle connections to Wiz. Grafana calls it when the settings change or the
// instance is evicted.
func (d *Datasource) Dispose() {
	instances.remove(d)
	if d.stopRetry != nil {
		d.stopRetry()
		<-d.retryDone
	}
	d.mu.Lock()
	run := d.run
	d.run = nil
	if d.openErr == nil {
		d.openErr = errors.New("the data source instance was disposed")
	}
	d.mu.Unlock()
	if run != nil {
		run.syncer.Stop()
		if err := run.close(); err != nil && !errors.Is(err, cache.ErrClosed) {
			d.logger.Warn("closing the store", "error", err.Error())
		}
	}
	if d.transport != nil {
		d.transport.CloseIdleConnections()
	}
}

// instances are the live data sources of this process: the SDK disposes replaced instances but
// not the ones alive when Grafana stops the plugin, so main closes those through CloseAll and
// each cache is closed cleanly (its write-ahead log folded into the file).
var instances = &registry{set: map[*Datasource]struct{}{}}

type registry struct {
	mu  sync.Mutex
	set map[*Datasource]struct{}
}

func (r *registry) add(d *Datasource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set[d] = struct{}{}
}

func (r *registry) remove(d *Datasource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.set, d)
}

// CloseAll disposes every live instance; main calls it when Grafana has stopped the plugin.
func CloseAll() {
	instances.mu.Lock()
	all := make([]*Datasource, 0, len(instances.set))
	for d := range instances.set {
		all = append(all, d)
	}
	instances.mu.Unlock()
	for _, d := range all {
		d.Dispose()
	}
}

var (
	_ syncer.Store = (*cache.Cache)(nil)
	_ syncer.Store = (*postgres.Store)(nil)
)
