package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"gopkg.in/yaml.v3"

	"github.com/seed/wizauditlogs/pkg/pluginharness"
	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// TestProvisionedDashboardsAndAlerts: every provisioned dashboard and alert rule parses, points
// at a provisioned data source, and every query in it is one the plugin accepts and answers
// with data from a synced tenant.
func TestProvisionedDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	uids := provisionedUIDs(t, root)

	now := time.Now().UTC()
	e := newEnv(t, wizfake.Options{Seed: 9, Events: 6000, Span: 7 * 24 * time.Hour, End: now.Add(-time.Minute)},
		map[string]any{"backfillStart": now.Add(-8 * 24 * time.Hour).Format(time.RFC3339)})
	e.waitFor("the backfill", 90*time.Second, func(st syncStatus) bool { return st.Backfill != nil && st.Backfill.Done == 1 })

	dashboards, _ := filepath.Glob(filepath.Join(root, "provisioning", "dashboards", "*.json"))
	if len(dashboards) == 0 {
		t.Fatal("no provisioned dashboard")
	}
	for _, path := range dashboards {
		t.Run(filepath.Base(path), func(t *testing.T) { checkDashboard(t, e, path, uids) })
	}
	alerts, _ := filepath.Glob(filepath.Join(root, "provisioning", "alerting", "*.yml"))
	if len(alerts) == 0 {
		t.Fatal("no provisioned alert rules")
	}
	for _, path := range alerts {
		t.Run(filepath.Base(path), func(t *testing.T) { checkAlertRules(t, e, path, uids) })
	}
}

type dashboard struct {
	ID         any    `json:"id"`
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
			Current    struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			Datasource map[string]any  `json:"datasource"`
			Target     json.RawMessage `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []struct {
		Title      string            `json:"title"`
		Datasource map[string]any    `json:"datasource"`
		Targets    []json.RawMessage `json:"targets"`
	} `json:"panels"`
}

func checkDashboard(t *testing.T, e *env, path string, uids map[string]bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("not valid dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.ID != nil {
		t.Errorf("uid %q, title %q, id %v: want a uid, a title and no hard-coded id", d.UID, d.Title, d.ID)
	}

	// Data source references: a provisioned uid, or the dashboard's data source variable whose
	// default is one.
	dsVar := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			if s, _ := v.Current.Value.(string); uids[s] {
				dsVar["${"+v.Name+"}"] = true
			} else {
				t.Errorf("data source variable %s defaults to %v, not a provisioned uid", v.Name, v.Current.Value)
			}
		}
	}
	checkRef := func(where string, ref map[string]any) {
		uid, _ := ref["uid"].(string)
		if ref["type"] != pluginharness.PluginID || !(uids[uid] || dsVar[uid]) {
			t.Errorf("%s: data source %v is not a provisioned Wiz Audit Logs data source", where, ref)
		}
	}

	// Template variables: values queries, run for real; their answers interpolate the panels.
	values := map[string][]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		checkRef("variable "+v.Name, v.Datasource)
		q, _ := json.Marshal(v.Query)
		frames := runOK(t, e, "variable "+v.Name, q, nil)
		for _, f := range frames {
			for i := 0; i < f.Rows(); i++ {
				values["$"+v.Name] = append(values["$"+v.Name], f.Fields[0].At(i).(string))
			}
		}
		if len(values["$"+v.Name]) == 0 {
			t.Errorf("variable %s has no values", v.Name)
		}
	}
	for _, want := range []string{"$action", "$status", "$principal"} {
		if _, ok := values[want]; !ok {
			t.Errorf("no template variable %s", want)
		}
	}

	for _, p := range d.Panels {
		checkRef("panel "+p.Title, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %s has no query", p.Title)
		}
		for _, target := range p.Targets {
			var ref struct {
				Datasource map[string]any `json:"datasource"`
			}
			_ = json.Unmarshal(target, &ref)
			checkRef("panel "+p.Title+" target", ref.Datasource)
			runOK(t, e, "panel "+p.Title, interpolate(t, target, values), nil)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Datasource["type"] == "grafana" {
			continue
		}
		checkRef("annotation "+a.Name, a.Datasource)
		runOK(t, e, "annotation "+a.Name, interpolate(t, a.Target, values), nil)
	}
}

// interpolate does what the frontend does with an "All" selection: a list entry naming a
// multi-value variable becomes all of its values.
func interpolate(t *testing.T, target json.RawMessage, values map[string][]string) json.RawMessage {
	var q map[string]any
	if err := json.Unmarshal(target, &q); err != nil {
		t.Fatal(err)
	}
	for k, v := range q {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		var out []any
		for _, item := range list {
			if s, ok := item.(string); ok && strings.HasPrefix(s, "$") {
				vals, known := values[s]
				if !known {
					t.Errorf("%s refers to unknown variable %s", k, s)
				}
				for _, v := range vals {
					out = append(out, v)
				}
				continue
			}
			out = append(out, item)
		}
		q[k] = out
	}
	raw, _ := json.Marshal(q)
	return raw
}

// runOK runs a query over the dashboard's default range (7 days) and fails unless it answers
// without error and with at least one row.
func runOK(t *testing.T, e *env, what string, q json.RawMessage, headers map[string]string) data.Frames {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(q, &m); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	now := time.Now().UTC()
	res := e.query(headers, now.Add(-7*24*time.Hour), now, m)
	if res.Error != nil {
		t.Errorf("%s: %v", what, res.Error)
		return nil
	}
	rows := 0
	for _, f := range res.Frames {
		rows += f.Rows()
	}
	if rows == 0 {
		t.Errorf("%s returned no data: %s", what, q)
	}
	return res.Frames
}

func checkAlertRules(t *testing.T, e *env, path string, uids map[string]bool) {
	file := loadAlertFile(t, path)
	alert := map[string]string{backend.FromAlertHeaderName: "true"}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.UID == "" || len(r.UID) > 40 || r.Title == "" || r.Condition == "" {
				t.Errorf("rule %q: uid (at most 40 characters, Grafana's limit), title and condition are required", r.Title)
			}
			// Each query runs through the plugin as Grafana asks it, and the expressions read
			// the answers as Grafana's would (evalRule).
			plugin := 0
			run := func(q alertQuery, from, to time.Time) backend.DataResponse {
				plugin++
				if !uids[q.DatasourceUID] {
					t.Errorf("rule %s: data source %q is not provisioned", r.Title, q.DatasourceUID)
				}
				if qt := q.Model["queryType"]; qt != "timeseries" && qt != "newTerms" {
					t.Errorf("rule %s: query type %v, want timeseries or newTerms", r.Title, qt)
				}
				return e.query(alert, from, to, q.Model)
			}
			if _, _, err := evalRule(r, time.Now().UTC(), run); err != nil {
				t.Errorf("rule %s: %v", r.Title, err)
			}
			if plugin == 0 {
				t.Errorf("rule %s queries no Wiz data source", r.Title)
			}
		}
	}
}

func provisionedUIDs(t *testing.T, root string) map[string]bool {
	files, _ := filepath.Glob(filepath.Join(root, "provisioning", "datasources", "*.yml"))
	uids := map[string]bool{}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Datasources []struct {
				Type string `yaml:"type"`
				UID  string `yaml:"uid"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(raw, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, ds := range f.Datasources {
			if ds.Type == pluginharness.PluginID && ds.UID != "" {
				uids[ds.UID] = true
			}
		}
	}
	if !uids["wiz-audit"] || !uids["wiz-demo"] {
		t.Fatalf("provisioned uids %v: want wiz-audit and wiz-demo", uids)
	}
	return uids
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(dir)) // pkg/integration → the repository
}
