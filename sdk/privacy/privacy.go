// Package privacy is the guest side of the fennec_privacy host functions
// (capability "privacy"): clipping, differentially private noise that the
// host charges to the call's dataset budget, and threshold homomorphic
// encryption whose keys never leave the host.
//
// The host, not the module, enforces privacy: it picks the dataset (the
// caller of the entrypoint names it), charges every release to that
// dataset's budget before the result is written, draws the noise from its
// own secure source, and refuses a release that would overspend with
// EBUDGET:
//
//	norm, err := privacy.Clip(update, 1.0)           // in place, no charge
//	noisy, err := privacy.Gaussian(update, 1.0, 1.1, 1, nil)
//	if errors.Is(err, sdk.ErrBudget) { ... the dataset's budget is spent ... }
//	eps, delta, err := privacy.Remaining()
//
// Errors are *sdk.Error values; compare them with errors.Is against the
// sdk sentinels (sdk.ErrBudget, sdk.ErrDenied, sdk.ErrState, ...). Built
// for anything but GOOS=wasip1 every function returns sdk.ErrNotWasm.
package privacy

import (
	"fmt"
	"unsafe"

	"github.com/fennec-edge/fennec/sdk"
)

// codeNotWasm is what the non-wasm stubs return; it is not an ABI code.
const codeNotWasm = -1000

// check turns a raw result into (value, error).
func check(op string, r int32) (int32, error) {
	if r >= 0 {
		return r, nil
	}
	if r == codeNotWasm {
		return 0, sdk.ErrNotWasm
	}
	return 0, &sdk.Error{Op: op, Code: sdk.Code(r), Msg: sdk.LastError()}
}

// Clip scales the f32 tensor t in place so that its L2 norm is at most
// clip and returns its norm before clipping. A tensor holding NaN or Inf is
// zeroed and its norm is +Inf. Clipping charges nothing.
func Clip(t *sdk.Tensor, clip float64) (norm float64, err error) {
	_, err = check("privacy.dp_clip", dpClip(t.Handle(), clip, unsafe.Pointer(&norm)))
	if err != nil {
		return 0, err
	}
	return norm, nil
}

// output returns out, or a new f32 tensor shaped like t when out is nil,
// and whether it was created here.
func output(op string, t, out *sdk.Tensor) (*sdk.Tensor, bool, error) {
	if out != nil {
		return out, false, nil
	}
	if t == nil {
		return nil, false, &sdk.Error{Op: op, Code: sdk.EHANDLE, Msg: "nil tensor"}
	}
	shape, err := t.Shape()
	if err != nil {
		return nil, false, err
	}
	o, err := sdk.Zeros(shape...)
	return o, err == nil, err
}

// release runs one noisy release into out (allocated when nil).
func release(op string, t, out *sdk.Tensor, call func(h, out int32) int32) (*sdk.Tensor, error) {
	o, fresh, err := output(op, t, out)
	if err != nil {
		return nil, err
	}
	if _, err := check(op, call(t.Handle(), o.Handle())); err != nil {
		if fresh {
			o.Free()
		}
		return nil, err
	}
	return o, nil
}

// Gaussian releases t plus Gaussian noise of standard deviation
// noiseMultiplier*l2Sensitivity into out (nil creates a tensor; out may be
// t itself). The host clips t to L2 norm l2Sensitivity first and charges
// the dataset one Gaussian release composed in Renyi DP, with Poisson
// sampling rate samplingRate in (0, 1]: use 1 unless the operator trusts
// this module's sampling (otherwise a rate below 1 is refused with
// sdk.ErrDenied). The guarantee treats the tensor as one unit's whole
// contribution (add/remove adjacency, as in DP-FedAvg).
func Gaussian(t *sdk.Tensor, l2Sensitivity, noiseMultiplier, samplingRate float64, out *sdk.Tensor) (*sdk.Tensor, error) {
	return release("privacy.dp_gaussian", t, out, func(h, o int32) int32 {
		return dpGaussian(h, l2Sensitivity, noiseMultiplier, samplingRate, o)
	})
}

// GaussianEps is Gaussian calibrated for (epsilon, delta) with the analytic
// Gaussian mechanism and charged as (epsilon, delta).
func GaussianEps(t *sdk.Tensor, l2Sensitivity, epsilon, delta float64, out *sdk.Tensor) (*sdk.Tensor, error) {
	return release("privacy.dp_gaussian_eps", t, out, func(h, o int32) int32 {
		return dpGaussianEps(h, l2Sensitivity, epsilon, delta, o)
	})
}

// Laplace releases t, clipped to L1 norm l1Sensitivity, plus Laplace noise
// of scale l1Sensitivity/epsilon, charged as (epsilon, 0).
func Laplace(t *sdk.Tensor, l1Sensitivity, epsilon float64, out *sdk.Tensor) (*sdk.Tensor, error) {
	return release("privacy.dp_laplace", t, out, func(h, o int32) int32 {
		return dpLaplace(h, l1Sensitivity, epsilon, o)
	})
}

// Remaining returns the smallest remaining epsilon and delta over the
// accounts the current call is charged to.
func Remaining() (epsilon, delta float64, err error) {
	var buf [2]float64
	if _, err := check("privacy.dp_remaining", dpRemaining(unsafe.Pointer(&buf[0]))); err != nil {
		return 0, 0, err
	}
	return buf[0], buf[1], nil
}

// SGDBegin starts a patient-level DP-SGD run of the current call: the
// host charges the call's dataset for steps Poisson-sampled Gaussian
// steps of noise multiplier noiseMultiplier and sampling rate samplingRate
// (composed in Renyi DP, one charge before any step; sdk.ErrBudget when it
// does not fit) and keeps groups, an i32 [rows] tensor of dense unit ids
// (0..units-1; a patient's readings share one). It returns the number of
// units. The run ends with the call.
func SGDBegin(groups *sdk.Tensor, clip, noiseMultiplier, samplingRate float64, steps int) (units int, err error) {
	const op = "privacy.dp_sgd_begin"
	if groups == nil || steps < 0 || steps > 1<<30 {
		return 0, &sdk.Error{Op: op, Code: sdk.EINVAL, Msg: "groups must be a tensor and steps in 1..2^30"}
	}
	n, err := check(op, dpSGDBegin(groups.Handle(), clip, noiseMultiplier, samplingRate, int32(steps)))
	return int(n), err
}

// SGDStep takes one step of the run: the host draws the Poisson sample of
// units, computes each sampled unit's gradient (the sum over its rows of
// binary cross-entropy on the logit of the ReLU MLP whose weight [in, out]
// and bias [out] tensors params lists, layer by layer), clips it to the
// run's clip, adds N(0, (z*clip)^2) to the sum and writes sum / (q*units)
// into grads (f32 tensors shaped like params). x is f32 [rows, in], y f32
// [rows] labels in [0, 1]. It returns the number of units sampled.
// sdk.ErrBudget means the run's charged steps are used up.
func SGDStep(params []*sdk.Tensor, x, y *sdk.Tensor, grads []*sdk.Tensor) (sampled int, err error) {
	const op = "privacy.dp_sgd_step"
	if len(params) != len(grads) || len(params) == 0 || len(params) > 64 || x == nil || y == nil {
		return 0, &sdk.Error{Op: op, Code: sdk.EINVAL, Msg: "params and grads must be non-empty lists of the same length, x and y tensors"}
	}
	var ph, gh [64]int32
	for i := range params {
		if params[i] == nil || grads[i] == nil {
			return 0, &sdk.Error{Op: op, Code: sdk.EINVAL, Msg: fmt.Sprintf("params[%d] or grads[%d] is nil", i, i)}
		}
		ph[i], gh[i] = params[i].Handle(), grads[i].Handle()
	}
	n, err := check(op, dpSGDStep(unsafe.Pointer(&ph[0]), int32(len(params)), x.Handle(), y.Handle(), unsafe.Pointer(&gh[0])))
	return int(n), err
}

// Encrypt encrypts the f32 tensor t under the federation's collective
// public key and returns the ciphertext message (for the hub), reusing
// dst's storage when it is large enough. Values must lie within
// +-MaxAbsSum/parties (sdk.ErrInvalid otherwise); sdk.ErrState means this
// host has no HE setup.
func Encrypt(t *sdk.Tensor, dst []byte) ([]byte, error) {
	const op = "privacy.he_encrypt"
	for range 3 {
		buf := dst[:cap(dst)]
		n, err := check(op, heEncrypt(t.Handle(), unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf))))
		if err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		dst = make([]byte, n)
	}
	return nil, &sdk.Error{Op: op, Code: sdk.EINTERNAL, Msg: "the ciphertext length kept changing"}
}

// AddEncrypted (hub) adds a device's ciphertext message to the current
// round's aggregate and returns the number of updates in it.
func AddEncrypted(msg []byte) (contributions int, err error) {
	n, err := check("privacy.he_add", heAdd(unsafe.Pointer(unsafe.SliceData(msg)), int32(len(msg))))
	return int(n), err
}

// DecryptAggregate (hub) runs the collective decryption of the round's
// aggregate and writes the sum of the updates into out, an f32 tensor of
// the update length. It is refused (sdk.ErrDenied) while the aggregate
// holds fewer updates than the federation's minimum: a single update is
// never decrypted.
func DecryptAggregate(out *sdk.Tensor) error {
	const op = "privacy.he_decrypt_aggregate"
	if out == nil || out.Handle() == 0 {
		return &sdk.Error{Op: op, Code: sdk.EINVAL, Msg: "out must be an f32 tensor of the update's length"}
	}
	h, err := check(op, heDecryptAggregate(out.Handle()))
	if err == nil && h != out.Handle() {
		err = &sdk.Error{Op: op, Code: sdk.EINTERNAL, Msg: fmt.Sprintf("host returned handle %d for out %d", h, out.Handle())}
	}
	return err
}
