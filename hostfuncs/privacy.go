package hostfuncs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/tetratelabs/wazero/api"
)

// ModulePrivacy is the import module of the privacy group (capability
// CapPrivacy): differentially private releases charged to the host's budget
// ledger, and threshold homomorphic encryption whose keys stay in the host.
const ModulePrivacy = "fennec_privacy"

// PrivacyServices configures the fennec_privacy group. The zero value is
// valid: no ledger (every release is refused with EDENIED), the
// process-wide secure noise source, no HE setup (HE functions answer
// ESTATE).
type PrivacyServices struct {
	// Ledger is the host's privacy-budget ledger, normally the
	// *budget.Ledger the command opened. Every release is charged to the
	// account budget.DatasetAccount(dataset) of the call's dataset, which
	// must have a budget, and also to budget.ModuleAccount(module, dataset)
	// when the operator set one, all or nothing, before its result is
	// written.
	Ledger PrivacyLedger
	// Noise is the noise source; nil uses one process-wide dp.NewSource()
	// (ChaCha8 keyed from crypto/rand). Only tests pass a seeded source.
	Noise *dp.Source
	// SamplingModules lists the modules trusted to report a Poisson
	// sampling rate below 1 to dp_gaussian (which lowers the charge by
	// privacy amplification). The host cannot check a guest's sampling, so
	// any other module passing sampling_rate < 1 is refused with EDENIED.
	SamplingModules []string
	// HE is this device's party in the federation's threshold-HE setup
	// (NewHEDevice wraps a *he.Party); nil makes he_encrypt answer ESTATE.
	HE HEParty
	// HEHub is the hub's aggregation of the current round
	// (NewHEAggregation wraps a *he.Aggregator); nil makes he_add and
	// he_decrypt_aggregate answer ESTATE.
	HEHub HEHub
}

// PrivacyLedger is the part of *budget.Ledger the privacy group uses.
type PrivacyLedger interface {
	// Charge charges c to every named account, all or none, and has it on
	// disk before returning; errors wrap budget.ErrBudget,
	// budget.ErrNoAccount or budget.ErrInvalid.
	Charge(c budget.Charge, accounts ...string) ([]budget.Status, error)
	// Remaining returns an account's status, or an error wrapping
	// budget.ErrNoAccount.
	Remaining(account string) (budget.Status, error)
}

var _ PrivacyLedger = (*budget.Ledger)(nil)

var (
	defaultNoiseOnce sync.Once
	defaultNoise     *dp.Source
)

func (p *PrivacyServices) noise() *dp.Source {
	if p.Noise != nil {
		return p.Noise
	}
	defaultNoiseOnce.Do(func() { defaultNoise = dp.NewSource() })
	return defaultNoise
}

var f64 = api.ValueTypeF64

func privacyGroup() Group {
	return Group{
		Module:     ModulePrivacy,
		Capability: CapPrivacy,
		Doc:        "privacy: clipping, DP noise charged to the host's budget ledger, threshold-HE encryption and aggregation",
		Funcs: []Func{
			{"dp_clip", []api.ValueType{i32, f64, i32}, i32s(1), host(dpClip)},
			{"dp_gaussian", []api.ValueType{i32, f64, f64, f64, i32}, i32s(1), host(dpGaussian)},
			{"dp_gaussian_eps", []api.ValueType{i32, f64, f64, f64, i32}, i32s(1), host(dpGaussianEps)},
			{"dp_laplace", []api.ValueType{i32, f64, f64, i32}, i32s(1), host(dpLaplace)},
			{"dp_remaining", i32s(1), i32s(1), host(dpRemaining)},
			{"dp_sgd_begin", []api.ValueType{i32, f64, f64, f64, i32}, i32s(1), host(dpSGDBegin)},
			{"dp_sgd_step", i32s(5), i32s(1), host(dpSGDStep)},
			{"he_encrypt", i32s(3), i32s(1), host(heEncrypt)},
			{"he_add", i32s(2), i32s(1), host(heAdd)},
			{"he_decrypt_aggregate", i32s(1), i32s(1), host(heDecryptAggregate)},
		},
	}
}

// privacyServices returns the instance's privacy services or nil.
func (in *Instance) privacyServices() *PrivacyServices {
	if in.cfg.Services == nil {
		return nil
	}
	return in.cfg.Services.Privacy
}

// releaseAccounts checks that a release may be attempted now and returns
// the services and the accounts to charge: the call's dataset account
// (which must exist) and the module's account on it when one is set.
func (in *Instance) releaseAccounts(op string) (*PrivacyServices, []string, uint64, bool) {
	if !in.inCall {
		return nil, nil, in.fail(ESTATE, "%s: no entrypoint call in progress (releases are charged to the call's dataset)", op), false
	}
	ds := in.callInfo.Dataset
	if ds == "" {
		return nil, nil, in.fail(ESTATE, "%s: this call names no dataset, so there is no budget to charge (the host sets it per call)", op), false
	}
	ps := in.privacyServices()
	if ps == nil || ps.Ledger == nil {
		return nil, nil, in.fail(EDENIED, "%s: this host has no privacy budget ledger configured; releases are refused", op), false
	}
	dsAcct := budget.DatasetAccount(ds)
	if _, err := ps.Ledger.Remaining(dsAcct); err != nil {
		if errors.Is(err, budget.ErrNoAccount) {
			return nil, nil, in.fail(EDENIED, "%s: dataset %q has no privacy budget (account %q); releases are refused until the operator sets one", op, ds, dsAcct), false
		}
		return nil, nil, in.fail(EINTERNAL, "%s: privacy ledger: %v", op, err), false
	}
	accts := []string{dsAcct}
	modAcct := budget.ModuleAccount(in.cfg.Module, ds)
	switch _, err := ps.Ledger.Remaining(modAcct); {
	case err == nil:
		accts = append(accts, modAcct)
	case !errors.Is(err, budget.ErrNoAccount):
		return nil, nil, in.fail(EINTERNAL, "%s: privacy ledger: %v", op, err), false
	}
	return ps, accts, 0, true
}

// trustsSampling reports whether module may claim a sampling rate below 1.
func (p *PrivacyServices) trustsSampling(module string) bool {
	return slices.Contains(p.SamplingModules, module)
}

// failPrivacy maps an error of the privacy libraries to an ABI code
// (docs/ABI.md, "Error mapping").
func (in *Instance) failPrivacy(op string, err error) uint64 {
	c := EINTERNAL
	switch {
	case errors.Is(err, budget.ErrBudget):
		c = EBUDGET
	case errors.Is(err, budget.ErrNoAccount):
		c = EDENIED
	case errors.Is(err, dp.ErrParam), errors.Is(err, budget.ErrInvalid), errors.Is(err, he.ErrMessage):
		c = EINVAL
	case errors.Is(err, he.ErrPhase):
		c = ESTATE
	}
	return in.fail(c, "%s: %v", op, err)
}

// readF32 copies an f32 tensor's elements to host memory. The copy is
// counted against the tensor quota (scratch) before it is made; on
// little-endian hosts it is the only allocation.
func (in *Instance) readF32(t gpu.Tensor) ([]float32, error) {
	if err := in.fitScratch(4 * int64(t.Len())); err != nil {
		return nil, err
	}
	x := make([]float32, t.Len())
	if err := gpu.ReadF32(in.cfg.Backend, t, x); err != nil {
		return nil, err
	}
	return x, nil
}

// writeF32 overwrites an f32 tensor with x (its element count).
func (in *Instance) writeF32(t gpu.Tensor, x []float32) error {
	if len(x) != t.Len() {
		return fmt.Errorf("%w: %d values for a tensor of %d", errInvalid, len(x), t.Len())
	}
	return gpu.WriteF32(in.cfg.Backend, t, x)
}

// positiveFinite reports whether v is a usable positive scale.
func positiveFinite(v float64) bool { return v > 0 && !math.IsInf(v, 0) }

// maxScale is the largest noise scale privacy/dp accepts.
const maxScale = 1e300
