package federation

import (
	"context"
	"crypto/tls"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
)

// HubConfig configures a Hub. The zero value of each field is its default
// (in parentheses); a negative one is an error naming the field.
type HubConfig struct {
	// Name is the federation's name, a subject and bucket token
	// ("default").
	Name string
	// DataDir holds the embedded NATS server's JetStream files; required
	// unless NATSURL is set.
	DataDir string
	// Listen is the embedded server's client address ("127.0.0.1:4222");
	// port 0 picks a free port, "-" disables the listener (in-process
	// devices only).
	Listen string
	// NATSURL connects to an existing NATS server or cluster instead of
	// embedding one, with NATSOptions (credentials, TLS).
	NATSURL     string
	NATSOptions []nats.Option
	// LeafListen, when set, opens the embedded server's leaf node listener
	// (host:port, port 0 picks a free one) for devices that run their own
	// local server (fennec agent --leaf). A leaf connection authenticates
	// as its device, as the device's own connection would, and gets the
	// device's permissions plus its own JetStream domain. The hub's
	// JetStream domain is then "hub", and its uplink stream sources every
	// device's outbox across the leaf connections (docs/OPERATIONS.md).
	LeafListen string
	// UplinkMaxBytes bounds the uplink stream (1 GiB; oldest discarded
	// first).
	UplinkMaxBytes int64
	// TLS, when set, makes the embedded server's client and leaf listeners
	// TLS only (ClientAuth = RequireAndVerifyClientCert for mutual TLS).
	TLS *tls.Config
	// AllowPlaintext lets a hub with Access listen without TLS on an
	// address other than loopback; without it that configuration is
	// refused.
	AllowPlaintext bool
	// Access, when set, authenticates every client of the embedded server
	// by the nkeys of package deploy's access file: its devices may use
	// only their own federation subjects and their group's rollouts, its
	// operators may deploy; the hub then serves rollouts. Without Access
	// (and without Insecure) network clients authenticate as devices of
	// the fleet: user = device id, password derived from its key
	// (DeviceConnectOptions). Not with NATSURL, whose server has its own
	// users (DeviceNATSUser).
	Access *deploy.Access
	// Insecure turns authentication off on the embedded server: any client
	// that reaches Listen may do anything. With NATSURL it allows a server
	// that authenticates no one at an address that is not loopback.
	Insecure bool
	// Replicas of the KV bucket and object store (1; 3 on a cluster).
	Replicas int

	// Strategy aggregates the updates (fedavg).
	Strategy Strategy
	// Rounds to complete before Done closes; 0 runs until Shutdown.
	Rounds int
	// Fraction of the available devices sampled per round (1), at least
	// MinDevices (1); a round waits until MinDevices are available. The
	// round's sampling rate is SamplingRate(Fraction, MinDevices,
	// available).
	Fraction   float64
	MinDevices int
	// Quorum is the fraction of sampled devices whose updates close a
	// round at the deadline (0.5); below it the round fails and the next
	// one starts from the same global model.
	Quorum float64
	// Deadline after which stragglers are dropped (30s).
	Deadline time.Duration
	// Settings sent to the devices with every task (Settings.Mode is set
	// from Strategy, and with a built-in Strategy Settings.Mu is its own:
	// fedprox's StrategyConfig.Mu, 0 for the others).
	Settings Settings
	// Initial is the starting global model, used when the store holds
	// none.
	Initial *Model
	// Secret is the fleet secret device keys derive from (DeviceKey);
	// Keys, when set, lists the device keys instead.
	Secret []byte
	Keys   map[string][]byte
	// DeviceTTL: a device not heard from for this long is not sampled
	// (10s).
	DeviceTTL time.Duration
	// Privacy runs every round in a built-in privacy mode (nil: plain).
	// Devices learn the mode when they join; in every mode but plain they
	// send no metrics. The strategy must be mean-based (ModeNames).
	Privacy *HubPrivacy
	// ResetPrivacy lets a hub whose store holds privacy accounting its
	// mode cannot go on from (another mode's, malformed) start its
	// accountant from zero, a new budget chosen deliberately; without it
	// Start fails with ErrPrivacyAccounting, since an accountant counting
	// from zero would understate the epsilon the earlier rounds spent.
	ResetPrivacy bool
	// Evaluator scores each new global model on held-out data
	// (DatasetEvaluator); its loss and accuracy are in the round report.
	Evaluator HubEvaluator
	// OnRound is called after every round, completed or failed.
	OnRound func(RoundReport)
	// WeightRatio bounds the example counts that weight updates: none
	// counts for more than WeightRatio times the round's median claim (4).
	WeightRatio float64
	// MaxPendingBytes bounds the bytes of all uploads in progress in a
	// round together (1 GiB); a chunk beyond it is refused as busy.
	MaxPendingBytes int64
	// Keep is the number of model checkpoints kept (5).
	Keep int
	// Seed seeds the device sampling (0: random).
	Seed uint64
	// Logger receives the hub's events (slog.Default() when nil).
	Logger *slog.Logger
}

// RoundReport is the outcome of one round.
type RoundReport struct {
	Round uint64 `json:"round" cbor:"round"`
	// Version of the global model after the round.
	Version uint64 `json:"version" cbor:"version"`
	// Status is "completed" or "failed" (with Error).
	Status string `json:"status" cbor:"status"`
	Error  string `json:"error,omitempty" cbor:"error,omitempty"`
	// Sampled devices out of Available: Sampled/Available is the round's
	// sampling rate.
	Sampled   int `json:"sampled" cbor:"sampled"`
	Available int `json:"available" cbor:"available"`
	// Received updates; Dropped stragglers; Refused late or invalid update
	// messages.
	Received int `json:"received" cbor:"received"`
	// Participants: the sampled devices whose updates arrived in time
	// (the Received ones), sorted.
	Participants []string `json:"participants,omitempty" cbor:"participants,omitempty"`
	Dropped      []string `json:"dropped,omitempty" cbor:"dropped,omitempty"`
	Refused      int      `json:"refused" cbor:"refused"`
	// Rejected: sampled devices whose authenticated update was refused
	// (not finite, wrong layout, malformed), with the reason.
	Rejected map[string]string `json:"rejected,omitempty" cbor:"rejected,omitempty"`
	// Clamped: devices whose claimed example count was lowered to the
	// round's bound (HubConfig.WeightRatio), with their claims.
	Clamped  map[string]uint64 `json:"clamped,omitempty" cbor:"clamped,omitempty"`
	Duration time.Duration     `json:"duration_ns" cbor:"duration"`
	// DeviceMetrics are the example-weighted means of the devices'
	// metrics (plain rounds only).
	DeviceMetrics map[string]float64 `json:"device_metrics,omitempty" cbor:"device_metrics,omitempty"`
	// HasEval: the hub's Evaluator scored the new global model.
	HasEval      bool    `json:"has_eval" cbor:"has_eval"`
	EvalLoss     float64 `json:"eval_loss,omitempty" cbor:"eval_loss,omitempty"`
	EvalAccuracy float64 `json:"eval_accuracy,omitempty" cbor:"eval_accuracy,omitempty"`
	// BytesIn of updates received, BytesOut of models sent.
	BytesIn  uint64 `json:"bytes_in" cbor:"bytes_in"`
	BytesOut uint64 `json:"bytes_out" cbor:"bytes_out"`
	// EvalMetrics are the hub's evaluation's other metrics (such as
	// "auroc"), when the Evaluator reports them (DatasetEvaluator passes
	// on what the module's evaluate reports), at most 16, finite.
	EvalMetrics map[string]float64 `json:"eval_metrics,omitempty" cbor:"eval_metrics,omitempty"`
	// Privacy is the privacy mode's state after the round (nil in plain
	// rounds): epsilon spent so far, releases.
	Privacy *ModeStatus `json:"privacy,omitempty" cbor:"privacy,omitempty"`
	// Time the round ended (UTC).
	Time time.Time `json:"time,omitzero" cbor:"time"`
	// Phases is where the round's wall time went on the hub (nil for a
	// round that failed before it was announced).
	Phases *RoundPhases `json:"phases,omitempty" cbor:"phases,omitempty"`
}

func fromReport(r hub.Report) RoundReport {
	out := RoundReport{
		Round: r.Round, Version: r.Version, Status: r.Status, Error: r.Error, Sampled: r.Sampled, Available: r.Available,
		Received: r.Received, Participants: r.Participants, Dropped: r.Dropped, Refused: r.Refused, Rejected: r.Rejected,
		Clamped: r.Clamped, Duration: r.Duration, DeviceMetrics: r.DeviceMetrics, HasEval: r.HasEval, EvalLoss: r.EvalLoss,
		EvalAccuracy: r.EvalAccuracy, BytesIn: r.BytesIn, BytesOut: r.BytesOut, EvalMetrics: r.EvalMetrics, Time: r.Time,
	}
	if r.Phases != nil {
		p := RoundPhases(*r.Phases)
		out.Phases = &p
	}
	if r.Privacy != nil {
		p := ModeStatus(*r.Privacy)
		out.Privacy = &p
	}
	return out
}

// RoundPhases is the wall time of a round's phases on the hub: Claim (the
// round id written durably before the round is announced; zero when the
// previous round's commit wrote it), Gather (tasks out until the last
// sampled update is in, or the deadline), Aggregate, Commit (checkpoint,
// optimizer state and round state written; old checkpoints are deleted
// behind the round) and Evaluate (the hub's evaluation).
type RoundPhases struct {
	Claim     time.Duration `json:"claim_ns" cbor:"claim"`
	Gather    time.Duration `json:"gather_ns" cbor:"gather"`
	Aggregate time.Duration `json:"aggregate_ns" cbor:"aggregate"`
	Commit    time.Duration `json:"commit_ns" cbor:"commit"`
	Evaluate  time.Duration `json:"evaluate_ns" cbor:"evaluate"`
}

// HubEvaluator scores a global model on held-out data the hub holds.
type HubEvaluator interface {
	Evaluate(ctx context.Context, m Model) (loss, accuracy float64, err error)
}

// DatasetEvaluator is the HubEvaluator that scores models on data with e
// (a WasmTrainer runs a module's `evaluate`); name names the data in
// errors. e must report a "loss" metric: a missing one is an error.
func DatasetEvaluator(e Evaluator, data Dataset, name string) HubEvaluator {
	return dataEvaluator{train.DataEvaluator{E: evaluator(e), Data: data.internal(), Name: name}}
}

type dataEvaluator struct{ d train.DataEvaluator }

func (e dataEvaluator) Evaluate(ctx context.Context, m Model) (float64, float64, error) {
	return e.d.Evaluate(ctx, m.internal())
}

type hubEvaluatorAdapter struct{ e HubEvaluator }

func (a hubEvaluatorAdapter) Evaluate(ctx context.Context, m model.Model) (float64, float64, error) {
	return a.e.Evaluate(ctx, fromModel(m))
}

// SamplingRate is the rate at which a hub of fraction and minDevices
// samples from available devices, sampled/available: the rate a privacy
// mode's accountant charges such a round, and the planned rate for
// calibrating the noise over a known population.
func SamplingRate(fraction float64, minDevices, available int) float64 {
	return hub.SamplingRate(fraction, minDevices, available)
}

// PlanPrivacy returns m with the fields a hub's configuration decides
// filled where they are zero: Rounds from c.Rounds, Population from the
// devices of c.Access (or c.Keys), and SamplingRate, the rate the noise is
// calibrated for, from c.Fraction and c.MinDevices over that population
// (c.Fraction when it is unknown). Pass the result to NewHubPrivacy.
func (c HubConfig) PlanPrivacy(m ModeConfig) ModeConfig {
	if m.Rounds == 0 {
		m.Rounds = c.Rounds
	}
	if len(m.Population) == 0 {
		switch {
		case c.Access != nil:
			for _, d := range c.Access.Devices {
				m.Population = append(m.Population, d.ID)
			}
		case len(c.Keys) > 0:
			m.Population = slices.Sorted(maps.Keys(c.Keys))
		}
	}
	if m.SamplingRate == 0 {
		m.SamplingRate = hub.PlannedSamplingRate(c.Fraction, c.MinDevices, len(m.Population))
	}
	return m
}

// FleetSecretFile is the fleet secret file of a hub: path when it is set,
// else fleet.secret in dataDir, which it creates (mode 0700) when absent.
// Without either it returns ErrNoSecretFile. Read the file with
// ReadFleetSecret(file, true), which creates the secret.
func FleetSecretFile(path, dataDir string) (string, error) {
	switch {
	case path != "":
		return path, nil
	case dataDir == "":
		return "", ErrNoSecretFile
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dataDir, "fleet.secret"), nil
}

// Hub coordinates a federation's rounds: each round it samples available
// devices, sends them signed tasks, receives and checks their chunked
// updates until the deadline, aggregates them with the strategy and
// stores the new global model in a JetStream object store, its round
// state in a JetStream KV bucket, so that a restarted hub resumes from the
// last completed round. Its lifecycle is nats-server's: NewHub, Start,
// Ready, then Shutdown; Done closes when the configured rounds are
// complete.
type Hub struct{ h *hub.Hub }

// Seen maps each device heard from within the hub's DeviceTTL to the time
// it was last heard from.
func (h *Hub) Seen() map[string]time.Time { return h.h.Seen() }

// LeafURL is the URL device leaf nodes connect to ("" without
// HubConfig.LeafListen or before Start).
func (h *Hub) LeafURL() string { return h.h.LeafURL() }

// Conn is the hub's own NATS connection (nil before Start), for parts of
// the hub's process that read its JetStream state, such as the dashboard.
// It has every right the hub has: do not hand it to anything else.
func (h *Hub) Conn() *nats.Conn { return h.h.Conn() }

// NewHub validates cfg and returns an unstarted hub; errors name the
// field at fault.
func NewHub(cfg HubConfig) (*Hub, error) {
	h, err := hub.New(cfg.internal())
	if err != nil {
		return nil, err
	}
	return &Hub{h}, nil
}

func (c HubConfig) internal() hub.Config {
	ic := hub.Config{
		Name: c.Name, DataDir: c.DataDir, Listen: c.Listen, NATSURL: c.NATSURL, NATSOptions: c.NATSOptions,
		LeafListen: c.LeafListen, UplinkMaxBytes: c.UplinkMaxBytes, TLS: c.TLS, AllowPlaintext: c.AllowPlaintext,
		Access: c.Access, Insecure: c.Insecure, Replicas: c.Replicas,
		Strategy: internalStrategy(c.Strategy), Rounds: c.Rounds, Fraction: c.Fraction, MinDevices: c.MinDevices,
		Quorum: c.Quorum, Deadline: c.Deadline, Settings: c.Settings.internal(), Initial: modelPtr(c.Initial),
		Secret: c.Secret, Keys: c.Keys, DeviceTTL: c.DeviceTTL,
		WeightRatio: c.WeightRatio, MaxPendingBytes: c.MaxPendingBytes, Keep: c.Keep, Seed: c.Seed, Logger: c.Logger,
		ResetAccounting: c.ResetPrivacy,
	}
	if c.Privacy != nil {
		ic.Mode, ic.ModeHub = c.Privacy.Mode(), c.Privacy.h
	}
	switch e := c.Evaluator.(type) {
	case nil:
	case dataEvaluator:
		ic.Evaluator = e.d
	default:
		ic.Evaluator = hubEvaluatorAdapter{e}
	}
	if c.OnRound != nil {
		f := c.OnRound
		ic.OnRound = func(r hub.Report) { f(fromReport(r)) }
	}
	return ic
}

// Start starts the embedded server (unless NATSURL is set), opens the
// buckets, loads the last completed round and starts the round loop.
func (h *Hub) Start() error { return h.h.Start() }

// Ready waits until the hub has started or timeout passes.
func (h *Hub) Ready(timeout time.Duration) bool { return h.h.Ready(timeout) }

// ClientURL is the URL devices connect to ("" when embedded without a
// listener).
func (h *Hub) ClientURL() string { return h.h.ClientURL() }

// Server is the embedded NATS server, nil with NATSURL: in-process
// clients connect to it with nats.InProcessServer.
func (h *Hub) Server() *server.Server { return h.h.Server() }

// Done closes when the configured rounds are complete or the round loop
// failed (Err).
func (h *Hub) Done() <-chan struct{} { return h.h.Done() }

// Err is the round loop's error after Done, nil when the rounds
// completed.
func (h *Hub) Err() error { return h.h.Err() }

// Global is the current global model.
func (h *Hub) Global() Model { return fromModel(h.h.Global()) }

// Version is the number of completed rounds.
func (h *Hub) Version() uint64 { return h.h.Version() }

// Reports are the reports of the rounds this process ran.
func (h *Hub) Reports() []RoundReport {
	rs := h.h.Reports()
	out := make([]RoundReport, len(rs))
	for i, r := range rs {
		out[i] = fromReport(r)
	}
	return out
}

// HistoryMax is the most round reports History returns.
const HistoryMax = hub.MaxHistory

// History returns the hub's stored reports of the last n rounds (at most
// HistoryMax) before its next one, oldest first: those of earlier runs on
// the same store as well as this one's, read from its JetStream KV bucket
// (a report per round, written when the round ends). A stored report that
// does not decode is logged and left out; rounds without one (a round the
// hub was stopped in) are skipped. The error is the store's.
//
// A round that ends while History reads may or may not be in it: to see
// every round exactly once, take OnRound's reports from before the call
// and merge by RoundReport.Round (the dashboard does).
func (h *Hub) History(ctx context.Context, n int) ([]RoundReport, error) {
	rs, err := h.h.History(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]RoundReport, len(rs))
	for i, r := range rs {
		out[i] = fromReport(r)
	}
	return out, nil
}

// Available lists the devices heard from within DeviceTTL, sorted.
func (h *Hub) Available() []string { return h.h.Available() }

// Shutdown stops the round loop (an open round is abandoned; a restarted
// hub starts a new one) and closes the connection and the embedded
// server, waiting for all of them.
func (h *Hub) Shutdown() { h.h.Shutdown() }
