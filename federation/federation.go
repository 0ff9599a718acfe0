package federation

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
)

// Models and training contract (docs/ABI.md "Shared CBOR structures").
type (
	// Model is a named, versioned list of tensors: the global model and every update (docs/ABI.md "Model").
	Model = model.Model
	// Tensor is one named tensor of a Model (dtype, shape, little-endian data).
	Tensor = model.Tensor
	// Settings are the round's training settings the hub sends with each task (learning rate, epochs, batch size, FedProx mu).
	Settings = wire.Settings
	// Dataset is a device's local training data (features, labels).
	Dataset = train.Dataset
	// TrainInput is what a Trainer receives: the global model, the round, the settings and the data.
	TrainInput = train.Input
	// TrainOutput is a Trainer's result: the updated model, its example count and metrics.
	TrainOutput = train.Output
	// EvalInput is what an Evaluator receives: a model and held-out data.
	EvalInput = train.EvalInput
	// EvalOutput is an Evaluator's result: metrics (loss, accuracy, ...) and the example count.
	EvalOutput = train.EvalOutput
	// Trainer trains on a device's data; WasmTrainer runs a module's
	// `train`/`evaluate` entrypoints (a *runtime.Module is a TrainModule)
	// and drains its instances after each call.
	Trainer = train.Trainer
	// Evaluator scores a model on held-out data (a hub's evaluation, a device's validation).
	Evaluator = train.Evaluator
	// TrainModule runs a Wasm entrypoint (a *runtime.Module is one).
	TrainModule = train.Module
	WasmTrainer = train.Wasm
)

// Strategies.
type (
	Strategy = strategy.Strategy
	// StrategyConfig selects and tunes a built-in strategy (Name in StrategyNames).
	StrategyConfig = strategy.Config
	// ModelUpdate is one device's update as a strategy sees it.
	ModelUpdate = strategy.ModelUpdate
	// Caller runs a Wasm entrypoint (a *runtime.Module is one).
	Caller = strategy.Caller
	// AggregateInput / AggregateOutput are a Wasm strategy's `aggregate`
	// entrypoint contract.
	AggregateInput = strategy.AggregateInput
	// AggregateItem is one update in an AggregateInput.
	AggregateItem   = strategy.AggregateItem
	AggregateOutput = strategy.AggregateOutput
)

// Errors callers may match with errors.Is.
var (
	// ErrNoUpdates: a strategy was asked to aggregate no updates.
	ErrNoUpdates = strategy.ErrNoUpdates
	// ErrUpdateLength: an update's length differs from the global model's.
	ErrUpdateLength = strategy.ErrLength
	// ErrLayout: a model's tensors (names, dtypes, shapes) differ from the
	// layout expected (an update against the global model, a checkpoint).
	ErrLayout = model.ErrLayout
)

// Hub and agent.
type (
	// Hub runs rounds: it samples available devices, sends signed tasks, receives and checks updates, aggregates them and stores the new global model. Create it with NewHub.
	Hub = hub.Hub
	// HubConfig configures a Hub; the zero value of each field is its documented default (hub.go: Config).
	HubConfig = hub.Config
	// RoundReport is the outcome of one round (status, devices received, dropped, refused and clamped, bytes, metrics).
	RoundReport = hub.Report
	// HubEvaluator scores each new global model on the hub's held-out data.
	HubEvaluator = hub.Evaluator
	// Agent is a device's side of the federation: it joins, heartbeats, takes tasks, trains and sends its update. Create it with NewAgent.
	Agent = agent.Agent
	// AgentConfig configures an Agent (its id and key, trainer, data, privacy modes).
	AgentConfig = agent.Config
	// AgentStats counts an Agent's rounds (taken, accepted, refused, failed), forged tasks and bytes.
	AgentStats = agent.Stats
)

// Privacy round modes: a round's mode names hub-side and device-side
// transforms (privacy/... implements dp, secagg, he).
type (
	// RoundInfo is what a privacy mode learns about a round (id, version, mode, sampled devices, how many were available).
	RoundInfo = hook.RoundInfo
	// HubTransform is a privacy mode's hub side: it transforms the round's updates before the strategy.
	HubTransform = hook.Hub
	// ClientTransform is a privacy mode's device side: it transforms the device's update before it is sent.
	ClientTransform = hook.Client
	// ModeConfig configures a built-in privacy mode (ModeNames); ModeStatus
	// is its privacy state (epsilon so far, releases, clip, step bytes).
	ModeConfig = modes.Config
	// ModeStatus is a privacy mode's running state (releases so far, epsilon at delta, noise).
	ModeStatus = modes.Status
	// ModeHub / ModeClient are a built-in mode's hub and device sides.
	ModeHub = modes.Hub
	// ModeClient is a built-in privacy mode's device side (NewModeClient).
	ModeClient = modes.Client
	// Exchanger runs a mode's extra protocol steps with the round's
	// devices; HubLink (hub) and DeviceLink (device) carry them over NATS,
	// authenticated with the device keys.
	Exchanger = hook.Exchanger
	// HubLink is the hub's Exchanger over NATS (authenticated per device and step).
	HubLink = hook.HubLink
	// DeviceLink serves a device's side of the protocol steps (ServeModeSteps).
	DeviceLink = hook.DeviceLink
	// StepHandler answers one protocol step on a device.
	StepHandler = hook.Handler
)

// SamplingRate is the rate at which a hub of fraction and minDevices
// samples devices from available ones (sampled/available): the rate a
// mode's accountant charges for such a round, and the planned rate for
// calibrating a noise multiplier over a known population.
func SamplingRate(fraction float64, minDevices, available int) float64 {
	return hub.SamplingRate(fraction, minDevices, available)
}

// ModeNames lists the built-in privacy modes: plain, dp, ldp, secagg,
// secagg+dp, he, he+dp.
var ModeNames = modes.Names

// NewModes returns the hub side of a built-in privacy mode. Pass it as
// HubConfig{Mode: name, ModeHub: h}: Start binds it to the hub's own
// connection and global model. In Simulate, set SimConfig.PrivacyMode and
// SimConfig.Privacy instead.
func NewModes(name string, cfg ModeConfig) (*ModeHub, error) { return modes.NewHub(name, cfg) }

// NewModeClient returns device id's side of a built-in privacy mode: pass
// it in AgentConfig.Modes[name] and serve its Handle on the device's step
// link (ServeModeSteps).
func NewModeClient(name, id string, cfg ModeConfig) (*ModeClient, error) {
	return modes.NewClient(name, id, cfg)
}

// NewHubLink returns the hub's end of the privacy modes' step link for
// federation name; key returns a device's key (DeviceKey(secret, id)).
func NewHubLink(nc *nats.Conn, name string, key func(device string) ([]byte, bool)) (*HubLink, error) {
	return hook.NewHubLink(nc, name, key)
}

// ServeModeSteps answers the hub's mode steps for device id (its key as in
// its credentials) with h (a ModeClient's Handle), until Close.
func ServeModeSteps(nc *nats.Conn, name, id string, key []byte, h StepHandler) (*DeviceLink, error) {
	return hook.ServeDevice(nc, name, id, key, h, 0)
}

// Simulation.
type (
	// SimConfig configures Simulate: devices, rounds, data and its skew, strategy, privacy mode, faults and attacks.
	SimConfig = sim.Config
	// Progress is Simulate's per-round report.
	Progress = sim.Progress
	// Summary is Simulate's result: rounds, final and best accuracy, loss, and the central reference's.
	Summary = sim.Summary
	// Data is a train/test split of a tabular data set (features, labels).
	Data = sim.Data
	// Attack makes some simulated devices Byzantine (scaled or sign-flipped updates).
	Attack = sim.Attack
	// Fault kills some simulated devices in the middle of a round.
	Fault = sim.Fault
	// MLP is the pure-Go reference classifier (also a Trainer/Evaluator).
	MLP = sim.MLP
)

// StrategyNames lists the built-in strategies.
var StrategyNames = strategy.Names

// NewStrategy returns a built-in strategy.
func NewStrategy(c StrategyConfig) (Strategy, error) {
	a, err := strategy.New(c)
	if err != nil {
		return nil, err
	}
	return strategy.FromAggregator(a), nil
}

// WasmStrategy adapts a module exporting `aggregate` (CBOR
// {"updates": [{"model", "num_examples"}], "global", "round"} -> {"model"}).
func WasmStrategy(name string, c Caller) Strategy { return strategy.Wasm(name, c) }

// DatasetEvaluator scores the hub's global model on held-out data with e
// (a WasmTrainer runs a module's `evaluate`); name names the data in
// errors. e must report a "loss" metric: a missing one is an error.
func DatasetEvaluator(e Evaluator, data Dataset, name string) HubEvaluator {
	return train.DataEvaluator{E: e, Data: data, Name: name}
}

// NewHub validates cfg and returns an unstarted hub.
func NewHub(cfg HubConfig) (*Hub, error) { return hub.New(cfg) }

// NewAgent validates cfg and returns an unstarted device agent.
func NewAgent(cfg AgentConfig) (*Agent, error) { return agent.New(cfg) }

// Simulate runs an embedded hub and cfg.Devices simulated devices in one
// process until cfg.Rounds rounds complete, calling cfg.OnRound after each.
func Simulate(ctx context.Context, cfg SimConfig) (Summary, error) { return sim.Run(ctx, cfg) }

// DeviceConnectOptions are device id's NATS options for a hub without an
// access file (agent.FleetOptions): the user and password its key derives,
// which the hub's embedded server requires, and the device's own inbox.
// An Agent with a URL uses them itself; pass them when you connect the
// Conn you give it.
func DeviceConnectOptions(id string, key []byte) []nats.Option { return agent.FleetOptions(id, key) }

// DevicePassword is the NATS password of a device with key on a hub
// without an access file (what DeviceConnectOptions sends; a device's
// leaf node authenticates with it too).
func DevicePassword(key []byte) string { return wire.DevicePassword(key) }

// DeviceNATSUser is device id's entry for the authorization block of an
// external NATS server's configuration (`fennec hub --nats`): its user,
// the password its key derives and the permissions the embedded server
// gives it (its own federation subjects only, no JetStream API).
func DeviceNATSUser(name, id string, key []byte) string {
	p := hub.DevicePermissions(name, id)
	q := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	return fmt.Sprintf("{ user: %q, password: %q, permissions: { publish: { allow: %s }, subscribe: { allow: %s }, allow_responses: { max: %d, expires: %q } } }\n",
		id, wire.DevicePassword(key), q(p.Publish.Allow), q(p.Subscribe.Allow), p.Response.MaxMsgs, p.Response.Expires.String())
}

// DeviceKey derives a device's credential key from the fleet secret.
func DeviceKey(secret []byte, id string) []byte { return wire.DeviceKey(secret, id) }

// FormatCreds / ParseCreds write and read a device credentials file.
func FormatCreds(id string, key []byte) string    { return wire.FormatCreds(id, key) }
func ParseCreds(b []byte) (string, []byte, error) { return wire.ParseCreds(b) }

// Data sets.

// Vitals returns about n readings of the generated patient vitals (fennec's
// one generator, internal/vitals, which the demo and `fennec vitals` use)
// as a Data held out by patient; see docs/VITALS.md.
func Vitals(n int, seed uint64) *Data { return sim.Vitals(n, seed) }
func LoadCSV(path string, testFrac float64, seed uint64) (*Data, error) {
	return sim.LoadCSV(path, testFrac, seed)
}
func LoadFashion(dir string, ntrain, ntest int) (*Data, error) {
	return sim.LoadFashion(dir, ntrain, ntest)
}

// DecodeModel decodes and validates a CBOR Model.
func DecodeModel(b []byte, m *Model) error {
	d, err := model.Decode(b)
	if err != nil {
		return err
	}
	*m = d
	return nil
}

// AggregateVectors runs a built-in strategy directly on flat f32 vectors
// (weights nil = equal example counts); for benchmarks and tools.
func AggregateVectors(name string, global []float32, vecs [][]float32, weights []uint64) ([]float32, error) {
	a, err := strategy.New(strategy.Config{Name: name})
	if err != nil {
		return nil, err
	}
	ups := make([]strategy.Update, len(vecs))
	for i, v := range vecs {
		ups[i] = strategy.Update{Vec: v, NumExamples: 1}
		if weights != nil {
			ups[i].NumExamples = weights[i]
		}
	}
	return a.Aggregate(1, global, ups)
}
