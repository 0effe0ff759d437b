package syncer

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collectors of one registry, shared by every Syncer of the process; each
// Syncer uses the children labelled with its data source uid.
type metrics struct {
	events     *prometheus.CounterVec // new events stored
	requests   *prometheus.CounterVec // windows and pages fetched, by outcome
	splits     *prometheus.CounterVec // windows split because they reached the result cap
	retries    *prometheus.CounterVec // API calls retried by the client, by error kind
	lag        *prometheus.GaugeVec
	backfill   *prometheus.GaugeVec
	cacheBytes *prometheus.GaugeVec
	cacheRows  *prometheus.GaugeVec
}

var (
	metricsMu    sync.Mutex
	metricsByReg = map[prometheus.Registerer]*metrics{}
)

// metricsFor returns the collectors registered on reg, registering them the first time. A
// collector someone else registered first under the same name is reused, so any number of
// Syncers (one per data source, and successors of replaced instances) share one set.
func metricsFor(reg prometheus.Registerer) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsByReg[reg]; ok {
		return m
	}
	const ns = "wizauditlogs"
	ds := []string{"datasource"}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_synced_total",
			Help: "Audit log events fetched from Wiz and newly stored in the cache."}, ds),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "Audit log API work by unit (window: one fully paged time window; page: one GraphQL page) and outcome (ok, or the error kind once the client gave up retrying)."},
			[]string{"datasource", "unit", "outcome"}),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "window_splits_total",
			Help: "Time windows that reached the API's 10,000-result cap and were split and fetched again."}, ds),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_retries_total",
			Help: "API calls the Wiz client retried, by the kind of error (rate limited, transient)."},
			[]string{"datasource", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "sync_lag_seconds",
			Help: "How far the live checkpoint (syncedUpTo) is behind now."}, ds),
		backfill: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "backfill_progress_ratio",
			Help: "Share of the backfill range already fetched (1 when complete)."}, ds),
		cacheBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cache_size_bytes",
			Help: "Size of the cache file and its write-ahead log."}, ds),
		cacheRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cache_events",
			Help: "Events held in the cache."}, ds),
	}
	m.events = register(reg, m.events)
	m.requests = register(reg, m.requests)
	m.splits = register(reg, m.splits)
	m.retries = register(reg, m.retries)
	m.lag = register(reg, m.lag)
	m.backfill = register(reg, m.backfill)
	m.cacheBytes = register(reg, m.cacheBytes)
	m.cacheRows = register(reg, m.cacheRows)
	metricsByReg[reg] = m
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clashing collector of another shape: keep ours unregistered rather than panic
		// in a data source factory; the metrics are lost, the sync is not.
	}
	return c
}
