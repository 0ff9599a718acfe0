package hostfuncs_test

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
)

// Guest memory the DP-SGD tests use for handle arrays.
const (
	paramsAt = 12288
	gradsAt  = 12544
)

// newI32 creates an i32 tensor through the ABI.
func (e *env) newI32(shape []int32, data ...int32) int32 {
	e.t.Helper()
	e.put(shapeAt, wasmtest.LE32(shape...))
	e.put(dataAt, wasmtest.LE32(data...))
	h := e.call("fennec_tensor_new", 3, shapeAt, u(int32(len(shape))), dataAt, u(int32(4*len(data))))
	if h <= 0 {
		e.t.Fatalf("new i32 %v: %d %s", shape, h, e.host.LastError())
	}
	return h
}

// dpsgdFixture is a 3-2-1 MLP, 6 rows of 3 patients, and zeroed gradient
// outputs, in an instance charged to dataset "d".
type dpsgdFixture struct {
	e                *env
	l                *budget.Ledger
	w0, b0, w1, b1   int32
	g0, gb0, g1, gb1 int32
	x, y, groups     int32
	xs, ys           []float32
	net              dpsgd.Net
}

func newDPSGDFixture(t *testing.T, eps float64) *dpsgdFixture {
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: eps, Delta: 1e-5},
	})
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, Noise: seeded(3)}, "d")
	f := &dpsgdFixture{e: e, l: l}
	w0 := []float32{0.5, -0.3, 0.2, 0.8, -0.6, 0.1}
	b0 := []float32{0.05, -0.02}
	w1 := []float32{0.7, -0.4}
	b1 := []float32{0.1}
	f.net = dpsgd.Net{{In: 3, Out: 2, W: w0, B: b0}, {In: 2, Out: 1, W: w1, B: b1}}
	f.w0, f.b0 = e.newF32([]int32{3, 2}, w0...), e.newF32([]int32{2}, b0...)
	f.w1, f.b1 = e.newF32([]int32{2, 1}, w1...), e.newF32([]int32{1}, b1...)
	f.g0, f.gb0 = e.newF32([]int32{3, 2}), e.newF32([]int32{2})
	f.g1, f.gb1 = e.newF32([]int32{2, 1}), e.newF32([]int32{1})
	f.xs = []float32{1, 2, 3, -1, 0.5, 2, 0, 0, 1, 3, -2, 1, 0.2, 0.4, -0.6, 1, 1, 1}
	f.ys = []float32{1, 0, 0, 1, 1, 0}
	f.x, f.y = e.newF32([]int32{6, 3}, f.xs...), e.newF32([]int32{6}, f.ys...)
	f.groups = e.newI32([]int32{6}, 0, 0, 1, 2, 2, 2)
	f.arrays(f.w0, f.b0, f.w1, f.b1)
	return f
}

// arrays writes the params and grads handle arrays.
func (f *dpsgdFixture) arrays(params ...int32) {
	f.e.put(paramsAt, wasmtest.LE32(params...))
	f.e.put(gradsAt, wasmtest.LE32(f.g0, f.gb0, f.g1, f.gb1))
}

func (f *dpsgdFixture) begin(clip, z, q float64, steps int32) int32 {
	return f.e.call("fennec_privacy_dp_sgd_begin", u(f.groups), fd(clip), fd(z), fd(q), u(steps))
}

func (f *dpsgdFixture) step() int32 {
	return f.e.call("fennec_privacy_dp_sgd_step", paramsAt, 4, u(f.x), u(f.y), gradsAt)
}

// TestDPSGDStepMatchesKernel: with every patient sampled (q = 1) and a
// negligible noise multiplier, a step writes the clipped per-patient sum of
// privacy/dpsgd divided by q * patients, split over the gradient tensors.
func TestDPSGDStepMatchesKernel(t *testing.T) {
	f := newDPSGDFixture(t, 1e15)
	if got := f.begin(0.5, 1e-3, 1, 2); got != 3 {
		t.Fatalf("dp_sgd_begin = %d (%s), want 3 units", got, f.e.host.LastError())
	}
	if got := f.step(); got != 3 {
		t.Fatalf("dp_sgd_step = %d (%s), want 3 sampled", got, f.e.host.LastError())
	}
	g, _ := dpsgd.NewGroups([]int32{0, 0, 1, 2, 2, 2}, 3)
	want := make([]float32, f.net.Params())
	if _, err := dpsgd.ClipSum(f.net, f.xs, f.ys, g, []int{0, 1, 2}, 0.5, want, nil); err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, h := range []int32{f.g0, f.gb0, f.g1, f.gb1} {
		got = append(got, f.e.read(h)...)
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i]/3)); d > 3e-3 { // noise std 5e-4/3
			t.Fatalf("gradient[%d] = %v, want %v", i, got[i], want[i]/3)
		}
	}
	// The parameters are untouched: the guest applies the step.
	if w := f.e.read(f.w0); w[0] != 0.5 {
		t.Fatalf("weights changed: %v", w)
	}
}

// TestDPSGDChargeAndRate: dp_sgd_begin charges the composed RDP of its
// steps once (what one Gaussian{z, q, steps} charge costs, far less than
// basic composition of the steps), the host's sampler keeps each patient
// at the charged rate, and a step beyond the charged ones is refused.
func TestDPSGDChargeAndRate(t *testing.T) {
	const z, q, steps = 1.1, 0.3, 400
	f := newDPSGDFixture(t, 50)
	// 60 patients of one reading each, so the rate is measured on many.
	ids := make([]int32, 60)
	xs, ys := make([]float32, 60*3), make([]float32, 60)
	for i := range ids {
		ids[i] = int32(i)
		xs[3*i] = float32(i%7) / 7
		ys[i] = float32(i % 2)
	}
	f.groups, f.x, f.y = f.e.newI32([]int32{60}, ids...), f.e.newF32([]int32{60, 3}, xs...), f.e.newF32([]int32{60}, ys...)
	if got := f.begin(1, z, q, steps); got != 60 {
		t.Fatalf("dp_sgd_begin = %d (%s)", got, f.e.host.LastError())
	}
	got := status(t, f.l, budget.DatasetAccount("d"))
	ref := openLedger(t, filepath.Join(t.TempDir(), "ref.json"), map[string]budget.Budget{"r": {Epsilon: 1e9, Delta: 1e-5}, "basic": {Epsilon: 1e9, Delta: 1e-5}})
	want, err := ref.Charge(budget.Charge{Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: q, Steps: steps}}, "r")
	if err != nil {
		t.Fatal(err)
	}
	if got.Releases != 1 || math.Abs(got.SpentEpsilon-want[0].SpentEpsilon) > 1e-12 {
		t.Fatalf("charged %+v, want one release of epsilon %v", got, want[0].SpentEpsilon)
	}
	one, _ := ref.Charge(budget.Charge{Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: q, Steps: 1}}, "basic")
	if basic := steps * one[0].SpentEpsilon; !(got.SpentEpsilon < basic/5) {
		t.Fatalf("composed epsilon %v not well below basic composition %v", got.SpentEpsilon, basic)
	}
	var sampled int64
	for i := 0; i < steps; i++ {
		n := f.step()
		if n < 0 {
			t.Fatalf("step %d: %d %s", i, n, f.e.host.LastError())
		}
		sampled += int64(n)
	}
	charged, taken, units, hostSampled, ok := f.e.host.DPSGDStats()
	if !ok || charged != steps || taken != steps || units != 60 || hostSampled != sampled {
		t.Fatalf("stats %d %d %d %d %v", charged, taken, units, hostSampled, ok)
	}
	n := float64(steps * 60)
	if rate, sd := float64(sampled)/n, math.Sqrt(q*(1-q)/n); math.Abs(rate-q) > 5*sd {
		t.Fatalf("observed sampling rate %v, charged %v (sd %v)", rate, q, sd)
	}
	if got := f.step(); got != int32(hostfuncs.EBUDGET) || !strings.Contains(f.e.host.LastError(), "used up") {
		t.Fatalf("step past the charged ones = %d (%s), want EBUDGET", got, f.e.host.LastError())
	}
	// The run ends with the call.
	f.e.host.End()
	f.e.host.Begin(nil, hostfuncs.CallInfo{Dataset: "d"})
	if got := f.step(); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("step in a new call = %d (%s), want ESTATE", got, f.e.host.LastError())
	}
}

// TestDPSGDBudgetExhausted: a run whose composed charge does not fit the
// remaining budget is refused before any step, charging nothing.
func TestDPSGDBudgetExhausted(t *testing.T) {
	f := newDPSGDFixture(t, 1)
	before := status(t, f.l, budget.DatasetAccount("d"))
	if got := f.begin(1, 0.8, 1, 100); got != int32(hostfuncs.EBUDGET) {
		t.Fatalf("dp_sgd_begin = %d (%s), want EBUDGET", got, f.e.host.LastError())
	}
	if after := status(t, f.l, budget.DatasetAccount("d")); after != before {
		t.Fatalf("refused run charged: %+v", after)
	}
	if got := f.step(); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("step after a refused begin = %d, want ESTATE", got)
	}
}

// TestDPSGDHostile: bad handles, shapes, group ids, counts and pointers are
// refused with their code and a message naming the function; no refused
// begin charges the budget.
func TestDPSGDHostile(t *testing.T) {
	f := newDPSGDFixture(t, 1e9)
	e := f.e
	ft := e.newF32([]int32{6}, 0, 0, 1, 2, 2, 2)
	outside := e.newI32([]int32{6}, 0, 0, 1, 2, 2, 6)
	negative := e.newI32([]int32{6}, 0, -1, 1, 2, 2, 2)
	sparse := e.newI32([]int32{6}, 0, 0, 1, 3, 3, 3)
	matrix := e.newI32([]int32{2, 3}, 0, 0, 1, 2, 2, 2)
	nan, inf := math.NaN(), math.Inf(1)
	begin := func(g int32, clip, z, q float64, steps int32) []uint64 {
		return []uint64{u(g), fd(clip), fd(z), fd(q), u(steps)}
	}
	for _, c := range []struct {
		name string
		args []uint64
		want hostfuncs.Code
	}{
		{"forged groups", begin(f.groups+1, 1, 1, 0.5, 10), hostfuncs.EHANDLE},
		{"f32 groups", begin(ft, 1, 1, 0.5, 10), hostfuncs.EDTYPE},
		{"rank-2 groups", begin(matrix, 1, 1, 0.5, 10), hostfuncs.EDTYPE},
		{"group id out of range", begin(outside, 1, 1, 0.5, 10), hostfuncs.EINVAL},
		{"negative group id", begin(negative, 1, 1, 0.5, 10), hostfuncs.EINVAL},
		{"group ids not dense", begin(sparse, 1, 1, 0.5, 10), hostfuncs.EINVAL},
		{"zero clip", begin(f.groups, 0, 1, 0.5, 10), hostfuncs.EINVAL},
		{"NaN clip", begin(f.groups, nan, 1, 0.5, 10), hostfuncs.EINVAL},
		{"Inf noise", begin(f.groups, 1, inf, 0.5, 10), hostfuncs.EINVAL},
		{"zero noise", begin(f.groups, 1, 0, 0.5, 10), hostfuncs.EINVAL},
		{"zero rate", begin(f.groups, 1, 1, 0, 10), hostfuncs.EINVAL},
		{"rate above 1", begin(f.groups, 1, 1, 1.01, 10), hostfuncs.EINVAL},
		{"NaN rate", begin(f.groups, 1, 1, nan, 10), hostfuncs.EINVAL},
		{"zero steps", begin(f.groups, 1, 1, 0.5, 0), hostfuncs.EINVAL},
		{"negative steps", begin(f.groups, 1, 1, 0.5, -1), hostfuncs.EINVAL},
		{"huge steps", begin(f.groups, 1, 1, 0.5, 1<<30), hostfuncs.EINVAL},
	} {
		t.Run("begin "+c.name, func(t *testing.T) {
			e.t = t
			if got := e.call("fennec_privacy_dp_sgd_begin", c.args...); got != int32(c.want) {
				t.Fatalf("dp_sgd_begin = %d (%s), want %s", got, e.host.LastError(), c.want)
			}
			if msg := e.host.LastError(); !strings.HasPrefix(msg, c.want.String()+": privacy.dp_sgd_begin:") {
				t.Fatalf("message %q", msg)
			}
		})
	}
	e.t = t
	if st := status(t, f.l, budget.DatasetAccount("d")); st.Releases != 0 {
		t.Fatalf("refused begins charged: %+v", st)
	}
	if got := f.step(); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("step before begin = %d, want ESTATE", got)
	}
	if got := f.begin(1, 1, 0.5, 1000); got != 3 {
		t.Fatalf("begin: %d %s", got, e.host.LastError())
	}
	const far = 0xFFFFFFF0
	wide := e.newF32([]int32{4, 2})
	bias3 := e.newF32([]int32{3})
	logits2w, logits2b := e.newF32([]int32{2, 2}), e.newF32([]int32{2})
	x5 := e.newF32([]int32{5, 3})
	yBad := e.newF32([]int32{6}, 0, 1, 2, 0, 1, 0)
	yNaN := e.newF32([]int32{6}, 0, 1, float32(nan), 0, 1, 0)
	ih := e.newI32([]int32{2}, 1, 2)
	for _, c := range []struct {
		name   string
		params []int32 // written at paramsAt (nil: keep the good ones)
		args   []uint64
		want   hostfuncs.Code
	}{
		{"odd n_params", nil, []uint64{paramsAt, 3, u(f.x), u(f.y), gradsAt}, hostfuncs.EINVAL},
		{"zero n_params", nil, []uint64{paramsAt, 0, u(f.x), u(f.y), gradsAt}, hostfuncs.EINVAL},
		{"huge n_params", nil, []uint64{paramsAt, 1 << 30, u(f.x), u(f.y), gradsAt}, hostfuncs.EINVAL},
		{"params far", nil, []uint64{far, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.EMEM},
		{"out far", nil, []uint64{paramsAt, 4, u(f.x), u(f.y), far}, hostfuncs.EMEM},
		{"forged param", []int32{f.w0 + 1, f.b0, f.w1, f.b1}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.EHANDLE},
		{"i32 param", []int32{ih, f.b0, f.w1, f.b1}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.EDTYPE},
		{"bias shape", []int32{f.w0, bias3, f.w1, f.b1}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.ESHAPE},
		{"weight as bias", []int32{f.b0, f.b0, f.w1, f.b1}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.ESHAPE},
		{"gradient shape differs", []int32{wide, f.b0, f.w1, f.b1}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.ESHAPE},
		{"two logits", []int32{f.w0, f.b0, logits2w, logits2b}, []uint64{paramsAt, 4, u(f.x), u(f.y), gradsAt}, hostfuncs.ESHAPE},
		{"x rows differ from the run", nil, []uint64{paramsAt, 4, u(x5), u(f.y), gradsAt}, hostfuncs.ESHAPE},
		{"x forged", nil, []uint64{paramsAt, 4, 12345, u(f.y), gradsAt}, hostfuncs.EHANDLE},
		{"label 2", nil, []uint64{paramsAt, 4, u(f.x), u(yBad), gradsAt}, hostfuncs.EINVAL},
		{"label NaN", nil, []uint64{paramsAt, 4, u(f.x), u(yNaN), gradsAt}, hostfuncs.EINVAL},
		{"y is x", nil, []uint64{paramsAt, 4, u(f.x), u(f.x), gradsAt}, hostfuncs.ESHAPE},
	} {
		t.Run("step "+c.name, func(t *testing.T) {
			e.t = t
			if c.params != nil {
				f.arrays(c.params...)
				defer f.arrays(f.w0, f.b0, f.w1, f.b1)
			}
			if got := e.call("fennec_privacy_dp_sgd_step", c.args...); got != int32(c.want) {
				t.Fatalf("dp_sgd_step = %d (%s), want %s", got, e.host.LastError(), c.want)
			}
			if msg := e.host.LastError(); !strings.HasPrefix(msg, c.want.String()+": privacy.dp_sgd_step:") {
				t.Fatalf("message %q", msg)
			}
		})
	}
	e.t = t
	if _, taken, _, _, _ := e.host.DPSGDStats(); taken != 0 {
		t.Fatalf("refused steps were counted: %d", taken)
	}
	if got := f.step(); got < 0 {
		t.Fatalf("a good step after the refused ones: %d %s", got, e.host.LastError())
	}
}

// TestDPSGDQuota: the run's index and a step's scratch count against the
// tensor quota.
func TestDPSGDQuota(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: 1e9, Delta: 1e-5},
	})
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "m", MaxTensorBytes: 20 << 10,
		Services: &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{Ledger: l}}})
	e.host.Begin(nil, hostfuncs.CallInfo{Dataset: "d"})
	// 1,000 rows: 4 KB of ids, then 20 KB of index and read copy.
	g := e.newI32([]int32{1000})
	if got := e.call("fennec_privacy_dp_sgd_begin", u(g), fd(1), fd(1), fd(0.1), 10); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("dp_sgd_begin over quota = %d (%s), want EQUOTA", got, e.host.LastError())
	}
	if st := status(t, l, budget.DatasetAccount("d")); st.Releases != 0 {
		t.Fatalf("charged: %+v", st)
	}
}

// TestDPSGDShare: a call the host gave a noise-share grant
// (CallInfo.DPSGDShare, which no guest can set) runs one step, charged as
// the full noise; the step's sum, noised with std z*C/sqrt(divisor), is
// sealed in the grant and the guest's outputs stay zero. A run of more
// steps, a second run on the grant and a second step are refused.
func TestDPSGDShare(t *testing.T) {
	const z, clip, divisor = 2.0, 0.5, 4
	f := newDPSGDFixture(t, 1e15)
	share := func() *dpsgd.Share {
		s, err := dpsgd.NewShare(divisor)
		if err != nil {
			t.Fatal(err)
		}
		f.e.host.End()
		f.e.host.Begin(nil, hostfuncs.CallInfo{Dataset: "d", DPSGDShare: s})
		return s
	}
	s := share()
	if got := f.begin(clip, z, 1, 2); got != int32(hostfuncs.EINVAL) || !strings.Contains(f.e.host.LastError(), "one step") {
		t.Fatalf("two steps under a share = %d (%s), want EINVAL", got, f.e.host.LastError())
	}
	if st := status(t, f.l, budget.DatasetAccount("d")); st.Releases != 0 {
		t.Fatalf("refused run charged: %+v", st)
	}
	if got := f.begin(clip, z, 1, 1); got != 3 {
		t.Fatalf("dp_sgd_begin = %d (%s)", got, f.e.host.LastError())
	}
	// The charge is the full noise's: what a run without a share costs.
	ref := openLedger(t, filepath.Join(t.TempDir(), "ref.json"), map[string]budget.Budget{"r": {Epsilon: 1e9, Delta: 1e-5}})
	want, _ := ref.Charge(budget.Charge{Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: 1, Steps: 1}}, "r")
	if st := status(t, f.l, budget.DatasetAccount("d")); st.Releases != 1 || math.Abs(st.SpentEpsilon-want[0].SpentEpsilon) > 1e-12 {
		t.Fatalf("charged %+v, want epsilon %v", st, want[0].SpentEpsilon)
	}
	if got := f.begin(clip, z, 1, 1); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("a second run on the grant = %d (%s), want ESTATE", got, f.e.host.LastError())
	}
	// The refused second begin ended nothing: the first run's one step.
	if got := f.e.call("fennec_privacy_dp_sgd_begin", u(f.groups), fd(clip), fd(z), fd(1), u(1)); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("third begin = %d", got)
	}
	// Under the noise-share regime the guest never sees the sum.
	g, _ := dpsgd.NewGroups([]int32{0, 0, 1, 2, 2, 2}, 3)
	kernel := make([]float32, f.net.Params())
	if _, err := dpsgd.ClipSum(f.net, f.xs, f.ys, g, []int{0, 1, 2}, clip, kernel, nil); err != nil {
		t.Fatal(err)
	}
	var sq float64
	var n int
	for trial := 0; trial < 300; trial++ {
		if trial > 0 {
			s = share()
			if got := f.begin(clip, z, 1, 1); got != 3 {
				t.Fatalf("trial %d: dp_sgd_begin = %d (%s)", trial, got, f.e.host.LastError())
			}
		}
		if got := f.step(); got != 3 {
			t.Fatalf("dp_sgd_step = %d (%s)", got, f.e.host.LastError())
		}
		if got := f.step(); got != int32(hostfuncs.EBUDGET) {
			t.Fatalf("second step under a share = %d, want EBUDGET", got)
		}
		for _, h := range []int32{f.g0, f.gb0, f.g1, f.gb1} {
			for _, v := range f.e.read(h) {
				if v != 0 {
					t.Fatalf("the guest's output holds %v, want zeros", f.e.read(h))
				}
			}
		}
		v, ok := s.Sealed()
		if !ok || v.Z != z || v.Clip != clip || v.Q != 1 || v.Units != 3 || v.Sample != 3 || !slices.Equal(v.Layers, []int{3, 2, 1}) {
			t.Fatalf("sealed %+v, %v", v, ok)
		}
		if want := z * clip / 2; math.Abs(v.Noise-want) > 1e-12 {
			t.Fatalf("noise std %v, want %v", v.Noise, want)
		}
		for i, x := range v.Sum {
			d := float64(x) - float64(kernel[i])/3
			sq += d * d
			n++
		}
	}
	// The sealed values' noise: std z*C/sqrt(divisor)/(q*units) (within
	// 10%: 2,700 samples give a relative error of about 1.4%).
	std, wantStd := math.Sqrt(sq/float64(n)), z*clip/math.Sqrt(divisor)/3
	if math.Abs(std/wantStd-1) > 0.1 {
		t.Fatalf("sealed noise std %v, want %v (z*C/sqrt(%d)/3)", std, wantStd, divisor)
	}
}
