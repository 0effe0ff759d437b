package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/seed/wizauditlogs/pkg/query"
	"github.com/seed/wizauditlogs/pkg/syncer"
)

// minStaleAfter is the floor of how old the checkpoint may get before alert queries fail.
const minStaleAfter = 5 * time.Minute

// QueryData answers every query from the cache; one bad query never fails the others.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	run, err := d.current()
	if err != nil {
		for _, q := range req.Queries {
			resp.Responses[q.RefID] = backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
		}
		return resp, nil
	}
	st := run.syncer.Status(ctx)
	fromAlert := req.Headers[backend.FromAlertHeaderName] != ""
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, run.engine, q, st, fromAlert)
	}
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, engine *query.Engine, dq backend.DataQuery, st syncer.Status, fromAlert bool) backend.DataResponse {
	q, err := query.Parse(dq.JSON)
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	}
	// Grafana drops frame notices when a query feeds an expression, so an alert rule would read
	// a stale cache as "nothing happened": answer an error instead and let the rule say so.
	if fromAlert {
		if msg := d.staleness(st, time.Now()); msg != "" {
			return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, msg)
		}
	}
	frames, err := engine.Run(ctx, query.Request{
		Query: q, RefID: dq.RefID,
		From: dq.TimeRange.From, To: dq.TimeRange.To,
		Interval: dq.Interval, MaxDataPoints: dq.MaxDataPoints, ForAlert: fromAlert,
	}, d.freshness(st))
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream, "the query was cancelled or timed out")
		}
		d.logger.Error("query failed", "refId", dq.RefID, "error", err.Error())
		return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, "the query failed in the plugin's cache: "+err.Error())
	}
	return backend.DataResponse{Frames: frames}
}

// staleness says why alert rules must not trust the cache now, or "".
func (d *Datasource) staleness(st syncer.Status, now time.Time) string {
	if st.State == syncer.StateError && st.LastError != nil {
		return "the Wiz audit cache is not syncing: " + *st.LastError
	}
	limit := max(3*d.settings.PollInterval, minStaleAfter)
	switch {
	case st.SyncedUpTo == nil:
		return "the Wiz audit cache has not completed its first sync yet"
	case now.Sub(*st.SyncedUpTo) > limit:
		msg := fmt.Sprintf("the Wiz audit cache is stale: synced up to %s, more than %s ago", st.SyncedUpTo.UTC().Format(time.RFC3339), limit)
		if st.LastError != nil {
			msg += "; last error: " + *st.LastError
		}
		return msg
	}
	return ""
}

// freshness tells the query engine how complete the cache is, for its frame notices.
func (d *Datasource) freshness(st syncer.Status) query.Freshness {
	f := query.Freshness{StaleAfter: max(3*d.settings.PollInterval, minStaleAfter)}
	if st.SyncedUpTo != nil {
		f.SyncedUpTo = *st.SyncedUpTo
	}
	if st.LastError != nil {
		f.SyncError = *st.LastError
	}
	if st.CoveredFrom != nil {
		f.BackfillFrom = *st.CoveredFrom
		f.BackfillDone = st.Backfill == nil || st.Backfill.Done >= 1
	}
	return f
}
