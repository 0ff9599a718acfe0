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

// TestModeTrainsDPSGD: the one rule for which modes train with DP-SGD on
// the devices (the command, the demo and the benchmarks compared names).
func TestModeTrainsDPSGD(t *testing.T) {
	var got []string
	for _, m := range append(ModeNames(), "", "nonsense") {
		if ModeTrainsDPSGD(m) {
			got = append(got, m)
		}
	}
	if len(got) != 2 || got[0] != "dpsgd" || got[1] != "secagg+dpsgd" {
		t.Errorf("DP-SGD modes %v, want [dpsgd secagg+dpsgd]", got)
	}
}
