package query

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"
)

// go test ./pkg/query -run TestGoldenFrames -update rewrites testdata/*.golden.jsonc.
var update = flag.Bool("update", false, "rewrite the golden frame files")

// TestGoldenFrames pins one answer per query type, frames, labels and notices, in files a
// reviewer reads: testdata/<name>.golden.jsonc.
func TestGoldenFrames(t *testing.T) {
	f := getFixture(t)
	for name, e := range backends(f) {
		t.Run(name, func(t *testing.T) {
			e.now = func() time.Time { return fixEnd }
			// The cache is synced up to a minute before the range's end, and covers the last 60 hours.
			fr := Freshness{SyncedUpTo: fixEnd.Add(-time.Minute), BackfillFrom: fixEnd.Add(-60 * time.Hour), BackfillDone: true}
			from, to := fixEnd.Add(-7*time.Hour), fixEnd
			odd := `"principals":["MetronLabs","ipless","u-odd-5","Robert'); DROP TABLE events;--"]`
			for _, c := range []struct{ name, js string }{
				{"logs", `{"queryType":"logs",` + odd + `}`},
				{"table", `{"queryType":"table",` + odd + `,"notStatuses":["SUCCESS"]}`},
				{"timeseries", `{"queryType":"timeseries","groupBy":"sourceIp",` + odd + `}`},
				{"timeseries-level", `{"queryType":"timeseries","groupBy":"level","adhocFilters":[{"key":"principal","operator":"=~","value":"Metron.*|ipless"}]}`},
				{"top", `{"queryType":"top","groupBy":"sourceIp","limit":5,"notSourceIps":["203.0.113.0/24"]}`},
				{"values", `{"queryType":"values","field":"userAgent","adhocFilters":[{"key":"userAgent","operator":"!~","value":"Mozilla.*"}]}`},
				{"newTerms", `{"queryType":"newTerms","fields":["principal","sourceIp"],"lookback":"3d","limit":5}`},
			} {
				t.Run(c.name, func(t *testing.T) {
					q := mustParse(t, c.js)
					frames, err := e.Run(context.Background(), Request{Query: q, From: from, To: to, Interval: time.Hour, RefID: "A"}, fr)
					if err != nil {
						t.Fatal(err)
					}
					experimental.CheckGoldenJSONResponse(t, "testdata", c.name+".golden", &backend.DataResponse{Frames: frames}, *update)
				})
			}
		})
	}
}
