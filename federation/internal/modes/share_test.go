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
	"github.com/fennec-edge/fennec/privacy/dpsgd"
)

// TestShareDivisor: t - colluders, at least 1 (the full noise).
func TestShareDivisor(t *testing.T) {
	for _, c := range []struct{ t, k, want int }{{4, 0, 4}, {7, 0, 7}, {7, 2, 5}, {4, 3, 1}, {4, 9, 1}, {4, -3, 4}, {1, 0, 1}} {
		if got := modes.ShareDivisor(c.t, c.k); got != c.want {
			t.Errorf("ShareDivisor(%d, %d) = %d, want %d", c.t, c.k, got, c.want)
		}
	}
}

// shareTrainer stands in for the risk-train module on the host: it seals
// the fixed gradient g = 0.01*(device+1) per value in the round's grant,
// as dp_sgd_step would, and returns a model of its own (every value
// +1000) that the device must ignore. hostile makes it misbehave.
type shareTrainer struct {
	dev     int
	hostile string
}

func (s shareTrainer) Train(_ context.Context, in train.Input) (train.Output, error) {
	dps := in.Settings.DP
	if dps == nil || dps.Steps != 1 {
		return train.Output{}, errors.New("want one DP-SGD step")
	}
	if in.Share == nil {
		return train.Output{}, errors.New("no noise-share grant")
	}
	// The divisor is the secagg threshold the device set up (3) less its
	// own Colluders (1), whatever else the hub says.
	if d := in.Share.Divisor(); d != 2 {
		return train.Output{}, fmt.Errorf("grant divisor %d, want 2", d)
	}
	n, _ := in.Data.Rows()
	var layers []int
	for i, t := range in.Model.Tensors {
		if i%2 == 0 {
			if i == 0 {
				layers = append(layers, int(t.Shape[0]))
			}
			layers = append(layers, int(t.Shape[1]))
		}
	}
	g := make([]float32, in.Model.Params())
	for i := range g {
		g[i] = 0.01 * float32(s.dev+1)
	}
	z := dps.NoiseMultiplier
	if s.hostile == "z" {
		z /= 2
	}
	if s.hostile != "no step" {
		if err := in.Share.Begin(); err != nil {
			return train.Output{}, err
		}
		if err := in.Share.Seal(dpsgd.Sealed{Sum: g, Z: z, Clip: dps.Clip, Q: dps.SamplingRate, Units: n, Layers: layers}); err != nil {
			return train.Output{}, err
		}
	}
	v := in.Model.Flatten()
	for i := range v {
		v[i] += 1000
	}
	m, err := in.Model.WithVector(v, in.Model.Version)
	return train.Output{Model: m, NumExamples: uint64(n)}, err
}

func shareRun(t *testing.T, hostile string) (sim.Summary, model.Model, error) {
	t.Helper()
	data := sim.Vitals(800, 5)
	init := sim.MLP{In: data.Features, Out: 2}.Init(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rounds, deadline := 3, 5*time.Second
	if hostile != "" {
		rounds, deadline = 1, 2*time.Second // the round fails: no need to wait long
	}
	s, err := sim.Run(ctx, sim.Config{Devices: 4, Rounds: rounds, Seed: 1, Linear: true, Data: data, Initial: &init,
		PrivacyMode: modes.SecAggDPSGD, MaxFailedRounds: 1,
		Privacy:    modes.Config{TargetEpsilon: 3, Delta: 1e-5, Clip: 1, PatientsPerStep: 8, Threshold: 3, Colluders: 1, StepTimeout: 3 * time.Second},
		Settings:   wire.Settings{LR: 0.5},
		NewTrainer: func(i int) (train.Trainer, error) { return shareTrainer{dev: i, hostile: hostile}, nil },
		Deadline:   deadline})
	return s, init, err
}

// TestSecAggDPSGDRound: across real rounds (hub, agents, secagg over the
// embedded NATS), each device sends -LR times the gradient its host sealed
// in the round's grant, never its module's model: the global model moves
// by -LR times the devices' mean gradient a round, and every device reports
// its epsilon, charged once per one-step round.
func TestSecAggDPSGDRound(t *testing.T) {
	s, init, err := shareRun(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Rounds != 3 || s.Privacy == nil || len(s.Privacy.DeviceEpsilon) != 4 || math.Abs(s.Privacy.Epsilon-3) > 1e-6 {
		t.Fatalf("rounds %d, privacy %+v", s.Rounds, s.Privacy)
	}
	g0, g := init.Flatten(), s.Final.Flatten()
	const want = -3 * 0.5 * 0.025 // rounds * LR * mean of 0.01, 0.02, 0.03, 0.04
	for i := range g {
		if d := float64(g[i] - g0[i]); math.Abs(d-want) > 1e-4 {
			t.Fatalf("value %d moved by %v, want %v", i, d, want)
		}
	}
}

// TestSecAggDPSGDHostileModule: a module that takes no step under the
// grant, or seals a step of another noise multiplier than the device's
// plan, sends nothing: the round fails.
func TestSecAggDPSGDHostileModule(t *testing.T) {
	for _, h := range []string{"no step", "z"} {
		t.Run(h, func(t *testing.T) {
			s, _, err := shareRun(t, h)
			if err == nil && s.Rounds > 0 {
				t.Fatalf("%d rounds completed with a hostile module", s.Rounds)
			}
		})
	}
}

// TestSecAggDPSGDNoSecureAggregate: a device grants a noise share only for
// a round whose secure aggregation it set up itself; a task alone (a hub
// that skipped the protocol, whatever its parameters say) is refused
// before training, with no DP settings and no grant.
func TestSecAggDPSGDNoSecureAggregate(t *testing.T) {
	h, err := modes.NewHub(modes.DPSGD, modes.Config{TargetEpsilon: 3, Rounds: 5})
	if err != nil {
		t.Fatal(err)
	}
	g := sim.MLP{In: 3, Out: 2}.Init(1)
	h.Bind(nil, func() model.Model { return g })
	extra, err := h.Prepare(context.Background(), hook.RoundInfo{Round: 1, Devices: []string{"dev"}, Available: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The dpsgd task, relabelled secagg+dpsgd.
	var p map[string]any
	if err := model.UnmarshalLoose(extra["mode.params"], &p); err != nil {
		t.Fatal(err)
	}
	p["mode"] = modes.SecAggDPSGD
	b, _ := model.Marshal(p)
	cl, err := modes.NewClient(modes.SecAggDPSGD, "dev", modes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := wire.Settings{DP: &wire.DPSettings{NoiseMultiplier: 1e-9}}
	err = cl.TrainSettings(context.Background(), hook.RoundInfo{Round: 1}, map[string][]byte{"mode.params": b}, &s, 30)
	if err == nil || !strings.Contains(err.Error(), "no secure aggregation") || s.DP != nil || cl.DPSGDShare(1) != nil {
		t.Fatalf("err %v, settings %+v, grant %v", err, s.DP, cl.DPSGDShare(1))
	}
	// More than one step a round is refused by the hub's config and the
	// device.
	if _, err := modes.NewHub(modes.SecAggDPSGD, modes.Config{TargetEpsilon: 3, Rounds: 5, LocalSteps: 4}); err == nil {
		t.Fatal("a secagg+dpsgd hub of 4 steps a round was accepted")
	}
	if _, err := modes.NewClient(modes.SecAggDPSGD, "dev", modes.Config{Colluders: -1}); err == nil {
		t.Fatal("negative Colluders accepted")
	}
}
