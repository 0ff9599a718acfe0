package federation

import (
	"log/slog"
	"slices"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
)

// ModeNames returns the built-in privacy round modes (docs/PRIVACY.md):
//
//	plain      no transform: the hub sees each trained model
//	dp         client-level DP-FedAvg: devices clip their update delta, the
//	           hub adds Gaussian noise to the sum (an RDP accountant)
//	ldp        local DP: each device clips and noises its own delta
//	secagg     SecAgg+: the hub learns only the sum of the updates
//	secagg+dp  secagg of clipped updates plus noise
//	he         threshold CKKS: the hub adds ciphertexts, the devices
//	           decrypt the aggregate collectively
//	he+dp      he of clipped updates plus noise
//
// Every mode but plain hands the strategy one aggregate, so only the
// mean-based strategies (fedavg, fedprox, fedadam, fedyogi, fedadagrad)
// compose with them.
func ModeNames() []string { return slices.Clone(modes.Names) }

// ModeTrainsDPSGD reports whether in mode the devices train with
// patient-level DP-SGD (dpsgd, secagg+dpsgd): each device calibrates its
// own noise, and its host charges its training module's runs to the
// device's own ledger, which it must have.
func ModeTrainsDPSGD(mode string) bool { return modes.TrainsDPSGD(mode) }

// ModeConfig configures a built-in privacy mode; the hub (NewHubPrivacy)
// and the devices (NewDevicePrivacy) each read the fields that concern
// them. The zero value of each field is its default; a negative one is an
// error naming the field.
type ModeConfig struct {
	// Clip is the L2 bound C of a device's update delta in the DP modes
	// (1); with AdaptiveClip, the initial clip.
	Clip float64
	// NoiseMultiplier z: the Gaussian noise has std z*C on the sum of the
	// clipped deltas (central) or on each device's delta (ldp). When 0,
	// TargetEpsilon and Rounds calibrate it.
	NoiseMultiplier float64
	// TargetEpsilon at Delta: z is calibrated so that Rounds releases
	// reach it, and no release that would exceed it is made (the round
	// fails instead). 0: no cap (NoiseMultiplier must then be set).
	TargetEpsilon float64
	// Delta of the reported (epsilon, delta) (1e-5).
	Delta float64
	// Rounds planned, for calibrating z from TargetEpsilon.
	Rounds int
	// SamplingRate is the planned rate q = sampled per round / population
	// (1; SamplingRate gives a hub's): it calibrates z. Each release is
	// charged at the rate its round was really sampled at.
	SamplingRate float64
	// AdaptiveClip tracks the Quantile (0.5) of the update norms with
	// learning rate ClipLR (0.2), releasing each device's unclipped bit
	// with noise CountNoise (expected devices/20, at least 1/z); central
	// DP modes only.
	AdaptiveClip bool
	Quantile     float64
	ClipLR       float64
	CountNoise   float64
	// DistributedNoise (secagg+dp, he+dp): each device adds its share of
	// the noise, so the hub never sees a noiseless aggregate.
	DistributedNoise bool
	// Ledger, when set, is charged with every release to Accounts before
	// the model is published; budget.ErrBudget fails the round.
	Ledger   *budget.Ledger
	Accounts []string
	// Bound clamps each value of a device's vector in secagg and he
	// without DP (16).
	Bound float64
	// NormBound (secagg, he without DP; 0 = off) bounds the L2 norm of a
	// device's update delta.
	NormBound float64
	// Quarantine is the number of rounds a device secagg caught cheating
	// sits out (5); NoQuarantine turns it off.
	Quarantine   int
	NoQuarantine bool
	// Logger receives culprit and out-of-range reports (slog.Default()
	// when nil).
	Logger *slog.Logger
	// Neighbors (0: complete graph up to 32 devices, else 2*ceil(log2 k)+2)
	// and Threshold (0: degree/2+1) of SecAgg+.
	Neighbors int
	Threshold int
	// HEParams (he.Agg14), HEThreshold (0: N-of-N decryption; t for
	// t-of-N) and MinAggregate (2: devices refuse to help with a smaller
	// aggregate). AllowInsecure permits he.Test10 (tests only).
	HEParams      he.ParamSet
	HEThreshold   int
	MinAggregate  int
	AllowInsecure bool
	// Population lists every device of the federation; he requires it on
	// the hub (all of them online for the one-time key generation).
	Population []string
	// PatientsPerStep (DP-SGD modes; 8) is the expected number of patients
	// in each DP-SGD step's Poisson sample: a device of n patients samples
	// each at q = min(1, PatientsPerStep/n). LocalSteps (0: ceil(1/q), one
	// expected pass over its patients) is the number of steps per round.
	// In these modes Clip is the per-patient clip and each device
	// calibrates its own noise for Rounds rounds to reach TargetEpsilon at
	// delta min(Delta, 1/n).
	PatientsPerStep float64
	LocalSteps      int
	// Colluders (secagg+dpsgd, device side): the other devices of a secure
	// aggregate this device assumes may add no noise; its noise share is
	// N(0, (zC)^2 / (t - Colluders)) for the round's secagg threshold t
	// (docs/PRIVACY.md, "Distributed DP-SGD noise").
	Colluders int
	// StepTimeout bounds each protocol step's exchange (10s).
	StepTimeout time.Duration
	// Source of noise (dp.NewSource() when nil).
	Source *dp.Source
}

// ModeStatus is a privacy mode's state after the rounds so far.
type ModeStatus struct {
	Mode string `json:"mode"`
	// Releases is the number of noised aggregates released (DP modes) or
	// securely aggregated rounds.
	Releases int `json:"releases"`
	// Epsilon at Delta after those releases (0 for the modes without DP).
	Epsilon         float64 `json:"epsilon,omitempty"`
	Delta           float64 `json:"delta,omitempty"`
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	// SamplingRate is the rate the last release was charged at (before
	// any, the planned ModeConfig.SamplingRate).
	SamplingRate float64 `json:"sampling_rate,omitempty"`
	// Clip is the current clip norm (adaptive clipping moves it).
	Clip float64 `json:"clip,omitempty"`
	// Contributors to the last aggregate.
	Contributors int `json:"contributors"`
	// StepBytes: bytes of the mode's extra protocol steps so far.
	StepBytes uint64 `json:"step_bytes"`
	// Culprits counts, by device, the times secagg held a device
	// responsible for a failure.
	Culprits map[string]int `json:"culprits,omitempty"`
	// Excluded counts devices excluded from rounds after complaints.
	Excluded int `json:"excluded,omitempty"`
	// OutOfRange counts rounds whose aggregate lay outside what honest
	// contributions can reach and was clamped back.
	OutOfRange int `json:"out_of_range,omitempty"`
	// DeviceEpsilon (DP-SGD modes) is each device's own epsilon spent so
	// far at DeviceDelta[device] (<= 1/its patients), as it last reported
	// it; Epsilon and Delta are then the largest of them.
	DeviceEpsilon map[string]float64 `json:"device_epsilon,omitempty"`
	DeviceDelta   map[string]float64 `json:"device_delta,omitempty"`
}

// HubPrivacy is a built-in privacy mode's hub side: its transforms of the
// round's updates, its protocol steps and its accountant. Pass it in
// HubConfig.Privacy; the hub binds it to its own connection and global
// model when it starts.
type HubPrivacy struct{ h *modes.Hub }

// NewHubPrivacy validates cfg for mode (one of ModeNames but plain) and
// returns its hub side.
func NewHubPrivacy(mode string, cfg ModeConfig) (*HubPrivacy, error) {
	h, err := modes.NewHub(mode, modes.Config(cfg))
	if err != nil {
		return nil, err
	}
	return &HubPrivacy{h}, nil
}

// Mode is the mode's name.
func (p *HubPrivacy) Mode() string { return p.h.Mode() }

// Config is the configuration the mode runs with: the one NewHubPrivacy
// was given, validated, its defaults filled in (what to report of a plan:
// its rounds, clip, patients per step).
func (p *HubPrivacy) Config() ModeConfig { return ModeConfig(p.h.Config()) }

// Status is the mode's privacy state so far (epsilon spent, releases).
func (p *HubPrivacy) Status() ModeStatus { return ModeStatus(p.h.Status()) }

// DevicePrivacy is a built-in privacy mode's device side: it transforms the
// device's update (clip, noise, mask, encrypt) and answers the mode's
// protocol steps. Its secrets never leave it but as the protocols'
// encrypted shares. AgentConfig.NewMode returns one.
type DevicePrivacy struct {
	c    *modes.Client
	mode string
}

// NewDevicePrivacy validates cfg for mode and returns device id's side. A
// device enforces its own policy from cfg: MinAggregate, AllowInsecure,
// and in ldp its own Clip, NoiseMultiplier, TargetEpsilon and Ledger.
func NewDevicePrivacy(mode, id string, cfg ModeConfig) (*DevicePrivacy, error) {
	c, err := modes.NewClient(mode, id, modes.Config(cfg))
	if err != nil {
		return nil, err
	}
	return &DevicePrivacy{c, mode}, nil
}

// HEParty is the device's party in the he and he+dp modes, nil in the
// others: what the training module's he_encrypt encrypts with
// (hostfuncs.HESlot.Set), under the federation's collective key once the
// hub's key setup has run.
func (p *DevicePrivacy) HEParty() hostfuncs.HEParty {
	if p.mode != modes.HE && p.mode != modes.HEDP {
		return nil
	}
	return p.c
}

// Epsilon is the device's own epsilon so far (ldp; 0 in other modes).
func (p *DevicePrivacy) Epsilon() float64 { return p.c.Epsilon() }
