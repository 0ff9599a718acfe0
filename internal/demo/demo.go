// Package demo is the worked case of `fennec demo`: an embedded hub and
// simulated bedside devices, each with its own runtime and modules, clean
// generated patient vitals (or a CSV) with vitals-preprocess, train a
// deterioration-risk model together with risk-train (federated, in any
// privacy mode), compare it with a central reference and NEWS2, and score a
// live stream with risk-infer. cmd/fennec parses the flags into Options and
// calls Run.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/hubdash"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/runtime"
)

// Result is what --json prints.
type Result struct {
	Dataset  string  `json:"dataset"`
	Devices  int     `json:"devices"`
	Rounds   int     `json:"rounds"`
	Strategy string  `json:"strategy"`
	Mode     string  `json:"mode"`
	Epsilon  float64 `json:"epsilon,omitempty"`
	Delta    float64 `json:"delta,omitempty"`
	// DeviceEpsilon (dpsgd): each device's own epsilon w.r.t. any one of
	// its patients after the last round, at DeviceDelta.
	DeviceEpsilon map[string]float64 `json:"device_epsilon,omitempty"`
	DeviceDelta   map[string]float64 `json:"device_delta,omitempty"`
	// LedgerEpsilon (dpsgd): what each device's own ledger, charged by its
	// host, says it spent (at the budget's delta); it agrees with
	// DeviceEpsilon, the devices' reports.
	LedgerEpsilon  map[string]float64 `json:"ledger_epsilon,omitempty"`
	TrainRows      int                `json:"train_rows"`
	TestRows       int                `json:"test_rows"`
	Accuracy       float64            `json:"accuracy"`
	AUROC          float64            `json:"auroc,omitempty"`
	AUPRC          float64            `json:"auprc,omitempty"`
	PositiveRate   float64            `json:"positive_rate,omitempty"`
	ReferenceAUROC float64            `json:"reference_auroc,omitempty"`
	// NEWS2 is the clinical baseline on the same held-out readings, and
	// Model the federated model at the threshold that matches NEWS2's
	// sensitivity at its trigger (generated vitals only).
	NEWS2 *Baseline `json:"news2,omitempty"`
	Model *Baseline `json:"model_at_news2_sensitivity,omitempty"`
	// StoppedAt is the round whose model the devices' validation readings
	// chose (early stopping); Accuracy, AUROC and Loss are that model's.
	StoppedAt int `json:"stopped_at,omitempty"`
	// AveragedFrom (dpsgd): Accuracy, AUROC and Loss are those of the mean
	// of the global models of rounds AveragedFrom..Rounds.
	AveragedFrom      int        `json:"averaged_from,omitempty"`
	Loss              float64    `json:"loss"`
	ReferenceAccuracy float64    `json:"reference_accuracy"`
	ReferenceLoss     float64    `json:"reference_loss"`
	BytesMoved        uint64     `json:"bytes_moved"`
	TrainSeconds      float64    `json:"train_seconds"`
	PerRound          []Round    `json:"per_round"`
	Preprocess        *PreStats  `json:"preprocess,omitempty"`
	Live              *LiveStats `json:"live,omitempty"`
	// Rollout (with HTTP): risk-infer rolled out to the devices.
	Rollout *RolloutStats `json:"rollout,omitempty"`
}

type Round struct {
	Round    int     `json:"round"`
	Updates  int     `json:"updates"`
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	AUROC    float64 `json:"auroc,omitempty"`
	AUPRC    float64 `json:"auprc,omitempty"`
	// ValidationLoss: the devices' mean loss of the round's model on the
	// readings each keeps out of training.
	ValidationLoss float64 `json:"validation_loss,omitempty"`
	Bytes          uint64  `json:"bytes_moved"`
	// Epsilon spent so far (dp: the federation's; dpsgd: the largest of
	// the devices' per-patient epsilons, each in DeviceEpsilon).
	Epsilon       float64            `json:"epsilon,omitempty"`
	DeviceEpsilon map[string]float64 `json:"device_epsilon,omitempty"`
}

// Baseline is a score's discrimination on the held-out readings and
// its operating point: an alert when the score reaches Threshold.
type Baseline struct {
	AUROC       float64 `json:"auroc"`
	AUPRC       float64 `json:"auprc"`
	Threshold   float64 `json:"threshold"`
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
}

type PreStats struct {
	Readings int            `json:"readings"`
	Dropped  map[string]int `json:"dropped"`
	Clamped  map[string]int `json:"clamped"`
	Missing  map[string]int `json:"missing"`
	Millis   float64        `json:"millis"`
}

type LiveStats struct {
	Predictions  int     `json:"predictions"`
	Alerts       int     `json:"alerts"`
	TruePositive int     `json:"true_positive"`
	Positives    int     `json:"positives"`
	P50Millis    float64 `json:"p50_ms"`
	P99Millis    float64 `json:"p99_ms"`
}

// demoDevice is one simulated bedside device: its own runtime and modules.
type demoDevice struct {
	eng               *runtime.Engine
	pre, train, infer *runtime.Module
	// scorer serves the live stream's risk-infer calls: the deployed
	// module after a rollout, infer otherwise.
	scorer caller
}

// caller is a module's entry points: a compiled module, or the module a
// Deployer runs.
type caller interface {
	Call(ctx context.Context, entry string, input []byte) ([]byte, error)
}

func (d *demoDevice) liveScorer() caller {
	if d.scorer != nil {
		return d.scorer
	}
	return d.infer
}

func (d *demoDevice) close(ctx context.Context) { d.eng.Close(ctx) }

// Run runs the demo, printing its progress (or, with JSON, its Result) to
// stdout and its logs to stderr. Errors are *Error, with their Kind.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	if err := o.fill(); err != nil {
		return err
	}
	level := slog.LevelError
	if o.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	say := func(format string, args ...any) {
		if !o.JSON {
			fmt.Fprintf(stdout, format, args...)
		}
	}
	dataset := "generated patient vitals"
	if o.Data != "" {
		dataset = filepath.Base(o.Data)
	}
	privacy := ""
	switch o.Mode {
	case "", "plain":
	case "secagg", "he":
		privacy = ", " + o.Mode + " (the hub sees only the sum of the updates)"
	case "dpsgd", "secagg+dpsgd":
		privacy = fmt.Sprintf(", %s: patient-level DP-SGD on every device at epsilon %g (delta %g) per patient", o.Mode, o.Epsilon, o.Delta)
	default:
		privacy = fmt.Sprintf(", %s at epsilon %g (delta %g)", o.Mode, o.Epsilon, o.Delta)
	}
	say("fennec demo: %d bedside devices and an embedded hub (NATS + JetStream), %s over %d rounds on %s%s\n\n",
		o.Devices, o.Strategy, o.Rounds, dataset, privacy)

	// The guest modules: built from the source tree (cached after the first
	// run) or, away from one, the prebuilt copies this binary carries.
	t0 := time.Now()
	type guest struct {
		wasm []byte
		man  runtime.Manifest
		toml []byte
	}
	mods := map[string]guest{}
	origin := guests.FromSource
	for _, name := range []string{"vitals-preprocess", "risk-train", "risk-infer"} {
		g, err := guests.Get(ctx, name)
		if err != nil {
			return failure(fmt.Errorf("building the %s module: %w", name, err))
		}
		if g.Origin == guests.FromPrebuilt {
			origin = g.Origin
		}
		mods[name] = guest{g.Wasm, g.Manifest, g.ManifestTOML}
	}
	say("modules   vitals-preprocess %s, risk-train %s, risk-infer %s (%s, %.1fs)\n",
		size(len(mods["vitals-preprocess"].wasm)), size(len(mods["risk-train"].wasm)), size(len(mods["risk-infer"].wasm)), origin, time.Since(t0).Seconds())

	// In the DP-SGD modes every device has its own privacy ledger, with a
	// budget of --epsilon at --delta for its data: the host charges it
	// when the training module starts a DP-SGD run and refuses a run that
	// would overspend it.
	dpsgd := o.dpsgd()
	var ledgerDir string
	if dpsgd {
		var err error
		if ledgerDir, err = os.MkdirTemp("", "fennec-demo-ledgers-*"); err != nil {
			return err
		}
		defer os.RemoveAll(ledgerDir)
	}
	var ledgers []*budget.Ledger
	defer func() {
		for _, l := range ledgers {
			l.Close()
		}
	}()
	// One runtime per device (and one for the hub), sharing the on-disk
	// compilation cache: a device compiles nothing the first has compiled.
	newDevice := func() (*demoDevice, error) {
		rc := runtime.Config{Logger: log}
		if dpsgd {
			l, err := budget.Open(filepath.Join(ledgerDir, fmt.Sprintf("device-%d.json", len(ledgers))))
			if err != nil {
				return nil, err
			}
			ledgers = append(ledgers, l)
			if err := l.SetBudget(budget.DatasetAccount(demoDataset), budget.Budget{Epsilon: o.Epsilon, Delta: o.Delta}); err != nil {
				return nil, err
			}
			rc.Services = &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{Ledger: l}}
		}
		eng, err := o.newEngine(ctx, log, rc)
		if err != nil {
			return nil, err
		}
		d := &demoDevice{eng: eng}
		for name, m := range map[string]**runtime.Module{"vitals-preprocess": &d.pre, "risk-train": &d.train, "risk-infer": &d.infer} {
			if *m, err = eng.Compile(ctx, mods[name].wasm, mods[name].man); err != nil {
				eng.Close(ctx)
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		return d, nil
	}
	var devices []*demoDevice
	defer func() {
		for _, d := range devices {
			d.close(context.Background())
		}
	}()
	for i := 0; i < o.Devices+2; i++ { // devices, then the hub, then the central reference
		d, err := newDevice()
		if err != nil {
			return err
		}
		devices = append(devices, d)
	}
	hubDev, refDev := devices[o.Devices], devices[o.Devices+1]

	// With the dashboard, the devices also form a rollout group, as a
	// fleet's do: each runs a rollout agent against a rollout server, and
	// after training the operator rolls risk-infer out to them (below), so
	// the dashboard shows a module rolling out beside the training.
	var fl *fleet
	if o.HTTP != "" {
		var err error
		if fl, err = startFleet(ctx, devices[:o.Devices], log); err != nil {
			return failure(fmt.Errorf("starting the rollout fleet: %w", err))
		}
		defer fl.close()
	}

	res := Result{Dataset: dataset, Devices: o.Devices, Rounds: o.Rounds, Strategy: o.Strategy, Mode: o.Mode}
	var (
		data     *federation.Data
		shards   [][]int
		testRows []any                // the held-out set as vitals-preprocess output
		testRecs []vitals.Record      // and as generated (NEWS2 scores these)
		vals     []federation.Dataset // each device's validation readings
		pooled   = &federation.Data{} // all of them, for the central reference
	)
	plain := o.Mode == "" || o.Mode == "plain"
	if o.Data == "" {
		// Each device generates its own shard (its ward's case-mix) and
		// preprocesses it with its own vitals-preprocess module.
		t0 = time.Now()
		pre := &PreStats{Dropped: map[string]int{}, Clamped: map[string]int{}, Missing: map[string]int{}}
		data = &federation.Data{Name: "vitals", Features: len(vitals.ModelFeatures), Classes: 2, FeatureNames: vitals.ModelFeatures}
		base := vitals.Config{Seed: o.Seed, Patients: o.Patients}
		for i := 0; i < o.Devices; i++ {
			recs, err := vitals.Generate(vitals.Shard(base, i))
			if err != nil {
				return usageError(err)
			}
			x, y, _, err := preprocess(ctx, devices[i].pre, recs, pre)
			if err != nil {
				return fmt.Errorf("device %d: %w", i, err)
			}
			// In plain rounds every fifth patient's readings stay on the
			// device as its validation split: the devices' losses on them
			// choose the round to stop at; they train on the rest. The
			// privacy modes keep no split: a validation loss per device and
			// round would be a release their guarantees do not cover.
			f := data.Features
			val := &federation.Data{Features: f}
			var shard []int
			held := vitals.ValidationRows(recs)
			patient := vitals.PatientOrdinals(recs)
			for j := range y {
				if plain && held[j] {
					val.TrainX = append(val.TrainX, x[j*f:(j+1)*f]...)
					val.TrainY = append(val.TrainY, y[j])
					continue
				}
				shard = append(shard, len(data.TrainY))
				data.TrainX = append(data.TrainX, x[j*f:(j+1)*f]...)
				data.TrainY = append(data.TrainY, y[j])
				// The patient is the unit of privacy (dpsgd).
				data.TrainGroups = append(data.TrainGroups, int32(i*(o.Patients+1)+patient[j]))
			}
			shards = append(shards, shard)
			vals = append(vals, val.TrainDataset(true))
			pooled.Features = f
			pooled.TrainX = append(pooled.TrainX, val.TrainX...)
			pooled.TrainY = append(pooled.TrainY, val.TrainY...)
		}
		// The hub's held-out set: patients of every case-mix that no device trains on.
		test := vitals.Config{Seed: o.Seed + 7919, Patients: max(20, o.Patients)}
		for i := 0; i < 4; i++ {
			recs, err := vitals.Generate(vitals.Shard(test, i))
			if err != nil {
				return usageError(err)
			}
			x, y, rows, err := preprocess(ctx, hubDev.pre, recs, nil)
			if err != nil {
				return fmt.Errorf("held-out set: %w", err)
			}
			testRecs = append(testRecs, recs...)
			data.TestX = append(data.TestX, x...)
			data.TestY = append(data.TestY, y...)
			testRows = append(testRows, rows...)
		}
		pre.Millis = float64(time.Since(t0).Milliseconds())
		res.Preprocess = pre
		say("preprocess %d readings on %d devices in %.1fs: %d out-of-range readings dropped, %d clamped, %d missing\n",
			pre.Readings, o.Devices, pre.Millis/1000, sumMap(pre.Dropped), sumMap(pre.Clamped), sumMap(pre.Missing))
		for i, s := range shards {
			pos := 0
			for _, r := range s {
				pos += int(data.TrainY[r])
			}
			if i < 4 || i == len(shards)-1 {
				kept := ""
				if n := vals[i].Y.Shape[0]; n > 0 {
					kept = fmt.Sprintf("; %d more kept for validation", n)
				}
				say("  device %d  %-10s %5d readings, %4.1f%% before deterioration%s\n", i, vitals.Profiles[i%len(vitals.Profiles)].Name, len(s), 100*float64(pos)/float64(max(1, len(s))), kept)
			} else if i == 4 {
				say("  ...\n")
			}
		}
	} else {
		var err error
		if data, err = federation.LoadCSV(o.Data, 0.2, o.Seed); err != nil {
			return badInput(err)
		}
		if data.Classes > 2 {
			return badInput(fmt.Errorf("%s: %d classes; the demo's risk-train module is a binary classifier", o.Data, data.Classes))
		}
		say("data      %s: %d training and %d test rows, %d features, label skew %.2f across devices\n",
			o.Data, len(data.TrainY), len(data.TestY), data.Features, o.Skew)
	}
	res.TrainRows, res.TestRows = len(data.TrainY), len(data.TestY)

	// Federated training: every device trains the global model on its shard
	// with the risk-train module; the hub evaluates each round's model on the
	// held-out set with the same module.
	init := federation.MLP{In: data.Features, Hidden: o.Hidden, Out: 1}.Init(o.Seed)
	init.Name = "risk-mlp"
	if o.Hidden == 0 {
		say("\ntraining  logistic regression over %d features (%d parameters), %d local epochs per round\n", data.Features, init.Params(), o.Epochs)
	} else {
		say("\ntraining  %d-%d-1 MLP (%d parameters), %d local epochs per round\n", data.Features, o.Hidden, init.Params(), o.Epochs)
	}
	var lastLine int
	// On generated vitals the hub also scores each round's model on the
	// held-out readings with risk-infer, for AUROC and AUPRC.
	var evaluator federation.Evaluator = &federation.WasmTrainer{Mod: hubDev.train, KeepWarm: true}
	var ranks *rankEvaluator
	if testRows != nil {
		ranks = &rankEvaluator{Evaluator: evaluator, infer: hubDev.infer, rows: testRows, y: data.TestY, byVersion: map[uint64][2]float64{}, models: map[uint64]federation.Model{}}
		evaluator = ranks
	}
	// In the DP-SGD modes the demo keeps every round's global model: the
	// released model is their tail average (below).
	var kept *keepModels
	if dpsgd {
		kept = &keepModels{Evaluator: evaluator, models: map[uint64]federation.Model{}}
		evaluator = kept
	}
	// Early stopping: after each round every device scores the new global
	// model on its validation readings with its own risk-train module and
	// reports only the loss and the count; the round with the lowest mean
	// is the one kept. The central reference is stopped the same way on
	// the pooled validation readings.
	var reference federation.Trainer = &federation.WasmTrainer{Mod: refDev.train, KeepWarm: true}
	earlyStop := ranks != nil && len(pooled.TrainY) > 0
	best := struct {
		loss    float64
		version uint64
		round   int
	}{loss: math.Inf(1)}
	if earlyStop {
		reference = &earlyStopTrainer{T: reference, E: &federation.WasmTrainer{Mod: refDev.train, KeepWarm: true},
			Val: pooled.TrainDataset(true), Step: uint64(max(1, o.Epochs))}
	}
	if dpsgd {
		// The central reference is the non-private model: the same
		// network trained with Adam at the non-private learning rate.
		// --lr in the DP-SGD modes is the noisy steps' (0.1 Adam, or 5 as
		// the one SGD step of secagg+dpsgd): Adam at LR 5 for 30 epochs
		// left the WDBC reference at loss 9.2 (accuracy 0.912 on seed 18,
		// where the same reference at 0.01 scores 0.947).
		reference = &lrTrainer{T: reference, LR: DefaultLR(o.Data != "", false)}
	}
	t0 = time.Now()
	var dash hubdash.Late
	var dhub *hubdash.Stoppable
	var dashErr error // --http could not serve: the demo stops
	simCtx, simCancel := context.WithCancel(ctx)
	defer simCancel()
	defer dash.Shutdown()
	if o.HTTP != "" {
		defer func() {
			if dhub != nil {
				fmt.Fprintf(stdout, "\ndashboard still at %s (Ctrl-C to stop)\n", dash.URL())
				<-ctx.Done()
			}
		}()
	}
	sum, err := federation.Simulate(simCtx, federation.SimConfig{
		Devices:  o.Devices,
		Rounds:   o.Rounds,
		Fraction: o.Fraction,
		Strategy: federation.StrategyConfig{Name: o.Strategy},
		Settings: federation.Settings{LR: o.LR, Epochs: uint64(o.Epochs), BatchSize: 32, Seed: o.Seed},
		Data:     data,
		Shards:   shards,
		Skew:     o.Skew,
		Seed:     o.Seed,
		Initial:  &init,
		NewTrainer: func(i int) (federation.Trainer, error) {
			t := &federation.WasmTrainer{Mod: devices[i].train}
			if dpsgd {
				t.Dataset = demoDataset // DP-SGD runs are charged to the device's ledger
			}
			return t, nil
		},
		Evaluator:        evaluator,
		ReferenceTrainer: reference,
		Reference:        true,
		F32Labels:        true,
		Logger:           log,
		PrivacyMode:      o.Mode,
		Privacy:          modeConfig(o),
		OnHub: func(h *federation.Hub) {
			if o.HTTP == "" {
				return
			}
			t := dashboard.Training{Name: "demo", Strategy: o.Strategy, Mode: o.Mode, Rounds: o.Rounds}
			if !plain && o.Mode != "secagg" && o.Mode != "he" {
				t.TargetEpsilon, t.Delta = o.Epsilon, o.Delta
			}
			dhub = &hubdash.Stoppable{H: h, Rollouts: fl.operator}
			url, err := dash.Start(o.HTTP, dhub, nil, t, log)
			if err != nil {
				dhub, dashErr = nil, err
				simCancel()
				return
			}
			fmt.Fprintf(stdout, "dashboard %s\n", url)
		},
		OnRound: func(p federation.Progress) {
			r := Round{Round: p.Index, Updates: p.Received, Loss: p.Loss, Accuracy: p.Accuracy, Bytes: p.BytesMoved}
			if p.Privacy != nil {
				r.Epsilon, r.DeviceEpsilon = p.Privacy.Epsilon, p.Privacy.DeviceEpsilon
			}
			if ranks != nil {
				m := ranks.get(p.Version)
				r.AUROC, r.AUPRC = m[0], m[1]
			}
			if g, ok := ranks.model(p.Version); earlyStop && ok && p.Status == "completed" {
				vl, err := validationLoss(ctx, devices[:o.Devices], vals, g)
				if err != nil {
					log.Warn("validation", "round", p.Index, "err", err)
				} else if r.ValidationLoss = vl; vl < best.loss {
					best.loss, best.version, best.round = vl, p.Version, p.Index
				}
			}
			res.PerRound = append(res.PerRound, r)
			var extra map[string]float64
			if ranks != nil {
				extra = map[string]float64{"auroc": r.AUROC}
			}
			dash.Round(p.RoundReport, p.Privacy, extra)
			if o.JSON {
				return
			}
			line := fmt.Sprintf("round %3d/%d %s loss %.4f  accuracy %.3f", p.Index, p.Total, progressBar(p.Index, p.Total, 24), p.Loss, p.Accuracy)
			if ranks != nil {
				line += fmt.Sprintf("  AUROC %.3f  AUPRC %.3f", r.AUROC, r.AUPRC)
			}
			line += fmt.Sprintf("  %d/%d updates  %s moved", p.Received, p.Sampled, size(int(p.BytesMoved)))
			if p.Privacy != nil && p.Privacy.Epsilon > 0 {
				line += fmt.Sprintf("  epsilon %.2f", p.Privacy.Epsilon)
			}
			fmt.Fprintf(stdout, "\r%s%s", line, strings.Repeat(" ", max(0, lastLine-len(line))))
			lastLine = len(line)
		},
	})
	say("\n")
	if dhub != nil {
		dhub.Stop() // the hub has stopped with the training
	}
	if dashErr != nil {
		return usageError(fmt.Errorf("--http: %w", dashErr))
	}
	if err != nil {
		return failure(fmt.Errorf("federated training: %w", err))
	}
	res.Accuracy, res.Loss = sum.Accuracy, sum.Loss
	final := sum.Final
	if m, ok := ranks.model(best.version); earlyStop && ok && best.round > 0 {
		final, res.StoppedAt = m, best.round
		r := res.PerRound[best.round-1]
		res.Accuracy, res.Loss = r.Accuracy, r.Loss
	}
	if kept != nil {
		// DP-SGD's noise makes each round's model a random walk around
		// where training leads; the mean of the last half of the rounds'
		// models (Polyak-Ruppert tail averaging; De et al. 2022 average
		// DP-SGD's parameters the same way) has less of it. It is
		// post-processing of models the hub already holds: no privacy cost.
		avg, from, err := kept.tailAverage(len(res.PerRound))
		if err != nil {
			return failure(fmt.Errorf("averaging the rounds' models: %w", err))
		}
		ev, err := kept.Evaluator.Evaluate(ctx, federation.EvalInput{Model: avg, Data: (&federation.Data{Features: data.Features, TrainX: data.TestX, TrainY: data.TestY}).TrainDataset(true)})
		if err != nil {
			return failure(fmt.Errorf("evaluating the averaged model: %w", err))
		}
		final, res.AveragedFrom = avg, from
		res.Accuracy, res.Loss = ev.Metrics["accuracy"], ev.Metrics["loss"]
		say("averaged  the global models of rounds %d-%d (tail averaging, post-processing): held-out accuracy %.3f (loss %.4f); round %d's alone %.3f\n",
			from, len(res.PerRound), res.Accuracy, res.Loss, len(res.PerRound), sum.Accuracy)
	}
	if sum.Privacy != nil && dpsgd && sum.Privacy.Epsilon > 0 {
		res.Epsilon, res.Delta = sum.Privacy.Epsilon, sum.Privacy.Delta
		res.DeviceEpsilon, res.DeviceDelta = sum.Privacy.DeviceEpsilon, sum.Privacy.DeviceDelta
		lo := math.Inf(1)
		for _, e := range sum.Privacy.DeviceEpsilon {
			lo = math.Min(lo, e)
		}
		res.LedgerEpsilon = map[string]float64{}
		for i := 0; i < o.Devices; i++ {
			st, err := ledgers[i].Remaining(budget.DatasetAccount(demoDataset))
			if err != nil {
				return err
			}
			res.LedgerEpsilon[federation.SimDeviceID(i)] = st.SpentEpsilon
		}
		noise := "the hub added no noise"
		if o.Mode == "secagg+dpsgd" {
			noise = "one step a round, each device adding a share of the noise, the secure sum carrying the full noise once (the hub added none)"
		}
		say("privacy   %s: every device trained with patient-level DP-SGD; per-patient epsilon %.3f to %.3f across the %d devices at delta <= %g after %d rounds (clip %.2f per patient, %g patients per step), charged to each device's ledger; %s\n",
			sum.Privacy.Mode, lo, sum.Privacy.Epsilon, len(sum.Privacy.DeviceEpsilon), sum.Privacy.Delta, sum.Privacy.Releases, sum.Privacy.Clip, modeConfig(o).PatientsPerStep, noise)
	} else if sum.Privacy != nil && sum.Privacy.Epsilon > 0 {
		res.Epsilon, res.Delta = sum.Privacy.Epsilon, sum.Privacy.Delta
		say("privacy   %s: epsilon %.3f at delta %g after %d releases (noise multiplier %.3f, clip %.2f)\n",
			sum.Privacy.Mode, sum.Privacy.Epsilon, sum.Privacy.Delta, sum.Privacy.Releases, sum.Privacy.NoiseMultiplier, sum.Privacy.Clip)
	} else if sum.Privacy != nil && sum.Privacy.Mode != "plain" {
		say("privacy   %s: %d rounds aggregated without the hub seeing an update, %s of protocol steps\n",
			sum.Privacy.Mode, sum.Privacy.Releases, size(int(sum.Privacy.StepBytes)))
	}
	res.ReferenceAccuracy, res.ReferenceLoss = sum.ReferenceAccuracy, sum.ReferenceLoss
	res.BytesMoved, res.TrainSeconds = sum.BytesMoved, time.Since(t0).Seconds()
	stopped := ""
	if res.StoppedAt > 0 {
		stopped = fmt.Sprintf(" (round %d's model, chosen by the devices' validation loss)", res.StoppedAt)
	}
	say("trained   in %.1fs: federated accuracy %.3f (loss %.4f)%s, central reference %.3f (loss %.4f), %s moved\n",
		res.TrainSeconds, res.Accuracy, res.Loss, stopped, sum.ReferenceAccuracy, sum.ReferenceLoss, size(int(sum.BytesMoved)))
	if o.SaveModel != "" {
		b, err := cbor.Marshal(final)
		if err == nil {
			err = atomicfile.WriteFile(o.SaveModel, b, 0o644)
		}
		if err != nil {
			return failure(fmt.Errorf("--save-model: %w", err))
		}
		say("saved     the model to %s (%s, CBOR: risk-infer's \"model\")\n", o.SaveModel, size(len(b)))
	}
	if testRows != nil {
		// Accuracy flatters a rare outcome; the area under the ROC curve of
		// the risk scores does not.
		scores, err := riskScores(ctx, hubDev.infer, final, testRows)
		if err != nil {
			return failure(fmt.Errorf("scoring the held-out set: %w", err))
		}
		if len(scores) != len(data.TestY) {
			return failure(fmt.Errorf("risk-infer returned %d scores for %d records", len(scores), len(data.TestY)))
		}
		base := vitals.PositiveRate(data.TestY)
		res.AUROC, res.AUPRC, res.PositiveRate = vitals.AUROC(scores, data.TestY), vitals.AUPRC(scores, data.TestY), base
		res.ReferenceAUROC = ranks.get(0)[0]
		say("          held-out AUROC %.3f, AUPRC %.3f (central reference AUROC %.3f; %.1f%% of readings precede a deterioration, so AUPRC's chance level is %.3f and always answering \"stable\" would score %.3f accuracy)\n",
			res.AUROC, res.AUPRC, res.ReferenceAUROC, 100*base, base, 1-base)
		// The clinical baseline on the same readings: NEWS2 as a ward chart
		// scores them, alerting at the usual trigger; the model's threshold
		// is chosen for the same sensitivity.
		news := make([]float64, len(testRecs))
		for i, sc := range vitals.ChartNEWS2(testRecs) {
			news[i] = float64(sc.Total)
		}
		nb := &Baseline{AUROC: vitals.AUROC(news, data.TestY), AUPRC: vitals.AUPRC(news, data.TestY), Threshold: vitals.NEWS2Trigger}
		nb.Sensitivity, nb.Specificity = vitals.AtThreshold(news, data.TestY, nb.Threshold)
		mb := &Baseline{AUROC: res.AUROC, AUPRC: res.AUPRC, Threshold: vitals.ThresholdFor(scores, data.TestY, nb.Sensitivity)}
		mb.Sensitivity, mb.Specificity = vitals.AtThreshold(scores, data.TestY, mb.Threshold)
		res.NEWS2, res.Model = nb, mb
		say("baseline  NEWS2 (RCP 2017) on the same readings: AUROC %.3f, AUPRC %.3f; at aggregate >= %d sensitivity %.3f, specificity %.4f\n",
			nb.AUROC, nb.AUPRC, vitals.NEWS2Trigger, nb.Sensitivity, nb.Specificity)
		say("          the model at risk >= %.4f (the same sensitivity %.3f): specificity %.4f\n", mb.Threshold, mb.Sensitivity, mb.Specificity)
	}

	// The rollout: risk-infer, signed by the demo's publisher, to a
	// quarter of the ward first, then to every device; each device's
	// agent verifies, compiles and health-checks it before it serves.
	if fl != nil {
		ri := mods["risk-infer"]
		st, err := fl.rollout(ctx, ri.toml, ri.wasm, 25)
		if err != nil {
			return failure(fmt.Errorf("rollout: %w", err))
		}
		res.Rollout = st
		say("\nrollout   %s %s (signed bundle, digest %.12s) to group %s: canary %d%% (%d of %d devices) running in %.0f ms, then all %d in %.0f ms",
			st.Module, st.Version, st.Digest, st.Group, st.Canary, st.CanaryDevices, st.Devices, st.CanaryMillis, st.Devices, st.FullMillis)
		if o.Data == "" {
			say("; the live stream below is scored by the deployed module")
		}
		say("\n")
		for i := range o.Devices {
			devices[i].scorer = fl.deployed(i)
		}
	}

	// Live predictions: each device scores a stream of new readings with the
	// final model, preprocess then risk-infer, one batch of readings per tick.
	if o.Data == "" {
		live, alerts, err := liveStream(ctx, devices[:o.Devices], final, o)
		if err != nil {
			return failure(fmt.Errorf("live predictions: %w", err))
		}
		res.Live = live
		say("\nlive      %d predictions on %d devices: p50 %.2f ms, p99 %.2f ms per reading (preprocess + risk-infer)\n",
			live.Predictions, o.Devices, live.P50Millis, live.P99Millis)
		say("          %d alerts (risk > 0.5); %d of %d readings taken before a deterioration were flagged\n",
			live.Alerts, live.TruePositive, live.Positives)
		for _, a := range alerts {
			say("          ALERT  device %d  patient %-9s t=%5.1fh  risk %.2f%s\n", a.device, a.patient, a.t, a.risk, a.truth)
		}
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	unit := "readings"
	if o.Data != "" {
		unit = "rows"
	}
	if res.NEWS2 != nil && len(res.PerRound) > 0 {
		say("\n%s\n", summary(&res))
		return nil
	}
	say("\nsummary   %d rounds, %d devices, federated %.1f%% vs central %.1f%% accuracy on %d held-out %s; no device's data left it\n",
		len(res.PerRound), o.Devices, 100*res.Accuracy, 100*res.ReferenceAccuracy, res.TestRows, unit)
	return nil
}

// keepModels evaluates like its Evaluator and keeps every model it
// evaluates, by version (the hub's global model of round r has version r).
type keepModels struct {
	federation.Evaluator
	mu     sync.Mutex
	models map[uint64]federation.Model
}

func (k *keepModels) Evaluate(ctx context.Context, in federation.EvalInput) (federation.EvalOutput, error) {
	k.mu.Lock()
	k.models[in.Model.Version] = in.Model
	k.mu.Unlock()
	return k.Evaluator.Evaluate(ctx, in)
}

// tailAverage is the mean of the models of rounds rounds/2+1..rounds and
// the first round it averages.
func (k *keepModels) tailAverage(rounds int) (federation.Model, int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	from := rounds/2 + 1
	var sum []float64
	var last federation.Model
	n := 0
	for v := from; v <= rounds; v++ {
		m, ok := k.models[uint64(v)]
		if !ok {
			continue
		}
		w := m.Flatten()
		if sum == nil {
			sum = make([]float64, len(w))
		}
		if len(w) != len(sum) {
			return federation.Model{}, 0, fmt.Errorf("round %d's model has %d values, round %d's %d", v, len(w), from, len(sum))
		}
		for i, x := range w {
			sum[i] += float64(x)
		}
		last, n = m, n+1
	}
	if n == 0 {
		return federation.Model{}, 0, errors.New("no round's model was kept")
	}
	avg := make([]float32, len(sum))
	for i, x := range sum {
		avg[i] = float32(x / float64(n))
	}
	m, err := last.WithVector(avg, last.Version)
	return m, from, err
}

// demoDataset names the devices' training data to their ledgers.
const demoDataset = "demo-train"

// modeConfig is the privacy mode's configuration from the flags.
func modeConfig(o Options) federation.ModeConfig {
	c := federation.ModeConfig{TargetEpsilon: o.Epsilon, Delta: o.Delta, Clip: o.Clip,
		PatientsPerStep: o.PatientsPerStep, LocalSteps: o.LocalSteps}
	if o.Mode == "secagg+dpsgd" && o.Data == "" {
		// Distributed noise leaves room for a larger clip: at C = 1 every
		// patient's summed gradient (~90 readings) is clipped, which biases
		// the step (AUROC 0.780 without noise); every patient in every step
		// (BENCHMARKS.md, "Distributed DP-SGD noise").
		if c.Clip == 0 {
			c.Clip = 10
		}
		if c.PatientsPerStep == 0 {
			c.PatientsPerStep = 30
		}
	}
	if o.dpsgd() {
		if c.Clip == 0 {
			c.Clip = 1
		}
		if c.PatientsPerStep == 0 {
			c.PatientsPerStep = 8
			if o.Data != "" {
				c.PatientsPerStep = 16
			}
		}
	} else if c.Clip == 0 {
		c.Clip = 0.5
	}
	if o.Mode == "secagg+dpsgd" && o.Fraction == 1 && o.Devices >= 3 && o.Devices <= 33 {
		// The highest secagg threshold of the complete graph: every device
		// divides its noise variance by it (docs/PRIVACY.md, "Distributed
		// DP-SGD noise"), and a round survives one device dropping out.
		c.Threshold = o.Devices - 1
	}
	return c
}

// DefaultLR is the default local learning rate. On the generated vitals a
// device holds ~2,700 readings of 30 patients, ~170 Adam steps a round:
// at 0.01 the held-out loss rose from round 1 (the steps fit the patients'
// noise); at 0.002 it falls. A CSV such as WDBC gives a device a few dozen
// rows, a handful of steps a round, where 0.002 has not converged in 15
// rounds (accuracy 0.956 vs 0.965).
//
// DP-SGD takes a few dozen noisy steps per device over the whole training
// (the budget pays for each): at 0.002 they barely move the model; 0.02
// measured best of 0.01, 0.02, 0.05 and 0.1 on the vitals (BENCHMARKS.md).
// On a CSV such as WDBC a device holds ~50 patients and takes a handful of
// noisy steps a round: at 0.02 the model had not converged by the last
// round (median accuracy 0.9425 over 20 seeds, 13 of 20 at or above 0.93);
// 0.1 reached median 0.960, 19 of 20 (BENCHMARKS.md, 2026-12-04).
func DefaultLR(csv, dpsgd bool) float64 {
	if dpsgd && csv {
		return 0.1
	}
	if dpsgd {
		return 0.02
	}
	if csv {
		return 0.01
	}
	return 0.002
}

// SharedNoiseLR is the default learning rate of secagg+dpsgd, where the
// device takes one SGD step a round on its noisy mean gradient and the hub
// averages (an SGD step on the devices' mean gradient, not Adam's):
// on the vitals (clip 10, every patient a step) 0.4 measured best of 0.2
// and 0.4; on WDBC (clip 1, 16 rows a step) 5 of 0.3, 1, 3, 5 and 10 in
// bench/dpsim (BENCHMARKS.md, "Distributed DP-SGD noise").
func SharedNoiseLR(csv bool) float64 {
	if csv {
		return 5
	}
	return 0.4
}

// DefaultHidden is the default hidden width of the risk model: 16, and 0 (a
// logistic regression, 15 parameters on the vitals) in the DP-SGD modes.
// DP-SGD's noise has norm z*C*sqrt(parameters), so the 257 parameters of
// the 14-16-1 MLP carry four times the noise of the linear model's 15 for
// the same signal: at epsilon 3 the MLP reached AUROC 0.47-0.63, the linear
// model 0.82 (which it also reaches without privacy, 0.819 vs the MLP's
// 0.809; BENCHMARKS.md).
func DefaultHidden(dpsgd bool) int {
	if dpsgd {
		return 0
	}
	return 16
}

// summary is the summary line on generated vitals: whether the
// held-out loss fell, and whether the model beats NEWS2 on the same
// readings (AUROC, and specificity at NEWS2's sensitivity at its trigger).
func summary(res *Result) string {
	first := res.PerRound[0].Loss
	learn := "fell"
	if res.Loss >= first {
		learn = "did not fall"
	}
	verdict := "beats"
	if res.AUROC <= res.NEWS2.AUROC {
		verdict = "does not beat"
	}
	at := fmt.Sprintf("over %d rounds", len(res.PerRound))
	if res.StoppedAt > 0 {
		at = fmt.Sprintf("by round %d of %d (early stopping)", res.StoppedAt, len(res.PerRound))
	}
	return fmt.Sprintf("summary   held-out loss %s from %.4f to %.4f %s (central %.4f); the federated model %s NEWS2: AUROC %.3f vs %.3f, specificity %.4f vs %.4f at sensitivity %.3f; no device's data left it",
		learn, first, res.Loss, at, res.ReferenceLoss, verdict, res.AUROC, res.NEWS2.AUROC, res.Model.Specificity, res.NEWS2.Specificity, res.NEWS2.Sensitivity)
}

// preprocess runs records through a device's vitals-preprocess module in
// chunks (carrying its running statistics, seeded by vitals.PreprocessState, and
// each patient's baseline) and returns the model features
// (vitals.ModelFeatures; a missing one 0: the running mean, no change),
// the processed records and the labels.
func preprocess(ctx context.Context, mod *runtime.Module, recs []vitals.Record, st *PreStats) ([]float32, []int32, []any, error) {
	var (
		xs    []float32
		ys    []int32
		all   []any
		state any = vitals.PreprocessState()
	)
	const chunk = 1000
	for i := 0; i < len(recs); i += chunk {
		part := recs[i:min(i+chunk, len(recs))]
		in := map[string]any{"records": recordMaps(part)}
		if state != nil {
			in["state"] = state
		}
		out, err := callCBOR(ctx, mod, "process", in)
		if err != nil {
			return nil, nil, nil, err
		}
		state = out["state"]
		if st != nil {
			st.Readings += len(part)
			if c, ok := out["counts"].(map[any]any); ok {
				addCounts(st.Dropped, c["dropped"])
				addCounts(st.Clamped, c["clamped"])
				addCounts(st.Missing, c["missing"])
			}
		}
		rows, _ := out["records"].([]any)
		if len(rows) != len(part) {
			return nil, nil, nil, fmt.Errorf("vitals-preprocess returned %d records for %d", len(rows), len(part))
		}
		all = append(all, rows...)
		for j, r := range rows {
			m, _ := r.(map[any]any)
			for _, f := range vitals.ModelFeatures {
				z, _ := toFloat(m[f])
				xs = append(xs, float32(z))
			}
			ys = append(ys, int32(part[j].Label))
		}
	}
	return xs, ys, all, nil
}

func recordMaps(recs []vitals.Record) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i := range recs {
		m := recs[i].Map()
		delete(m, "label") // the module never sees the outcome
		out[i] = m
	}
	return out
}

func callCBOR(ctx context.Context, mod caller, entry string, in any) (map[any]any, error) {
	b, err := cbor.Marshal(in)
	if err != nil {
		return nil, err
	}
	out, err := mod.Call(ctx, entry, b)
	if err != nil {
		return nil, err
	}
	var v map[any]any
	if err := cbor.Unmarshal(out, &v); err != nil {
		name := "the module"
		if n, ok := mod.(interface{ Name() string }); ok {
			name = "module " + n.Name()
		}
		return nil, fmt.Errorf("%s: %s output: %w", name, entry, err)
	}
	return v, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func addCounts(dst map[string]int, v any) {
	m, _ := v.(map[any]any)
	for k, c := range m {
		n, _ := toFloat(c)
		dst[fmt.Sprint(k)] += int(n)
	}
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

type demoAlert struct {
	device  int
	patient string
	t, risk float64
	truth   string
}

// liveStream feeds each device new patients' readings one time step at a
// time: preprocess (with the device's running state) then risk-infer with
// the trained model.
func liveStream(ctx context.Context, devs []*demoDevice, m federation.Model, o Options) (*LiveStats, []demoAlert, error) {
	st := &LiveStats{}
	var lat []float64
	var alerts []demoAlert
	for i, d := range devs {
		recs, err := vitals.Generate(vitals.Shard(vitals.Config{Seed: o.Seed + 104729, Patients: 6, Hours: 24}, i))
		if err != nil {
			return nil, nil, err
		}
		sort.SliceStable(recs, func(a, b int) bool { return recs[a].T < recs[b].T })
		var state any = vitals.PreprocessState()
		for j := 0; j < len(recs); {
			k := j // one tick: every patient's reading at this time
			for k < len(recs) && recs[k].T == recs[j].T {
				k++
			}
			tick := recs[j:k]
			t0 := time.Now()
			in := map[string]any{"records": recordMaps(tick)}
			if state != nil {
				in["state"] = state
			}
			out, err := callCBOR(ctx, d.pre, "process", in)
			if err != nil {
				return nil, nil, err
			}
			state = out["state"]
			pred, err := callCBOR(ctx, d.liveScorer(), "predict", map[string]any{"model": m, "records": out["records"]})
			if err != nil {
				return nil, nil, err
			}
			per := float64(time.Since(t0).Nanoseconds()) / 1e6 / float64(len(tick))
			scores, err := tickScores(pred, len(tick))
			if err != nil {
				return nil, nil, fmt.Errorf("device %d: %w", i, err)
			}
			for n, risk := range scores {
				r := tick[n]
				lat = append(lat, per)
				st.Predictions++
				if r.Label == 1 {
					st.Positives++
				}
				if risk > 0.5 {
					st.Alerts++
					if r.Label == 1 {
						st.TruePositive++
					}
					if len(alerts) < 5 && (len(alerts) == 0 || alerts[len(alerts)-1].patient != r.Patient) {
						truth := "  (false alarm)"
						if r.Label == 1 {
							truth = "  (deteriorates within 12h)"
						}
						alerts = append(alerts, demoAlert{device: i, patient: r.Patient, t: r.T, risk: risk, truth: truth})
					}
				}
			}
			j = k
		}
	}
	st.P50Millis = bench.Percentile(lat, 0.5)
	st.P99Millis = bench.Percentile(lat, 0.99)
	return st, alerts, nil
}

// tickScores are the risk scores risk-infer returned for n records: one
// number each, or an error (the module's output is not trusted).
func tickScores(pred map[any]any, n int) ([]float64, error) {
	ss, ok := pred["scores"].([]any)
	if !ok || len(ss) != n {
		return nil, fmt.Errorf("risk-infer returned %d scores for %d records", len(ss), n)
	}
	out := make([]float64, n)
	for i, s := range ss {
		v, ok := toFloat(s)
		if !ok {
			return nil, fmt.Errorf("risk-infer score %d is %T, not a number", i, s)
		}
		out[i] = v
	}
	return out, nil
}

// riskScores scores processed records with risk-infer, 1000 per call.
func riskScores(ctx context.Context, infer *runtime.Module, m federation.Model, rows []any) ([]float64, error) {
	scores := make([]float64, 0, len(rows))
	for i := 0; i < len(rows); i += 1000 {
		batch := rows[i:min(i+1000, len(rows))]
		out, err := callCBOR(ctx, infer, "predict", map[string]any{"model": m, "records": batch})
		if err != nil {
			return nil, err
		}
		ss, err := tickScores(out, len(batch))
		if err != nil {
			return nil, err
		}
		scores = append(scores, ss...)
	}
	return scores, nil
}

// rankEvaluator evaluates like its Evaluator (loss, accuracy) and also
// scores the held-out readings with risk-infer, keeping each model
// version's AUROC and AUPRC: the hub's global model of round r has version
// r, the central reference keeps the initial model's version 0.
type rankEvaluator struct {
	federation.Evaluator
	infer *runtime.Module
	rows  []any
	y     []int32

	mu        sync.Mutex
	byVersion map[uint64][2]float64
	models    map[uint64]federation.Model
}

// model returns the model evaluated at version v (a nil evaluator has
// none).
func (e *rankEvaluator) model(v uint64) (federation.Model, bool) {
	if e == nil {
		return federation.Model{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.models[v]
	return m, ok
}

// validationLoss is the devices' example-weighted mean loss of m on their
// validation readings, each computed by the device's own risk-train
// module (what a device would report in federated evaluation: a loss and
// a count, no readings).
func validationLoss(ctx context.Context, devs []*demoDevice, vals []federation.Dataset, m federation.Model) (float64, error) {
	var sum, n float64
	for i, d := range devs {
		rows := float64(vals[i].Y.Shape[0])
		if rows == 0 {
			continue
		}
		out, err := (&federation.WasmTrainer{Mod: d.train}).Evaluate(ctx, federation.EvalInput{Model: m, Data: vals[i]})
		if err != nil {
			return 0, fmt.Errorf("device %d: %w", i, err)
		}
		sum += rows * out.Metrics["loss"]
		n += rows
	}
	if n == 0 {
		return 0, errors.New("no validation readings")
	}
	return sum / n, nil
}

// lrTrainer trains with its own learning rate, whatever the round's
// settings say.
type lrTrainer struct {
	T  federation.Trainer
	LR float64
}

func (t *lrTrainer) Train(ctx context.Context, in federation.TrainInput) (federation.TrainOutput, error) {
	in.Settings.LR = t.LR
	return t.T.Train(ctx, in)
}

// earlyStopTrainer trains the central reference as the federation is
// trained and stopped: Step epochs at a time (one "round", the optimiser
// restarted as on a device), keeping the model with the lowest loss on the
// validation readings Val.
type earlyStopTrainer struct {
	T    federation.Trainer
	E    federation.Evaluator
	Val  federation.Dataset
	Step uint64
}

func (t *earlyStopTrainer) Train(ctx context.Context, in federation.TrainInput) (federation.TrainOutput, error) {
	total := max(1, in.Settings.Epochs)
	var best federation.TrainOutput
	bestLoss := math.Inf(1)
	for done := uint64(0); done < total; done += t.Step {
		step := in
		step.Settings.Epochs = min(t.Step, total-done)
		step.Settings.Seed = in.Settings.Seed + done // a new shuffle each step
		out, err := t.T.Train(ctx, step)
		if err != nil {
			return out, err
		}
		ev, err := t.E.Evaluate(ctx, federation.EvalInput{Model: out.Model, Data: t.Val})
		if err != nil {
			return out, err
		}
		if l := ev.Metrics["loss"]; l < bestLoss || done == 0 {
			best, bestLoss = out, l
		}
		in.Model = out.Model
	}
	return best, nil
}

func (e *rankEvaluator) Evaluate(ctx context.Context, in federation.EvalInput) (federation.EvalOutput, error) {
	out, err := e.Evaluator.Evaluate(ctx, in)
	if err != nil {
		return out, err
	}
	scores, err := riskScores(ctx, e.infer, in.Model, e.rows)
	if err != nil {
		return out, err
	}
	if len(scores) != len(e.y) {
		return out, fmt.Errorf("risk-infer returned %d scores for %d records", len(scores), len(e.y))
	}
	e.mu.Lock()
	e.byVersion[in.Model.Version] = [2]float64{vitals.AUROC(scores, e.y), vitals.AUPRC(scores, e.y)}
	e.models[in.Model.Version] = in.Model
	e.mu.Unlock()
	return out, nil
}

// get returns version v's AUROC and AUPRC (zero when not evaluated).
func (e *rankEvaluator) get(v uint64) [2]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byVersion[v]
}

func progressBar(done, total, width int) string {
	n := width * done / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
