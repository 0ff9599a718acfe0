package federation

import "testing"

// TestHubPrivacyConfig: the hub side reports the plan it runs, with the
// hub's rounds (PlanPrivacy) and the mode's defaults filled in, so that a
// caller states the plan from one place rather than from its own flags.
func TestHubPrivacyConfig(t *testing.T) {
	hc := HubConfig{Rounds: 4}
	p, err := NewHubPrivacy("dpsgd", hc.PlanPrivacy(ModeConfig{TargetEpsilon: 3, Clip: 1}))
	if err != nil {
		t.Fatal(err)
	}
	pc := p.Config()
	if pc.Rounds != 4 || pc.PatientsPerStep != 8 || pc.Delta != 1e-5 || pc.TargetEpsilon != 3 {
		t.Errorf("Config() = rounds %d, patients per step %g, delta %g, target %g; want 4, 8, 1e-5, 3",
			pc.Rounds, pc.PatientsPerStep, pc.Delta, pc.TargetEpsilon)
	}
}
