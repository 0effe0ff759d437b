package query

import (
	"context"
	"sort"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// MaxBuckets is the hard cap on the buckets of one time series: a range never yields more,
// whatever intervalMs and maxDataPoints say.
const MaxBuckets = 10000

// MinInterval is the smallest bucket width.
const MinInterval = time.Second

// niceIntervals are the widths a derived interval is rounded up to.
var niceIntervals = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour,
}

// BucketInterval is the bucket width of a time series over [from, to]: the requested interval
// (Grafana's intervalMs), but never so small that the range yields more than maxDataPoints
// (when > 0) or MaxBuckets buckets; a width it has to derive is rounded up to a round one.
func BucketInterval(from, to time.Time, requested time.Duration, maxDataPoints int64) time.Duration {
	span := to.Sub(from)
	limit := int64(MaxBuckets)
	if maxDataPoints > 0 && maxDataPoints < limit {
		limit = maxDataPoints
	}
	need := time.Duration(int64(span)/limit) + 1 // width so that the count stays within limit
	iv := requested
	if iv < MinInterval {
		iv = MinInterval
	}
	if iv >= need && buckets(from, to, iv) <= limit {
		return iv
	}
	if need < iv {
		need = iv
	}
	for _, n := range niceIntervals {
		if n >= need && buckets(from, to, n) <= limit {
			return n
		}
	}
	// Beyond the table: whole multiples of 30 days.
	month := niceIntervals[len(niceIntervals)-1]
	k := int64(need/month) + 1
	for buckets(from, to, time.Duration(k)*month) > limit {
		k++
	}
	return time.Duration(k) * month
}

// bucketStart is the start of the bucket holding t: buckets are aligned on multiples of the
// interval since the Unix epoch (so whole hours and UTC days line up).
func bucketStart(t time.Time, iv time.Duration) int64 {
	ns := t.UnixNano()
	s := ns - ns%int64(iv)
	if ns%int64(iv) < 0 {
		s -= int64(iv)
	}
	return s
}

func buckets(from, to time.Time, iv time.Duration) int64 {
	return (bucketStart(to, iv)-bucketStart(from, iv))/int64(iv) + 1
}

// groupCounts is a count per (bucket, group value).
type groupCounts map[string]map[int64]int64

func (e *Engine) timeSeries(ctx context.Context, q *Query, r Request) (data.Frames, error) {
	iv := BucketInterval(r.From, r.To, r.Interval, r.MaxDataPoints)
	first := bucketStart(r.From, iv)
	n := int((bucketStart(r.To, iv)-first)/int64(iv)) + 1

	cq := q
	if q.GroupBy == FieldLevel {
		c := *q
		c.GroupBy = FieldStatus
		cq = &c
	}
	counts, err := e.bucketCounts(ctx, cq, r, first, iv)
	if err != nil {
		return nil, err
	}
	if q.GroupBy == FieldLevel {
		counts = byLevel(counts)
	}
	type series struct {
		value string
		total int64
		c     map[int64]int64
	}
	var all []series
	for v, c := range counts {
		s := series{value: v, c: c}
		for _, k := range c {
			s.total += k
		}
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].total != all[j].total {
			return all[i].total > all[j].total
		}
		return all[i].value < all[j].value
	})
	if q.GroupBy == "" && len(all) == 0 {
		all = append(all, series{c: map[int64]int64{}})
	}
	if q.Limit > 0 && len(all) > q.Limit {
		all = all[:q.Limit]
	}
	times := make([]time.Time, n)
	for i := range times {
		times[i] = time.Unix(0, first+int64(i)*int64(iv)).UTC()
	}
	meta := func() *data.FrameMeta {
		return &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	}
	var frames data.Frames
	for _, s := range all {
		vals := make([]float64, n)
		for b, k := range s.c {
			if b >= 0 && b < int64(n) {
				vals[b] = float64(k)
			}
		}
		count := data.NewField("count", nil, vals)
		if q.GroupBy != "" {
			// Alert rules read the label; legends read the display name (not "count SUCCESS").
			count.Labels = data.Labels{q.GroupBy: s.value}
			count.Config = &data.FieldConfig{DisplayNameFromDS: displayName(s.value)}
		}
		f := data.NewFrame("", data.NewField("time", nil, append([]time.Time(nil), times...)), count)
		f.RefID = r.RefID
		f.Meta = meta()
		frames = append(frames, f)
	}
	if len(frames) == 0 {
		// No series at all (grouped, nothing matched): the data plane's empty response.
		f := data.NewFrame("")
		f.RefID = r.RefID
		f.Meta = meta()
		frames = append(frames, f)
	}
	return frames, nil
}

// byLevel merges the counts per status into counts per level.
func byLevel(byStatus groupCounts) groupCounts {
	out := groupCounts{}
	for status, c := range byStatus {
		lv := severity(status)
		if out[lv] == nil {
			out[lv] = map[int64]int64{}
		}
		for b, k := range c {
			out[lv][b] += k
		}
	}
	return out
}

// bucketCounts counts the matching events of [r.From, r.To] per bucket index (from first, iv
// wide) and per groupBy value ("" for all when there is no groupBy).
func (e *Engine) bucketCounts(ctx context.Context, q *Query, r Request, first int64, iv time.Duration) (groupCounts, error) {
	out := groupCounts{}
	err := e.store.Counts(ctx, q.filter(""), r.From, r.To, q.GroupBy, read.Buckets{First: first, Width: int64(iv)}, func(v string, b, k int64) {
		m := out[v]
		if m == nil {
			m = map[int64]int64{}
			out[v] = m
		}
		m[b] += k
	})
	return out, err
}

// topCount is one row of a top query.
type topCount struct {
	value string
	count int64
}

func (e *Engine) top(ctx context.Context, q *Query, r Request) (data.Frames, error) {
	counts := map[string]int64{}
	if err := e.store.Counts(ctx, q.filter(""), r.From, r.To, q.GroupBy, read.Buckets{}, func(v string, _, k int64) { counts[v] += k }); err != nil {
		return nil, err
	}
	all := make([]topCount, 0, len(counts))
	for v, k := range counts {
		if k > 0 && v != "" { // no row for the events that lack the field
			all = append(all, topCount{v, k})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].count != all[j].count {
			return all[i].count > all[j].count
		}
		return all[i].value < all[j].value
	})
	if len(all) > q.Limit {
		all = all[:q.Limit]
	}
	vals := make([]string, len(all))
	cnts := make([]int64, len(all))
	for i, t := range all {
		vals[i], cnts[i] = t.value, t.count
	}
	f := data.NewFrame(r.RefID, data.NewField("value", nil, vals), data.NewField("count", nil, cnts))
	f.RefID = r.RefID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTable}
	return data.Frames{f}, nil
}

// NoneName is the display name of the series of events without a value for the groupBy field.
const NoneName = "(none)"

func displayName(v string) string {
	if v == "" {
		return NoneName
	}
	return v
}

func valuesFrame(refID string, vals []string) *data.Frame {
	if vals == nil {
		vals = []string{}
	}
	f := data.NewFrame(refID, data.NewField("value", nil, vals))
	f.RefID = refID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTable}
	return f
}
