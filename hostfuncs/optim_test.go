package hostfuncs_test

import (
	"math"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/hostfuncs"
)

// adamRef is Adam in float64, the unfused order of sdk/nn's composed step.
func adamRef(p, g, m, v []float64, lr, b1, b2, eps float64, step int) {
	bc1, bc2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
	for i := range p {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + eps)
	}
}

// TestTensorAdam runs three fused steps and compares p, m and v with Adam
// in float64.
func TestTensorAdam(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	p0 := []float32{0.5, -1, 2, 0, 3, -0.25}
	p := e.newF32([]int32{2, 3}, p0...)
	m := e.newF32([]int32{2, 3})
	v := e.newF32([]int32{2, 3})
	rp, rm, rv := make([]float64, 6), make([]float64, 6), make([]float64, 6)
	for i, x := range p0 {
		rp[i] = float64(x)
	}
	for step := 1; step <= 3; step++ {
		gs := []float32{0.1 * float32(step), -0.2, 0.3, 0, -1.5, 1e-3}
		g := e.newF32([]int32{2, 3}, gs...)
		if r := e.call("fennec_tensor_adam", u(p), u(g), u(m), u(v), fa(0.01), fa(0.9), fa(0.999), fa(1e-8), u(int32(step))); r != 0 {
			t.Fatalf("adam step %d = %d %s", step, r, e.host.LastError())
		}
		rg := make([]float64, 6)
		for i, x := range gs {
			rg[i] = float64(x)
		}
		adamRef(rp, rg, rm, rv, 0.01, 0.9, 0.999, 1e-8, step)
		e.call("fennec_tensor_free", u(g))
	}
	for name, c := range map[string]struct {
		h   int32
		ref []float64
	}{"p": {p, rp}, "m": {m, rm}, "v": {v, rv}} {
		got := e.read(c.h)
		for i := range got {
			if d := math.Abs(float64(got[i]) - c.ref[i]); d > 1e-6*(1+math.Abs(c.ref[i])) {
				t.Errorf("%s[%d] = %v, want %v", name, i, got[i], c.ref[i])
			}
		}
	}
}

// TestTensorAdamHostile gives adam bad handles, dtypes, shapes, aliases and
// hyper-parameters: each is refused with its code and a message, and
// changes nothing.
func TestTensorAdamHostile(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	p := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	g := e.newF32([]int32{2, 2}, 1, 1, 1, 1)
	m := e.newF32([]int32{2, 2})
	v := e.newF32([]int32{2, 2})
	flat := e.newF32([]int32{4})
	q := e.newI8([]int32{2, 2}, 1, 2, 3, 4)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	args := func(hp, hg, hm, hv int32, lr, b1, b2, eps float32, step int32) []uint64 {
		return []uint64{u(hp), u(hg), u(hm), u(hv), fa(lr), fa(b1), fa(b2), fa(eps), u(step)}
	}
	cases := []struct {
		name string
		args []uint64
		want hostfuncs.Code
	}{
		{"forged p", args(999, g, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EHANDLE},
		{"forged v", args(p, g, m, -1, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EHANDLE},
		{"zero handle", args(p, 0, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EHANDLE},
		{"i8 grad", args(p, q, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EDTYPE},
		{"i8 param", args(q, g, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EDTYPE},
		{"shape m", args(p, g, flat, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.ESHAPE},
		{"shape g", args(p, flat, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.ESHAPE},
		{"m aliases v", args(p, g, m, m, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"p aliases g", args(p, p, m, v, 0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"lr NaN", args(p, g, m, v, nan, 0.9, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"lr Inf", args(p, g, m, v, inf, 0.9, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"lr negative", args(p, g, m, v, -0.01, 0.9, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"beta1 one", args(p, g, m, v, 0.01, 1, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"beta1 negative", args(p, g, m, v, 0.01, -0.1, 0.999, 1e-8, 1), hostfuncs.EINVAL},
		{"beta2 NaN", args(p, g, m, v, 0.01, 0.9, nan, 1e-8, 1), hostfuncs.EINVAL},
		{"beta2 above one", args(p, g, m, v, 0.01, 0.9, 1.5, 1e-8, 1), hostfuncs.EINVAL},
		{"eps zero", args(p, g, m, v, 0.01, 0.9, 0.999, 0, 1), hostfuncs.EINVAL},
		{"eps Inf", args(p, g, m, v, 0.01, 0.9, 0.999, inf, 1), hostfuncs.EINVAL},
		{"eps negative", args(p, g, m, v, 0.01, 0.9, 0.999, -1e-8, 1), hostfuncs.EINVAL},
		{"step zero", args(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, 0), hostfuncs.EINVAL},
		{"step negative", args(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, -5), hostfuncs.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			handles, bytes := e.host.Stats()
			if got := e.call("fennec_tensor_adam", c.args...); got != int32(c.want) {
				t.Fatalf("adam%v = %d (%s), want %s", c.args, got, e.host.LastError(), c.want)
			}
			if e.host.LastError() == "" {
				t.Fatal("no error message set")
			}
			if h2, b2 := e.host.Stats(); h2 != handles || b2 != bytes {
				t.Fatalf("failed call changed the instance: %d/%d handles, %d/%d bytes", handles, h2, bytes, b2)
			}
			if got := e.read(p); got[0] != 1 || got[3] != 4 {
				t.Fatalf("failed call changed p: %v", got)
			}
		})
	}
	e.t = t
	// a huge step is fine: the bias corrections tend to 1
	if r := e.call("fennec_tensor_adam", args(p, g, m, v, 0, 0, 0, 1, math.MaxInt32)...); r != 0 {
		t.Fatalf("adam at step MaxInt32 = %d %s", r, e.host.LastError())
	}
}

// TestTensorAdamUnsupported: a backend without gpu.Adamer refuses adam with
// EINVAL, "not supported by backend" (sdk/nn then composes the step).
func TestTensorAdamUnsupported(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", Backend: plainBackend{gpu.NewCPU()}})
	var hs [4]int32
	for i := range hs {
		hs[i] = e.newF32([]int32{2})
	}
	if got := e.call("fennec_tensor_adam", u(hs[0]), u(hs[1]), u(hs[2]), u(hs[3]), fa(0.01), fa(0.9), fa(0.999), fa(1e-8), 1); got != int32(hostfuncs.EINVAL) {
		t.Fatalf("adam = %d, want EINVAL", got)
	}
	if msg := e.host.LastError(); !strings.Contains(msg, "not supported by backend") {
		t.Fatalf("message %q", msg)
	}
}

// FuzzTensorAdam calls adam with arbitrary handles and hyper-parameters
// over a few live tensors: any result is fine except a trap, a failure
// without a message, or a non-finite parameter from finite inputs.
func FuzzTensorAdam(f *testing.F) {
	f.Add(int32(1), int32(2), int32(3), int32(4), float32(0.01), float32(0.9), float32(0.999), float32(1e-8), int32(1))
	f.Add(int32(1), int32(1), int32(3), int32(4), float32(0.01), float32(0.9), float32(0.999), float32(1e-8), int32(1))
	f.Add(int32(5), int32(2), int32(3), int32(6), float32(1), float32(0), float32(0), float32(1), int32(-1))
	f.Fuzz(func(t *testing.T, a, b, c, d int32, lr, b1, b2, eps float32, step int32) {
		e := newEnv(t, hostfuncs.InstanceConfig{Module: "fuzz", MaxTensorBytes: 1 << 20})
		hs := []int32{
			e.newF32([]int32{2, 3}, 1, 2, 3, 4, 5, 6),
			e.newF32([]int32{2, 3}, -1, 0, 1, 2, -3, 0.5),
			e.newF32([]int32{2, 3}),
			e.newF32([]int32{2, 3}),
			e.newI8([]int32{2, 3}, make([]int8, 6)...),
			e.newF32([]int32{6}),
		}
		pick := func(v int32) uint64 {
			if v >= 1 && int(v) <= len(hs) {
				return u(hs[v-1])
			}
			return u(v)
		}
		r := e.call("fennec_tensor_adam", pick(a), pick(b), pick(c), pick(d), fa(lr), fa(b1), fa(b2), fa(eps), u(step))
		if r < 0 && e.host.LastError() == "" {
			t.Fatalf("error %d without a message", r)
		}
		if r == 0 && a == 1 && lr < 1e30 && eps > 1e-30 {
			for _, x := range e.read(hs[0]) {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("p became %v", x)
				}
			}
		}
	})
}
