package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

// detectionTriggers is what fires each rule of the detection pack: the actions of a
// configuration rule, each done once with SUCCESS by the admin below. The rules without
// actions here (brute force, new terms) have their own triggers in detectionScenario.
var detectionTriggers = map[string][]string{
	"wiz-det-service-account-change":         {"CreateServiceAccount", "UpdateServiceAccount", "DeleteServiceAccount"},
	"wiz-det-service-account-secret-rotated": {"RotateServiceAccountSecret"},
	"wiz-det-admin-user-created":             {"CreateUser"},
	"wiz-det-user-deleted":                   {"DeleteUser"},
	"wiz-det-user-role-change":               {"CreateUserRole", "UpdateUserRole", "DeleteUserRole"},
	"wiz-det-login-settings-updated":         {"UpdateLoginSettings"},
	"wiz-det-saml-identity-provider-change": {"CreateSAMLIdentityProvider", "UpdateSAMLIdentityProvider",
		"DeleteSAMLIdentityProvider", "ModifySAMLIdentityProviderGroupMappings"},
	"wiz-det-ip-restrictions-updated": {"UpdateIPRestrictions"},
	"wiz-det-user-sessions-revoked":   {"RevokeUserSessions"},
	"wiz-det-detection-rule-change": {"UpdateCloudConfigurationRule", "DeleteCloudConfigurationRule",
		"UpdateCloudEventRule", "DeleteCloudEventRule", "UpdateHostConfigurationRule", "DeleteHostConfigurationRule",
		"UpdateAutomationRule", "DeleteAutomationRule"},
	"wiz-det-ignore-rule-change":       {"CreateIgnoreRule", "UpdateIgnoreRule", "DeleteIgnoreRule"},
	"wiz-det-malware-exclusion-change": {"CreateMalwareExclusion", "UpdateMalwareExclusion"},
	"wiz-det-scanner-settings-updated": {"UpdateScannerSettings"},
	"wiz-det-connector-change":         {"UpdateConnector", "DeleteConnector"},
	"wiz-det-integration-change":       {"UpdateIntegration", "DeleteIntegration"},
}

var (
	admin    = wizfake.Principal{ID: "admin-ops-id", Name: "admin.ops@example.com"}
	mallory  = wizfake.Principal{ID: "mallory-id", Name: "mallory@example.com"} // a burst of failed logins
	eve      = wizfake.Principal{ID: "eve-id", Name: "eve@example.com"}         // a success after failures
	nearMiss = wizfake.Principal{ID: "near-miss-id", Name: "near.miss@example.com"}
	ghostSA  = wizfake.Principal{ID: "ghost-sa-id", Name: "ghost-sa"}
)

// TestDetectionPack: every rule of the detection pack fires on its trigger, exactly once, and
// stays quiet without it. One tenant holds seven days of generated history (which ends four
// hours ago), then near misses at two instants — two hours ago and now — and each rule's trigger
// once, just before now. Each rule is evaluated at both instants (see evalRule: Grafana's own
// evaluation is not available here) with its queries answered by the built plugin as Grafana
// asks them: the FromAlert header and the rule's relative time range.
//
// The new-terms rules need the newTerms query type and ad-hoc filters in the backend.
func TestDetectionPack(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	file := loadAlertFile(t, filepath.Join(root, "provisioning", "alerting", "wiz-audit-detections.yml"))
	uids := provisionedUIDs(t, root)

	now := time.Now().UTC().Truncate(time.Second)
	quiet := now.Add(-2 * time.Hour)
	e := prepareEnv(t, wizfake.Options{Seed: 13, Events: 3000, Span: 7 * 24 * time.Hour, End: now.Add(-4 * time.Hour)},
		map[string]any{"backfillStart": now.Add(-8 * 24 * time.Hour).Format(time.RFC3339)})
	want := detectionScenario(t, e.tenant, now, quiet)
	e.start()
	e.waitFor("the backfill and the triggers", 120*time.Second, func(st syncStatus) bool {
		return st.Backfill != nil && st.Backfill.Done == 1 && st.SyncedUpTo != nil && !st.SyncedUpTo.Before(now)
	})

	alert := map[string]string{backend.FromAlertHeaderName: "true"}
	run := func(q alertQuery, from, to time.Time) backend.DataResponse {
		return e.query(alert, from, to, q.Model)
	}
	seen := map[string]bool{}
	for _, g := range file.Groups {
		if g.Folder != "Wiz audit detections" || g.Interval == "" {
			t.Errorf("group %s: folder %q, interval %q", g.Name, g.Folder, g.Interval)
		}
		for _, r := range g.Rules {
			seen[r.UID] = true
			t.Run(r.UID, func(t *testing.T) {
				checkDetectionRule(t, r, uids)
				w, ok := want[r.UID]
				if !ok {
					t.Fatal("no trigger in the test for this rule")
				}
				_, firing, err := evalRule(r, quiet, run)
				if err != nil {
					t.Fatalf("at the quiet instant: %v", err)
				}
				if len(firing) != 0 {
					t.Errorf("fires without its trigger: %v", firing)
				}
				vars, firing, err := evalRule(r, now, run)
				if err != nil {
					t.Fatalf("at the trigger: %v", err)
				}
				if len(firing) != 1 || firing[w.labels.String()] == 0 {
					t.Errorf("fires %v on its trigger, want exactly {%s}", firing, w.labels)
				}
				renderAnnotations(t, r, w.labels, vars)
				// The configuration rules count exactly their trigger's events.
				if w.count > 0 {
					if got := vars["B"]; len(got) != 1 || got[0].num == nil || *got[0].num != float64(w.count) {
						t.Errorf("B = %s, want %d events of {%s}", describe(got), w.count, w.labels)
					}
				}
			})
		}
	}
	for uid := range want {
		if !seen[uid] {
			t.Errorf("rule %s is not in the detection pack", uid)
		}
	}
}

// checkDetectionRule: what every rule of the pack carries.
func checkDetectionRule(t *testing.T, r alertRule, uids map[string]bool) {
	if r.Title == "" || r.Annotations["summary"] == "" || r.Annotations["runbook"] == "" {
		t.Errorf("title %q, annotations %v: want a title, a summary and a runbook", r.Title, r.Annotations)
	}
	if !slices.Contains([]string{"critical", "high", "medium", "low"}, r.Labels["severity"]) {
		t.Errorf("severity %q", r.Labels["severity"])
	}
	if r.ExecErrState != "Error" || r.NoDataState != "OK" {
		t.Errorf("execErrState %q, noDataState %q: want Error and OK", r.ExecErrState, r.NoDataState)
	}
	for _, q := range r.Data {
		if q.DatasourceUID != "__expr__" && (q.DatasourceUID != "wiz-demo" || !uids[q.DatasourceUID] || q.RelativeTimeRange.From <= 0) {
			t.Errorf("query %s: data source %q, time range %+v", q.RefID, q.DatasourceUID, q.RelativeTimeRange)
		}
	}
}

// expectation is the one alert instance a rule fires at its trigger, and for a configuration
// rule the number of trigger events it counts.
type expectation struct {
	labels data.Labels
	count  int
}

// detectionScenario adds the near misses (at quiet and at now) and the triggers (at now) to
// the tenant, and returns what each rule fires at now.
func detectionScenario(t *testing.T, tenant *wizfake.Tenant, now, quiet time.Time) map[string]expectation {
	n := 0
	var evs []wizfake.Event
	add := func(at time.Time, action, status string, p wizfake.Principal, service bool, ip, ua string, params json.RawMessage) {
		n++
		ev := wizfake.Event{
			ID: fmt.Sprintf("detection-%04d", n), RequestID: fmt.Sprintf("detection-request-%04d", n),
			Action: action, Status: status, Timestamp: at, SourceIP: ip, UserAgent: ua, ActionParameters: params,
		}
		if ev.ActionParameters == nil {
			ev.ActionParameters = wizfake.AdminParams(action, uint64(n))
		}
		if service {
			ev.ServiceAccount = &p
		} else {
			ev.User = &p
		}
		evs = append(evs, ev)
	}
	const browser = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
	login := json.RawMessage(`{"clientID":"c","scopes":["*"]}`)
	reports := json.RawMessage(`{"first":100,"after":null}`)
	createUser := func(email, role string) json.RawMessage {
		// Indented, as another client might send it: the rule's search must not depend on it.
		b, _ := json.MarshalIndent(map[string]any{"input": map[string]any{
			"assignedProjectIds": nil, "email": email, "expiresAt": nil, "name": "New User", "role": role,
		}, "selection": []any{"__typename", map[string]any{"user": []string{"__typename", "id"}}}}, "", "  ")
		return b
	}

	// A service account's usual source IP and user agent, from the generated history.
	sa := map[string]wizfake.Event{}
	for _, ent := range tenant.Events() {
		if ev := ent.Event; ev.ServiceAccount != nil && ev.User == nil && ev.SourceIP != "" && ev.UserAgent != "" {
			sa[ev.ServiceAccount.Name] = ev
		}
	}
	ci, siem := sa["grafana-audit"], sa["siem-forwarder"]
	if ci.ID == "" || siem.ID == "" {
		t.Fatalf("no usual source IP and user agent for the service accounts in the history")
	}

	for _, at := range []time.Time{quiet, now} {
		at := at.Add(-9 * time.Minute)
		// Every administrative action, failed: a failed attempt changed nothing.
		for _, actions := range detectionTriggers {
			for _, a := range actions {
				add(at, a, "FAILED", admin, false, "198.51.100.9", browser, nil)
			}
		}
		// A user created with another role, whose e-mail address says GLOBAL_ADMIN.
		add(at, "CreateUser", "SUCCESS", admin, false, "198.51.100.9", browser, createUser("global_admin.backup@example.com", "GLOBAL_READER"))
		// Four failed logins (the burst needs five), then two and a success (that needs three).
		for i := 0; i < 4; i++ {
			add(at.Add(time.Duration(i)*time.Minute), "Login", "FAILED", nearMiss, false, "203.0.113.50", browser, login)
		}
		add(at.Add(5*time.Minute), "Login", "FAILED", eve, false, "203.0.113.51", browser, login)
		add(at.Add(5*time.Minute), "Login", "FAILED", eve, false, "203.0.113.51", browser, login)
		add(at.Add(6*time.Minute), "Login", "SUCCESS", eve, false, "203.0.113.51", browser, login)
		// Service accounts as usual; a user from a new address and with a new user agent; a new
		// service account with neither a source IP nor a user agent.
		add(at, "Reports", "SUCCESS", *ci.ServiceAccount, true, ci.SourceIP, ci.UserAgent, reports)
		add(at, "Reports", "SUCCESS", *siem.ServiceAccount, true, siem.SourceIP, siem.UserAgent, reports)
		add(at, "Reports", "SUCCESS", nearMiss, false, "192.0.2.200", "Wget/1.21.4", reports)
		add(at, "Reports", "SUCCESS", ghostSA, true, "", "", reports)
	}
	want := map[string]expectation{}
	at := now.Add(-5 * time.Minute)
	for uid, actions := range detectionTriggers {
		for _, a := range actions {
			var params json.RawMessage
			if a == "CreateUser" {
				params = createUser("new.admin@example.com", "GLOBAL_ADMIN")
			}
			add(at, a, "SUCCESS", admin, false, "198.51.100.9", browser, params)
		}
		want[uid] = expectation{labels: data.Labels{"principal": admin.Name}, count: len(actions)}
	}
	for i := 0; i < 5; i++ {
		add(at.Add(time.Duration(i)*20*time.Second), "Login", "FAILED", mallory, false, "203.0.113.66", browser, login)
	}
	want["wiz-det-failed-login-burst"] = expectation{labels: data.Labels{"principal": mallory.Name}}
	// With the near misses at now, eve's third failure and a success.
	add(at.Add(time.Minute), "Login", "FAILED", eve, false, "203.0.113.51", browser, login)
	add(at.Add(2*time.Minute), "Login", "SUCCESS", eve, false, "203.0.113.51", browser, login)
	want["wiz-det-login-after-failures"] = expectation{labels: data.Labels{"principal": eve.Name}}
	add(at, "Reports", "SUCCESS", *ci.ServiceAccount, true, "192.0.2.77", ci.UserAgent, reports)
	want["wiz-det-service-account-new-source-ip"] = expectation{labels: data.Labels{"principal": ci.ServiceAccount.Name, "sourceIp": "192.0.2.77"}}
	add(at, "Reports", "SUCCESS", *siem.ServiceAccount, true, siem.SourceIP, "Wget/1.21.4", reports)
	want["wiz-det-service-account-new-user-agent"] = expectation{labels: data.Labels{"principal": siem.ServiceAccount.Name, "userAgent": "Wget/1.21.4"}}

	if err := tenant.Add(evs...); err != nil {
		t.Fatal(err)
	}
	return want
}

func describe(vals []exprValue) string {
	var parts []string
	for _, v := range vals {
		switch {
		case v.kind == kindNoData:
			parts = append(parts, "no data")
		case v.num != nil:
			parts = append(parts, fmt.Sprintf("{%s} %g", v.labels, *v.num))
		default:
			parts = append(parts, fmt.Sprintf("{%s} %v", v.labels, v.series))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// renderAnnotations expands a firing rule's annotations as Grafana does (Go templates with
// $labels and $values), so that a summary naming a label the rule does not have fails.
func renderAnnotations(t *testing.T, r alertRule, labels data.Labels, vars map[string][]exprValue) {
	type value struct {
		Labels data.Labels
		Value  float64
	}
	values := map[string]value{} // each reduced refId's value for this instance
	for ref, vs := range vars {
		for _, v := range vs {
			if v.num != nil && (v.labels.Equals(labels) || len(vs) == 1) {
				values[ref] = value{Labels: v.labels, Value: *v.num}
			}
		}
	}
	for name, text := range r.Annotations {
		tmpl, err := template.New(name).Option("missingkey=error").
			Parse("{{- $labels := .Labels -}}{{- $values := .Values -}}" + text)
		if err != nil {
			t.Errorf("annotation %s: %v", name, err)
			continue
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]any{"Labels": map[string]string(labels), "Values": values}); err != nil {
			t.Errorf("annotation %s: %v", name, err)
		}
	}
}
