package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Attack makes a fraction of devices Byzantine.
type Attack struct {
	Fraction float64 // of devices (the first ones by index)
	Kind     string  // "scale" (global + Scale*(w-global)) or "signflip" (global - (w-global))
	Scale    float64 // for "scale" (100)
}

// Fault kills devices mid-round.
type Fault struct {
	Round   int // kill during this (1-based) round
	Devices int // how many devices to kill (the last ones by index)
}

// Config configures a simulation. Zero values take defaults.
type Config struct {
	Devices  int     // 8
	Rounds   int     // 10
	Fraction float64 // sampled per round (1)
	Strategy strategy.Config
	// StrategyImpl overrides Strategy (e.g. a Wasm strategy).
	StrategyImpl strategy.Strategy
	Settings     wire.Settings // lr 0.05, epochs 1, batch 32
	Data         *Data         // generated vitals when nil
	Skew         float64       // non-IID label skew (0 = IID)
	// Shards, when set, gives each device's training rows explicitly
	// (len == Devices, indices into Data.TrainY) instead of Skew.
	Shards [][]int
	// Hidden is the hidden width of the default MLP (16). Linear drops
	// the hidden layer: the default model is a softmax regression (Hidden
	// must then be 0).
	Hidden   int
	Linear   bool
	Deadline time.Duration // 30s
	Quorum   float64
	Seed     uint64
	// NewTrainer builds device i's trainer; the pure-Go MLP when nil. The
	// demo passes one that runs the training module through the runtime.
	NewTrainer func(i int) (train.Trainer, error)
	// Evaluator scores the global model on the test split at the hub; the
	// pure-Go MLP when nil.
	Evaluator train.Evaluator
	Initial   *model.Model
	// F32Labels sends labels as f32 [n] (binary single-logit modules such
	// as modules/risk-train) instead of i32 class indices.
	F32Labels bool
	// ReferenceTrainer trains the central reference (the pure-Go MLP when
	// nil); it is evaluated with Evaluator.
	ReferenceTrainer train.Trainer
	// Reference trains a centrally trained model on all training rows for
	// the same number of epochs in the same run.
	Reference bool
	Attack    Attack
	Fault     Fault
	// Mode and its transforms (privacy hook).
	Mode       string
	ModeHub    hook.HubTransform
	ModeClient hook.ClientTransform
	// PrivacyMode runs a built-in privacy round mode (modes.Names: plain,
	// dp, ldp, secagg, secagg+dp, he, he+dp) configured by Privacy, with its
	// protocol steps over the embedded NATS (hook.HubLink /
	// hook.ServeDevice). It replaces Mode/ModeHub/ModeClient; "" and "plain"
	// run no transform. Privacy's zero fields default from the simulation:
	// Population = the device ids, SamplingRate = the hub's planned rate
	// (hub.SamplingRate over all devices), Rounds = Rounds.
	PrivacyMode string
	Privacy     modes.Config
	// DataDir for the embedded hub's JetStream files (a temp dir, removed
	// after, when empty).
	DataDir string
	OnRound func(Progress)
	// OnHub, when set, is called with the simulation's hub once it has
	// started, before the devices join (a dashboard reads it).
	OnHub func(*hub.Hub)
	// MaxFailedRounds stops the simulation with an error after this many
	// consecutive failed rounds (default 3), e.g. when every device's
	// training module rejects the model.
	MaxFailedRounds int
	Logger          *slog.Logger // slog.Default() when nil
	ChunkSize       int
}

// Progress is reported after each round.
type Progress struct {
	hub.Report
	Index, Total int     // completed rounds so far / configured rounds
	Loss         float64 // hub evaluation (or device mean) loss
	Accuracy     float64
	BytesMoved   uint64 // cumulative bytes of tasks, models, updates and mode steps
	// StepBytes: this round's bytes of the privacy mode's extra protocol
	// steps (included in BytesMoved).
	StepBytes uint64 `json:"step_bytes,omitempty"`
	// Privacy is the privacy mode's state after the round (PrivacyMode).
	Privacy *modes.Status `json:"privacy,omitempty"`
}

// Summary is a simulation's result.
type Summary struct {
	Rounds            int           `json:"rounds"`
	Devices           int           `json:"devices"`
	Params            int           `json:"params"`
	Strategy          string        `json:"strategy"`
	Accuracy          float64       `json:"accuracy"`
	Loss              float64       `json:"loss"`
	BestAccuracy      float64       `json:"best_accuracy"`
	RoundsToTarget    int           `json:"rounds_to_target,omitempty"`
	ReferenceAccuracy float64       `json:"reference_accuracy,omitempty"`
	ReferenceLoss     float64       `json:"reference_loss,omitempty"`
	BytesMoved        uint64        `json:"bytes_moved"`
	Duration          time.Duration `json:"duration_ns"`
	Reports           []Progress    `json:"reports"`
	Privacy           *modes.Status `json:"privacy,omitempty"`
	Final             model.Model   `json:"-"`
}

// testHookFaultPollerDone, when set by a test, runs as the fault poller
// returns.
var testHookFaultPollerDone func()

type poisoned struct {
	t     train.Trainer
	kind  string
	scale float32
}

func (p poisoned) Train(ctx context.Context, in train.Input) (train.Output, error) {
	o, err := p.t.Train(ctx, in)
	if err != nil {
		return o, err
	}
	g, w := in.Model.Flatten(), o.Model.Flatten()
	for i := range w {
		d := w[i] - g[i]
		if p.kind == "signflip" {
			w[i] = g[i] - d
		} else {
			w[i] = g[i] + p.scale*d
		}
	}
	o.Model, err = o.Model.WithVector(w, o.Model.Version)
	return o, err
}

// Run runs the simulation to completion.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Devices == 0 {
		cfg.Devices = 8
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 10
	}
	if cfg.Devices < 1 || cfg.Rounds < 1 {
		return Summary{}, errors.New("sim: Devices and Rounds must be >= 1")
	}
	if cfg.Data == nil {
		cfg.Data = Vitals(max(4000, 200*cfg.Devices), cfg.Seed+1)
	}
	if cfg.Fraction == 0 {
		cfg.Fraction = 1
	}
	cfg.Logger = config.Logger(cfg.Logger)
	if cfg.Settings.LR == 0 {
		cfg.Settings.LR = 0.05
	}
	if cfg.Settings.Epochs == 0 {
		cfg.Settings.Epochs = 1
	}
	if cfg.Settings.BatchSize == 0 {
		cfg.Settings.BatchSize = 32
	}
	hidden := cfg.Hidden
	switch {
	case hidden < 0:
		return Summary{}, config.NonNegative("sim config: Hidden", hidden)
	case cfg.Linear && hidden != 0:
		return Summary{}, fmt.Errorf("sim config: Linear has no hidden layer, but Hidden is %d", hidden)
	case cfg.Linear:
	case hidden == 0:
		hidden = 16
	}
	net := MLP{In: cfg.Data.Features, Hidden: hidden, Out: max(cfg.Data.Classes, 2)}
	init := net.Init(cfg.Seed + 2)
	if cfg.Initial != nil {
		init = *cfg.Initial
	}
	strat := cfg.StrategyImpl
	if strat == nil {
		agg, err := strategy.New(cfg.Strategy)
		if err != nil {
			return Summary{}, err
		}
		strat = strategy.FromAggregator(agg) // the hub sends its Mu (strategy.ProximalWeight)
	}
	ids := make([]string, cfg.Devices)
	for i := range ids {
		ids[i] = DeviceID(i)
	}
	var mh *modes.Hub
	pcfg := cfg.Privacy
	if cfg.PrivacyMode != "" && cfg.PrivacyMode != modes.Plain {
		if cfg.Mode != "" || cfg.ModeHub != nil || cfg.ModeClient != nil {
			return Summary{}, errors.New("sim: PrivacyMode replaces Mode/ModeHub/ModeClient; set one or the other")
		}
		if g, ok := strat.(strategy.GradientMode); ok && g.Gradient() {
			return Summary{}, fmt.Errorf("sim: privacy mode %s works on weight updates; strategy %s sends gradients", cfg.PrivacyMode, strat.Name())
		}
		if (cfg.PrivacyMode == modes.DPSGD || cfg.PrivacyMode == modes.SecAggDPSGD) && cfg.NewTrainer == nil {
			return Summary{}, fmt.Errorf("sim: privacy mode %s trains with DP-SGD in the devices' training module (settings.dp, e.g. modules/risk-train); set NewTrainer", cfg.PrivacyMode)
		}
		if pcfg.Population == nil {
			pcfg.Population = ids
		}
		if pcfg.SamplingRate == 0 {
			pcfg.SamplingRate = hub.PlannedSamplingRate(cfg.Fraction, simMinDevices(cfg), cfg.Devices)
		}
		if pcfg.Rounds == 0 {
			pcfg.Rounds = cfg.Rounds
		}
		var err error
		if mh, err = modes.NewHub(cfg.PrivacyMode, pcfg); err != nil {
			return Summary{}, fmt.Errorf("sim: %w", err)
		}
		cfg.Mode, cfg.ModeHub = cfg.PrivacyMode, mh
	}
	ev := cfg.Evaluator
	if ev == nil {
		ev = net
	}
	ds := func(x []float32, y []int32, idx []int) train.Dataset {
		d := Dataset(x, y, cfg.Data.Features, idx)
		if cfg.F32Labels {
			f := make([]float32, len(idx))
			for i, r := range idx {
				f[i] = float32(y[r])
			}
			d.Y = model.F32Tensor("y", []uint64{uint64(len(idx))}, f)
		}
		return d
	}
	testSet := ds(cfg.Data.TestX, cfg.Data.TestY, seq(len(cfg.Data.TestY)))
	// A device's training rows carry their units of privacy (patients).
	trainSet := func(idx []int) train.Dataset {
		d := ds(cfg.Data.TrainX, cfg.Data.TrainY, idx)
		d.Groups = cfg.Data.Groups(idx)
		return d
	}
	shards := cfg.Shards
	var err error
	if shards == nil {
		if shards, err = cfg.Data.Shards(cfg.Devices, cfg.Skew, cfg.Seed+3); err != nil {
			return Summary{}, err
		}
	} else {
		if len(shards) != cfg.Devices {
			return Summary{}, fmt.Errorf("sim: %d shards for %d devices", len(shards), cfg.Devices)
		}
		for i, sh := range shards {
			if len(sh) == 0 {
				return Summary{}, fmt.Errorf("sim: shard %d is empty", i)
			}
			for _, r := range sh {
				if r < 0 || r >= len(cfg.Data.TrainY) {
					return Summary{}, fmt.Errorf("sim: shard %d: row %d outside 0..%d", i, r, len(cfg.Data.TrainY)-1)
				}
			}
		}
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fennec-sim-*"); err != nil {
			return Summary{}, err
		}
		defer os.RemoveAll(dir)
	}
	secret := make([]byte, 32)
	r := rand.New(rand.NewPCG(cfg.Seed, 99))
	for i := range secret {
		secret[i] = byte(r.Uint32())
	}

	var (
		mu       sync.Mutex
		agents   []*agent.Agent
		sum      = Summary{Devices: cfg.Devices, Params: init.Params(), Strategy: strat.Name()}
		killOnce sync.Once
	)
	bytesMoved := func(rep hub.Report) uint64 { return rep.BytesIn + rep.BytesOut }
	maxFailed := cfg.MaxFailedRounds
	if maxFailed <= 0 {
		maxFailed = 3
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		failedInRow int
		failErr     error
	)
	var moved, stepBytes uint64
	start := time.Now()
	h, err := hub.New(hub.Config{
		Name: "sim", DataDir: dir, Listen: "-", Strategy: strat, Rounds: cfg.Rounds,
		Fraction: cfg.Fraction, MinDevices: simMinDevices(cfg),
		Quorum: cfg.Quorum, Deadline: cfg.Deadline, Settings: cfg.Settings, Initial: &init, Secret: secret,
		DeviceTTL: time.Hour, Evaluator: train.DataEvaluator{E: ev, Data: testSet, Name: "the test split"}, Seed: cfg.Seed + 4,
		Mode: cfg.Mode, ModeHub: cfg.ModeHub, Logger: cfg.Logger,
		OnRound: func(rep hub.Report) {
			mu.Lock()
			moved += bytesMoved(rep)
			p := Progress{Report: rep, Index: int(rep.Version), Total: cfg.Rounds}
			if mh != nil {
				st := mh.Status()
				p.Privacy = &st
				p.StepBytes = st.StepBytes - stepBytes
				stepBytes = st.StepBytes
				moved += p.StepBytes
			}
			p.BytesMoved = moved
			if rep.HasEval {
				p.Loss, p.Accuracy = rep.EvalLoss, rep.EvalAccuracy
			} else {
				p.Loss, p.Accuracy = rep.DeviceMetrics["loss"], rep.DeviceMetrics["accuracy"]
			}
			sum.Reports = append(sum.Reports, p)
			if rep.Status == "failed" {
				failedInRow++
				if failedInRow >= maxFailed && failErr == nil {
					failErr = fmt.Errorf("sim: %d rounds in a row failed; the last: %s", failedInRow, rep.Error)
					cancel()
				}
			} else {
				failedInRow = 0
			}
			mu.Unlock()
			if cfg.OnRound != nil {
				cfg.OnRound(p)
			}
		},
	})
	if err != nil {
		return Summary{}, err
	}
	if err := h.Start(); err != nil {
		return Summary{}, err
	}
	defer h.Shutdown()
	if cfg.OnHub != nil {
		cfg.OnHub(h)
	}
	if mh != nil {
		hnc, err := nats.Connect("", nats.InProcessServer(h.Server()), nats.Name("sim-hub-modes"))
		if err != nil {
			return Summary{}, err
		}
		defer hnc.Close()
		link, err := hook.NewHubLink(hnc, "sim", func(id string) ([]byte, bool) { return wire.DeviceKey(secret, id), true })
		if err != nil {
			return Summary{}, err
		}
		mh.Bind(link, h.Global)
	}

	var conns []*nats.Conn
	nbad := int(cfg.Attack.Fraction * float64(cfg.Devices))
	for i := 0; i < cfg.Devices; i++ {
		var tr train.Trainer = net
		if cfg.NewTrainer != nil {
			if tr, err = cfg.NewTrainer(i); err != nil {
				return Summary{}, fmt.Errorf("sim: device %d trainer: %w", i, err)
			}
		}
		if i < nbad {
			sc := cfg.Attack.Scale
			if sc == 0 {
				sc = 100
			}
			tr = poisoned{tr, cfg.Attack.Kind, float32(sc)}
		}
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()), nats.Name(fmt.Sprintf("sim-device-%d", i)))
		if err != nil {
			return Summary{}, err
		}
		id := ids[i]
		var clients map[string]hook.ClientTransform
		switch {
		case mh != nil:
			mc, err := modes.NewClient(cfg.PrivacyMode, id, pcfg)
			if err != nil {
				nc.Close()
				return Summary{}, fmt.Errorf("sim: %w", err)
			}
			link, err := hook.ServeDevice(nc, "sim", id, wire.DeviceKey(secret, id), mc.Handle, 0)
			if err != nil {
				nc.Close()
				return Summary{}, err
			}
			defer link.Close()
			clients = map[string]hook.ClientTransform{cfg.PrivacyMode: mc}
		case cfg.Mode != "":
			clients = map[string]hook.ClientTransform{cfg.Mode: cfg.ModeClient}
		}
		a, err := agent.New(agent.Config{Name: "sim", Conn: nc, ID: id, Key: wire.DeviceKey(secret, id),
			Trainer: tr, Data: trainSet(shards[i]),
			Heartbeat: time.Minute, Modes: clients, Logger: cfg.Logger, ChunkSize: cfg.ChunkSize})
		if err != nil {
			nc.Close()
			return Summary{}, err
		}
		if err := a.Start(ctx); err != nil {
			nc.Close()
			return Summary{}, err
		}
		agents = append(agents, a)
		conns = append(conns, nc)
		defer nc.Close()
	}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	// Every goroutine Run starts goes through g and has exited before the
	// devices, connections and hub it uses are closed (deferred above).
	var g routines.Group
	defer func() {
		cancel()
		g.CloseAndWait()
	}()
	if cfg.Fault.Devices > 0 {
		// Kill devices once the fault round has started (mid-round).
		g.Go(func() {
			if testHookFaultPollerDone != nil {
				defer testHookFaultPollerDone()
			}
			for h.Version()+1 < uint64(cfg.Fault.Round) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			killOnce.Do(func() {
				// A dying device also drops its connection (and with it its
				// privacy-mode step link).
				for i := max(0, len(agents)-cfg.Fault.Devices); i < len(agents); i++ {
					agents[i].Kill()
					conns[i].Close()
				}
			})
		})
	}

	var refDone chan struct{}
	if cfg.Reference {
		refDone = make(chan struct{})
		g.Go(func() {
			defer close(refDone)
			s := cfg.Settings
			s.Mode = "weights"
			s.Epochs = uint64(cfg.Rounds) * max(1, s.Epochs)
			if cfg.Fraction > 0 && cfg.Fraction < 1 {
				s.Epochs = max(1, uint64(float64(s.Epochs)*cfg.Fraction))
			}
			var rt train.Trainer = net
			if cfg.ReferenceTrainer != nil {
				rt = cfg.ReferenceTrainer
			}
			out, err := rt.Train(ctx, train.Input{Model: init, Settings: s, Data: ds(cfg.Data.TrainX, cfg.Data.TrainY, seq(len(cfg.Data.TrainY)))})
			if err != nil {
				cfg.Logger.Warn("reference training failed", "err", err)
				return
			}
			ev, err := ev.Evaluate(ctx, train.EvalInput{Model: out.Model, Data: testSet})
			if err == nil {
				mu.Lock()
				sum.ReferenceAccuracy, sum.ReferenceLoss = ev.Metrics["accuracy"], ev.Metrics["loss"]
				mu.Unlock()
			}
		})
	}
	select {
	case <-h.Done():
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		if failErr != nil {
			return sum, failErr
		}
		return sum, ctx.Err()
	}
	if err := h.Err(); err != nil {
		return sum, err
	}
	if refDone != nil {
		<-refDone
	}
	mu.Lock()
	defer mu.Unlock()
	sum.Duration = time.Since(start)
	sum.BytesMoved = moved
	sum.Final = h.Global()
	if mh != nil {
		st := mh.Status()
		sum.Privacy = &st
	}
	for _, p := range sum.Reports {
		if p.Status != "completed" {
			continue
		}
		sum.Rounds = p.Index
		sum.Accuracy, sum.Loss = p.Accuracy, p.Loss
		sum.BestAccuracy = max(sum.BestAccuracy, p.Accuracy)
	}
	return sum, nil
}

// RoundsTo returns the first completed round whose accuracy reached target
// (0 if none).
func (s *Summary) RoundsTo(target float64) int {
	for _, p := range s.Reports {
		if p.Status == "completed" && p.Accuracy >= target {
			return p.Index
		}
	}
	return 0
}

// simMinDevices is the simulated hub's MinDevices: the devices a round of
// Fraction samples, so that a round waits for a full sample.
func simMinDevices(cfg Config) int {
	return min(cfg.Devices, max(1, int(float64(cfg.Devices)*cfg.Fraction)))
}

func settings(lr float64, epochs, batch uint64) wire.Settings {
	return wire.Settings{LR: lr, Epochs: epochs, BatchSize: batch}
}

// DeviceID is the id of the simulation's device i.
func DeviceID(i int) string { return fmt.Sprintf("device-%04d", i) }
