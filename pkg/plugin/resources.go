package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"

	"github.com/seed/wizauditlogs/pkg/query"
	"github.com/seed/wizauditlogs/pkg/syncer"
)

// CallResource serves the resource endpoints (docs/sync.md, "Resource endpoints").
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	return d.resources.CallResource(ctx, req, sender)
}

func newResources(d *Datasource) backend.CallResourceHandler {
	mux := http.NewServeMux()
	for _, rt := range []struct {
		method, path string
		handle       http.HandlerFunc
	}{
		{http.MethodGet, "/sync/status", d.handleStatus},
		{http.MethodPost, "/sync/run", d.handleRun},
		{http.MethodGet, "/values/{field}", d.handleValues},
	} {
		mux.HandleFunc(rt.method+" "+rt.path, rt.handle)
		// Without this, the catch-all below would answer a known path with the wrong method.
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", rt.method)
			writeError(w, http.StatusMethodNotAllowed, r.URL.Path+" takes "+rt.method+", not "+r.Method)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.Method+" "+r.URL.Path+" (try GET sync/status, POST sync/run or GET values/<field>)")
	})
	return httpadapter.New(mux)
}

// statusAnswer is GET sync/status: the syncer's status and what the plugin knows of the store.
type statusAnswer struct {
	syncer.Status
	Backend   string  `json:"backend"`   // sqlite or postgres
	CacheFile *string `json:"cacheFile"` // null on PostgreSQL
}

// status is the running instance's status, its store's notices first.
func (d *Datasource) status(ctx context.Context, run *running) statusAnswer {
	st := run.syncer.Status(ctx)
	st.Notices = append(append([]string{}, run.notices()...), st.Notices...)
	return statusAnswer{Status: st, Backend: d.backend, CacheFile: run.cacheFile}
}

func (d *Datasource) handleStatus(w http.ResponseWriter, r *http.Request) {
	run, err := d.current()
	if err != nil {
		// Still a status, so the config page can show what is wrong in the same place.
		writeJSON(w, http.StatusOK, map[string]any{"state": "error", "lastError": err.Error(), "events": 0, "backfill": nil,
			"backend": d.backend, "role": nil, "leader": nil, "cacheFile": nil})
		return
	}
	writeJSON(w, http.StatusOK, d.status(r.Context(), run))
}

func (d *Datasource) handleRun(w http.ResponseWriter, r *http.Request) {
	if !canEdit(httpadapter.UserFromContext(r.Context())) {
		writeError(w, http.StatusForbidden, "starting a sync needs the Editor or Admin role")
		return
	}
	run, err := d.current()
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	run.syncer.RunNow() // a follower tries to lead at once
	// On SQLite a follower is another instance on the same file: it leads as soon as the
	// lock is free, so there is no one to ask.
	if run.store.Leading() || d.backend == backendSQLite {
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "sync started"})
		return
	}
	if err := run.store.RequestRun(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "asking the replica that syncs failed: "+err.Error())
		return
	}
	msg := "another replica syncs this data source: it was asked to sync now"
	if name, err := run.store.Leader(r.Context()); err == nil && name != "" {
		msg = "the replica " + name + " syncs this data source: it was asked to sync now"
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": msg})
}

func (d *Datasource) handleValues(w http.ResponseWriter, r *http.Request) {
	run, err := d.current()
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	limit := query.DefaultValuesLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > query.MaxValuesLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", query.MaxValuesLimit))
			return
		}
		limit = n
	}
	values, err := run.engine.Values(r.Context(), r.PathValue("field"), r.URL.Query().Get("q"), limit, query.Query{})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		d.logger.Error("values failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "reading the cache failed")
		return
	}
	if values == nil {
		values = []string{}
	}
	writeJSON(w, http.StatusOK, values)
}

func canEdit(u *backend.User) bool {
	return u != nil && (u.Role == "Admin" || u.Role == "Editor")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"message":"could not encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}
