package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
)

// One rule for the federation's configs: a zero duration or count takes
// its default, a negative one is a validation error that names the field
// (before, AgentConfig{Heartbeat: -1} passed and panicked in
// time.NewTicker, and a negative hub Deadline closed every round at once).
func TestConfigNegative(t *testing.T) {
	newHub := func(c hub.Config) error {
		c.DataDir, c.Secret = t.TempDir(), secret
		_, err := hub.New(c)
		return err
	}
	newAgent := func(c agent.Config) error {
		c.URL, c.ID, c.Key, c.Trainer = "nats://127.0.0.1:1", "dev-0", wire.DeviceKey(secret, "dev-0"), net8
		c.Data = sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{0, 1})
		_, err := agent.New(c)
		return err
	}
	newModes := func(c modes.Config) error {
		c.NoiseMultiplier = max(c.NoiseMultiplier, 1)
		_, err := modes.NewHub("dp", c)
		return err
	}
	for _, tc := range []struct {
		field string // "" = valid
		err   error
	}{
		{"", newHub(hub.Config{})},
		{"Deadline", newHub(hub.Config{Deadline: -time.Second})},
		{"DeviceTTL", newHub(hub.Config{DeviceTTL: -1})},
		{"MinDevices", newHub(hub.Config{MinDevices: -2})},
		{"Rounds", newHub(hub.Config{Rounds: -1})},
		{"Keep", newHub(hub.Config{Keep: -1})},
		{"Replicas", newHub(hub.Config{Replicas: -1})},
		{"Fraction", newHub(hub.Config{Fraction: -0.5})},
		{"Quorum", newHub(hub.Config{Quorum: -0.5})},
		{"WeightRatio", newHub(hub.Config{WeightRatio: -1})},
		{"MaxPendingBytes", newHub(hub.Config{MaxPendingBytes: -1})},
		{"", newAgent(agent.Config{})},
		{"Heartbeat", newAgent(agent.Config{Heartbeat: -1})},
		{"ChunkSize", newAgent(agent.Config{ChunkSize: -1})},
		{"", newModes(modes.Config{})},
		{"StepTimeout", newModes(modes.Config{StepTimeout: -time.Second})},
		{"Quarantine", newModes(modes.Config{Quarantine: -1})},
		{"Clip", newModes(modes.Config{Clip: -1})},
		{"Delta", newModes(modes.Config{Delta: -1e-5})},
		{"SamplingRate", newModes(modes.Config{SamplingRate: -0.1})},
		{"MinAggregate", newModes(modes.Config{MinAggregate: -2})},
		{"Neighbors", newModes(modes.Config{Neighbors: -1})},
		{"Rounds", newModes(modes.Config{Rounds: -1})},
		{"NoiseMultiplier", func() error { _, err := modes.NewHub("dp", modes.Config{NoiseMultiplier: -1}); return err }()},
		{"Momentum", func() error { _, err := strategy.New(strategy.Config{Name: "fedsgd", Momentum: -0.5}); return err }()},
		{"Eta", func() error { _, err := strategy.New(strategy.Config{Name: "fedadam", Eta: -1}); return err }()},
	} {
		switch {
		case tc.field == "" && tc.err != nil:
			t.Errorf("valid config refused: %v", tc.err)
		case tc.field != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), " "+tc.field)):
			t.Errorf("negative %s: error %v, want one naming %s", tc.field, tc.err, tc.field)
		}
	}
}

// muTrainer records the proximal weight of each task's settings.
type muTrainer struct {
	train.Trainer
	mu chan float64
}

func (m muTrainer) Train(ctx context.Context, in train.Input) (train.Output, error) {
	select {
	case m.mu <- in.Settings.Mu:
	default:
	}
	return m.Trainer.Train(ctx, in)
}

// TestProximalWeightFromStrategy: the devices' proximal weight is the
// built-in strategy's: fedprox's Mu, none for fedavg whatever Settings.Mu
// says (`fennec hub --strategy fedavg --mu 0.1` sent mu 0.1, and the
// devices trained fedprox under a fedavg hub).
func TestProximalWeightFromStrategy(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		want     float64
	}{{"fedavg", 0}, {"fedprox", 0.25}} {
		agg, err := strategy.New(strategy.Config{Name: tc.strategy, Mu: 0.25})
		if err != nil {
			t.Fatal(err)
		}
		h := newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 1, Strategy: strategy.FromAggregator(agg),
			Settings: wire.Settings{Mu: 0.5}, Deadline: 5 * time.Second})
		tr := muTrainer{net8, make(chan float64, 1)}
		startAgent(t, h, "", 0, tr)
		wait(t, h, 20*time.Second)
		if got := <-tr.mu; got != tc.want {
			t.Errorf("%s: the device trained with mu %v, want %v", tc.strategy, got, tc.want)
		}
		h.Shutdown()
	}
}

// TestModeRefusesIndividualStrategy: which strategies a privacy mode may
// feed is the hub's validation's rule, for a module strategy as for a
// robust one (the command alone refused the first).
func TestModeRefusesIndividualStrategy(t *testing.T) {
	mh, err := modes.NewHub("secagg", modes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    strategy.Strategy
		want string
	}{
		{strategy.Wasm("meanagg", nil), "strategy wasm:meanagg needs individual updates (a module strategy is handed each device's update), but mode secagg hands it one aggregate"},
		{strategy.FromAggregator(strategy.Krum{F: 1}), "strategy krum needs 5 individual updates per round"},
	} {
		_, err := hub.New(hub.Config{DataDir: t.TempDir(), Secret: secret, Strategy: tc.s, MinDevices: 5, Mode: "secagg", ModeHub: mh})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s in mode secagg: %v, want an error saying %q", tc.s.Name(), err, tc.want)
		}
	}
	// In plain rounds the module strategy is fine.
	if _, err := hub.New(hub.Config{DataDir: t.TempDir(), Secret: secret, Strategy: strategy.Wasm("meanagg", nil)}); err != nil {
		t.Errorf("module strategy in plain rounds: %v", err)
	}
}
