package modes_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// sgdTask is the task extra a dpsgd hub sends, from the hub itself.
func sgdTask(t *testing.T, cfg modes.Config) map[string][]byte {
	t.Helper()
	h, err := modes.NewHub(modes.DPSGD, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := sim.MLP{In: 3, Out: 2}.Init(1)
	h.Bind(nil, func() model.Model { return g })
	extra, err := h.Prepare(context.Background(), hook.RoundInfo{Round: 1, Devices: []string{"dev"}, Available: 1})
	if err != nil {
		t.Fatal(err)
	}
	return extra
}

// TestDPSGDPlan: a device turns the hub's plan into its own rate (patients
// per step / its patients), steps, delta <= 1/patients and the noise
// multiplier that reaches the target after the planned rounds.
func TestDPSGDPlan(t *testing.T) {
	for _, c := range []struct {
		name       string
		hub        modes.Config
		device     modes.Config
		units      int
		q          float64
		steps      int
		delta, eps float64
	}{
		{"default pass", modes.Config{TargetEpsilon: 3, Rounds: 15}, modes.Config{}, 30, 8.0 / 30, 4, 1e-5, 3},
		{"fixed steps", modes.Config{TargetEpsilon: 3, Rounds: 10, LocalSteps: 7, PatientsPerStep: 10}, modes.Config{}, 50, 0.2, 7, 1e-5, 3},
		{"every patient", modes.Config{TargetEpsilon: 2, Rounds: 5, PatientsPerStep: 40}, modes.Config{}, 20, 1, 1, 1e-5, 2},
		{"delta below 1/patients", modes.Config{TargetEpsilon: 3, Rounds: 4, Delta: 0.01}, modes.Config{Delta: 0.5}, 400, 0.02, 50, 1.0 / 400, 3},
		{"the device's own cap", modes.Config{TargetEpsilon: 8, Rounds: 3}, modes.Config{TargetEpsilon: 1}, 16, 0.5, 2, 1e-5, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			extra := sgdTask(t, c.hub)
			cl, err := modes.NewClient(modes.DPSGD, "dev", c.device)
			if err != nil {
				t.Fatal(err)
			}
			s := wire.Settings{LR: 0.1, DP: &wire.DPSettings{NoiseMultiplier: 1e-9, SamplingRate: 1, Steps: 1 << 20, Clip: 100}}
			if err := cl.TrainSettings(context.Background(), hook.RoundInfo{Round: 1}, extra, &s, c.units); err != nil {
				t.Fatal(err)
			}
			rounds := c.hub.Rounds
			z, err := dp.NoiseMultiplier(c.eps, c.delta, c.q, c.steps*rounds, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.DP == nil || math.Abs(s.DP.SamplingRate-c.q) > 1e-12 || s.DP.Steps != uint64(c.steps) || math.Abs(s.DP.NoiseMultiplier-z) > 1e-12 || s.DP.Clip != 1 {
				t.Fatalf("settings %+v, want q %v, %d steps, z %v, clip 1 (the hub's DP settings are replaced)", s.DP, c.q, c.steps, z)
			}
			if d := cl.Delta(); math.Abs(d-c.delta) > 1e-15 {
				t.Fatalf("delta %v, want %v", d, c.delta)
			}
			// After the planned rounds the device is at its target, and
			// refuses one more round.
			for r := 2; r <= rounds; r++ {
				if err := cl.TrainSettings(context.Background(), hook.RoundInfo{Round: uint64(r)}, extra, &s, c.units); err != nil {
					t.Fatalf("round %d: %v", r, err)
				}
			}
			if e := cl.Epsilon(); e > c.eps*(1+1e-9) || e < c.eps*0.99 {
				t.Fatalf("epsilon after %d rounds %v, target %v", rounds, e, c.eps)
			}
			err = cl.TrainSettings(context.Background(), hook.RoundInfo{Round: uint64(rounds + 1)}, extra, &s, c.units)
			if err == nil || !strings.Contains(err.Error(), "device privacy budget") || s.DP != nil {
				t.Fatalf("round past the target: %v (settings %+v)", err, s.DP)
			}
			if m := cl.ReleaseMetrics(); m[modes.MetricEpsilon] != cl.Epsilon() || m[modes.MetricDelta] != c.delta {
				t.Fatalf("release metrics %v", m)
			}
		})
	}
}

// TestDPSGDHostileTask: task parameters out of range, for another mode, or
// missing are refused before any training; other modes set no DP.
func TestDPSGDHostileTask(t *testing.T) {
	cl, err := modes.NewClient(modes.DPSGD, "dev", modes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	good := sgdTask(t, modes.Config{TargetEpsilon: 3, Rounds: 2})
	type sgd struct {
		Clip            float64 `cbor:"clip"`
		PatientsPerStep float64 `cbor:"patients_per_step"`
		Steps           int     `cbor:"steps"`
		Epsilon         float64 `cbor:"epsilon"`
		Delta           float64 `cbor:"delta"`
		Rounds          int     `cbor:"rounds"`
	}
	task := func(mode string, s *sgd) map[string][]byte {
		b, err := model.Marshal(struct {
			Mode string `cbor:"mode"`
			Len  int    `cbor:"len"`
			SGD  *sgd   `cbor:"sgd,omitempty"`
		}{mode, 8, s})
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"mode.params": b}
	}
	ok := sgd{Clip: 1, PatientsPerStep: 8, Epsilon: 3, Delta: 1e-5, Rounds: 2}
	with := func(f func(*sgd)) *sgd { s := ok; f(&s); return &s }
	for _, c := range []struct {
		name  string
		extra map[string][]byte
		units int
		want  string
	}{
		{"no parameters", nil, 10, "no mode parameters"},
		{"no sgd part", task(modes.DPSGD, nil), 10, "without DP-SGD parameters"},
		{"another mode", task(modes.SecAggDPSGD, &ok), 10, "without DP-SGD parameters"},
		{"NaN clip", task(modes.DPSGD, with(func(s *sgd) { s.Clip = math.NaN() })), 10, "out of range"},
		{"infinite clip", task(modes.DPSGD, with(func(s *sgd) { s.Clip = math.Inf(1) })), 10, "out of range"},
		{"zero patients per step", task(modes.DPSGD, with(func(s *sgd) { s.PatientsPerStep = 0 })), 10, "out of range"},
		{"delta 1", task(modes.DPSGD, with(func(s *sgd) { s.Delta = 1 })), 10, "out of range"},
		{"negative steps", task(modes.DPSGD, with(func(s *sgd) { s.Steps = -1 })), 10, "out of range"},
		{"huge steps", task(modes.DPSGD, with(func(s *sgd) { s.Steps = 1 << 40 })), 10, "out of range"},
		{"huge rounds", task(modes.DPSGD, with(func(s *sgd) { s.Rounds = 1 << 40 })), 10, "out of range"},
		{"nothing to calibrate", task(modes.DPSGD, with(func(s *sgd) { s.Epsilon = 0 })), 10, "neither"},
		{"no patients", good, 0, "at least one patient"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := wire.Settings{DP: &wire.DPSettings{NoiseMultiplier: 1e-9}}
			err := cl.TrainSettings(context.Background(), hook.RoundInfo{Round: 1}, c.extra, &s, c.units)
			if err == nil || !strings.Contains(err.Error(), c.want) || s.DP != nil {
				t.Fatalf("err %v (settings %+v), want one containing %q and no DP settings", err, s.DP, c.want)
			}
		})
	}
	// In another mode a hub's DP settings never reach the trainer.
	ldp, _ := modes.NewClient(modes.LDP, "dev", modes.Config{NoiseMultiplier: 1})
	s := wire.Settings{DP: &wire.DPSettings{NoiseMultiplier: 1e-9}}
	if err := ldp.TrainSettings(context.Background(), hook.RoundInfo{Round: 1}, good, &s, 10); err != nil || s.DP != nil {
		t.Fatalf("ldp: %v, %+v", err, s.DP)
	}
	if _, err := modes.NewHub(modes.DPSGD, modes.Config{}); err == nil {
		t.Fatal("a dpsgd hub without a target or noise multiplier was accepted")
	}
}

// dpTrainer stands in for the risk-train module: it checks that the round
// came with DP-SGD settings and returns the model unchanged.
type dpTrainer struct{}

func (dpTrainer) Train(_ context.Context, in train.Input) (train.Output, error) {
	if in.Settings.DP == nil || in.Settings.DP.NoiseMultiplier <= 0 {
		return train.Output{}, errors.New("no DP-SGD settings")
	}
	n, _ := in.Data.Rows()
	return train.Output{Model: in.Model, NumExamples: uint64(n)}, nil
}

// Devices that train with patient-level DP-SGD report their own epsilon;
// the hub adds no noise and shows the largest.
func Example_dpsgd() {
	s, err := sim.Run(context.Background(), sim.Config{Devices: 4, Rounds: 3, Seed: 1, Linear: true,
		PrivacyMode: modes.DPSGD,
		Privacy:     modes.Config{TargetEpsilon: 3, Delta: 1e-5, Clip: 1, PatientsPerStep: 8},
		NewTrainer:  func(int) (train.Trainer, error) { return dpTrainer{}, nil },
		Deadline:    10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range s.Reports {
		fmt.Printf("round %d: %s, %d devices reported, largest epsilon %.1f\n", p.Index, p.Status, len(p.Privacy.DeviceEpsilon), p.Privacy.Epsilon)
	}
	// Output:
	// round 1: completed, 4 devices reported, largest epsilon 2.5
	// round 2: completed, 4 devices reported, largest epsilon 2.8
	// round 3: completed, 4 devices reported, largest epsilon 3.0
}
