package federation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
)

func TestDtypes(t *testing.T) {
	if DtypeF32 != model.F32 || DtypeI8 != model.I8 || DtypeI32 != model.I32 {
		t.Fatal("the public dtype codes differ from the ABI's")
	}
}

// The name lists are copies: a caller cannot change what the package
// accepts.
func TestNamesAreCopies(t *testing.T) {
	m, s := ModeNames(), StrategyNames()
	m[0], s[0] = "mine", "mine"
	if !slices.Equal(ModeNames(), modes.Names) || modes.Names[0] == "mine" {
		t.Fatal("ModeNames shares the package's list")
	}
	if !slices.Equal(StrategyNames(), strategy.Names) || strategy.Names[0] == "mine" {
		t.Fatal("StrategyNames shares the package's list")
	}
}

func TestModelConversion(t *testing.T) {
	m := MLP{In: 3, Hidden: 2, Out: 2}.Init(1)
	m.Version = 7
	if got := fromModel(m.internal()); !slices.EqualFunc(got.Tensors, m.Tensors, func(a, b Tensor) bool {
		return a.Name == b.Name && a.Dtype == b.Dtype && slices.Equal(a.Shape, b.Shape) && string(a.Data) == string(b.Data)
	}) || got.Name != m.Name || got.Version != 7 {
		t.Fatalf("round trip changed the model: %+v", got)
	}
	if fromModel(model.Model{}).Tensors != nil || (Model{}).internal().Tensors != nil {
		t.Fatal("an empty model gained tensors")
	}
	if modelPtr(nil) != nil {
		t.Fatal("a nil model became one")
	}
}

// countingStrategy and countingTrainer are a caller's own Go types: they
// reach the hub and the devices through the adapters.
type countingStrategy struct {
	Strategy
	calls atomic.Int32
}

func (s *countingStrategy) Name() string { return "counting" }

func (s *countingStrategy) Aggregate(ctx context.Context, round uint64, global Model, ups []ModelUpdate) (Model, error) {
	s.calls.Add(1)
	return s.Strategy.Aggregate(ctx, round, global, ups)
}

type countingTrainer struct {
	MLP
	calls *atomic.Int32
}

func (t countingTrainer) Train(ctx context.Context, in TrainInput) (TrainOutput, error) {
	t.calls.Add(1)
	return t.MLP.Train(ctx, in)
}

type countingEvaluator struct {
	MLP
	calls *atomic.Int32
}

func (e countingEvaluator) Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error) {
	e.calls.Add(1)
	return e.MLP.Evaluate(ctx, in)
}

func TestCallersOwnTypes(t *testing.T) {
	fedavg, err := NewStrategy(StrategyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := &countingStrategy{Strategy: fedavg}
	var trained, evaluated atomic.Int32
	data := Vitals(200, 1)
	net := MLP{In: data.Features, Out: 2}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := Simulate(ctx, SimConfig{Devices: 2, Rounds: 2, Seed: 1, Data: data, Linear: true, StrategyImpl: s,
		NewTrainer: func(int) (Trainer, error) { return countingTrainer{net, &trained}, nil },
		Evaluator:  countingEvaluator{net, &evaluated}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rounds != 2 || sum.Strategy != "counting" || s.calls.Load() != 2 || trained.Load() != 4 || evaluated.Load() < 2 {
		t.Fatalf("rounds %d strategy %q: %d aggregations, %d trainings, %d evaluations", sum.Rounds, sum.Strategy, s.calls.Load(), trained.Load(), evaluated.Load())
	}
	if len(sum.Reports) != 2 || sum.Final.Version != 2 || sum.Final.Params() != net.Params() {
		t.Fatalf("summary %+v", sum)
	}
}

// A nil trainer of the package's own type is no trainer; a NewMode that
// returns no device side is an error, not a nil dereference later.
func TestAgentConfigHostile(t *testing.T) {
	data := Vitals(200, 1)
	for _, tc := range []struct {
		name string
		cfg  AgentConfig
		want string
	}{
		{"nil wasm trainer", AgentConfig{URL: "nats://127.0.0.1:1", ID: "d", Key: make([]byte, 16), Trainer: (*WasmTrainer)(nil), Data: data.TrainDataset(false)}, "agent config: Trainer is required"},
		{"negative heartbeat", AgentConfig{URL: "nats://127.0.0.1:1", ID: "d", Key: make([]byte, 16), Trainer: MLP{}, Data: data.TrainDataset(false), Heartbeat: -time.Second}, "agent config: Heartbeat must not be negative"},
		{"bad data", AgentConfig{URL: "nats://127.0.0.1:1", ID: "d", Key: make([]byte, 16), Trainer: MLP{}}, "agent config: Data"},
		{"mode without NewMode", AgentConfig{URL: "nats://127.0.0.1:1", ID: "d", Key: make([]byte, 16), Trainer: MLP{}, Data: data.TrainDataset(false), Mode: "dp"}, `agent config: Mode "dp" needs NewMode`},
		{"bad mode name", AgentConfig{URL: "nats://127.0.0.1:1", ID: "d", Key: make([]byte, 16), Trainer: MLP{}, Data: data.TrainDataset(false), Mode: "a.b"}, "agent config: Mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAgent(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	nm := newMode(func(string) (*DevicePrivacy, error) { return nil, nil }, MLP{})
	if _, err := nm("dp"); err == nil || !strings.Contains(err.Error(), "returned no device side") {
		t.Fatalf("NewMode returning nil: %v", err)
	}
}

// The hub's configuration decides a mode's rounds, population and planned
// sampling rate; what the caller set stays.
func TestPlanPrivacy(t *testing.T) {
	acc := &deploy.Access{Devices: []deploy.DeviceAccess{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}, {ID: "f"}, {ID: "g"}, {ID: "h"}, {ID: "i"}, {ID: "j"}}}
	keys := map[string][]byte{"y": nil, "x": nil}
	for _, tc := range []struct {
		name string
		hub  HubConfig
		in   ModeConfig
		want ModeConfig
	}{
		// 10 devices, fraction 0.1 but at least 2: the hub samples 2 of 10.
		{"access", HubConfig{Rounds: 5, Fraction: 0.1, MinDevices: 2, Access: acc}, ModeConfig{},
			ModeConfig{Rounds: 5, Population: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, SamplingRate: 0.2}},
		{"keys", HubConfig{Rounds: 3, Keys: keys}, ModeConfig{}, ModeConfig{Rounds: 3, Population: []string{"x", "y"}, SamplingRate: 1}},
		{"unknown population", HubConfig{Fraction: 0.3, MinDevices: 5}, ModeConfig{}, ModeConfig{SamplingRate: 0.3}},
		{"defaults", HubConfig{}, ModeConfig{}, ModeConfig{SamplingRate: 1}},
		{"set by the caller", HubConfig{Rounds: 5, Fraction: 0.1, Access: acc}, ModeConfig{Rounds: 9, Population: []string{"z"}, SamplingRate: 0.5},
			ModeConfig{Rounds: 9, Population: []string{"z"}, SamplingRate: 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.hub.PlanPrivacy(tc.in)
			if got.Rounds != tc.want.Rounds || !slices.Equal(got.Population, tc.want.Population) || got.SamplingRate != tc.want.SamplingRate {
				t.Fatalf("rounds %d population %v rate %v, want %d %v %v", got.Rounds, got.Population, got.SamplingRate,
					tc.want.Rounds, tc.want.Population, tc.want.SamplingRate)
			}
		})
	}
}

func TestReadFleetSecret(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fleet.secret")
	if _, err := ReadFleetSecret(p, false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file without create: %v", err)
	}
	s, err := ReadFleetSecret(p, true)
	if err != nil || len(s) != 32 {
		t.Fatalf("create: %d bytes, %v", len(s), err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the created file: %v %v", fi.Mode(), err)
	}
	again, err := ReadFleetSecret(p, true)
	if err != nil || string(again) != string(s) {
		t.Fatalf("read back %x, %v; want %x", again, err, s)
	}
	for _, bad := range []string{"", "not hex\n", "00112233445566778899aabbccddee\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := ReadFleetSecret(p, true); err == nil || !strings.Contains(err.Error(), p+": the fleet secret must be at least 16 bytes of hex") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Only the he modes give the training module an HE party.
func TestDevicePrivacyHEParty(t *testing.T) {
	for _, mode := range ModeNames() {
		if mode == "plain" {
			continue
		}
		p, err := NewDevicePrivacy(mode, "d1", ModeConfig{NoiseMultiplier: 1})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if he := mode == "he" || mode == "he+dp"; (p.HEParty() != nil) != he {
			t.Errorf("%s: HEParty() = %v", mode, p.HEParty())
		}
	}
}
