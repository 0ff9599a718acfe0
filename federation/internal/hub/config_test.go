package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
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
