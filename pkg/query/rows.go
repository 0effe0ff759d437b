package query

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

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
func body(ev *read.Event) string {
	var b strings.Builder
	if ev.Action != "" {
		b.WriteString(ev.Action)
	} else {
		b.WriteString("(no action)")
	}
	if ev.Status != "" {
		b.WriteByte(' ')
		b.WriteString(ev.Status)
	}
	who := ev.Principal
	if who == "" {
		who = ev.PrincipalID
	}
	if who != "" {
		b.WriteString(" by ")
		b.WriteString(who)
		switch ev.PrincipalType {
		case "serviceAccount":
			b.WriteString(" (service account)")
		case "user":
			b.WriteString(" (user)")
		}
	} else {
		b.WriteString(" by an unknown principal")
	}
	if ev.SourceIP != "" {
		b.WriteString(" from ")
		b.WriteString(ev.SourceIP)
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

func (e *Engine) logs(ctx context.Context, q *Query, r Request) (data.Frames, error) {
	evs, err := e.store.Events(ctx, q.filter(""), r.From, r.To, q.Limit, false)
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
		ts[i] = time.Unix(0, ev.TS).UTC()
		bodies[i] = body(ev)
		sev[i] = severity(ev.Status)
		ids[i] = ev.ID
		l, err := json.Marshal(logLabels{ev.Action, ev.Status, ev.Principal, ev.PrincipalType, ev.SourceIP, ev.UserAgent, ev.RequestID})
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

func (e *Engine) table(ctx context.Context, q *Query, r Request) (data.Frames, error) {
	evs, err := e.store.Events(ctx, q.filter(""), r.From, r.To, q.Limit, true)
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
		ts[i] = time.Unix(0, ev.TS).UTC()
		for j, v := range []string{ev.ID, ev.Action, ev.Status, ev.Principal, ev.PrincipalID, ev.PrincipalType, ev.SourceIP, ev.UserAgent, ev.RequestID} {
			cols[j][i] = v
		}
		params[i] = actionParameters(ev.Raw)
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
