package integration

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"gopkg.in/yaml.v3"
)

// Grafana's own rule evaluation (its server-side expressions) needs a Grafana server, which
// these tests do not have: they run the built plugin alone. evalRule stands in for it, for the
// expression types the provisioned rules use (reduce, math, threshold), after Grafana's
// pkg/expr: data-plane frames become labelled series or numbers, a binary operation joins its
// operands by labels (and, as Grafana does, joins a lone value on each side even when their
// labels differ), and the condition fires for every number that is not 0.

// alertFile is a provisioning file of alert rules.
type alertFile struct {
	APIVersion int `yaml:"apiVersion"`
	Groups     []struct {
		Name     string      `yaml:"name"`
		Folder   string      `yaml:"folder"`
		Interval string      `yaml:"interval"`
		Rules    []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

type alertRule struct {
	UID          string            `yaml:"uid"`
	Title        string            `yaml:"title"`
	Condition    string            `yaml:"condition"`
	NoDataState  string            `yaml:"noDataState"`
	ExecErrState string            `yaml:"execErrState"`
	Data         []alertQuery      `yaml:"data"`
	Annotations  map[string]string `yaml:"annotations"`
	Labels       map[string]string `yaml:"labels"`
}

type alertQuery struct {
	RefID             string `yaml:"refId"`
	RelativeTimeRange struct {
		From int64 `yaml:"from"`
		To   int64 `yaml:"to"`
	} `yaml:"relativeTimeRange"`
	DatasourceUID string         `yaml:"datasourceUid"`
	Model         map[string]any `yaml:"model"`
}

func loadAlertFile(t *testing.T, path string) alertFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f alertFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s is not valid YAML: %v", path, err)
	}
	if f.APIVersion != 1 || len(f.Groups) == 0 {
		t.Fatalf("%s: apiVersion %d, %d groups", path, f.APIVersion, len(f.Groups))
	}
	return f
}

// exprValue is one item of a query's or expression's result: a series, a number or "no data".
type exprValue struct {
	labels data.Labels
	series []*float64 // set for a series
	num    *float64   // a number; nil for null
	kind   int
}

const (
	kindNumber = iota
	kindSeries
	kindNoData
)

var noData = []exprValue{{kind: kindNoData}}

// framesToValues reads a data source's answer as Grafana's expressions do, for the frame types
// the plugin sends to alert rules: time series (data-plane multi or wide) become one series per
// numeric field, a numeric-long table one number per row and numeric field labelled by its
// string columns (its time columns are ignored). Other frames are an error, as in Grafana,
// which refuses long frames as alert input.
func framesToValues(frames data.Frames) ([]exprValue, error) {
	if len(frames) == 0 || frames[0].Meta == nil {
		if len(frames) == 0 {
			return noData, nil
		}
		return nil, fmt.Errorf("frame without a data-plane type")
	}
	var out []exprValue
	switch typ := frames[0].Meta.Type; typ {
	case data.FrameTypeTimeSeriesMulti, data.FrameTypeTimeSeriesWide:
		for _, f := range frames {
			for _, field := range f.Fields {
				if !field.Type().Numeric() {
					continue
				}
				v := exprValue{labels: field.Labels, kind: kindSeries}
				for i := 0; i < field.Len(); i++ {
					x, err := field.NullableFloatAt(i)
					if err != nil {
						return nil, err
					}
					v.series = append(v.series, x)
				}
				out = append(out, v)
			}
		}
	case data.FrameTypeNumericLong:
		f := frames[0]
		for row := 0; row < f.Rows(); row++ {
			labels := data.Labels{}
			for _, field := range f.Fields {
				if field.Type() == data.FieldTypeString || field.Type() == data.FieldTypeNullableString {
					s, _ := field.ConcreteAt(row)
					labels[field.Name], _ = s.(string)
				}
			}
			for _, field := range f.Fields {
				if field.Type().Numeric() {
					x, err := field.NullableFloatAt(row)
					if err != nil {
						return nil, err
					}
					out = append(out, exprValue{labels: labels, num: x})
				}
			}
		}
	default:
		return nil, fmt.Errorf("frame type %q is not one Grafana's expressions read for alerts", typ)
	}
	if len(out) == 0 {
		return noData, nil
	}
	return out, nil
}

// evalRule evaluates a rule at the instant at, as Grafana would: each data source query over
// its relative time range (run answers it), then the expressions in order. It returns the
// result of every refId; firing lists the condition's instances that fire, by their labels.
func evalRule(r alertRule, at time.Time, run func(q alertQuery, from, to time.Time) backend.DataResponse) (vars map[string][]exprValue, firing map[string]float64, err error) {
	vars = map[string][]exprValue{}
	for _, q := range r.Data {
		var res []exprValue
		if q.DatasourceUID == "__expr__" {
			res, err = evalExpr(q.Model, vars)
		} else {
			resp := run(q, at.Add(-time.Duration(q.RelativeTimeRange.From)*time.Second), at.Add(-time.Duration(q.RelativeTimeRange.To)*time.Second))
			if resp.Error != nil {
				return nil, nil, fmt.Errorf("query %s: %w", q.RefID, resp.Error)
			}
			res, err = framesToValues(resp.Frames)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", q.RefID, err)
		}
		vars[q.RefID] = res
	}
	cond, ok := vars[r.Condition]
	if !ok {
		return nil, nil, fmt.Errorf("condition %s is not a refId of the rule", r.Condition)
	}
	firing = map[string]float64{}
	for _, v := range cond {
		switch {
		case v.kind == kindNoData:
		case v.kind == kindSeries:
			return nil, nil, fmt.Errorf("condition %s is a time series, not reduced data", r.Condition)
		case v.num != nil && math.IsNaN(*v.num):
			return nil, nil, fmt.Errorf("condition %s is NaN for %v", r.Condition, v.labels)
		case v.num != nil && *v.num != 0:
			firing[v.labels.String()] = *v.num
		}
	}
	return vars, firing, nil
}

func evalExpr(m map[string]any, vars map[string][]exprValue) ([]exprValue, error) {
	input := func() ([]exprValue, error) {
		name, _ := m["expression"].(string)
		v, ok := vars[strings.TrimPrefix(name, "$")]
		if !ok {
			return nil, fmt.Errorf("unknown input %q", name)
		}
		return v, nil
	}
	switch m["type"] {
	case "reduce":
		in, err := input()
		if err != nil {
			return nil, err
		}
		reducer, _ := m["reducer"].(string)
		out := make([]exprValue, 0, len(in))
		for _, v := range in {
			if v.kind == kindSeries {
				v = exprValue{labels: v.labels, num: reduce(reducer, v.series)}
			}
			out = append(out, v)
		}
		return out, nil
	case "threshold":
		in, err := input()
		if err != nil {
			return nil, err
		}
		conds, _ := m["conditions"].([]any)
		if len(conds) != 1 {
			return nil, fmt.Errorf("threshold with %d conditions", len(conds))
		}
		ev, _ := conds[0].(map[string]any)["evaluator"].(map[string]any)
		params, _ := ev["params"].([]any)
		if len(params) != 1 {
			return nil, fmt.Errorf("threshold %v: want one parameter", ev)
		}
		limit, ok := toFloat(params[0])
		op := map[string]string{"gt": ">", "lt": "<"}[fmt.Sprint(ev["type"])]
		if !ok || op == "" {
			return nil, fmt.Errorf("threshold %v is not one this evaluator knows", ev)
		}
		return binary(op, in, []exprValue{{num: &limit}})
	case "math":
		expr, _ := m["expression"].(string)
		p := &mathParser{toks: tokenize(expr), vars: vars}
		res, err := p.parse(0)
		if err == nil && p.pos != len(p.toks) {
			err = fmt.Errorf("unexpected %q", p.toks[p.pos])
		}
		if err != nil {
			return nil, fmt.Errorf("math %q: %w", expr, err)
		}
		return res, nil
	}
	return nil, fmt.Errorf("expression type %v is not one this evaluator knows", m["type"])
}

func reduce(reducer string, xs []*float64) *float64 {
	var vals []float64
	for _, x := range xs {
		if x != nil {
			vals = append(vals, *x)
		}
	}
	var r float64
	switch reducer {
	case "sum":
		for _, x := range vals {
			r += x
		}
	case "count":
		r = float64(len(vals))
	case "last":
		if len(vals) == 0 {
			return nil
		}
		r = vals[len(vals)-1]
	default:
		r = math.NaN() // an unknown reducer makes the condition an error
	}
	return &r
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// binary applies op to two results joined by labels, as Grafana's union does.
func binary(op string, a, b []exprValue) ([]exprValue, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, nil
	}
	if a[0].kind == kindNoData || b[0].kind == kindNoData {
		return noData, nil
	}
	var out []exprValue
	join := func(x, y exprValue, labels data.Labels) error {
		if x.kind == kindSeries || y.kind == kindSeries {
			return fmt.Errorf("%s on a time series: reduce it first", op)
		}
		v := exprValue{labels: labels}
		if x.num != nil && y.num != nil {
			r, err := applyOp(op, *x.num, *y.num)
			if err != nil {
				return err
			}
			v.num = &r
		}
		out = append(out, v)
		return nil
	}
	for _, x := range a {
		for _, y := range b {
			var labels data.Labels
			switch {
			case x.labels.Equals(y.labels) || len(x.labels) == 0 || len(y.labels) == 0:
				labels = x.labels
				if len(labels) == 0 {
					labels = y.labels
				}
			case len(x.labels) == len(y.labels):
				continue
			case x.labels.Contains(y.labels):
				labels = x.labels
			case y.labels.Contains(x.labels):
				labels = y.labels
			default:
				continue
			}
			if err := join(x, y, labels); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 && len(a) == 1 && len(b) == 1 {
		// Grafana joins a lone value on each side whatever their labels, and drops them.
		if err := join(a[0], b[0], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func applyOp(op string, x, y float64) (float64, error) {
	b := func(c bool) float64 {
		if c {
			return 1
		}
		return 0
	}
	switch op {
	case "+":
		return x + y, nil
	case "-":
		return x - y, nil
	case "*":
		return x * y, nil
	case "/":
		return x / y, nil
	case ">":
		return b(x > y), nil
	case ">=":
		return b(x >= y), nil
	case "<":
		return b(x < y), nil
	case "<=":
		return b(x <= y), nil
	case "==":
		return b(x == y), nil
	case "!=":
		return b(x != y), nil
	case "&&":
		return b(x != 0 && y != 0), nil
	case "||":
		return b(x != 0 || y != 0), nil
	}
	return 0, fmt.Errorf("operator %q is not one this evaluator knows", op)
}

// precedence of the binary operators of Grafana's math expressions (as in Go).
var precedence = map[string]int{"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3, "+": 4, "-": 4, "*": 5, "/": 5}

func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '$' || c == '.' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == '_' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			if i+1 < len(s) && precedence[s[i:i+2]] > 0 {
				toks = append(toks, s[i:i+2])
				i += 2
			} else {
				toks = append(toks, string(c))
				i++
			}
		}
	}
	return toks
}

type mathParser struct {
	toks []string
	pos  int
	vars map[string][]exprValue
}

// parse reads operators of at least minPrec by precedence climbing.
func (p *mathParser) parse(minPrec int) ([]exprValue, error) {
	left, err := p.operand()
	if err != nil {
		return nil, err
	}
	for p.pos < len(p.toks) {
		op := p.toks[p.pos]
		prec := precedence[op]
		if prec == 0 || prec < minPrec {
			break
		}
		p.pos++
		right, err := p.parse(prec + 1)
		if err != nil {
			return nil, err
		}
		if left, err = binary(op, left, right); err != nil {
			return nil, err
		}
	}
	return left, nil
}

func (p *mathParser) operand() ([]exprValue, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("expression ends early")
	}
	tok := p.toks[p.pos]
	p.pos++
	switch {
	case tok == "(":
		v, err := p.parse(0)
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos] != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return v, nil
	case strings.HasPrefix(tok, "$"):
		v, ok := p.vars[tok[1:]]
		if !ok {
			return nil, fmt.Errorf("unknown variable %s", tok)
		}
		return v, nil
	}
	x, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return nil, fmt.Errorf("unexpected %q", tok)
	}
	return []exprValue{{num: &x}}, nil
}

// TestAlertEvaluator pins the evaluator to Grafana's semantics the detection rules rely on.
func TestAlertEvaluator(t *testing.T) {
	t.Parallel()
	num := func(x float64, kv ...string) exprValue {
		l := data.Labels{}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return exprValue{labels: l, num: &x}
	}
	vars := map[string][]exprValue{
		"F":   {num(5, "principal", "eve"), num(1, "principal", "bob")},
		"All": {num(6, "principal", "eve"), num(1, "principal", "bob"), num(2, "principal", "ann")},
		"One": {num(4, "principal", "eve")},
		"S":   {num(1, "principal", "ann")},
	}
	for _, c := range []struct {
		expr string
		want map[string]float64
	}{
		{"($F >= 3) && ($All - $F > 0)", map[string]float64{"principal=eve": 1, "principal=bob": 0}},
		{"$F >= 3 && $All - $F > 0", map[string]float64{"principal=eve": 1, "principal=bob": 0}},
		{"1 + 2 * 3 == 7", map[string]float64{"": 1}},
		// A lone value on each side is joined whatever its labels: eve's failures with ann's
		// success. This is why the rule does not use a SUCCESS-only query.
		{"$One >= 3 && $S > 0", map[string]float64{"": 1}},
	} {
		res, err := evalExpr(map[string]any{"type": "math", "expression": c.expr}, vars)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		got := map[string]float64{}
		for _, v := range res {
			got[v.labels.String()] = *v.num
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
	res, err := evalExpr(map[string]any{"type": "math", "expression": "$F > 0"}, map[string][]exprValue{"F": noData})
	if err != nil || len(res) != 1 || res[0].kind != kindNoData {
		t.Errorf("math on no data = %v, %v: want no data", res, err)
	}

	// A long frame (time, string and number columns without the numeric-long type) is refused,
	// as Grafana refuses it; typed numeric-long, its string columns label each row's count.
	f := data.NewFrame("", data.NewField("principal", nil, []string{"ci"}),
		data.NewField("firstSeen", nil, []time.Time{time.Unix(0, 0)}), data.NewField("count", nil, []int64{3}))
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesLong}
	if _, err := framesToValues(data.Frames{f}); err == nil {
		t.Error("a long frame was read as alert input")
	}
	f.Meta = &data.FrameMeta{Type: data.FrameTypeNumericLong, TypeVersion: data.FrameTypeVersion{0, 1}}
	vals, err := framesToValues(data.Frames{f})
	if err != nil || len(vals) != 1 || vals[0].labels.String() != "principal=ci" || *vals[0].num != 3 {
		t.Errorf("numeric-long frame: %+v, %v", vals, err)
	}
}
