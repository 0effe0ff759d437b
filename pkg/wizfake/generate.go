package wizfake

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The generator derives every field of a generated event from one 64-bit seed, so the tenant
// keeps only (timestamp, seed) per generated event and renders the rest on demand.

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rng is a tiny deterministic generator for rendering one event.
type rng struct{ s uint64 }

func (r *rng) next() uint64 { r.s = splitmix(r.s); return r.s }

// intn returns a number in [0,n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) chance(p float64) bool { return float64(r.next()>>11)/(1<<53) < p }

func (r *rng) alnum(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.intn(len(letters))]
	}
	return string(b)
}

func uuidFrom(a, b uint64) string {
	var u [16]byte
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// genID is the id of the generated event with this seed.
func genID(seed uint64) string { return uuidFrom(splitmix(seed^0x1d), splitmix(seed^0x2e)) }

type principal struct {
	Principal
	service bool
	email   string
	ips     []string
	agents  []string // "" stands for null
	role    string
}

var (
	userFirst = []string{"ana", "bram", "chioma", "dev", "elif", "farid", "greta", "hiro", "ines", "jonas", "kofi", "lena", "mateo", "nadia", "oskar", "priya"}
	userLast  = []string{"almeida", "berg", "costa", "dubois", "eriksen", "fischer", "garcia", "haddad", "ivanova", "jensen", "kim", "lopez"}
	saNames   = []string{"SOC-Pipeline", "terraform-ci", "grafana-audit", "ticket-sync", "cspm-export", "backup-auditor", "siem-forwarder", "inventory-bot"}
	roles     = []string{"GLOBAL_ADMIN", "GLOBAL_READER", "PROJECT_ADMIN", "PROJECT_READER", "SECURITY_ANALYST"}
	browsers  = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
	}
	tools = []string{"python-requests/2.32.3", "Go-http-client/2.0", "terraform-provider-example/1.4.0", "curl/8.9.1"}
	// The scopes a service account's Login lists.
	saScopes = [][]string{
		{"read:issues", "read:reports", "admin:audit"},
		{"read:all", "create:reports", "update:reports"},
		{"read:vulnerabilities", "read:cloud_configuration"},
	}
)

func makePrincipals(seed uint64) []principal {
	r := rng{s: seed ^ 0x5eed}
	var ps []principal
	for i := 0; i < 24; i++ {
		first, last := userFirst[r.intn(len(userFirst))], userLast[r.intn(len(userLast))]
		name := first + "." + last
		p := principal{
			Principal: Principal{ID: r.alnum(52), Name: name},
			email:     name + "@example.com",
			role:      roles[r.intn(len(roles))],
		}
		for j := 0; j < 1+r.intn(2); j++ {
			p.ips = append(p.ips, fmt.Sprintf("198.51.100.%d", 1+r.intn(254)))
		}
		p.agents = []string{browsers[r.intn(len(browsers))], browsers[r.intn(len(browsers))]}
		ps = append(ps, p)
	}
	for i, n := range saNames {
		p := principal{
			Principal: Principal{ID: r.alnum(52), Name: n},
			service:   true,
			role:      roles[i%2],
		}
		p.ips = []string{fmt.Sprintf("203.0.113.%d", 1+r.intn(254)), fmt.Sprintf("10.%d.%d.%d", r.intn(256), r.intn(256), 1+r.intn(254))}
		p.agents = []string{tools[r.intn(len(tools))], ""}
		ps = append(ps, p)
	}
	return ps
}

type weighted struct {
	action string
	w      int
}

var (
	userActions = []weighted{{"Login", 30}, {" user Login", 3}, {"TokenRefresh", 12}, {"Reports", 10}, {"UpdateReport", 6},
		{"RerunReport", 5}, {"UpdateUser", 8}, {"CreateSAMLUser", 3}, {"RevokeSessions", 3}, {"Issues", 10}, {"UpdateIssue", 10}}
	serviceActions = []weighted{{"Login", 15}, {"TokenRefresh", 15}, {"Reports", 25}, {"RerunReport", 10}, {"UpdateReport", 5},
		{"Issues", 20}, {"CloudResources", 10}}
)

func pick(r *rng, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	n := r.intn(total)
	for _, w := range ws {
		if n < w.w {
			return w.action
		}
		n -= w.w
	}
	return ws[0].action
}

// genEvent renders the generated event with this seed and timestamp.
func (t *Tenant) genEvent(seed uint64, ts time.Time) Event {
	r := rng{s: seed}
	ps := t.principals
	// Service accounts are the chattier principals: about 60% of the events.
	var p *principal
	users := len(ps) - len(saNames)
	if r.chance(0.6) {
		p = &ps[users+r.intn(len(saNames))]
	} else {
		p = &ps[r.intn(users)]
	}
	ev := Event{
		ID:        genID(seed),
		Timestamp: ts,
		Status:    "SUCCESS",
	}
	switch x := r.intn(100); {
	case x < 8:
		ev.Status = "FAILED"
	case x < 12:
		ev.Status = "ACCESS_DENIED"
	}
	if p.service {
		ev.Action = pick(&r, serviceActions)
		sa := p.Principal
		ev.ServiceAccount = &sa
	} else {
		ev.Action = pick(&r, userActions)
		u := p.Principal
		ev.User = &u
	}
	// Now and then an administrative action instead, from a draw of its own so that every
	// other event stays what it was.
	if a := (rng{s: seed ^ 0xad417}); a.chance(adminShare) {
		ev.Action = AdminActions[a.intn(len(AdminActions))]
	}
	ev.RequestID = uuidFrom(r.next(), r.next())
	login := ev.Action == "Login" || ev.Action == " user Login"
	if login {
		ev.RequestID = ev.ID
	}
	if !r.chance(0.1) {
		ev.SourceIP = p.ips[r.intn(len(p.ips))]
	}
	if !r.chance(0.12) {
		ev.UserAgent = p.agents[r.intn(len(p.agents))]
	}
	// Now and then a service account's event also names the user behind it.
	if p.service && r.chance(0.02) {
		u := ps[r.intn(users)].Principal
		ev.User = &u
	}
	ev.ActionParameters = genParams(&r, ev, p)
	return ev
}

func genParams(r *rng, ev Event, p *principal) json.RawMessage {
	if slices.Contains(AdminActions, ev.Action) {
		return AdminParams(ev.Action, r.next())
	}
	var v any
	switch ev.Action {
	case "Login", " user Login":
		scopes := []string{"*"}
		if p.service {
			scopes = saScopes[r.intn(len(saScopes))]
		}
		m := map[string]any{
			"clientID":     r.alnum(26),
			"groups":       nil,
			"name":         p.Name,
			"products":     []string{"*"},
			"role":         "",
			"scopes":       scopes,
			"userEmail":    p.email,
			"userID":       p.ID,
			"userpoolID":   "eu-central-1_" + r.alnum(9),
			"userPoolType": "",
		}
		if !p.service {
			m["role"] = p.role
			m["groups"] = []string{"wiz-" + p.role}
		}
		if ev.Status != "SUCCESS" {
			m["error"] = "invalid credentials"
		}
		v = m
	case "TokenRefresh":
		v = map[string]any{"clientID": r.alnum(26), "userID": p.ID}
	case "Reports", "Issues", "CloudResources":
		v = map[string]any{
			"first":    []int{20, 100, 500}[r.intn(3)],
			"after":    nil,
			"filterBy": map[string]any{"status": []string{"OPEN"}},
			"selection": map[string]any{
				"nodes":    map[string]any{"id": true, "name": true},
				"pageInfo": map[string]any{"hasNextPage": true, "endCursor": true},
			},
		}
	case "RerunReport":
		v = map[string]any{"input": map[string]any{"id": uuidFrom(r.next(), r.next())}, "selection": map[string]any{"report": map[string]any{"id": true}}}
	case "UpdateReport":
		v = map[string]any{"input": map[string]any{"id": uuidFrom(r.next(), r.next()), "override": map[string]any{"name": "Weekly posture " + strconv.Itoa(r.intn(50))}}}
	case "UpdateIssue":
		v = map[string]any{"input": map[string]any{"id": uuidFrom(r.next(), r.next()), "patch": map[string]any{"status": "IN_PROGRESS"}}}
	case "CreateSAMLUser":
		v = map[string]any{"input": map[string]any{"email": r.alnum(8) + "@example.org", "name": "New User", "role": roles[r.intn(len(roles))]}}
	case "RevokeSessions":
		v = map[string]any{"input": map[string]any{"userId": r.alnum(52)}}
	case "UpdateUser":
		v = map[string]any{"input": map[string]any{"id": r.alnum(52), "patch": map[string]any{"role": roles[r.intn(len(roles))]}}}
	default:
		v = map[string]any{}
	}
	b, _ := json.Marshal(v) // maps of plain values always marshal
	return b
}

// AdminActions are the administrative actions that the Wiz detections of SIEMs watch: service
// accounts, users and roles, login, SAML and IP settings, detection and automation rules,
// ignore rules and malware exclusions, scanner settings, connectors and integrations. About
// one generated event in 300 is one of them.
var AdminActions = []string{
	"CreateServiceAccount", "UpdateServiceAccount", "DeleteServiceAccount", "RotateServiceAccountSecret",
	"CreateUser", "DeleteUser", "CreateUserRole", "UpdateUserRole", "DeleteUserRole",
	"UpdateLoginSettings", "CreateSAMLIdentityProvider", "UpdateSAMLIdentityProvider", "DeleteSAMLIdentityProvider",
	"ModifySAMLIdentityProviderGroupMappings", "UpdateIPRestrictions", "RevokeUserSessions",
	"UpdateCloudConfigurationRule", "DeleteCloudConfigurationRule", "UpdateCloudEventRule", "DeleteCloudEventRule",
	"UpdateHostConfigurationRule", "DeleteHostConfigurationRule", "UpdateAutomationRule", "DeleteAutomationRule",
	"CreateIgnoreRule", "UpdateIgnoreRule", "DeleteIgnoreRule", "CreateMalwareExclusion", "UpdateMalwareExclusion",
	"UpdateScannerSettings", "UpdateConnector", "DeleteConnector", "UpdateIntegration", "DeleteIntegration",
}

const adminShare = 1.0 / 300

// AdminParams returns actionParameters for one of AdminActions as Wiz records them (the
// mutation's GraphQL variables and selection), derived from seed. CreateUser names one of the
// roles users have, GLOBAL_ADMIN among them.
func AdminParams(action string, seed uint64) json.RawMessage {
	r := rng{s: seed}
	id := uuidFrom(r.next(), r.next())
	name := saNames[r.intn(len(saNames))] + "-" + r.alnum(4)
	var input map[string]any
	switch action {
	case "RotateServiceAccountSecret":
		b, _ := json.Marshal(map[string]any{"ID": r.alnum(52), "selection": []any{"__typename",
			map[string]any{"serviceAccount": []string{"__typename", "id", "clientId", "lastRotatedAt", "clientSecret"}}}})
		return b
	case "CreateServiceAccount":
		input = map[string]any{"name": name, "type": "THIRD_PARTY", "scopes": saScopes[r.intn(len(saScopes))], "assignedProjectIds": nil}
	case "CreateUser":
		first, last := userFirst[r.intn(len(userFirst))], userLast[r.intn(len(userLast))]
		input = map[string]any{"name": first + " " + last, "email": first + "." + last + "@example.com",
			"role": roles[r.intn(len(roles))], "assignedProjectIds": nil, "expiresAt": nil}
	case "CreateUserRole":
		input = map[string]any{"name": "role-" + r.alnum(6), "scopes": saScopes[r.intn(len(saScopes))]}
	case "CreateSAMLIdentityProvider":
		input = map[string]any{"name": "okta-" + r.alnum(4), "issuerURL": "http://www.okta.com/" + r.alnum(20),
			"loginURL": "https://example.okta.com/app/wiz/sso/saml", "useProviderManagedRoles": r.chance(0.5)}
	case "ModifySAMLIdentityProviderGroupMappings":
		input = map[string]any{"id": id, "patch": map[string]any{"upsert": map[string]any{"groupMappings": []any{
			map[string]any{"providerGroupId": "wiz-" + strings.ToLower(roles[r.intn(len(roles))]), "role": roles[r.intn(len(roles))], "projects": nil}}}}}
	case "UpdateLoginSettings":
		input = map[string]any{"patch": map[string]any{"approvedUserDomains": []string{"example.com", "example.org"}}}
	case "UpdateIPRestrictions":
		input = map[string]any{"serviceAccountAccessAllowedIPs": []string{"203.0.113.0/24", "10.0.0.0/8"},
			"userAccessAllowedIPs": []string{"198.51.100.0/24"}}
	case "UpdateScannerSettings":
		input = map[string]any{"patch": map[string]any{"prioritizeActiveComputeResourcesForVulnerabilityScanning": r.chance(0.5)}}
	case "CreateIgnoreRule":
		input = map[string]any{"name": "accepted risk " + r.alnum(4), "reason": "WONT_FIX", "expiredAt": nil,
			"conditions": map[string]any{"projectId": []string{id}}}
	case "CreateMalwareExclusion":
		input = map[string]any{"name": name, "paths": []string{"/opt/" + r.alnum(6)}, "resourceIDs": []string{uuidFrom(r.next(), r.next())}}
	default:
		input = map[string]any{"id": id}
		if strings.HasPrefix(action, "Update") {
			input["patch"] = map[string]any{"enabled": r.chance(0.5)}
		}
	}
	b, _ := json.Marshal(map[string]any{"input": input, "selection": []string{"__typename", "_stub"}}) // plain values always marshal
	return b
}
