// Package hub coordinates federated rounds over NATS. It embeds
// nats-server with JetStream file storage by default, or connects to an
// existing NATS cluster; global models and checkpoints live in a JetStream
// object store, round state in a JetStream key-value bucket, so a hub
// restarted (or replaced on another machine) resumes from the last
// completed round.
package hub

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Evaluator scores a global model on held-out data the hub holds.
type Evaluator interface {
	Evaluate(ctx context.Context, m model.Model) (loss, accuracy float64, err error)
}

// MetricsEvaluator is an Evaluator that reports every metric of its
// evaluation ("loss", "accuracy", and others such as "auroc"); the hub
// puts the others in Report.EvalMetrics (train.DataEvaluator is one).
type MetricsEvaluator interface {
	Evaluator
	EvaluateMetrics(ctx context.Context, m model.Model) (map[string]float64, error)
}

// Config configures a Hub. The zero value of each field is its default.
type Config struct {
	// Name is the federation's name (subject and bucket token); "default".
	Name string
	// DataDir holds the embedded server's JetStream files. Required unless
	// NATSURL is set.
	DataDir string
	// Listen is the embedded server's client address; "127.0.0.1:4222".
	// Port 0 picks a free port. "-" disables the listener (in-process only).
	Listen string
	// NATSURL connects to an existing NATS server or cluster instead of
	// embedding one; NATSOptions (credentials, TLS) apply to it.
	NATSURL     string
	NATSOptions []nats.Option
	// Access, when set, turns on authentication and authorisation on the
	// embedded server with package deploy's access file: only its devices
	// and operators connect, each with its own nkey, and the hub itself
	// with an nkey that exists only in this process. Device D may publish
	// only its own join, leave and update messages and model requests and
	// receive only its own tasks (DevicePermissions), and use its group's
	// rollout state and its own status (deploy.DevicePermissions);
	// operators may deploy (deploy.OperatorPermissions) and nothing else.
	// The hub creates the deploy buckets, so it serves rollouts. nil lets
	// any client connect (in-process and demo use). Not with NATSURL: an
	// external server's permissions are configured there.
	Access *deploy.Access
	// Insecure turns authentication off on the embedded server: any client
	// that reaches Listen may connect with every right (publish tasks,
	// speak for any device, write the hub's state). Without it (and
	// without Access) the server authenticates every network client as a
	// device of the fleet (user = device id, password =
	// wire.DevicePassword of its key) with DevicePermissions, and only the
	// hub's own process (in-process connections) has further rights.
	// With NATSURL, a server that requires no authentication, reached at
	// an address that is not loopback, is refused unless Insecure is set.
	Insecure bool
	// Replicas of the KV bucket and object store (1; use 3 on a cluster).
	Replicas int
	// LeafListen, when set, opens the embedded server's leaf node listener
	// (host:port, port 0 picks a free one) for devices that run their own
	// local server (internal/leaf, fennec agent --leaf). A leaf connection
	// authenticates as its device, exactly as the device's own connection
	// would (its nkey with Access, its id and password otherwise), and gets
	// the device's permissions plus leaf.Permissions (its own JetStream
	// domain only). The server's JetStream takes the domain leaf.HubDomain,
	// and the stream leaf.UplinkStream sources every device's outbox
	// across the leaf connections: the Access file's devices from the
	// start, a fleet device from its first join. "" opens no leaf listener.
	LeafListen string
	// UplinkMaxBytes bounds the uplink stream (1 GiB; the oldest messages
	// are discarded first).
	UplinkMaxBytes int64
	// TLS, when set, makes the embedded server's client and leaf listeners
	// TLS only (internal/tlsfiles builds it from files, reloaded on
	// change; ClientAuth = RequireAndVerifyClientCert for mutual TLS).
	TLS *tls.Config
	// AllowPlaintext lets a hub with Access listen without TLS on an
	// address other than loopback; without it that configuration is
	// refused (credentials would be authenticated, but updates, models,
	// rollouts and status would cross the network in the clear).
	AllowPlaintext bool

	// Strategy aggregates updates; FedAvg when nil.
	Strategy strategy.Strategy
	// Rounds to complete before Done closes; 0 runs until Shutdown.
	Rounds int
	// Fraction of available devices sampled per round (1.0), at least
	// MinDevices (1). A round waits until MinDevices are available. The
	// round's sampling rate, sampled / available (SamplingRate), reaches
	// the mode in hook.RoundInfo and the report.
	Fraction   float64
	MinDevices int
	// Quorum is the fraction of sampled devices whose updates close the
	// round at the deadline (0.5); below it the round fails and the next
	// round starts from the same global model.
	Quorum float64
	// Deadline after which stragglers are dropped (30s).
	Deadline time.Duration
	// Settings sent to devices (Mode is set from the strategy, and Mu from
	// a built-in one: strategy.ProximalWeight).
	Settings wire.Settings
	// Initial is the starting global model, used when the store holds none.
	Initial *model.Model
	// Secret is the fleet secret device keys derive from (wire.DeviceKey);
	// Keys, when set, lists device keys explicitly instead.
	Secret []byte
	Keys   map[string][]byte
	// DeviceTTL: a device not heard from for this long is not sampled (10s).
	DeviceTTL time.Duration
	// Mode is the privacy mode of every round ("" plain) and ModeHub its
	// hub-side transforms (required when Mode is set). When ModeHub has a
	// Bind(hook.Exchanger, func() model.Model) method (a modes.Hub does),
	// Start binds it to a step link (hook.HubLink) on the hub's own
	// connection and to Global. Join replies name Mode (ModeHeader), and in
	// every mode but plain the devices' metrics are neither sent nor
	// reported.
	Mode    string
	ModeHub hook.HubTransform
	// ResetAccounting lets a hub whose store holds privacy accounting it
	// cannot restore (another mode's, other RDP orders, malformed) start
	// its accountant from zero; without it such a hub refuses to start,
	// since counting from zero would understate the epsilon spent.
	ResetAccounting bool
	// Evaluator reports global loss/accuracy per round when set.
	Evaluator Evaluator
	// OnRound is called after every round (completed or failed).
	OnRound func(Report)
	// WeightRatio bounds the example counts that weight updates: no update
	// counts for more than WeightRatio times the round's median claimed
	// count (strategy.BoundExamples; 4). A device's num_examples is its
	// own, unverifiable claim.
	WeightRatio float64
	// MaxPendingBytes bounds the bytes of all uploads in progress in a
	// round together (1 GiB); a chunk beyond it is refused as "busy". Each
	// device has at most one upload in progress, of at most the global
	// model's encoding plus wire.UpdateOverhead (wire.MaxUpdateSize).
	MaxPendingBytes int64
	// Keep is the number of model checkpoints kept in the object store (5).
	Keep int
	// Seed seeds device sampling (0: random).
	Seed uint64
	// Logger receives the hub's events (slog.Default() when nil).
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.Name == "" {
		c.Name = "default"
	}
	if err := wire.ValidName(c.Name); err != nil {
		return fmt.Errorf("hub config: Name: %w", err)
	}
	if c.NATSURL != "" && c.Access != nil {
		return errors.New("hub config: Access applies to the embedded server; configure an external server's (NATSURL) users there")
	}
	if c.Insecure && c.Access != nil {
		return errors.New("hub config: Insecure and Access exclude each other")
	}
	if c.NATSURL != "" && c.LeafListen != "" {
		return errors.New("hub config: LeafListen applies to the embedded server; an external server's (NATSURL) leaf listener is configured there")
	}
	if c.LeafListen != "" {
		if _, _, err := natsembed.SplitListen(c.LeafListen); err != nil {
			return fmt.Errorf("hub config: LeafListen: %w", err)
		}
	}
	if c.NATSURL == "" && c.Access != nil && c.TLS == nil && !c.AllowPlaintext {
		for _, l := range []struct{ flag, addr string }{{"Listen", c.Listen}, {"LeafListen", c.LeafListen}} {
			if l.addr != "" && !natsembed.Loopback(l.addr) {
				return fmt.Errorf("hub config: %s %s is reachable from the network and would carry the fleet's traffic in plaintext: set TLS (--tls-cert, --tls-key) or AllowPlaintext (--allow-plaintext)", l.flag, l.addr)
			}
		}
	}
	if c.NATSURL == "" && c.DataDir == "" {
		return errors.New("hub config: DataDir is required for the embedded NATS server")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if err := errors.Join(
		config.Default("hub config: Replicas", &c.Replicas, 1),
		config.NonNegative("hub config: Rounds", c.Rounds),
		config.Default("hub config: Fraction", &c.Fraction, 1),
		config.Default("hub config: MinDevices", &c.MinDevices, 1),
		config.Default("hub config: Quorum", &c.Quorum, 0.5),
		config.Default("hub config: Deadline", &c.Deadline, 30*time.Second),
		config.Default("hub config: DeviceTTL", &c.DeviceTTL, 10*time.Second),
		config.Default("hub config: Keep", &c.Keep, 5),
		config.Default("hub config: WeightRatio", &c.WeightRatio, strategy.DefaultWeightRatio),
		config.Default("hub config: MaxPendingBytes", &c.MaxPendingBytes, 1<<30),
		config.Default("hub config: UplinkMaxBytes", &c.UplinkMaxBytes, 1<<30),
	); err != nil {
		return err
	}
	if c.Replicas > 5 {
		return fmt.Errorf("hub config: Replicas %d outside 1..5", c.Replicas)
	}
	if c.Strategy == nil {
		c.Strategy = strategy.FromAggregator(strategy.FedAvg{})
	}
	if c.Fraction > 1 {
		return fmt.Errorf("hub config: Fraction %v outside (0, 1]", c.Fraction)
	}
	if c.Quorum > 1 {
		return fmt.Errorf("hub config: Quorum %v outside (0, 1]", c.Quorum)
	}
	if !(c.WeightRatio >= 1) {
		return fmt.Errorf("hub config: WeightRatio %v must be >= 1", c.WeightRatio)
	}
	if c.Secret == nil && c.Keys == nil {
		return errors.New("hub config: Secret or Keys is required (device credentials)")
	}
	if c.Mode != "" && c.ModeHub == nil {
		return fmt.Errorf("hub config: Mode %q needs ModeHub transforms", c.Mode)
	}
	c.Logger = config.Logger(c.Logger)
	// A robust strategy is robust only with enough updates per round: say
	// so now rather than aggregate a round in which one device decides.
	// Which strategies a privacy mode may feed is this rule's: every mode
	// but plain hands the strategy one aggregate.
	if why := strategy.IndividualUpdates(c.Strategy); why != "" && !plainMode(c.Mode) {
		return fmt.Errorf("hub config: strategy %s %s, but mode %s hands it one aggregate: use fedavg, fedprox, fedadam, fedyogi or fedadagrad",
			c.Strategy.Name(), why, c.Mode)
	}
	if n, why := strategy.MinUpdates(c.Strategy); n > 1 {
		if c.MinDevices < n {
			return fmt.Errorf("hub config: strategy %s is robust only with at least %d updates per round (%s), and MinDevices is %d: set MinDevices (--min-devices) to %d or more, or choose another strategy",
				c.Strategy.Name(), n, why, c.MinDevices, n)
		}
	}
	if c.Settings.Epochs == 0 {
		c.Settings.Epochs = 1
	}
	if c.Settings.BatchSize == 0 {
		c.Settings.BatchSize = 32
	}
	if c.Settings.LR == 0 {
		c.Settings.LR = 0.05
	}
	// A built-in strategy's proximal weight is its own (FedProx's Mu, 0
	// for the others: a fedavg hub sends none).
	if mu, ok := strategy.ProximalWeight(c.Strategy); ok {
		c.Settings.Mu = mu
	}
	c.Settings.Mode = "weights"
	if g, ok := c.Strategy.(strategy.GradientMode); ok && g.Gradient() {
		c.Settings.Mode = "gradient"
	}
	return nil
}

// Report describes one round.
type Report struct {
	Round   uint64 `json:"round" cbor:"round"`
	Version uint64 `json:"version" cbor:"version"` // global version after the round
	Status  string `json:"status" cbor:"status"`   // "completed" | "failed"
	Error   string `json:"error,omitempty" cbor:"error,omitempty"`
	Sampled int    `json:"sampled" cbor:"sampled"`
	// Available is the number of devices the sample was drawn from:
	// Sampled/Available is the round's sampling rate.
	Available int `json:"available" cbor:"available"`
	Received  int `json:"received" cbor:"received"`
	// Participants: the sampled devices whose updates arrived in time
	// (the Received ones), sorted.
	Participants []string `json:"participants,omitempty" cbor:"participants,omitempty"`
	Dropped      []string `json:"dropped,omitempty" cbor:"dropped,omitempty"` // stragglers
	Refused      int      `json:"refused" cbor:"refused"`                     // late / invalid update messages
	// Rejected: sampled devices whose authenticated update was refused
	// (not finite, wrong layout, malformed), with the reason; they do not
	// count towards the round.
	Rejected map[string]string `json:"rejected,omitempty" cbor:"rejected,omitempty"`
	// Clamped: devices whose claimed num_examples was lowered to the
	// round's bound (Config.WeightRatio), with their claims.
	Clamped  map[string]uint64 `json:"clamped,omitempty" cbor:"clamped,omitempty"`
	Duration time.Duration     `json:"duration_ns" cbor:"duration"`
	// Example-weighted means of the devices' reported metrics (plain
	// rounds only: in a privacy mode devices send none).
	DeviceMetrics map[string]float64 `json:"device_metrics,omitempty" cbor:"device_metrics,omitempty"`
	// Hub-side evaluation of the new global model on held-out data.
	HasEval      bool    `json:"has_eval" cbor:"has_eval"`
	EvalLoss     float64 `json:"eval_loss,omitempty" cbor:"eval_loss,omitempty"`
	EvalAccuracy float64 `json:"eval_accuracy,omitempty" cbor:"eval_accuracy,omitempty"`
	BytesIn      uint64  `json:"bytes_in" cbor:"bytes_in"`   // update bytes received
	BytesOut     uint64  `json:"bytes_out" cbor:"bytes_out"` // model bytes sent
	// EvalMetrics: the hub's evaluation's other metrics (such as
	// "auroc"), when its Evaluator is a MetricsEvaluator; at most
	// MaxEvalMetrics, finite.
	EvalMetrics map[string]float64 `json:"eval_metrics,omitempty" cbor:"eval_metrics,omitempty"`
	// Privacy is the privacy mode's state after the round (nil in plain
	// rounds): epsilon spent so far, releases.
	Privacy *modes.Status `json:"privacy,omitempty" cbor:"privacy,omitempty"`
	// Time the round ended (UTC). Reports stored before it existed read
	// back with their store entry's time (History).
	Time time.Time `json:"time,omitzero" cbor:"time"`
	// Phases is where the round's wall time went on the hub.
	Phases *Phases `json:"phases,omitempty" cbor:"phases,omitempty"`

	commit *pendingCommit // the round's commit, when it is written behind the round (runRound)
}

// Phases is the wall time of a round's phases on the hub, in order: the
// durable claim of the round id (zero when an earlier round's commit
// claimed it), the gather (tasks published until the last sampled update
// arrived or the deadline), the aggregation (mode hooks and strategy; in a
// plain round also the wait for the previous round's commit),
// the commit (checkpoint, optimizer state and round state written; the
// old checkpoints' deletion only started) and the hub's evaluation. In a
// plain round the commit and the evaluation run while the next round
// gathers. Duration runs from the gather's start to the aggregation's end
// plus the commit and the evaluation; the claim comes before it. A failed
// round has the phases it reached.
type Phases struct {
	Claim     time.Duration `json:"claim_ns" cbor:"claim"`
	Gather    time.Duration `json:"gather_ns" cbor:"gather"`
	Aggregate time.Duration `json:"aggregate_ns" cbor:"aggregate"`
	Commit    time.Duration `json:"commit_ns" cbor:"commit"`
	Evaluate  time.Duration `json:"evaluate_ns" cbor:"evaluate"`
}

// State is what the hub persists in its KV bucket under "state".
type State struct {
	NextRound uint64 `cbor:"next_round"`
	Version   uint64 `cbor:"version"`
	Model     string `cbor:"model"`
	Digest    []byte `cbor:"digest"`
	Opt       string `cbor:"opt,omitempty"`
	Strategy  string `cbor:"strategy"`
	// Privacy is the privacy mode's accounting after the last completed
	// round (DP modes), so that a restarted hub's accountant goes on
	// from what was spent.
	Privacy *modes.Accounting `cbor:"privacy,omitempty"`
}

// accountant is a mode's hub side whose accounting the hub persists
// (a modes.Hub).
type accountant interface {
	Accounting() *modes.Accounting
	Restore(modes.Accounting) error
}

// Hub is a running federation coordinator: New, Start, Ready, then
// Shutdown (Done closes when the configured rounds are complete).
type Hub struct {
	cfg  Config
	log  *slog.Logger
	subj wire.Subjects

	ns  *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore

	uplinkMu  sync.Mutex
	uplinkSrc map[string]bool // devices whose outbox the uplink sources

	rng *rand.Rand

	mu      sync.Mutex
	devices map[string]time.Time
	seen    map[string]int64 // newest accepted join/leave timestamp per device (freshLocked)
	joined  chan struct{}
	cur     *round
	global  model.Model
	enc     []byte // encoded global model
	digest  []byte
	chunks  [][]byte
	// state and stateRev are written (under mu) only by Start and the
	// round loop, which may therefore read them without mu; every other
	// reader (Version) takes mu.
	state    State
	stateRev uint64
	reports  []Report
	// nextID is the id of the loop's next round (0 until the first:
	// state.NextRound, the first id no hub has claimed). Ids below the
	// durable state.NextRound are claimed (runRound).
	nextID uint64
	// pending is the loop's commit in flight (pipelined rounds: the next
	// round is announced while it is written); waitCommit waits for it.
	pending *pendingCommit
	// behind holds a channel per background store write of the round
	// loop (an old checkpoint's deletion, a round report), closed when it
	// ends.
	behind []chan struct{}

	// g runs the round loop; Shutdown waits for it before it closes the
	// connection and the server.
	g        routines.Group
	tail     chan struct{} // closed when the last completed round's tail has reported (the loop's own)
	ready    chan struct{}
	done     chan struct{}
	cancel   context.CancelFunc
	err      error
	startErr error
	once     sync.Once
}

type round struct {
	id, version uint64
	sampled     map[string]bool
	asm         map[string]*wire.Assembler
	updates     map[string]strategy.ModelUpdate
	rejected    map[string]string // sampled device -> why its update was refused
	refused     int
	bytesIn     uint64
	pending     int64  // bytes of the uploads in progress
	maxUpload   uint64 // largest update payload (wire.MaxUpdateSize)
	closed      bool
	isFull      bool
	full        chan struct{}
	info        hook.RoundInfo
}

// New validates cfg and returns an unstarted hub.
func New(cfg Config) (*Hub, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Hub{
		cfg: cfg, log: cfg.Logger.With("component", "hub", "federation", cfg.Name),
		subj: wire.For(cfg.Name), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		devices: map[string]time.Time{}, seen: map[string]int64{}, joined: make(chan struct{}, 1),
		ready: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

func (h *Hub) bucket(kind string) string { return "fennec_" + h.cfg.Name + "_" + kind }

// Start starts the embedded server (unless NATSURL is set), opens the
// buckets, loads the last completed round and starts the round loop.
func (h *Hub) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if err := h.start(ctx); err != nil {
		cancel()
		h.closeConns()
		return err
	}
	close(h.ready)
	if !h.g.Go(func() { h.loop(ctx) }) {
		cancel()
		h.closeConns()
		return errors.New("hub: shut down while starting")
	}
	return nil
}

func (h *Hub) start(ctx context.Context) error {
	if h.cfg.NATSURL == "" {
		connOpts := []nats.Option{nats.Name("fennec-hub")}
		names := map[string]string{}
		var configure func(*server.Options)
		switch {
		case h.cfg.Access != nil:
			// The hub's own user: an nkey that exists only in this process,
			// with every permission, and an inbox no one else may read.
			kp, err := nkeys.CreateUser()
			if err != nil {
				return err
			}
			pub, err := kp.PublicKey()
			if err != nil {
				return err
			}
			users := append(h.cfg.Access.NkeyUsers(func(d deploy.DeviceAccess) *server.Permissions {
				return h.leafPermissions(DevicePermissions(h.cfg.Name, d.ID), d.ID, deploy.DevicePermissions(d.Group, d.ID))
			}), &server.NkeyUser{Nkey: pub})
			configure = func(o *server.Options) { o.Nkeys = users; h.leafOptions(o) }
			connOpts = append(connOpts, nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(HubInboxPrefix))
			for _, d := range h.cfg.Access.Devices {
				names[d.Nkey] = "device " + d.ID
			}
			for _, o := range h.cfg.Access.Operators {
				names[o.Nkey] = "operator " + o.Name
			}
		case !h.cfg.Insecure:
			// Fleet authentication: a device connects as its id with the
			// password its key derives (wire.DevicePassword) and gets
			// DevicePermissions; the hub's process connects in-process
			// with every right, and its replies come to an inbox devices
			// may not read. No one else connects.
			auth := &fleetAuth{name: h.cfg.Name, key: h.key, log: h.log, leaf: h.cfg.LeafListen != ""}
			configure = func(o *server.Options) { o.CustomClientAuthentication = auth; h.leafOptions(o) }
			connOpts = append(connOpts, nats.CustomInboxPrefix(HubInboxPrefix))
		default:
			where := "any local process"
			if !natsembed.Loopback(h.cfg.Listen) {
				where = "anyone on the network who reaches " + h.cfg.Listen
			}
			h.log.Warn("INSECURE: the embedded NATS server authenticates no one: " + where + " may drop devices, read and answer their traffic and write the hub's state")
			configure = h.leafOptions
		}
		ns, err := natsembed.Start(ctx, natsembed.Config{
			Name: "fennec-hub-" + h.cfg.Name, Dir: h.cfg.DataDir, Listen: h.cfg.Listen, TLS: h.cfg.TLS,
			Configure: configure,
			// Refused connections and permission violations are worth an
			// operator's attention; the rest of the server's log is not.
			Logger: natsLogger{h.log, names},
		})
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		h.ns = ns
		nc, err := nats.Connect("", append(append([]nats.Option{nats.InProcessServer(ns)}, connOpts...), h.cfg.NATSOptions...)...)
		if err != nil {
			return fmt.Errorf("hub: connect in-process: %w", err)
		}
		h.nc = nc
	} else {
		nc, err := nats.Connect(h.cfg.NATSURL, append([]nats.Option{nats.Name("fennec-hub"), nats.MaxReconnects(-1)}, h.cfg.NATSOptions...)...)
		if err != nil {
			return fmt.Errorf("hub: connect %s: %w", h.cfg.NATSURL, err)
		}
		h.nc = nc
		// An external server's users and permissions are configured there;
		// one that authenticates no one, reached over the network, lets
		// anyone forge tasks and rewrite the hub's state.
		if u := nc.ConnectedUrl(); !nc.AuthRequired() && !loopbackURL(u) {
			if !h.cfg.Insecure {
				return fmt.Errorf("hub: the NATS server at %s authenticates no one, so anyone who reaches it may write the hub's state and act as any device; configure users and permissions on it (docs/FEDERATION.md), or pass --insecure (HubConfig.Insecure) to run anyway", u)
			}
			h.log.Warn("INSECURE: the NATS server at " + u + " authenticates no one: anyone who reaches it may drop devices and write the hub's state")
		}
	}
	js, err := jetstream.New(h.nc)
	if err != nil {
		return err
	}
	h.js = js
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	h.kv, err = js.CreateOrUpdateKeyValue(sctx, jetstream.KeyValueConfig{
		// History keeps the last StateHistory round states, so that a
		// hub that finds the newest corrupt resumes from an older one.
		Bucket: h.bucket("state"), Storage: jetstream.FileStorage, Replicas: h.cfg.Replicas, History: StateHistory,
	})
	if err != nil {
		return fmt.Errorf("hub: kv bucket: %w", err)
	}
	h.obj, err = js.CreateOrUpdateObjectStore(sctx, jetstream.ObjectStoreConfig{
		Bucket: h.bucket("models"), Storage: jetstream.FileStorage, Replicas: h.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("hub: object store: %w", err)
	}
	if h.cfg.Access != nil {
		if err := deploy.EnsureBuckets(sctx, js); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
	}
	if h.cfg.LeafListen != "" {
		var ids []string
		if h.cfg.Access != nil {
			for _, d := range h.cfg.Access.Devices {
				ids = append(ids, d.ID)
			}
		}
		if err := h.ensureUplink(sctx, ids...); err != nil {
			return err
		}
	}
	if err := h.load(sctx); err != nil {
		return err
	}
	if b, ok := h.cfg.ModeHub.(modeBinder); ok {
		// The mode's protocol steps go over the hub's own connection: with
		// Access it is the only one allowed to ask devices, and its replies
		// arrive on the hub's private inbox.
		link, err := hook.NewHubLink(h.nc, h.cfg.Name, h.key)
		if err != nil {
			return fmt.Errorf("hub: mode step link: %w", err)
		}
		b.Bind(link, h.Global)
	}
	for _, s := range []struct {
		subj string
		fn   nats.MsgHandler
	}{{h.subj.JoinPrefix + "*", h.onJoin}, {h.subj.LeavePrefix + "*", h.onLeave}, {h.subj.Model, h.onModel}, {h.subj.UpdatePrefix + "*", h.onUpdate}} {
		sub, err := h.nc.Subscribe(s.subj, s.fn)
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
	}
	return h.nc.Flush()
}

// load restores the last completed round or stores the initial model. A
// state it cannot use (undecodable, deleted, or naming a checkpoint that
// is missing or fails its digest) does not stop the hub: it resumes from
// the last good model (recover) and says so in its log.
func (h *Hub) load(ctx context.Context) error {
	e, err := h.kv.Get(ctx, "state")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		fresh, ferr := h.emptyStore(ctx)
		if ferr != nil {
			return ferr
		}
		if fresh {
			return h.initialise(ctx)
		}
		return h.recover(ctx, fmt.Errorf("the state key of %s is missing (deleted) but the store holds earlier rounds", h.bucket("state")))
	}
	if err != nil {
		return fmt.Errorf("hub: read state: %w", err)
	}
	var st State
	if err := model.Unmarshal(e.Value(), &st); err != nil {
		return h.recover(ctx, fmt.Errorf("state in %s is corrupt: %w", h.bucket("state"), err))
	}
	m, b, err := h.checkpoint(ctx, st)
	if err != nil {
		return h.recover(ctx, err)
	}
	h.mu.Lock()
	h.state, h.stateRev = st, e.Revision()
	h.mu.Unlock()
	if st.Strategy != h.cfg.Strategy.Name() {
		h.log.Warn("strategy changed since the last run", "was", st.Strategy, "now", h.cfg.Strategy.Name())
	}
	if err := h.restoreOpt(ctx, st); err != nil {
		// The model is good; only the server optimizer's moments are lost.
		h.log.Error("optimizer state unusable; the strategy's optimizer starts afresh from the last good model", "err", err)
	}
	if err := h.restorePrivacy(st.Privacy); err != nil {
		return err
	}
	h.setGlobal(m, b)
	h.log.Info("resumed", "version", st.Version, "next_round", st.NextRound)
	return nil
}

// ErrAccounting: the store holds privacy accounting the hub's mode
// cannot go on from, and Config.ResetAccounting is not set.
var ErrAccounting = errors.New("the store's privacy accounting cannot be restored")

// restorePrivacy makes the privacy mode's accountant go on from the
// stored accounting. Accounting it cannot use (another mode's, other
// orders, malformed) stops the hub with ErrAccounting: an accountant
// starting from zero would understate what the store's earlier rounds
// released. With ResetAccounting the operator chose a new budget: logged,
// and the accountant starts from zero.
func (h *Hub) restorePrivacy(a *modes.Accounting) error {
	acc, ok := h.cfg.ModeHub.(accountant)
	if !ok || a == nil {
		return nil
	}
	if err := acc.Restore(*a); err != nil {
		if h.cfg.ResetAccounting {
			h.log.Warn("privacy accounting in the store not restored; the accountant starts from zero (ResetAccounting)", "err", err, "stored_releases", a.Releases)
			return nil
		}
		return fmt.Errorf("hub: %w (%v; %d releases stored): a hub counting from zero would understate the epsilon spent; start a new budget deliberately with ResetAccounting (fennec hub --reset-privacy) or use a new data directory", ErrAccounting, err, a.Releases)
	}
	h.log.Info("privacy accounting restored", "mode", a.Mode, "releases", a.Releases)
	return nil
}

// initialise stores the initial model as version 0 of a new store.
func (h *Hub) initialise(ctx context.Context) error {
	if h.cfg.Initial == nil {
		return errors.New("hub: the store holds no model and Config.Initial is nil")
	}
	m := *h.cfg.Initial
	if err := m.Validate(); err != nil {
		return fmt.Errorf("hub: initial model: %w", err)
	}
	m.Version = 0
	h.mu.Lock()
	h.state = State{NextRound: 1, Strategy: h.cfg.Strategy.Name()}
	h.mu.Unlock()
	enc, err := model.Marshal(m)
	if err != nil {
		return err
	}
	if err := h.commit(ctx, m, enc, 0); err != nil {
		return err
	}
	h.setGlobal(m, enc)
	h.log.Info("initialised", "params", m.Params())
	return nil
}

// emptyStore reports whether the buckets hold nothing of an earlier run.
func (h *Hub) emptyStore(ctx context.Context) (bool, error) {
	if _, err := h.kv.History(ctx, "state"); err == nil {
		return false, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, fmt.Errorf("hub: read state history: %w", err)
	}
	objs, err := h.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("hub: list checkpoints: %w", err)
	}
	return len(objs) == 0, nil
}

// checkpoint reads and verifies the model st names.
func (h *Hub) checkpoint(ctx context.Context, st State) (model.Model, []byte, error) {
	if st.NextRound == 0 || st.Model == "" {
		return model.Model{}, nil, fmt.Errorf("state (version %d) names no checkpoint or round", st.Version)
	}
	b, err := h.obj.GetBytes(ctx, st.Model)
	if err != nil {
		return model.Model{}, nil, fmt.Errorf("read checkpoint %s: %w", st.Model, err)
	}
	if !bytes.Equal(wire.Digest(b), st.Digest) {
		return model.Model{}, nil, fmt.Errorf("checkpoint %s digest mismatch", st.Model)
	}
	m, err := model.Decode(b)
	if err == nil {
		err = m.Validate()
	}
	if err != nil {
		return model.Model{}, nil, fmt.Errorf("checkpoint %s: %w", st.Model, err)
	}
	if m.Version != st.Version {
		return model.Model{}, nil, fmt.Errorf("checkpoint %s holds version %d, the state says %d", st.Model, m.Version, st.Version)
	}
	return m, b, nil
}

// restoreOpt restores the strategy's optimizer state st names.
func (h *Hub) restoreOpt(ctx context.Context, st State) error {
	s, ok := h.cfg.Strategy.(strategy.Stateful)
	if !ok || st.Opt == "" || st.Strategy != h.cfg.Strategy.Name() {
		return nil
	}
	ob, err := h.obj.GetBytes(ctx, st.Opt)
	if err != nil {
		return fmt.Errorf("read optimizer state %s: %w", st.Opt, err)
	}
	if err := s.Restore(ob); err != nil {
		return fmt.Errorf("optimizer state %s: %w", st.Opt, err)
	}
	return nil
}

// recover resumes from the last good model after cause made the current
// state unusable: the newest older state revision whose checkpoint
// verifies, else the newest checkpoint in the object store that decodes,
// else the initial model. Round ids are never reused: the next round is
// after every round any readable revision or round report names. The
// recovered state is written as the new revision.
func (h *Hub) recover(ctx context.Context, cause error) error {
	h.log.Error("hub state unusable; resuming from the last good model", "err", cause)
	var nextRound uint64 = 1
	var spent *modes.Accounting
	var (
		good  *State
		gm    model.Model
		genc  []byte
		found string
	)
	if hist, err := h.kv.History(ctx, "state"); err == nil {
		for i := len(hist) - 1; i >= 0; i-- {
			e := hist[i]
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var st State
			if model.Unmarshal(e.Value(), &st) != nil {
				continue
			}
			nextRound = max(nextRound, st.NextRound)
			// What was spent is the newest readable revision's, whichever
			// model the hub resumes from: the rounds after that model
			// were released.
			if st.Privacy != nil && (spent == nil || st.Privacy.Releases > spent.Releases) {
				spent = st.Privacy
			}
			if good != nil {
				continue
			}
			m, b, err := h.checkpoint(ctx, st)
			if err != nil {
				h.log.Warn("older round state unusable", "revision", e.Revision(), "err", err)
				continue
			}
			good, gm, genc, found = &st, m, b, fmt.Sprintf("round state revision %d", e.Revision())
		}
	}
	if good == nil {
		// No usable state: the newest checkpoint in the object store.
		var best uint64
		if objs, err := h.obj.List(ctx); err == nil {
			for _, o := range objs {
				var v uint64
				if n, err := fmt.Sscanf(o.Name, "model-%d", &v); err != nil || n != 1 || o.Name != fmt.Sprintf("model-%d", v) {
					continue
				}
				if good != nil && v <= best {
					continue
				}
				b, err := h.obj.GetBytes(ctx, o.Name)
				if err != nil {
					continue
				}
				m, err := model.Decode(b)
				if err != nil || m.Validate() != nil || m.Version != v {
					continue
				}
				best = v
				good = &State{Version: v, Model: o.Name, Digest: wire.Digest(b)}
				gm, genc, found = m, b, "checkpoint "+o.Name
			}
		}
	}
	if good == nil {
		if h.cfg.Initial == nil {
			return fmt.Errorf("hub: %v, and no earlier state, checkpoint or Config.Initial to resume from", cause)
		}
		m := *h.cfg.Initial
		if err := m.Validate(); err != nil {
			return fmt.Errorf("hub: initial model: %w", err)
		}
		m.Version = 0
		enc, err := model.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := h.obj.PutBytes(ctx, "model-0", enc); err != nil {
			return fmt.Errorf("hub: store checkpoint model-0: %w", err)
		}
		good = &State{Model: "model-0", Digest: wire.Digest(enc)}
		gm, genc, found = m, enc, "the initial model"
	}
	// Rounds claimed after the good state (their reports are keys
	// round.N) must not be announced again.
	if keys, err := h.kv.ListKeys(ctx); err == nil {
		for k := range keys.Keys() {
			var r uint64
			if n, err := fmt.Sscanf(k, reportPrefix+"%d", &r); err == nil && n == 1 {
				nextRound = max(nextRound, r+1)
			}
		}
	}
	st := *good
	st.Privacy = spent
	st.NextRound = max(nextRound, st.NextRound, st.Version+1)
	if st.Strategy == "" {
		st.Strategy = h.cfg.Strategy.Name()
	}
	if err := h.restoreOpt(ctx, st); err != nil {
		h.log.Warn("optimizer state not restored; the strategy starts afresh", "err", err)
		st.Opt = ""
	}
	b, err := model.Marshal(st)
	if err != nil {
		return err
	}
	rev, err := h.kv.Put(ctx, "state", b)
	if err != nil {
		return fmt.Errorf("hub: write recovered round state: %w", err)
	}
	h.mu.Lock()
	h.state, h.stateRev = st, rev
	h.mu.Unlock()
	if err := h.restorePrivacy(st.Privacy); err != nil {
		return err
	}
	h.setGlobal(gm, genc)
	h.log.Warn("recovered from unusable state", "from", found, "version", st.Version, "next_round", st.NextRound)
	return nil
}

func (h *Hub) setGlobal(m model.Model, enc []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.global, h.enc, h.digest = m, enc, wire.Digest(enc)
	h.chunks = wire.Split(enc, h.chunkSize())
}

func (h *Hub) chunkSize() int {
	mp := int(h.nc.MaxPayload())
	return max(1024, min(wire.DefaultChunk*4, mp/2))
}

// commit stores m (version = m.Version) and the optimizer state as new
// checkpoints, then records them in the KV state with a compare-and-set on
// its revision, so two hubs on one store cannot both advance it. The same
// write claims the round ids below claim (state.NextRound raised to it),
// so the next rounds need no write of their own before they are
// announced. The deletion of the checkpoints Keep versions back runs
// behind the round loop (background): a hub killed first leaves one more
// checkpoint, which nothing reads but recovery (newest first). It returns
// m's encoding; the caller makes m the global model (setGlobal).
func (h *Hub) commit(ctx context.Context, m model.Model, enc []byte, claim uint64) error {
	name := fmt.Sprintf("model-%d", m.Version)
	if _, err := h.obj.PutBytes(ctx, name, enc); err != nil {
		return fmt.Errorf("hub: store checkpoint %s: %w", name, err)
	}
	st := h.state
	st.Version, st.Model, st.Digest, st.Strategy = m.Version, name, wire.Digest(enc), h.cfg.Strategy.Name()
	if a, ok := h.cfg.ModeHub.(accountant); ok {
		st.Privacy = a.Accounting()
	}
	st.NextRound = max(st.NextRound, claim)
	st.Opt = ""
	stateful := false
	if s, ok := h.cfg.Strategy.(strategy.Stateful); ok {
		stateful = true
		if b := s.State(); len(b) > 0 {
			st.Opt = fmt.Sprintf("opt-%d", m.Version)
			if _, err := h.obj.PutBytes(ctx, st.Opt, b); err != nil {
				return fmt.Errorf("hub: store optimizer state: %w", err)
			}
		}
	}
	if err := h.putState(ctx, st); err != nil {
		return err
	}
	if m.Version >= uint64(h.cfg.Keep) {
		old := m.Version - uint64(h.cfg.Keep)
		h.background(ctx, func(ctx context.Context) {
			_ = h.obj.Delete(ctx, fmt.Sprintf("model-%d", old))
			if stateful {
				_ = h.obj.Delete(ctx, fmt.Sprintf("opt-%d", old))
			}
		})
	}
	return nil
}

// maxBehind bounds the round loop's background writes in flight: a
// store slower than the rounds makes the loop wait for the oldest.
const maxBehind = 4

// background runs f (a store write nothing in the round waits for) behind
// the round loop, beside the round's own writes. settle waits for all of
// them; the loop settles before it finishes, and Shutdown waits for them
// (h.g).
func (h *Hub) background(ctx context.Context, f func(context.Context)) {
	live := h.behind[:0]
	for _, c := range h.behind {
		select {
		case <-c:
		default:
			live = append(live, c)
		}
	}
	h.behind = live
	if len(h.behind) >= maxBehind {
		<-h.behind[0]
		h.behind = h.behind[1:]
	}
	done := make(chan struct{})
	if !h.g.Go(func() { defer close(done); f(ctx) }) {
		close(done)
	}
	h.behind = append(h.behind, done)
}

func (h *Hub) settle() {
	for _, c := range h.behind {
		<-c
	}
	h.behind = nil
}

func (h *Hub) putState(ctx context.Context, st State) error {
	b, err := model.Marshal(st)
	if err != nil {
		return err
	}
	var rev uint64
	if h.stateRev == 0 {
		rev, err = h.kv.Create(ctx, "state", b)
	} else {
		rev, err = h.kv.Update(ctx, "state", b, h.stateRev)
	}
	if err != nil {
		return fmt.Errorf("hub: write round state (another hub on this store?): %w", err)
	}
	h.mu.Lock()
	h.stateRev, h.state = rev, st
	h.mu.Unlock()
	return nil
}

// Ready waits until the hub has started or timeout passes.
func (h *Hub) Ready(timeout time.Duration) bool {
	select {
	case <-h.ready:
		return true
	case <-time.After(timeout):
		return false
	}
}

// leafOptions opens the leaf listener and sets the JetStream domain when
// LeafListen is set.
func (h *Hub) leafOptions(o *server.Options) {
	if h.cfg.LeafListen == "" {
		return
	}
	host, port, _ := natsembed.SplitListen(h.cfg.LeafListen) // checked by fill
	if port == 0 {
		port = server.RANDOM_PORT
	}
	o.LeafNode.Host, o.LeafNode.Port = host, port
	if h.cfg.TLS != nil {
		o.LeafNode.TLSConfig, o.LeafNode.TLSTimeout = h.cfg.TLS, 5
	}
	leaf.HubOptions(o)
}

// leafPermissions adds to a device's client permissions what its leaf
// connection needs (leaf.Permissions) and the hub-domain form of its
// JetStream rights (leaf.HubPermissions of its rollout permissions), when
// the hub serves leaf nodes.
func (h *Hub) leafPermissions(p *server.Permissions, id string, js *server.Permissions) *server.Permissions {
	if h.cfg.LeafListen == "" {
		return p
	}
	return deploy.MergePermissions(p, leaf.Permissions(id), leaf.HubPermissions(js), leafStepReplies)
}

// leafStepReplies lets a leaf answer the privacy modes' step requests. On
// a client connection the response permission (one reply per request,
// StepReplyWindow) does that; nats-server does not apply it across a leaf
// connection, so a leaf may publish into the hub's inbox. It still cannot
// subscribe there, the reply subjects carry 22 random characters it never
// sees but in the requests sent to it, and each reply is MACed with the
// device's key (hook), so it can answer the hub's requests to its own
// device only.
var leafStepReplies = &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{HubInboxPrefix + ".>"}}}

// ensureUplink makes the uplink stream source the outboxes of ids (and of
// every device sourced before).
func (h *Hub) ensureUplink(ctx context.Context, ids ...string) error {
	h.uplinkMu.Lock()
	defer h.uplinkMu.Unlock()
	if h.uplinkSrc == nil {
		h.uplinkSrc = map[string]bool{}
	}
	add := false
	for _, id := range ids {
		if !h.uplinkSrc[id] {
			add = true
		}
	}
	if !add && len(h.uplinkSrc) > 0 {
		return nil
	}
	all := map[string]bool{}
	for id := range h.uplinkSrc {
		all[id] = true
	}
	for _, id := range ids {
		all[id] = true
	}
	// Keep the sources a previous run added (fleet devices).
	if s, err := h.js.Stream(ctx, leaf.UplinkStream); err == nil {
		for _, src := range s.CachedInfo().Config.Sources {
			if id, ok := strings.CutPrefix(src.Name, leaf.OutboxStream("")); ok {
				all[id] = true
			}
		}
	}
	list := make([]string, 0, len(all))
	for id := range all {
		list = append(list, id)
	}
	sort.Strings(list)
	cfg, err := leaf.UplinkConfig(list, h.cfg.UplinkMaxBytes)
	if err != nil {
		return err
	}
	if _, err := h.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("hub: uplink stream: %w", err)
	}
	h.uplinkSrc = all
	return nil
}

// Uplink is the stream of the devices' outbox messages (LeafListen), for
// the hub's readers (alerts, results).
func (h *Hub) Uplink(ctx context.Context) (jetstream.Stream, error) {
	if h.cfg.LeafListen == "" {
		return nil, errors.New("hub: no uplink without LeafListen")
	}
	return h.js.Stream(ctx, leaf.UplinkStream)
}

// LeafURL is the URL device leaf nodes connect to ("" without LeafListen).
func (h *Hub) LeafURL() string {
	if h.ns == nil || h.cfg.LeafListen == "" {
		return ""
	}
	v, err := h.ns.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	host := v.LeafNode.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "nats-leaf"
	if h.cfg.TLS != nil {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(v.LeafNode.Port))
}

// ClientURL is the URL devices connect to ("" when embedded without a
// listener).
func (h *Hub) ClientURL() string {
	if h.ns != nil {
		if h.cfg.Listen == "-" {
			return ""
		}
		if h.cfg.TLS != nil {
			return strings.Replace(h.ns.ClientURL(), "nats://", "tls://", 1)
		}
		return h.ns.ClientURL()
	}
	return h.cfg.NATSURL
}

// Server returns the embedded NATS server, nil when NATSURL is used
// (in-process devices connect with nats.InProcessServer).
func (h *Hub) Server() *server.Server { return h.ns }

// Done closes when the configured rounds are complete or the loop failed.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Err is the round loop's error after Done, nil when the rounds completed.
func (h *Hub) Err() error {
	select {
	case <-h.done:
		return h.err
	default:
		return nil
	}
}

// Global returns the current global model: the one the next round trains.
// In plain rounds its commit may still be being written (Version is the
// stored version, one behind meanwhile).
func (h *Hub) Global() model.Model {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.global
}

// Version is the number of completed rounds: the version of the stored
// global model.
func (h *Hub) Version() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.Version
}

// Reports returns the reports of the rounds this process ran.
func (h *Hub) Reports() []Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reports)
}

// Shutdown stops the round loop (an open round is abandoned; a restarted
// hub starts a new one), closes the connection and the embedded server.
func (h *Hub) Shutdown() {
	h.once.Do(func() {
		if h.cancel != nil {
			h.cancel()
		}
		h.g.CloseAndWait()
		h.closeConns()
	})
}

func (h *Hub) closeConns() {
	if h.nc != nil {
		h.nc.Close()
	}
	if h.ns != nil {
		h.ns.Shutdown()
		h.ns.WaitForShutdown()
	}
}

// Seen returns when each device available now (heard from within
// DeviceTTL) was last heard from: its join or heartbeat.
func (h *Hub) Seen() map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]time.Time, len(h.devices))
	for _, id := range h.availableLocked(time.Now()) {
		out[id] = h.devices[id]
	}
	return out
}

// Conn is the hub's own NATS connection (nil before Start), for
// components of the hub's process that read its JetStream state, such as
// the dashboard. It has every right the hub has: do not hand it to a
// guest or a peer.
func (h *Hub) Conn() *nats.Conn { return h.nc }

// Available lists devices heard from within DeviceTTL, sorted.
func (h *Hub) Available() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.availableLocked(time.Now())
}

func (h *Hub) availableLocked(now time.Time) []string {
	var ids []string
	for id, t := range h.devices {
		if now.Sub(t) <= h.cfg.DeviceTTL {
			ids = append(ids, id)
		} else {
			delete(h.devices, id)
		}
	}
	old := now.Add(-2 * wire.ClockSkew).UnixMilli()
	for id, ts := range h.seen {
		if ts < old {
			delete(h.seen, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (h *Hub) key(id string) ([]byte, bool) {
	if h.cfg.Keys != nil {
		k, ok := h.cfg.Keys[id]
		return k, ok
	}
	return wire.DeviceKey(h.cfg.Secret, id), true
}

func respond(m *nats.Msg, a wire.Ack) {
	if m.Reply != "" {
		_ = m.Respond(wire.Encode(a))
	}
}

// subjectDevice checks that a device's message travels on its own
// subject (prefix + device id), which NATS permissions bind to the
// device's credential when Access is set.
func subjectDevice(m *nats.Msg, prefix, device string) error {
	if id := strings.TrimPrefix(m.Subject, prefix); id != device {
		return fmt.Errorf("a message of device %q on the subject of device %q", device, id)
	}
	return nil
}

func (h *Hub) onJoin(m *nats.Msg) {
	j, err := wire.DecodeJoin(m.Data)
	if err != nil {
		respond(m, wire.Ack{Code: "bad", Error: err.Error()})
		return
	}
	if err := subjectDevice(m, h.subj.JoinPrefix, j.Device); err != nil {
		respond(m, wire.Ack{Code: "auth", Error: err.Error()})
		return
	}
	key, ok := h.key(j.Device)
	if !ok {
		respond(m, wire.Ack{Code: "auth", Error: "unknown device"})
		return
	}
	if err := wire.VerifyJoin(key, &j, time.Now()); err != nil {
		respond(m, wire.Ack{Code: "auth", Error: err.Error()})
		return
	}
	h.mu.Lock()
	if err := h.freshLocked(&j); err != nil {
		h.mu.Unlock()
		respond(m, wire.Ack{Code: "auth", Error: "join: " + err.Error()})
		return
	}
	_, known := h.devices[j.Device]
	h.devices[j.Device] = time.Now()
	h.mu.Unlock()
	if !known {
		select {
		case h.joined <- struct{}{}:
		default:
		}
		if h.cfg.LeafListen != "" && h.cfg.Access == nil {
			// A fleet device (no access file lists it) is sourced from
			// its first verified join: only holders of a device key add
			// sources, one per device.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := h.ensureUplink(ctx, j.Device); err != nil {
				h.log.Warn("uplink", "device", j.Device, "err", err)
			}
			cancel()
		}
	}
	// The reply names the round mode, so that a device can set up the
	// mode's device side (and serve its steps) before its first round.
	if m.Reply != "" {
		msg := nats.NewMsg(m.Reply)
		msg.Data = wire.Encode(wire.Ack{OK: true})
		if h.cfg.Mode != "" {
			msg.Header.Set(ModeHeader, h.cfg.Mode)
		}
		_ = m.RespondMsg(msg)
	}
}

// ModeHeader is the header of a successful join reply that names the
// hub's round mode (absent in plain rounds).
const ModeHeader = "Fennec-Mode"

func (h *Hub) onLeave(m *nats.Msg) {
	j, err := wire.DecodeJoin(m.Data)
	if err != nil || subjectDevice(m, h.subj.LeavePrefix, j.Device) != nil {
		return
	}
	key, ok := h.key(j.Device)
	if !ok {
		return
	}
	if err := wire.VerifyLeave(key, &j, time.Now()); err != nil {
		h.log.Warn("leave refused", "device", j.Device, "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.freshLocked(&j); err != nil {
		h.log.Warn("leave refused", "device", j.Device, "err", "leave: "+err.Error())
		return
	}
	delete(h.devices, j.Device)
}

// freshLocked is the replay bound of a device's join, heartbeat and leave
// messages: each must be newer than the last one the hub accepted from
// that device (the agent's timestamps strictly increase), so a captured
// one is refused however soon it is replayed. Timestamps older than
// wire.ClockSkew are refused by the MAC check's window, so entries older
// than that are dropped (availableLocked).
func (h *Hub) freshLocked(j *wire.Join) error {
	if last, ok := h.seen[j.Device]; ok && j.TimeMS <= last {
		return fmt.Errorf("timestamp %d is not after the device's last accepted one (%d): a replayed message", j.TimeMS, last)
	}
	h.seen[j.Device] = j.TimeMS
	return nil
}

func (h *Hub) onModel(m *nats.Msg) {
	r, err := wire.DecodeModelReq(m.Data)
	h.mu.Lock()
	version, chunks := h.global.Version, h.chunks
	h.mu.Unlock()
	msg := nats.NewMsg(m.Reply)
	switch {
	case err != nil:
		msg.Header.Set("Fennec-Error", "bad request: "+err.Error())
	case r.Version != version:
		msg.Header.Set("Fennec-Error", fmt.Sprintf("version %d is not the current model (%d)", r.Version, version))
	case r.Seq >= uint64(len(chunks)):
		msg.Header.Set("Fennec-Error", fmt.Sprintf("chunk %d of %d", r.Seq, len(chunks)))
	default:
		msg.Data = chunks[r.Seq]
	}
	if m.Reply != "" {
		_ = m.RespondMsg(msg)
	}
}

// onUpdate takes one update chunk. Every chunk is authenticated (its
// ChunkMAC under the device's key) before it touches any state, so that
// no one but the device can start, continue or cancel its upload; cheap
// checks (round open, device sampled, declared size within the bound)
// come first, so that a flood of chunks costs a MAC only for the devices
// sampled. Memory follows the bytes received: one upload in progress per
// device, of at most r.maxUpload bytes, and MaxPendingBytes over all.
func (h *Hub) onUpdate(m *nats.Msg) {
	c, err := wire.DecodeChunk(m.Data)
	if err != nil {
		h.refuse()
		respond(m, wire.Ack{Code: "bad", Error: err.Error()})
		return
	}
	if err := subjectDevice(m, h.subj.UpdatePrefix, c.Device); err != nil {
		h.refuse()
		respond(m, wire.Ack{Code: "auth", Error: err.Error()})
		return
	}
	r, ack := h.openFor(c)
	if r == nil {
		respond(m, ack)
		return
	}
	if c.Size > r.maxUpload {
		h.refuse()
		respond(m, wire.Ack{Code: "bad", Error: fmt.Sprintf("update of %d bytes declared; an update for this %d-byte global model is at most %d bytes",
			c.Size, len(h.enc), r.maxUpload)})
		return
	}
	key, ok := h.key(c.Device)
	if !ok || wire.VerifyChunk(key, &c) != nil {
		h.refuse()
		respond(m, wire.Ack{Code: "auth", Error: fmt.Sprintf("chunk %d of device %q: mac does not verify", c.Seq, c.Device)})
		return
	}

	h.mu.Lock()
	if r, ack = h.openForLocked(c); r == nil {
		h.mu.Unlock()
		respond(m, ack)
		return
	}
	r.bytesIn += uint64(len(m.Data))
	a := r.asm[c.Device]
	switch {
	case a != nil && bytes.Equal(a.Upload(), c.Upload) && c.Seq < a.Next():
		// A replay of a chunk already taken (or a device's own retry):
		// it changes nothing.
		h.mu.Unlock()
		respond(m, wire.Ack{Code: "dup", Error: fmt.Sprintf("chunk %d already received", c.Seq)})
		return
	case a != nil && !bytes.Equal(a.Upload(), c.Upload) && c.Seq != 0:
		r.refused++
		h.mu.Unlock()
		respond(m, wire.Ack{Code: "bad", Error: fmt.Sprintf("chunk %d belongs to no upload in progress", c.Seq)})
		return
	case a == nil || !bytes.Equal(a.Upload(), c.Upload):
		// A new upload by the device itself (the chunk verified under its
		// key) replaces its unfinished one: one upload per device.
		if a != nil {
			r.pending -= int64(a.Len())
		}
		a = &wire.Assembler{}
		r.asm[c.Device] = a
	}
	if r.pending+int64(len(c.Data)) > h.cfg.MaxPendingBytes {
		h.mu.Unlock()
		h.log.Warn("update chunk refused: uploads in progress at their bound", "device", c.Device, "pending_bytes", r.pending, "max", h.cfg.MaxPendingBytes)
		respond(m, wire.Ack{Code: "busy", Error: "the hub's uploads in progress are at their bound; retry later"})
		return
	}
	before := a.Len()
	done, err := a.Add(c)
	r.pending += int64(a.Len() - before)
	if err != nil {
		r.pending -= int64(a.Len())
		delete(r.asm, c.Device)
		r.refused++
		h.mu.Unlock()
		respond(m, wire.Ack{Code: "bad", Error: err.Error()})
		return
	}
	if !done {
		h.mu.Unlock()
		respond(m, wire.Ack{OK: true})
		return
	}
	r.pending -= int64(a.Len())
	delete(r.asm, c.Device)
	global := h.global
	h.mu.Unlock()

	// Decode and check outside the lock. The update is the device's own
	// (every chunk verified): a bad one excludes the device from the round.
	payload, _ := a.Payload()
	body, err := wire.DecodeBody(payload)
	if err == nil {
		err = global.SameLayout(&body.Model)
	}
	if err == nil && !h.opaqueUpdates() {
		err = strategy.Finite(&body.Model)
	}
	if err == nil && body.NumExamples == 0 {
		err = errors.New("num_examples is 0")
	}
	if err != nil {
		h.reject(r, c.Device, err.Error())
		respond(m, wire.Ack{Code: "bad", Error: err.Error()})
		return
	}
	h.mu.Lock()
	if h.cur != r || r.closed {
		r.refused++
		h.mu.Unlock()
		respond(m, wire.Ack{Code: "late", Error: "round closed"})
		return
	}
	r.updates[c.Device] = strategy.ModelUpdate{Device: c.Device, Model: body.Model, NumExamples: body.NumExamples, Metrics: body.Metrics}
	r.checkFull()
	h.mu.Unlock()
	respond(m, wire.Ack{OK: true})
}

// opaqueUpdates reports whether the round mode's updates carry something
// other than f32 values in their model tensors (secagg's masked field
// elements), so that finiteness means nothing at receipt; the mode checks
// them, and the guard before commit checks the aggregate. A mode's hub
// side says so with an OpaqueUpdates() bool method; without one, the
// secagg modes are.
func (h *Hub) opaqueUpdates() bool {
	if o, ok := h.cfg.ModeHub.(interface{ OpaqueUpdates() bool }); ok {
		return o.OpaqueUpdates()
	}
	return strings.HasPrefix(h.cfg.Mode, "secagg")
}

// openFor returns the open round chunk c may join, or nil and the reply.
func (h *Hub) openFor(c wire.Chunk) (*round, wire.Ack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.openForLocked(c)
}

func (h *Hub) openForLocked(c wire.Chunk) (*round, wire.Ack) {
	r := h.cur
	switch {
	case r == nil || r.closed || c.Round != r.id:
		if r != nil {
			r.refused++
		}
		return nil, wire.Ack{Code: "late", Error: fmt.Sprintf("round %d is not open", c.Round)}
	case !r.sampled[c.Device]:
		r.refused++
		return nil, wire.Ack{Code: "denied", Error: "device not sampled in this round"}
	}
	if _, dup := r.updates[c.Device]; dup {
		return nil, wire.Ack{Code: "dup", Error: "update already received"}
	}
	if why, ok := r.rejected[c.Device]; ok {
		r.refused++
		return nil, wire.Ack{Code: "bad", Error: "this round already refused the device's update: " + why}
	}
	return r, wire.Ack{}
}

// reject refuses device's authenticated update in round r for reason: it
// is counted and logged, and the device no longer holds the round open.
func (h *Hub) reject(r *round, device, reason string) {
	h.log.Warn("update refused", "round", r.id, "device", device, "reason", reason)
	h.mu.Lock()
	defer h.mu.Unlock()
	r.refused++
	if h.cur != r || r.closed {
		return
	}
	r.rejected[device] = reason
	r.checkFull()
}

// checkFull closes r.full once every sampled device has delivered an
// update or had it refused. The caller holds h.mu.
func (r *round) checkFull() {
	if !r.isFull && len(r.updates)+len(r.rejected) >= len(r.sampled) {
		r.isFull = true
		close(r.full)
	}
}

func (h *Hub) refuse() {
	h.mu.Lock()
	if h.cur != nil {
		h.cur.refused++
	}
	h.mu.Unlock()
}

func (h *Hub) finish(err error) {
	h.err = err
	close(h.done)
}

func (h *Hub) loop(ctx context.Context) {
	defer h.drain()
	for {
		if h.cfg.Rounds > 0 && h.Global().Version >= uint64(h.cfg.Rounds) {
			// (The global model's version: Version is the stored one,
			// one behind while the last commit is written.)
			if err := h.waitCommit(); err != nil {
				// The last round's model was not stored: the global model
				// is the last stored one again, and the rounds go on.
				continue
			}
			h.drain()
			h.finish(nil)
			return
		}
		rep, err := h.runRound(ctx)
		if ctx.Err() != nil {
			h.drain()
			h.finish(ctx.Err())
			return
		}
		if err != nil {
			h.log.Error("round failed", "err", err)
			rep.Status, rep.Error = "failed", err.Error()
		}
		if s, ok := h.cfg.ModeHub.(interface{ Status() modes.Status }); ok {
			st := s.Status()
			rep.Privacy = &st
		}
		if err == nil && rep.Status == "completed" && h.cfg.ModeHub == nil {
			// The next round is announced at once, while this round's
			// commit is written (rep.commit); this round's tail waits for
			// it, then evaluates the model and reports the round, in round
			// order (docs/RATIONALE.md "Why is a round's commit and
			// evaluation behind the next round's announcement"). Not in a
			// privacy mode: its accounting is in the commit, and OnRound's
			// callers read the mode's live status, which the next round's
			// Prepare moves on.
			h.tailAfter(ctx, rep)
			continue
		}
		h.waitTail()
		if err == nil && rep.Status == "completed" {
			h.mu.Lock()
			next := h.global
			h.mu.Unlock()
			h.finishRound(ctx, next, rep)
			continue
		}
		h.report(ctx, rep)
		if err != nil && rep.Round == 0 {
			h.drain()
			h.finish(err)
			return
		}
	}
}

// drain waits for the loop's commit in flight, the last round's tail and
// the background writes.
func (h *Hub) drain() {
	_ = h.waitCommit()
	h.waitTail()
	h.settle()
}

// tailAfter evaluates a committed round's model and reports the round, on
// a goroutine that starts after the previous round's tail has reported, so
// reports keep their order. The loop waits for the tail (waitTail) before
// it reports another round itself and before it finishes.
func (h *Hub) tailAfter(ctx context.Context, rep Report) {
	prev := h.tail
	done := make(chan struct{})
	h.tail = done
	h.mu.Lock()
	next := h.global // the round's committed model (commit set it)
	h.mu.Unlock()
	if !h.g.Go(func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		h.finishRound(ctx, next, rep)
	}) {
		close(done)
	}
}

// waitTail waits for the last round's tail (tailAfter).
func (h *Hub) waitTail() {
	if h.tail != nil {
		<-h.tail
		h.tail = nil
	}
}

// finishRound is a completed round's tail: the wait for its commit when
// that is written behind the round, the hub's evaluation of the committed
// model, the phases' log line and the report. A round whose commit failed
// is reported failed; a hub stopped meanwhile reports nothing more (as
// when it stopped during the round).
func (h *Hub) finishRound(ctx context.Context, next model.Model, rep Report) {
	ph := rep.Phases
	if pc := rep.commit; pc != nil {
		rep.commit = nil // the stored reports keep no models (pc.prev)
		<-pc.done
		rep.Duration += ph.Commit
		if pc.err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.Error("round failed", "err", pc.err)
			rep.Status, rep.Error, rep.Version = "failed", pc.err.Error(), pc.prev.Version
			h.report(ctx, rep)
			return
		}
	}
	if h.cfg.Evaluator != nil {
		began := time.Now()
		h.evaluate(ctx, next, &rep)
		ph.Evaluate = time.Since(began)
		rep.Duration += ph.Evaluate
	}
	if ctx.Err() != nil {
		return
	}
	h.log.Info("round", "round", rep.Round, "version", rep.Version, "received", rep.Received, "sampled", rep.Sampled, "dropped", len(rep.Dropped),
		"claim", ph.Claim, "gather", ph.Gather, "aggregate", ph.Aggregate, "commit", ph.Commit, "evaluate", ph.Evaluate)
	h.report(ctx, rep)
}

// report records a finished round: in memory (Reports), in the store
// (History reads it back: the dashboard's curves after a restart) and
// through OnRound.
func (h *Hub) report(ctx context.Context, rep Report) {
	rep.Time = time.Now().UTC()
	h.mu.Lock()
	h.reports = append(h.reports, rep)
	h.mu.Unlock()
	if rep.Round != 0 {
		b, err := model.Marshal(rep)
		if err == nil {
			_, err = h.kv.Put(ctx, reportKey(rep.Round), b)
		}
		if err != nil {
			h.log.Warn("round report not stored; it will be missing from the history", "round", rep.Round, "err", err)
		}
	}
	if h.cfg.OnRound != nil {
		h.cfg.OnRound(rep)
	}
}

func (h *Hub) waitDevices(ctx context.Context) ([]string, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if av := h.Available(); len(av) >= h.cfg.MinDevices {
			return av, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.joined:
		case <-t.C:
		}
	}
}

// SampleSize is the number of devices a hub with fraction and minDevices
// (their defaults filled) samples, uniformly without replacement, from
// available devices: max(minDevices, ceil(fraction*available)), at most
// available. It is the one place the sampling rule lives.
func SampleSize(fraction float64, minDevices, available int) int {
	return min(available, max(minDevices, int(math.Ceil(fraction*float64(available)))))
}

// SamplingRate is the probability that a given available device is in a
// round's sample: SampleSize(fraction, minDevices, available)/available
// (0 when none is available).
func SamplingRate(fraction float64, minDevices, available int) float64 {
	if available <= 0 {
		return 0
	}
	return float64(SampleSize(fraction, minDevices, available)) / float64(available)
}

// PlannedSamplingRate is the rate a privacy mode plans with (calibrates
// its noise for) on a hub of fraction and minDevices over a population of
// devices: SamplingRate over the population when it is known (population
// > 0), else fraction (1 when 0), the share of whatever is available.
// Each release is still charged at the rate its round was sampled at.
func PlannedSamplingRate(fraction float64, minDevices, population int) float64 {
	if fraction == 0 {
		fraction = 1
	}
	if population <= 0 {
		return fraction
	}
	return SamplingRate(fraction, max(1, minDevices), population)
}

func (h *Hub) runRound(ctx context.Context) (Report, error) {
	avail, err := h.waitDevices(ctx)
	if err != nil {
		return Report{}, err
	}
	k := SampleSize(h.cfg.Fraction, h.cfg.MinDevices, len(avail))
	perm := h.rng.Perm(len(avail))
	sample := make([]string, k)
	for i := range sample {
		sample[i] = avail[perm[i]]
	}
	sort.Strings(sample)

	// Claim the round id durably before announcing it: ids are never
	// reused, so updates for a round a crashed hub announced are refused.
	// An earlier round's commit claimed it already when it could; a hub
	// that starts from a state starts at its next_round, skipping the ids
	// a crashed hub may have announced. A pipelined round (no privacy
	// mode: its commit is written while the next round runs) claims two
	// ids ahead, so that the next round's id is durable before the commit
	// that would have claimed it is.
	pipelined := h.cfg.ModeHub == nil
	ahead := uint64(1)
	if pipelined {
		ahead = 2
	}
	ph := &Phases{}
	if h.nextID == 0 {
		h.nextID = h.durableNext()
	}
	id := h.nextID
	if id >= h.durableNext() {
		if err := h.waitCommit(); err != nil {
			return Report{}, fmt.Errorf("the previous round's model was not stored: %w", err)
		}
	}
	if id >= h.durableNext() {
		st := h.state
		st.NextRound = id + max(1, h.idsAhead(ahead, h.Global().Version))
		claimed := time.Now()
		if err := h.putState(ctx, st); err != nil {
			return Report{}, err
		}
		ph.Claim = time.Since(claimed)
	}
	h.nextID = id + 1
	start := time.Now()
	h.mu.Lock()
	global, digest, chunks := h.global, h.digest, h.chunks
	h.mu.Unlock()
	info := hook.RoundInfo{Round: id, Version: global.Version, Mode: h.cfg.Mode, Devices: sample, Available: len(avail)}
	rep := Report{Round: id, Version: global.Version, Sampled: k, Available: len(avail), Phases: ph}
	task := wire.Task{
		Round: id, Version: global.Version, Size: uint64(len(h.enc)), Chunks: uint64(len(chunks)), Digest: digest,
		Settings: h.cfg.Settings, Mode: h.cfg.Mode,
		DeadlineMS: start.Add(h.cfg.Deadline).UnixMilli(),
	}
	task.Settings.Seed = id
	if h.cfg.ModeHub != nil {
		extra, err := h.cfg.ModeHub.Prepare(ctx, info)
		if err != nil {
			return rep, fmt.Errorf("mode %s prepare: %w", h.cfg.Mode, err)
		}
		task.Extra = extra
	}
	if len(chunks) == 1 {
		task.Inline = chunks[0]
	}
	r := &round{id: id, version: global.Version, sampled: map[string]bool{}, asm: map[string]*wire.Assembler{},
		updates: map[string]strategy.ModelUpdate{}, rejected: map[string]string{}, full: make(chan struct{}), info: info,
		maxUpload: wire.MaxUpdateSize(len(h.enc), !plainMode(h.cfg.Mode))}
	for _, d := range sample {
		r.sampled[d] = true
	}
	h.mu.Lock()
	h.cur = r
	h.mu.Unlock()
	// Each device's copy carries the hub's MAC under that device's key
	// (wire.TaskMAC), bound to the round, the model digest and every
	// setting: a device acts on no task the hub did not send it.
	tdg := wire.TaskDigest(task)
	for _, d := range sample {
		key, ok := h.key(d)
		if !ok {
			continue
		}
		t := task
		t.MAC = wire.TaskMAC(key, d, tdg)
		enc := wire.Encode(t)
		if err := h.nc.Publish(h.subj.TaskPrefix+d, enc); err != nil {
			return rep, fmt.Errorf("publish task: %w", err)
		}
		rep.BytesOut += uint64(len(enc))
	}
	_ = h.nc.Flush()

	timer := time.NewTimer(h.cfg.Deadline)
	defer timer.Stop()
	select {
	case <-r.full:
	case <-timer.C:
	case <-ctx.Done():
	}
	gathered := time.Now()
	ph.Gather = gathered.Sub(start)
	h.mu.Lock()
	r.closed = true
	h.cur = nil
	ups := make([]strategy.ModelUpdate, 0, len(r.updates))
	for _, d := range sample {
		if u, ok := r.updates[d]; ok {
			ups = append(ups, u)
			rep.Participants = append(rep.Participants, d)
		} else {
			rep.Dropped = append(rep.Dropped, d)
		}
	}
	rep.Received, rep.Refused, rep.BytesIn = len(ups), r.refused, r.bytesIn
	if len(r.rejected) > 0 {
		rep.Rejected = maps.Clone(r.rejected)
	}
	h.mu.Unlock()
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	// One place bounds the weights of every weighted strategy (and the
	// metrics' weights): a device's num_examples is its own claim.
	if rep.Clamped = strategy.BoundExamples(ups, h.cfg.WeightRatio); rep.Clamped != nil {
		h.log.Warn("num_examples above the round's bound lowered", "round", id, "claims", rep.Clamped, "ratio", h.cfg.WeightRatio)
	}
	if plainMode(h.cfg.Mode) {
		// In a privacy mode the devices send no metrics (they are not
		// protected by the mode); ignore any that a device sends anyway.
		// The hub's own evaluation, when it has one, is the report.
		rep.DeviceMetrics = weightedMetrics(ups)
	}
	need := max(1, int(math.Ceil(h.cfg.Quorum*float64(k))))
	if len(ups) < need {
		rep.Status = "failed"
		rep.Error = fmt.Sprintf("quorum not reached: %d of %d sampled devices answered, %d needed", len(ups), k, need)
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if n, why := strategy.MinUpdates(h.cfg.Strategy); len(ups) < n {
		rep.Status = "failed"
		rep.Error = fmt.Sprintf("strategy %s needs at least %d updates to be robust (%s); %d arrived", h.cfg.Strategy.Name(), n, why, len(ups))
		rep.Duration = time.Since(start)
		return rep, nil
	}
	// The previous round's commit (written while this round ran) lands
	// before this round aggregates: the strategy's state it stores is
	// this round's starting point, and commits are written in order. The
	// wait counts in the aggregation phase.
	if err := h.waitCommit(); err != nil {
		return rep, fmt.Errorf("the previous round's model was not stored (this round trained on it): %w", err)
	}
	if h.cfg.ModeHub != nil {
		ups, err = h.cfg.ModeHub.PreAggregate(ctx, info, ups)
		if err != nil {
			return rep, fmt.Errorf("mode %s: %w", h.cfg.Mode, err)
		}
	}
	next, err := h.cfg.Strategy.Aggregate(ctx, id, global, ups)
	if err != nil {
		return rep, fmt.Errorf("aggregate: %w", err)
	}
	if h.cfg.ModeHub != nil {
		if next, err = h.cfg.ModeHub.PostAggregate(ctx, info, next); err != nil {
			return rep, fmt.Errorf("mode %s: %w", h.cfg.Mode, err)
		}
	}
	// The one guard before commit, whatever the strategy (built-in, Wasm)
	// or mode: a non-finite global model would never recover.
	if err := strategy.Finite(&next); err != nil {
		return rep, fmt.Errorf("aggregate: strategy %s produced a non-finite model (%v); the global model stays at version %d", h.cfg.Strategy.Name(), err, global.Version)
	}
	next.Version = global.Version + 1
	aggregated := time.Now()
	ph.Aggregate = aggregated.Sub(gathered)
	// The commit claims the next rounds' ids too (ahead of them, as many
	// as are left to run).
	claim := id + 1 + h.idsAhead(ahead, next.Version)
	enc, err := model.Marshal(next)
	if err != nil {
		return rep, err
	}
	rep.Version = next.Version
	rep.Status = "completed"
	if pipelined {
		// The next round is announced with this model while its commit is
		// written; this round's report waits for the commit (finishRound),
		// so a reported round is a durable one, as before.
		h.mu.Lock()
		pc := &pendingCommit{done: make(chan struct{}), prev: h.global, prevEnc: h.enc}
		h.mu.Unlock()
		h.setGlobal(next, enc)
		h.pending = pc
		rep.commit = pc
		if !h.g.Go(func() {
			defer close(pc.done)
			pc.err = h.commit(ctx, next, enc, claim)
			ph.Commit = time.Since(aggregated)
		}) {
			pc.err = errors.New("hub: stopping")
			close(pc.done)
		}
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if err := h.commit(ctx, next, enc, claim); err != nil {
		rep.Version, rep.Status = global.Version, ""
		return rep, err
	}
	h.setGlobal(next, enc)
	committed := time.Now()
	ph.Commit = committed.Sub(aggregated)
	rep.Duration = committed.Sub(start) // the loop's tail adds the evaluation (finishRound)
	return rep, nil
}

// pendingCommit is a commit written while the next round runs.
type pendingCommit struct {
	done    chan struct{}
	err     error
	prev    model.Model // the global model before it, restored when it fails
	prevEnc []byte
}

// idsAhead is how many round ids to claim ahead: ahead, or fewer when
// Rounds leaves fewer rounds to run after the global model's version.
func (h *Hub) idsAhead(ahead, version uint64) uint64 {
	if h.cfg.Rounds == 0 {
		return ahead
	}
	r := uint64(h.cfg.Rounds)
	return min(ahead, r-min(version, r))
}

// durableNext is the durable state's next_round: the ids below it are
// claimed.
func (h *Hub) durableNext() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.NextRound
}

// waitCommit waits for the loop's commit in flight. When it failed, the
// global model goes back to the last stored one and the error is
// returned (the round that trained on the lost model fails with it).
func (h *Hub) waitCommit() error {
	pc := h.pending
	if pc == nil {
		return nil
	}
	<-pc.done
	h.pending = nil
	if pc.err != nil {
		h.setGlobal(pc.prev, pc.prevEnc)
		return pc.err
	}
	return nil
}

// plainMode is agent.PlainMode: device metrics travel in plain rounds only.
func plainMode(mode string) bool { return mode == "" || mode == "plain" }

func weightedMetrics(ups []strategy.ModelUpdate) map[string]float64 {
	sum := map[string]float64{}
	wt := map[string]float64{}
	for _, u := range ups {
		for k, v := range u.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			sum[k] += v * float64(u.NumExamples)
			wt[k] += float64(u.NumExamples)
		}
	}
	for k := range sum {
		if wt[k] > 0 {
			sum[k] /= wt[k]
		}
	}
	if len(sum) == 0 {
		return nil
	}
	return sum
}

// modeBinder is a mode's hub side that runs protocol steps with the
// devices and reads the global model (modes.Hub).
type modeBinder interface {
	Bind(x hook.Exchanger, global func() model.Model)
}

// HubInboxPrefix is the reply-subject prefix of the hub's own connection
// when Access is set: operators receive replies on "_INBOX.>" and devices
// on deploy.InboxPrefix, so neither can read the hub's.
const HubInboxPrefix = "_HUB_INBOX"

// DevicePermissions are device id's NATS permissions in federation name:
// publish its own join, leave and update messages (subjects ending in its
// id) and model requests, receive its own tasks, its own privacy-mode
// steps (fennec.N.mode.ID) and the replies on its own inbox
// (deploy.InboxPrefix), and answer each step request once. With Access, the hub merges them with the
// device's deploy.DevicePermissions.
func DevicePermissions(name, id string) *server.Permissions {
	s := wire.For(name)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			s.JoinPrefix + id, s.LeavePrefix + id, s.UpdatePrefix + id, s.Model,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			s.TaskPrefix + id, hook.StepSubject(name, id), deploy.InboxPrefix(id) + ".>",
		}},
		// A device answers the privacy modes' steps (hook.StepSubject) on
		// the reply subject of each request, in the hub's private inbox:
		// once per request, for as long as a step may take, and nowhere
		// else in that inbox.
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: StepReplyWindow},
	}
}

// fleetAuth authenticates the embedded server's clients without an access
// file: in-process connections are the hub's own process; every network
// client must be a device of the fleet, user = its id and password =
// wire.DevicePassword of its key (derived from the fleet secret, or
// Config.Keys), and gets DevicePermissions. Anyone else is refused.
type fleetAuth struct {
	name string
	key  func(string) ([]byte, bool)
	log  *slog.Logger
	leaf bool // accept device leaf nodes (Config.LeafListen)
}

func (a *fleetAuth) Check(c server.ClientAuthentication) bool {
	kind := c.Kind()
	if kind != server.CLIENT && !(a.leaf && kind == server.LEAF) {
		return false
	}
	addr := c.RemoteAddress()
	if addr != nil && addr.Network() == "pipe" {
		// nats.InProcessServer: only code holding the *server.Server,
		// i.e. the hub's process, can open one.
		c.RegisterUser(&server.User{Username: "fennec-hub-process"})
		return true
	}
	o := c.GetOpts()
	where := "unknown address"
	if addr != nil {
		where = addr.String()
	}
	if o == nil || o.Username == "" {
		a.log.Warn("nats: refused a connection without device credentials", "remote", where)
		return false
	}
	id := o.Username
	if err := wire.ValidName(id); err != nil {
		a.log.Warn("nats: refused a connection", "remote", where, "err", err)
		return false
	}
	key, ok := a.key(id)
	if !ok || subtle.ConstantTimeCompare([]byte(o.Password), []byte(wire.DevicePassword(key))) != 1 {
		a.log.Warn("nats: refused a connection: bad device credentials", "remote", where, "device", id)
		return false
	}
	p := DevicePermissions(a.name, id)
	if kind == server.LEAF {
		p = deploy.MergePermissions(p, leaf.Permissions(id), leafStepReplies)
	}
	c.RegisterUser(&server.User{Username: id, Permissions: p})
	return true
}

// loopbackURL reports whether a NATS URL names this machine.
func loopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := pu.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StateHistory is how many revisions of the round state the KV bucket
// keeps (the newest and older ones to recover from).
const StateHistory = 16

// StepReplyWindow is how long after a mode step request a device may still
// reply to it (its handler's own limit, hook.ServeDevice's default).
const StepReplyWindow = 2 * time.Minute

// natsLogger passes the embedded server's warnings and errors (refused
// connections, permission violations) to the hub's logger, naming the
// access file's device or operator whose nkey a line mentions.
type natsLogger struct {
	log   *slog.Logger
	names map[string]string // nkey -> "device ID" | "operator NAME"
}

var logNkey = regexp.MustCompile(`nkey:(U[A-Z2-7]{55})`)

func (l natsLogger) line(format string, v ...any) (string, []any) {
	msg := "nats: " + fmt.Sprintf(format, v...)
	if m := logNkey.FindStringSubmatch(msg); m != nil {
		if who, ok := l.names[m[1]]; ok {
			return msg, []any{"user", who}
		}
	}
	return msg, nil
}

func (l natsLogger) Fatalf(format string, v ...any) {
	m, a := l.line(format, v...)
	l.log.Error(m, a...)
}
func (l natsLogger) Errorf(format string, v ...any) {
	m, a := l.line(format, v...)
	l.log.Warn(m, a...)
}
func (l natsLogger) Warnf(format string, v ...any) { m, a := l.line(format, v...); l.log.Warn(m, a...) }
func (natsLogger) Noticef(string, ...any)          {}
func (natsLogger) Debugf(string, ...any)           {}
func (natsLogger) Tracef(string, ...any)           {}
