package hostfuncs

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/tetratelabs/wazero/api"
)

// dp_clip(h, clip f64, norm_ptr) -> 0
func dpClip(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_clip"
	h, clip, normPtr := int32(stack[0]), api.DecodeF64(stack[1]), uint32(stack[2])
	if !positiveFinite(clip) {
		return in.fail(EINVAL, "%s: clip must be positive and finite, got %v", op, clip)
	}
	t, c, okh := in.f32Tensor(op, h)
	if !okh {
		return c
	}
	var normBuf []byte
	if normPtr != 0 {
		var okm bool
		if normBuf, okm = mem(mod, normPtr, 8); !okm {
			return in.fail(EMEM, "%s: norm_ptr %d is outside guest memory", op, normPtr)
		}
	}
	x, err := in.readF32(t)
	if err != nil {
		return in.failErr(op, err)
	}
	norm, err := dp.ClipL2(x, clip)
	if err != nil {
		return in.failPrivacy(op, err)
	}
	if err := in.writeF32(t, x); err != nil {
		return in.failErr(op, err)
	}
	if normBuf != nil {
		binary.LittleEndian.PutUint64(normBuf, math.Float64bits(norm))
	}
	return ok(0)
}

// dp_gaussian(h, l2_sensitivity f64, noise_multiplier f64, sampling_rate f64, out) -> handle
func dpGaussian(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_gaussian"
	h, sens, z, q, out := int32(stack[0]), api.DecodeF64(stack[1]), api.DecodeF64(stack[2]), api.DecodeF64(stack[3]), int32(stack[4])
	switch {
	case !positiveFinite(sens):
		return in.fail(EINVAL, "%s: l2_sensitivity must be positive and finite, got %v", op, sens)
	case !positiveFinite(z):
		return in.fail(EINVAL, "%s: noise_multiplier must be positive and finite, got %v", op, z)
	case !(q > 0 && q <= 1):
		return in.fail(EINVAL, "%s: sampling_rate must be in (0, 1], got %v", op, q)
	case !(z*sens <= maxScale):
		return in.fail(EINVAL, "%s: noise standard deviation %v * %v is too large", op, z, sens)
	}
	sigma := z * sens
	ps, accts, c, oka := in.releaseAccounts(op)
	if !oka {
		return c
	}
	if q < 1 && !ps.trustsSampling(in.cfg.Module) {
		return in.fail(EDENIED, "%s: sampling_rate %v < 1 claims privacy amplification the host cannot verify; module %q is not trusted to report its sampling (PrivacyServices.SamplingModules); pass 1", op, q, in.cfg.Module)
	}
	charge := budget.Charge{
		Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: q, Steps: 1},
		Note:     fmt.Sprintf("module %s: dp_gaussian z=%g q=%g sensitivity=%g", in.cfg.Module, z, q, sens),
	}
	return in.noisyRelease(op, ps, accts, h, out, charge,
		func(x []float32) error { _, err := dp.ClipL2(x, sens); return err },
		func(x []float32) error { return ps.noise().AddGaussian32(x, sigma) })
}

// dp_gaussian_eps(h, l2_sensitivity f64, epsilon f64, delta f64, out) -> handle
func dpGaussianEps(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_gaussian_eps"
	h, sens, eps, delta, out := int32(stack[0]), api.DecodeF64(stack[1]), api.DecodeF64(stack[2]), api.DecodeF64(stack[3]), int32(stack[4])
	sigma, err := dp.GaussianSigma(eps, delta, sens)
	if err != nil {
		return in.failPrivacy(op, err)
	}
	if !(sigma <= maxScale) {
		return in.fail(EINVAL, "%s: epsilon %v, delta %v need noise of standard deviation %v, too large", op, eps, delta, sigma)
	}
	ps, accts, c, oka := in.releaseAccounts(op)
	if !oka {
		return c
	}
	charge := budget.Charge{
		Epsilon: eps, Delta: delta,
		Note: fmt.Sprintf("module %s: dp_gaussian_eps sigma=%g sensitivity=%g", in.cfg.Module, sigma, sens),
	}
	return in.noisyRelease(op, ps, accts, h, out, charge,
		func(x []float32) error { _, err := dp.ClipL2(x, sens); return err },
		func(x []float32) error { return ps.noise().AddGaussian32(x, sigma) })
}

// dp_laplace(h, l1_sensitivity f64, epsilon f64, out) -> handle
func dpLaplace(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_laplace"
	h, sens, eps, out := int32(stack[0]), api.DecodeF64(stack[1]), api.DecodeF64(stack[2]), int32(stack[3])
	b, err := dp.LaplaceScale(eps, sens)
	if err != nil {
		return in.failPrivacy(op, err)
	}
	if !(b <= maxScale) {
		return in.fail(EINVAL, "%s: Laplace scale %v / %v is too large", op, sens, eps)
	}
	ps, accts, c, oka := in.releaseAccounts(op)
	if !oka {
		return c
	}
	charge := budget.Charge{
		Epsilon: eps,
		Note:    fmt.Sprintf("module %s: dp_laplace b=%g sensitivity=%g", in.cfg.Module, b, sens),
	}
	return in.noisyRelease(op, ps, accts, h, out, charge,
		func(x []float32) error { _, err := dp.ClipL1(x, sens); return err },
		func(x []float32) error { return ps.noise().AddLaplace32(x, b) })
}

// noiseBlock is the number of elements noised between two deadline checks.
const noiseBlock = 1 << 16

// noisyRelease is the common part of the DP mechanisms: it resolves the
// output, copies h, clips the copy, charges the ledger (all or nothing, on
// disk), adds noise and only then writes the output. Until the charge
// succeeds nothing the guest can see changes: h is untouched, an existing
// out keeps its contents, a fresh out is released again.
func (in *Instance) noisyRelease(op string, ps *PrivacyServices, accts []string, h, out int32, charge budget.Charge,
	clip, noise func([]float32) error) uint64 {
	t, c, okh := in.f32Tensor(op, h)
	if !okh {
		return c
	}
	o, oh, fresh, c, okr := in.result(op, out, t.DType(), t.Shape())
	if !okr {
		return c
	}
	undo := func() {
		if fresh {
			in.release(oh)
		}
	}
	x, err := in.readF32(t)
	if err != nil {
		undo()
		return in.failErr(op, err)
	}
	if err := clip(x); err != nil {
		undo()
		return in.failPrivacy(op, err)
	}
	if _, err := ps.Ledger.Charge(charge, accts...); err != nil {
		undo()
		return in.failPrivacy(op, err)
	}
	// Charged: from here a failure (or the call's deadline, checked between
	// blocks of the noise, which costs far more per element than the rest)
	// wastes budget but releases nothing.
	for i := 0; i < len(x); i += noiseBlock {
		in.checkpoint()
		if err := noise(x[i:min(len(x), i+noiseBlock)]); err != nil {
			undo()
			return in.fail(EINTERNAL, "%s: noise failed after the budget was charged (nothing released): %v", op, err)
		}
	}
	if err := in.writeF32(o, x); err != nil {
		undo()
		return in.fail(EINTERNAL, "%s: writing the result failed after the budget was charged (nothing released): %v", op, err)
	}
	return ok(oh)
}

// dp_remaining(buf_ptr) -> 0
func dpRemaining(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_remaining"
	ptr := uint32(stack[0])
	buf, okm := mem(mod, ptr, 16)
	if !okm {
		return in.fail(EMEM, "%s: buffer [%d, +16) is outside guest memory", op, ptr)
	}
	ps, accts, c, oka := in.releaseAccounts(op)
	if !oka {
		return c
	}
	eps, delta := math.Inf(1), math.Inf(1)
	for _, a := range accts {
		st, err := ps.Ledger.Remaining(a)
		if err != nil {
			return in.failPrivacy(op, err)
		}
		eps, delta = math.Min(eps, st.RemainingEpsilon), math.Min(delta, st.RemainingDelta)
	}
	binary.LittleEndian.PutUint64(buf, math.Float64bits(eps))
	binary.LittleEndian.PutUint64(buf[8:], math.Float64bits(delta))
	return ok(0)
}
