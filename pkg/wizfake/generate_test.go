package wizfake

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestAdminActionsAreRareAndReal: the random mix holds every administrative action the
// detection pack watches, rarely, each with the mutation's input in its actionParameters.
func TestAdminActionsAreRareAndReal(t *testing.T) {
	t.Parallel()
	const n = 60000
	tn := New(Options{Seed: 4})
	counts := map[string]int{}
	admin, roles := 0, map[string]bool{}
	for i := uint64(1); i <= n; i++ {
		e := tn.genEvent(splitmix(i), t0)
		counts[e.Action]++
		var p struct {
			Input map[string]any `json:"input"`
			ID    string         `json:"ID"`
		}
		if err := json.Unmarshal(e.ActionParameters, &p); err != nil {
			t.Fatalf("%s: %v: %s", e.Action, err, e.ActionParameters)
		}
		if !slices.Contains(AdminActions, e.Action) {
			continue
		}
		admin++
		if p.Input == nil && p.ID == "" {
			t.Errorf("%s without input: %s", e.Action, e.ActionParameters)
		}
		if e.Action == "CreateUser" {
			role, _ := p.Input["role"].(string)
			roles[role] = true
		}
	}
	for _, a := range AdminActions {
		if counts[a] == 0 {
			t.Errorf("no %s among %d events", a, n)
		}
	}
	if share := float64(admin) / n; share < 0.002 || share > 0.005 {
		t.Errorf("administrative actions are %.2f%% of the mix, want about 0.3%%", 100*share)
	}
	if !roles["GLOBAL_ADMIN"] || len(roles) < 3 {
		t.Errorf("CreateUser roles %v: want GLOBAL_ADMIN among several", roles)
	}
}
