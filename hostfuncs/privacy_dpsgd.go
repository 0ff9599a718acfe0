package hostfuncs

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
	"github.com/tetratelabs/wazero/api"
)

// MaxDPSGDSteps bounds the steps of one dp_sgd_begin run.
const MaxDPSGDSteps = 1 << 20

// dpsgdRun is the DP-SGD run of the current call (dp_sgd_begin): its
// units (the rows of each patient), parameters, and the steps left of
// those the ledger was charged for. It ends with the call.
type dpsgdRun struct {
	groups      *dpsgd.Groups
	clip, z, q  float64
	steps, left int
	held        int64 // quota counted for groups and the workspace
	ws          *dpsgd.Workspace
	shape       []int // the layer sizes of the first step; later steps must match
	sample      []int
	// Sampled counts the units sampled over the run's steps (the observed
	// rate is Sampled / (steps taken * units)).
	sampled int64
	// share is the call's noise-share grant (CallInfo.DPSGDShare), nil for
	// the full noise.
	share *dpsgd.Share
}

// endDPSGD ends the call's DP-SGD run, returning its quota.
func (in *Instance) endDPSGD() {
	if in.dpsgd != nil {
		in.unhold(in.dpsgd.held)
		in.dpsgd = nil
	}
}

// DPSGDStats reports the current call's DP-SGD run: steps charged, steps
// taken, units, units sampled so far (ok false when there is none).
func (in *Instance) DPSGDStats() (steps, taken, units int, sampled int64, ok bool) {
	r := in.dpsgd
	if r == nil {
		return 0, 0, 0, 0, false
	}
	return r.steps, r.steps - r.left, r.groups.Units(), r.sampled, true
}

// dp_sgd_begin(groups, clip f64, noise_multiplier f64, sampling_rate f64, steps) -> units
func dpSGDBegin(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_sgd_begin"
	gh, clip, z, q, steps := int32(stack[0]), api.DecodeF64(stack[1]), api.DecodeF64(stack[2]), api.DecodeF64(stack[3]), int32(stack[4])
	switch {
	case !positiveFinite(clip):
		return in.fail(EINVAL, "%s: clip must be positive and finite, got %v", op, clip)
	case !positiveFinite(z) || z*clip > maxScale:
		return in.fail(EINVAL, "%s: noise_multiplier must be positive and finite, got %v", op, z)
	case !(q > 0 && q <= 1):
		return in.fail(EINVAL, "%s: sampling_rate must be in (0, 1], got %v", op, q)
	case steps < 1 || steps > MaxDPSGDSteps:
		return in.fail(EINVAL, "%s: steps %d outside 1..%d", op, steps, MaxDPSGDSteps)
	}
	t, c, okh := in.tensor(op, gh)
	if !okh {
		return c
	}
	if t.DType() != gpu.I32 || len(t.Shape()) != 1 || t.Len() < 1 {
		return in.fail(EDTYPE, "%s: groups (handle %d) is %s %v, want i32 [rows]", op, gh, t.DType(), t.Shape())
	}
	ps, accts, c, oka := in.releaseAccounts(op)
	if !oka {
		return c
	}
	n := t.Len()
	// The run keeps the rows grouped by unit (16 bytes a row at most) for
	// the rest of the call; the read copy (4 a row) dies here.
	keep := 16 * int64(n)
	if c, okq := in.hold(op, "the run's unit index", keep+4*int64(n)); !okq {
		return c
	}
	raw := make([]byte, 4*n)
	if err := in.cfg.Backend.Read(t, raw); err != nil {
		in.unhold(keep + 4*int64(n))
		return in.failErr(op, err)
	}
	ids := make([]int32, n)
	units := int32(0)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		if ids[i] < 0 || int(ids[i]) >= n {
			in.unhold(keep + 4*int64(n))
			return in.fail(EINVAL, "%s: groups[%d] = %d outside 0..%d (unit ids are dense, below the row count)", op, i, ids[i], n-1)
		}
		units = max(units, ids[i]+1)
	}
	g, err := dpsgd.NewGroups(ids, int(units))
	in.unhold(4 * int64(n))
	if err != nil {
		in.unhold(keep)
		return in.fail(EINVAL, "%s: groups: %v", op, err)
	}
	share := in.callInfo.DPSGDShare
	if share != nil && steps != 1 {
		in.unhold(keep)
		return in.fail(EINVAL, "%s: this call's noise share covers one step (its sum is revealed only inside one secure aggregate), got steps %d", op, steps)
	}
	charge := budget.Charge{
		Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: q, Steps: int(steps)},
		Note:     fmt.Sprintf("module %s: dp_sgd_begin %d steps z=%g q=%g clip=%g over %d units", in.cfg.Module, steps, z, q, clip, units),
	}
	if share != nil {
		// The grant is used by this run whatever follows: a second run in
		// the call would be a second sum under one secure aggregate.
		if err := share.Begin(); err != nil {
			in.unhold(keep)
			return in.fail(ESTATE, "%s: %v", op, err)
		}
		// The charge is that of the full noise z: the revealed sum carries
		// it (the device's mode client verified the aggregate).
		charge.Note += fmt.Sprintf(" (noise share 1/%d under secure aggregation)", share.Divisor())
	}
	// The host samples the units itself (dp_sgd_step), so it may trust q:
	// one charge, the steps composed in RDP, before any step.
	if _, err := ps.Ledger.Charge(charge, accts...); err != nil {
		in.unhold(keep)
		return in.failPrivacy(op, err)
	}
	in.endDPSGD()
	in.dpsgd = &dpsgdRun{groups: g, clip: clip, z: z, q: q, steps: int(steps), left: int(steps), held: keep, share: share}
	return ok(units)
}

// dp_sgd_step(params_ptr, n_params, x, y, out_ptr) -> units sampled
func dpSGDStep(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "privacy.dp_sgd_step"
	pptr, np, xh, yh, optr := uint32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3]), uint32(stack[4])
	r := in.dpsgd
	if r == nil {
		return in.fail(ESTATE, "%s: no DP-SGD run in this call (dp_sgd_begin first)", op)
	}
	if r.left == 0 {
		return in.fail(EBUDGET, "%s: the run's %d steps charged at dp_sgd_begin are used up", op, r.steps)
	}
	if np < 2 || np > 2*dpsgd.MaxLayers || np%2 != 0 {
		return in.fail(EINVAL, "%s: n_params %d: want weight and bias pairs, 2..%d tensors", op, np, 2*dpsgd.MaxLayers)
	}
	pb, c, okm := in.span(mod, op, "params", pptr, 4*np)
	if !okm {
		return c
	}
	ob, c, okm := in.span(mod, op, "out", optr, 4*np)
	if !okm {
		return c
	}
	params := make([]gpu.Tensor, np)
	outs := make([]gpu.Tensor, np)
	net := make(dpsgd.Net, np/2)
	for i := range params {
		h, oh := int32(binary.LittleEndian.Uint32(pb[4*i:])), int32(binary.LittleEndian.Uint32(ob[4*i:]))
		t, c, okh := in.f32Tensor(op, h)
		if !okh {
			return c
		}
		o, c, okh := in.f32Tensor(op, oh)
		if !okh {
			return c
		}
		sh := t.Shape()
		l := &net[i/2]
		if i%2 == 0 {
			if len(sh) != 2 {
				return in.fail(ESHAPE, "%s: params[%d] (weight of layer %d) has shape %v, want [in, out]", op, i, i/2, sh)
			}
			l.In, l.Out = sh[0], sh[1]
		} else if len(sh) != 1 || sh[0] != l.Out {
			return in.fail(ESHAPE, "%s: params[%d] (bias of layer %d) has shape %v, want [%d]", op, i, i/2, sh, l.Out)
		}
		if !sameShape(o.Shape(), sh) {
			return in.fail(ESHAPE, "%s: out[%d] has shape %v, params[%d] %v", op, i, o.Shape(), i, sh)
		}
		params[i], outs[i] = t, o
	}
	if err := shapesOnly(net); err != nil {
		return in.fail(ESHAPE, "%s: %v", op, err)
	}
	shape := make([]int, 0, len(net)+1)
	for _, l := range net {
		shape = append(shape, l.In)
	}
	shape = append(shape, net[len(net)-1].Out)
	if r.shape == nil {
		r.shape = shape
	} else if !sameShape(shape, r.shape) {
		return in.fail(ESHAPE, "%s: the network's layer sizes %v differ from the run's first step %v", op, shape, r.shape)
	}
	rows, f := r.groups.Len(), net[0].In
	x, c, okx := in.f32Tensor(op, xh)
	if !okx {
		return c
	}
	if sh := x.Shape(); len(sh) != 2 || sh[0] != rows || sh[1] != f {
		return in.fail(ESHAPE, "%s: x has shape %v, want [%d, %d] (the run's rows, the first layer's inputs)", op, sh, rows, f)
	}
	y, c, oky := in.f32Tensor(op, yh)
	if !oky {
		return c
	}
	if sh := y.Shape(); y.Len() != rows || !(len(sh) == 1 || len(sh) == 2 && sh[1] == 1) {
		return in.fail(ESHAPE, "%s: y has shape %v, want [%d] or [%d, 1]", op, sh, rows, rows)
	}
	p := net.Params()
	// Scratch of this call: parameters and their noisy sum (4 bytes each),
	// x and y, the workspace, the sample.
	need := 8*int64(p) + 4*int64(rows)*int64(f+1) + 8*int64(r.groups.Units())
	if r.ws == nil {
		need += dpsgd.WorkspaceBytes(net, r.groups.MaxRows())
	}
	if c, okq := in.hold(op, "DP-SGD step scratch", need); !okq {
		return c
	}
	defer in.unhold(need)
	flat := make([]float32, 2*p+rows*(f+1))
	off := 0
	for i, t := range params {
		v := flat[off : off+t.Len()]
		if err := gpu.ReadF32(in.cfg.Backend, t, v); err != nil {
			return in.failErr(op, err)
		}
		if i%2 == 0 {
			net[i/2].W = v
		} else {
			net[i/2].B = v
		}
		off += t.Len()
	}
	sum := flat[off : off+p]
	off += p
	xs, ys := flat[off:off+rows*f], flat[off+rows*f:]
	if err := gpu.ReadF32(in.cfg.Backend, x, xs); err != nil {
		return in.failErr(op, err)
	}
	if err := gpu.ReadF32(in.cfg.Backend, y, ys); err != nil {
		return in.failErr(op, err)
	}
	for i, v := range ys {
		if !(v >= 0 && v <= 1) {
			return in.fail(EINVAL, "%s: y[%d] = %v, want a label in [0, 1]", op, i, v)
		}
	}
	in.checkpoint()
	ps := in.privacyServices()
	if ps == nil {
		return in.fail(EDENIED, "%s: this host has no privacy services", op)
	}
	// The step is taken (and counted) from here: the host samples, clips
	// the units' gradients, noises the sum.
	r.left--
	r.sample = dpsgd.Sample(ps.noise(), r.groups.Units(), r.q, r.sample)
	r.sampled += int64(len(r.sample))
	fresh := r.ws == nil
	if _, err := dpsgd.ClipSum(net, xs, ys, r.groups, r.sample, r.clip, sum, &r.ws); err != nil {
		return in.fail(EINVAL, "%s: %v", op, err)
	}
	if fresh {
		// The workspace lives for the run: move its bytes from this call's
		// scratch to the run.
		wb := dpsgd.WorkspaceBytes(net, r.groups.MaxRows())
		r.held += wb
		in.held += wb
	}
	std := r.z * r.clip
	if r.share != nil {
		std /= math.Sqrt(float64(r.share.Divisor()))
	}
	if err := ps.noise().AddGaussian32(sum, std); err != nil {
		return in.fail(EINTERNAL, "%s: noise: %v", op, err)
	}
	scale := float32(1 / (r.q * float64(r.groups.Units())))
	for i := range sum {
		sum[i] *= scale
	}
	if r.share != nil {
		// The under-noised sum goes to the grant's maker only; the guest
		// sees zeros.
		if err := r.share.Seal(dpsgd.Sealed{Sum: sum, Z: r.z, Clip: r.clip, Q: r.q, Units: r.groups.Units(),
			Sample: len(r.sample), Noise: std, Layers: shape}); err != nil {
			return in.fail(ESTATE, "%s: %v", op, err)
		}
		clear(sum)
	}
	off = 0
	for _, o := range outs {
		v := sum[off : off+o.Len()]
		if err := in.writeF32(o, v); err != nil {
			return in.fail(EINTERNAL, "%s: writing the gradient: %v", op, err)
		}
		off += o.Len()
	}
	return ok(int32(len(r.sample)))
}

// shapesOnly validates net's shapes and chaining (its values are not read
// yet).
func shapesOnly(net dpsgd.Net) error {
	probe := make(dpsgd.Net, len(net))
	for i, l := range net {
		if l.In < 1 || l.Out < 1 || l.In > dpsgd.MaxWidth || l.Out > dpsgd.MaxWidth {
			return fmt.Errorf("layer %d is %dx%d, want sizes in 1..%d", i, l.In, l.Out, dpsgd.MaxWidth)
		}
		probe[i] = dpsgd.Layer{In: l.In, Out: l.Out, W: make([]float32, l.In*l.Out), B: make([]float32, l.Out)}
	}
	return probe.Validate()
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
