package query

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// event is one row of the events table as logs and table queries read it.
type event struct {
	id, requestID, action, status       string
	principal, principalID, principalTy string
	sourceIP, userAgent                 string
	ts                                  int64
	raw                                 []byte
}

// selectEvents reads the newest events in the range that match q, at most q.Limit of them,
// newest first (ties by id, descending, so pages are stable).
func (e *Engine) selectEvents(ctx context.Context, db *sql.DB, q *Query, r Request, withRaw bool) ([]event, error) {
	var w where
	w.timeRange(r.From, r.To)
	w.filters(q, filterOpts{})
	rawCol := "''"
	if withRaw {
		rawCol = "raw"
	}
	stmt := `SELECT id, request_id, action, status, principal, principal_id, principal_type,
		source_ip, user_agent, ts, ` + rawCol + ` FROM ` + w.from() + ` WHERE ` + w.sql() + `
		ORDER BY ts DESC, id DESC LIMIT ?`
	rows, err := db.QueryContext(ctx, stmt, append(w.args, q.Limit)...)
	if err != nil {
		return nil, queryErr("read events", err)
	}
	defer rows.Close()
	out := make([]event, 0, min(q.Limit, 1024))
	for rows.Next() {
		var ev event
		if err := rows.Scan(&ev.id, &ev.requestID, &ev.action, &ev.status, &ev.principal, &ev.principalID,
			&ev.principalTy, &ev.sourceIP, &ev.userAgent, &ev.ts, &ev.raw); err != nil {
			return nil, queryErr("read events", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, queryErr("read events", err)
	}
	return out, nil
}

// Severity of a log line by status.
func severity(status string) string {
	switch status {
	case "SUCCESS":
		return "info"
	case "FAILED":
		return "error"
	case "ACCESS_DENIED":
		return "warning"
	}
	return "unknown"
}

// body is the log line: "Login SUCCESS by MetronLabs (service account) from 203.0.113.7".
func body(ev *event) string {
	var b strings.Builder
	if ev.action != "" {
		b.WriteString(ev.action)
	} else {
		b.WriteString("(no action)")
	}
	if ev.status != "" {
		b.WriteByte(' ')
		b.WriteString(ev.status)
	}
	who := ev.principal
	if who == "" {
		who = ev.principalID
	}
	if who != "" {
		b.WriteString(" by ")
		b.WriteString(who)
		switch ev.principalTy {
		case "serviceAccount":
			b.WriteString(" (service account)")
		case "user":
			b.WriteString(" (user)")
		}
	} else {
		b.WriteString(" by an unknown principal")
	}
	if ev.sourceIP != "" {
		b.WriteString(" from ")
		b.WriteString(ev.sourceIP)
	}
	return b.String()
}

// logLabels are the labels of a log line; empty values are left out.
type logLabels struct {
	Action        string `json:"action,omitempty"`
	Status        string `json:"status,omitempty"`
	Principal     string `json:"principal,omitempty"`
	PrincipalType string `json:"principalType,omitempty"`
	SourceIP      string `json:"sourceIp,omitempty"`
	UserAgent     string `json:"userAgent,omitempty"`
	RequestID     string `json:"requestId,omitempty"`
}

func (e *Engine) logs(ctx context.Context, db *sql.DB, q *Query, r Request) (data.Frames, error) {
	evs, err := e.selectEvents(ctx, db, q, r, false)
	if err != nil {
		return nil, err
	}
	n := len(evs)
	ts := make([]time.Time, n)
	bodies := make([]string, n)
	sev := make([]string, n)
	ids := make([]string, n)
	labels := make([]json.RawMessage, n)
	for i := range evs {
		ev := &evs[i]
		ts[i] = time.Unix(0, ev.ts).UTC()
		bodies[i] = body(ev)
		sev[i] = severity(ev.status)
		ids[i] = ev.id
		l, err := json.Marshal(logLabels{ev.action, ev.status, ev.principal, ev.principalTy, ev.sourceIP, ev.userAgent, ev.requestID})
		if err != nil {
			return nil, err
		}
		labels[i] = l
	}
	frame := data.NewFrame(r.RefID,
		data.NewField("timestamp", nil, ts),
		data.NewField("body", nil, bodies),
		data.NewField("severity", nil, sev),
		data.NewField("id", nil, ids),
		data.NewField("labels", nil, labels),
	)
	frame.RefID = r.RefID
	frame.Meta = &data.FrameMeta{
		Type:                   data.FrameTypeLogLines,
		TypeVersion:            data.FrameTypeVersion{0, 0},
		PreferredVisualization: data.VisTypeLogs,
	}
	return data.Frames{frame}, nil
}

func (e *Engine) table(ctx context.Context, db *sql.DB, q *Query, r Request) (data.Frames, error) {
	evs, err := e.selectEvents(ctx, db, q, r, true)
	if err != nil {
		return nil, err
	}
	n := len(evs)
	ts := make([]time.Time, n)
	cols := make([][]string, 9)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	params := make([]json.RawMessage, n)
	for i := range evs {
		ev := &evs[i]
		ts[i] = time.Unix(0, ev.ts).UTC()
		for j, v := range []string{ev.id, ev.action, ev.status, ev.principal, ev.principalID, ev.principalTy, ev.sourceIP, ev.userAgent, ev.requestID} {
			cols[j][i] = v
		}
		params[i] = actionParameters(ev.raw)
	}
	frame := data.NewFrame(r.RefID,
		data.NewField("timestamp", nil, ts),
		data.NewField("id", nil, cols[0]),
		data.NewField("action", nil, cols[1]),
		data.NewField("status", nil, cols[2]),
		data.NewField("principal", nil, cols[3]),
		data.NewField("principalId", nil, cols[4]),
		data.NewField("principalType", nil, cols[5]),
		data.NewField("sourceIp", nil, cols[6]),
		data.NewField("userAgent", nil, cols[7]),
		data.NewField("requestId", nil, cols[8]),
		data.NewField("actionParameters", nil, params),
	)
	frame.RefID = r.RefID
	frame.Meta = &data.FrameMeta{Type: data.FrameTypeTable, PreferredVisualization: data.VisTypeTable}
	return data.Frames{frame}, nil
}

// actionParameters returns the node's actionParameters exactly as sent (the bytes of the raw
// node), or null when the node has none or cannot be read.
func actionParameters(raw []byte) json.RawMessage {
	var n struct {
		ActionParameters json.RawMessage `json:"actionParameters"`
	}
	if err := json.Unmarshal(raw, &n); err != nil || len(bytes.TrimSpace(n.ActionParameters)) == 0 {
		return json.RawMessage("null")
	}
	return append(json.RawMessage(nil), n.ActionParameters...)
}
