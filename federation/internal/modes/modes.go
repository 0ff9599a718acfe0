// Package modes implements the federation's privacy round modes on the
// hook seam (federation/internal/hook) with the privacy libraries:
//
//	plain      no transform (the hub sees each trained model)
//	dp         client-level DP-FedAvg (McMahan et al. 2018): devices clip
//	           their update delta to L2 norm C, the hub adds Gaussian noise
//	           of std z*C (privacy/dp secure source) to the sum and divides
//	           by the number of sampled devices; an RDP accountant composes
//	           the subsampled Gaussian per round; optional adaptive clipping
//	ldp        local DP: each device clips and adds N(0, (zC)^2) itself
//	secagg     SecAgg+ (privacy/secagg): the hub learns only the sum of the
//	           devices' quantised updates
//	secagg+dp  secagg of clipped updates plus central (or distributed) noise
//	he         threshold CKKS (privacy/he): devices encrypt under a
//	           collective key, the hub adds ciphertexts, devices decrypt the
//	           aggregate collectively
//	he+dp      he of clipped updates plus central (or distributed) noise
//	dpsgd      patient-level DP-SGD on each device (privacy/dpsgd through
//	           the host's fennec_privacy dp_sgd_begin/dp_sgd_step): every
//	           update is already differentially private w.r.t. each of the
//	           device's patients, charged to the device's own ledger; the
//	           hub adds no noise and reports each device's epsilon
//	secagg+dpsgd  dpsgd updates summed by secagg: the hub sees only the sum
//
// Every mode works on the update delta (trained weights - global weights)
// and averages with equal weight per device (the DP-FedAvg convention; the
// secure modes cannot weight what the hub cannot see). The secure and DP
// modes hand the strategy one aggregate update, so only mean-based
// strategies (fedavg, fedprox, fedadam, fedyogi, fedadagrad) compose with
// them; robust rules need individual updates, which these modes hide.
// Weight-mode training only (not fedsgd's gradient mode).
//
// The protocol steps beyond task -> update travel over hook's
// authenticated step link (hook.HubLink / hook.ServeDevice):
//
//	secagg: Prepare: sa.keys, sa.share, sa.deliver (answered with the
//	        senders of share boxes that did not open; the hub's exclusions
//	        travel in the task's parameters); the update's f32 tensor
//	        bytes carry the masked ring vector (4 bytes per value, the
//	        size of the plain update); PreAggregate: sa.unmask
//	he:     first Prepare (and after a failed setup): he.keygen, he.pk
//	        [, he.tshares, he.tdeliver for t-of-N]; the update carries the
//	        unchanged global model; PreAggregate: he.collect (the
//	        ciphertexts), he.decrypt
//
// Task parameters (clip, bound, vector length) travel in the task's extra
// "mode.params". Nothing relies on update extras (the hub keeps none).
package modes

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
)

// Mode names.
const (
	Plain    = "plain"
	DP       = "dp"
	LDP      = "ldp"
	SecAgg   = "secagg"
	SecAggDP = "secagg+dp"
	HE       = "he"
	HEDP     = "he+dp"
	// DPSGD and SecAggDPSGD: patient-level DP-SGD on the devices (dpsgd.go).
	DPSGD       = "dpsgd"
	SecAggDPSGD = "secagg+dpsgd"
)

// TrainsDPSGD reports whether mode has the devices train with
// patient-level DP-SGD (dpsgd, secagg+dpsgd).
func TrainsDPSGD(mode string) bool {
	k, err := parse(mode)
	return err == nil && k.noise == "sgd"
}

// Names lists the modes.
var Names = []string{Plain, DP, LDP, SecAgg, SecAggDP, HE, HEDP, DPSGD, SecAggDPSGD}

// kind splits a mode into its secure-sum backend and its noise.
type kind struct {
	sum   string // "", "secagg", "he"
	noise string // "", "central", "local", "sgd" (DP-SGD on the devices)
}

func (k kind) dp() bool { return k.noise != "" }

func parse(mode string) (kind, error) {
	switch mode {
	case Plain:
		return kind{}, nil
	case DP:
		return kind{noise: "central"}, nil
	case LDP:
		return kind{noise: "local"}, nil
	case SecAgg:
		return kind{sum: "secagg"}, nil
	case SecAggDP:
		return kind{sum: "secagg", noise: "central"}, nil
	case HE:
		return kind{sum: "he"}, nil
	case HEDP:
		return kind{sum: "he", noise: "central"}, nil
	case DPSGD:
		return kind{noise: "sgd"}, nil
	case SecAggDPSGD:
		return kind{sum: "secagg", noise: "sgd"}, nil
	}
	return kind{}, fmt.Errorf("modes: unknown mode %q (want one of %v)", mode, Names)
}

// Config configures a mode; the hub and the devices each read the fields
// that concern them. The zero value of each field is its default.
type Config struct {
	// Clip is the L2 norm bound C of a device's update delta in the DP
	// modes (1). With AdaptiveClip it is the initial clip.
	Clip float64
	// NoiseMultiplier z: the Gaussian noise has std z*C on the sum of the
	// clipped deltas (central) or on each device's delta (ldp). When 0,
	// TargetEpsilon and Rounds calibrate it (dp.NoiseMultiplier).
	NoiseMultiplier float64
	// TargetEpsilon at Delta: z is calibrated so that Rounds releases reach
	// it, and no release that would take the running epsilon above it is
	// made (the round fails instead). 0 = no cap (z must then be set).
	TargetEpsilon float64
	// Delta of the reported (epsilon, delta) (1e-5).
	Delta float64
	// Rounds planned, for calibrating z from TargetEpsilon.
	Rounds int
	// SamplingRate is the planned q = devices sampled per round /
	// population (1): it calibrates z from TargetEpsilon (with the bound
	// for sampling without replacement, as the hub samples) and sizes the
	// adaptive clip's count noise. The accountant does not charge it: each
	// release is charged at the rate the hub sampled that round at,
	// len(RoundInfo.Devices)/RoundInfo.Available, without replacement, and
	// at SamplingRate as a Poisson sample only when a round does not carry
	// Available (docs/RATIONALE.md, "Sampling rate"). The local (ldp)
	// accountant always uses q = 1: the hub sees who took part.
	SamplingRate float64
	// AdaptiveClip tracks the Quantile (0.5) of the update norms with
	// learning rate ClipLR (0.2) (Andrew et al. 2021); each device's
	// unclipped bit is released with noise CountNoise (default: expected
	// devices/20, their recommendation, but at least 1/z) and the delta noise multiplier is
	// raised so that the pair costs exactly z (dp.AdaptiveNoiseMultiplier).
	// Central DP modes only.
	AdaptiveClip bool
	Quantile     float64
	ClipLR       float64
	CountNoise   float64
	// DistributedNoise (secagg+dp, he+dp): instead of the hub, each device
	// adds N(0, (zC)^2/m) to its clipped delta, where m is the least number
	// of contributions the hub accepts (secagg: its threshold; he:
	// MinAggregate; at least half the sampled devices), so the sum carries
	// at least the central noise and the hub never sees a noiseless
	// aggregate. Assumes the m contributing devices are honest.
	DistributedNoise bool
	// Ledger, when set, is charged with every release (before the model is
	// published) to Accounts: a budget.Gaussian charge of (z, q, 1) on the
	// hub (central) or on the device (ldp). ErrBudget fails the round.
	Ledger   *budget.Ledger
	Accounts []string

	// Bound clamps each value of a device's vector in secagg and he without
	// DP (16); with DP the clip C bounds them. Secagg quantises [-Bound,
	// Bound] to 32-bit fixed point: the sum of k devices is exact to
	// k*Bound/2^31 per value (secagg.Config.Resolution).
	Bound float64
	// NormBound (secagg, he without DP; 0 = off) bounds the L2 norm of a
	// device's update delta: honest devices clip to it, and the hub
	// projects the unmasked aggregate of k contributions onto the ball of
	// radius k*NormBound, so one malicious device moves the mean by less
	// than 2*NormBound in L2 instead of 2*Bound per value (see
	// docs/PRIVACY.md). In the DP modes the clip C plays this role.
	NormBound float64
	// Quarantine is the number of rounds a device the secagg hub named as
	// a culprit (bad share boxes, bad unmask shares) sits out of secure
	// aggregation (5); NoQuarantine turns it off (culprits are still
	// named and excluded from the round that caught them).
	Quarantine   int
	NoQuarantine bool
	// Logger receives the culprit and out-of-range reports (slog.Default()
	// when nil).
	Logger *slog.Logger

	// Neighbors (SecAgg+ graph degree; 0 = complete graph up to 32 devices,
	// else 2*ceil(log2 k)+2) and Threshold (0 = degree/2+1, the most
	// dropout-tolerant) of secure aggregation.
	Neighbors int
	Threshold int

	// HEParams (he.Agg14), HEThreshold (0 = N-of-N decryption; t for
	// t-of-N, which survives N-t devices missing at decryption) and
	// MinAggregate (2; devices refuse to help decrypt an aggregate of fewer
	// contributions, and refuse secagg rounds of fewer clients).
	HEParams      he.ParamSet
	HEThreshold   int
	MinAggregate  int
	AllowInsecure bool // permits he.Test10 (tests only)
	// Population lists every device of the federation (he: the key holders,
	// party i+1 = Population[i] after sorting). Required for he on the hub;
	// all of them must be online for the one-time key generation.
	Population []string

	// PatientsPerStep (DP-SGD modes; 8) is the expected number of patients
	// in each DP-SGD step's Poisson sample: a device of n patients samples
	// each at q = min(1, PatientsPerStep/n). LocalSteps (0: ceil(1/q), one
	// expected pass over the patients) is the number of steps per round.
	// Clip is the per-patient clip C; each device calibrates its own noise
	// multiplier so that Rounds rounds reach TargetEpsilon at delta
	// min(Delta, 1/n) (or uses NoiseMultiplier when set), and refuses a
	// round beyond it.
	PatientsPerStep float64
	LocalSteps      int
	// Colluders (secagg+dpsgd, device side; 0) is the number of the other
	// devices of a secure aggregate this device assumes may add no noise
	// or reveal theirs to the hub. In secagg+dpsgd each device runs one
	// DP-SGD step a round and adds only N(0, (zC)^2 / (t - Colluders)) to
	// its sum, t being the round's secagg threshold (the fewest
	// contributions a revealed sum holds, which the device's own secagg
	// client enforces), so the aggregate carries the full noise once for
	// all the devices' patients (ShareDivisor; docs/PRIVACY.md).
	Colluders int

	// StepTimeout bounds each protocol step's exchange (10s).
	StepTimeout time.Duration
	// Source of noise (dp.NewSource() when nil).
	Source *dp.Source
}

func (c *Config) fill(k kind) error {
	if err := errors.Join(
		config.Default("modes config: Clip", &c.Clip, 1),
		config.NonNegative("modes config: NoiseMultiplier", c.NoiseMultiplier),
		config.NonNegative("modes config: TargetEpsilon", c.TargetEpsilon),
		config.Default("modes config: Delta", &c.Delta, 1e-5),
		config.NonNegative("modes config: Rounds", c.Rounds),
		config.Default("modes config: SamplingRate", &c.SamplingRate, 1),
		config.Default("modes config: Quantile", &c.Quantile, 0.5),
		config.Default("modes config: ClipLR", &c.ClipLR, 0.2),
		config.NonNegative("modes config: CountNoise", c.CountNoise),
		config.Default("modes config: Bound", &c.Bound, 16),
		config.NonNegative("modes config: NormBound", c.NormBound),
		config.Default("modes config: Quarantine", &c.Quarantine, 5),
		config.NonNegative("modes config: Neighbors", c.Neighbors),
		config.NonNegative("modes config: Threshold", c.Threshold),
		config.NonNegative("modes config: HEThreshold", c.HEThreshold),
		config.Default("modes config: MinAggregate", &c.MinAggregate, 2),
		config.Default("modes config: StepTimeout", &c.StepTimeout, 10*time.Second),
		config.Default("modes config: PatientsPerStep", &c.PatientsPerStep, 8),
		config.NonNegative("modes config: LocalSteps", c.LocalSteps),
		config.NonNegative("modes config: Colluders", c.Colluders),
	); err != nil {
		return err
	}
	if c.Source == nil {
		c.Source = dp.NewSource()
	}
	c.Logger = config.Logger(c.Logger)
	switch {
	case math.IsInf(c.Clip, 0):
		return fmt.Errorf("modes config: Clip %v must be finite", c.Clip)
	case c.Delta >= 1:
		return fmt.Errorf("modes config: Delta %v outside (0, 1)", c.Delta)
	case c.SamplingRate > 1:
		return fmt.Errorf("modes config: SamplingRate %v outside (0, 1]", c.SamplingRate)
	case math.IsInf(c.NoiseMultiplier, 0):
		return fmt.Errorf("modes config: NoiseMultiplier %v must be finite", c.NoiseMultiplier)
	case math.IsInf(c.TargetEpsilon, 0):
		return fmt.Errorf("modes config: TargetEpsilon %v must be finite", c.TargetEpsilon)
	case math.IsInf(c.Bound, 0):
		return fmt.Errorf("modes config: Bound %v must be finite", c.Bound)
	case math.IsInf(c.NormBound, 0):
		return fmt.Errorf("modes config: NormBound %v must be finite", c.NormBound)
	case c.MinAggregate < 2:
		return fmt.Errorf("modes config: MinAggregate %d must be at least 2", c.MinAggregate)
	}
	if k.noise == "sgd" {
		// Each device calibrates its own noise for its own patients.
		switch {
		case c.NoiseMultiplier == 0 && (c.TargetEpsilon == 0 || c.Rounds == 0):
			return errors.New("modes config: a DP-SGD mode needs TargetEpsilon and Rounds (each device calibrates its noise), or NoiseMultiplier")
		case math.IsInf(c.PatientsPerStep, 0):
			return fmt.Errorf("modes config: PatientsPerStep %v must be finite", c.PatientsPerStep)
		case c.LocalSteps > maxLocalSteps:
			return fmt.Errorf("modes config: LocalSteps %d above %d", c.LocalSteps, maxLocalSteps)
		case k.sum == "secagg" && c.LocalSteps > 1:
			return fmt.Errorf("modes config: secagg+dpsgd runs one DP-SGD step a round (LocalSteps %d)", c.LocalSteps)
		case c.Rounds > maxRounds:
			return fmt.Errorf("modes config: Rounds %d above %d", c.Rounds, maxRounds)
		}
	} else if k.dp() && c.NoiseMultiplier == 0 {
		if c.TargetEpsilon == 0 || c.Rounds == 0 {
			return errors.New("modes config: a DP mode needs NoiseMultiplier, or TargetEpsilon and Rounds to calibrate it")
		}
		// A hub samples without replacement: plan with that bound (for
		// ldp, q = 1, where the two bounds agree).
		q, calibrate := c.SamplingRate, dp.NoiseMultiplierWithoutReplacement
		if k.noise == "local" {
			q = 1
		}
		z, err := calibrate(c.TargetEpsilon, c.Delta, q, c.Rounds, nil)
		if err != nil {
			return fmt.Errorf("modes config: calibrating the noise multiplier: %w", err)
		}
		c.NoiseMultiplier = z
	}
	if c.AdaptiveClip {
		if k.noise != "central" {
			return errors.New("modes config: AdaptiveClip needs a central DP mode (dp, secagg+dp, he+dp)")
		}
		if c.DistributedNoise {
			return errors.New("modes config: AdaptiveClip with DistributedNoise is not supported")
		}
		if c.Quantile >= 1 {
			return fmt.Errorf("modes config: Quantile %v outside (0, 1)", c.Quantile)
		}
	}
	if c.NormBound > 0 && (k.dp() || k.sum == "") {
		return errors.New("modes config: NormBound is for secagg and he; the DP modes bound the norm with Clip")
	}
	if c.DistributedNoise && (k.noise != "central" || k.sum == "") {
		return errors.New("modes config: DistributedNoise needs secagg+dp or he+dp")
	}
	if c.Ledger != nil && len(c.Accounts) == 0 {
		return errors.New("modes config: Ledger needs Accounts to charge")
	}
	c.Population = slices.Clone(c.Population)
	slices.Sort(c.Population)
	if len(slices.Compact(slices.Clone(c.Population))) != len(c.Population) {
		return errors.New("modes config: Population lists a device twice")
	}
	return nil
}

// Status is a mode's privacy state after the rounds so far.
type Status struct {
	Mode string `json:"mode"`
	// Releases is the number of noised aggregates released (DP modes) or
	// securely aggregated rounds.
	Releases int `json:"releases"`
	// Epsilon at Delta after those releases (central: of the federation's
	// model w.r.t. any one device's data; ldp: of every device's released
	// updates, a per-device bound). 0 for the non-DP modes.
	Epsilon         float64 `json:"epsilon,omitempty"`
	Delta           float64 `json:"delta,omitempty"`
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	// SamplingRate is the rate the last release was charged at (before
	// any, the planned Config.SamplingRate).
	SamplingRate float64 `json:"sampling_rate,omitempty"`
	// Clip is the current clip norm (adaptive clipping moves it).
	Clip float64 `json:"clip,omitempty"`
	// Contributors to the last aggregate.
	Contributors int `json:"contributors"`
	// StepBytes: bytes of the mode's extra protocol steps (both
	// directions) so far, when the hub's Exchanger counts them (as
	// *hook.HubLink does: Bytes() (out, in uint64)).
	StepBytes uint64 `json:"step_bytes"`
	// Culprits counts, by device, the times the secagg hub held a device
	// responsible for a failure (a bad share box, a bad unmask share, a
	// secret dealt so that it reconstructs to no committed value).
	Culprits map[string]int `json:"culprits,omitempty"`
	// Excluded counts devices excluded from rounds after share-box
	// complaints (culprits and disputed pairs).
	Excluded int `json:"excluded,omitempty"`
	// OutOfRange counts rounds whose unmasked aggregate lay outside what
	// honest contributions can reach (per value: contributors*bound; in
	// L2: contributors*clip) and was clamped or projected back: some device
	// encoded values beyond its range (not attributable under masking).
	OutOfRange int `json:"out_of_range,omitempty"`
	// DeviceEpsilon (DP-SGD modes) is each device's own epsilon spent so
	// far at DeviceDelta[device] (<= 1/its patients), as it last reported
	// it; Epsilon and Delta are then the largest of them.
	DeviceEpsilon map[string]float64 `json:"device_epsilon,omitempty"`
	DeviceDelta   map[string]float64 `json:"device_delta,omitempty"`
}
