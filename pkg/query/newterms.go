package query

import (
	"context"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// A newTerms query lists the combinations of its fields seen in the range [from, to] but never
// in the lookback window [from - lookback, from) before it, newest first sight first (see
// Store.NewTerms).

const (
	DefaultLookback = 30 * 24 * time.Hour
	MaxLookback     = 365 * 24 * time.Hour
	MaxTermsFields  = 3
)

func (e *Engine) newTerms(ctx context.Context, q *Query, r Request) (data.Frames, error) {
	rows, err := e.store.NewTerms(ctx, q.Fields, q.filter(""), r.From.Add(-q.Lookback), r.From, r.To, q.Limit)
	if err != nil {
		return nil, err
	}
	return data.Frames{termsFrame(q, r, rows)}, nil
}

// termsFrame is one frame: a string column per field, firstSeen and count. For an alert rule,
// a numeric-long frame without firstSeen: Grafana's expressions turn the string columns and
// the one number into a labelled number per combination.
func termsFrame(q *Query, r Request, rows []read.Term) *data.Frame {
	f := data.NewFrame(r.RefID)
	for i, name := range q.Fields {
		vals := make([]string, len(rows))
		for j, row := range rows {
			vals[j] = row.Vals[i]
		}
		f.Fields = append(f.Fields, data.NewField(name, nil, vals))
	}
	seen := make([]time.Time, len(rows))
	counts := make([]int64, len(rows))
	for j, row := range rows {
		seen[j], counts[j] = time.Unix(0, row.FirstSeen).UTC(), row.Count
	}
	if !r.ForAlert {
		f.Fields = append(f.Fields, data.NewField("firstSeen", nil, seen))
	}
	f.Fields = append(f.Fields, data.NewField("count", nil, counts))
	f.RefID = r.RefID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTable}
	if r.ForAlert {
		f.Meta = &data.FrameMeta{Type: data.FrameTypeNumericLong, TypeVersion: data.FrameTypeVersion{0, 1}}
	}
	return f
}
