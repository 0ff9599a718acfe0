package hostfuncs_test

import (
	"math"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
)

// plainBackend hides the CPU backend's optional extensions: it has only the
// gpu.Backend method set, like a backend without int8 or distillation.
type plainBackend struct{ gpu.Backend }

func (e *env) i8bytes(h int32) []int8 {
	e.t.Helper()
	n := e.call("fennec_tensor_read", u(h), outAt, 1<<16)
	if n < 0 {
		e.t.Fatalf("read %d: %d %s", h, n, e.host.LastError())
	}
	b := e.get(outAt, uint32(n))
	q := make([]int8, len(b))
	for i, v := range b {
		q[i] = int8(v)
	}
	return q
}

func (e *env) newI8(shape []int32, data ...int8) int32 {
	e.t.Helper()
	e.put(shapeAt, wasmtest.LE32(shape...))
	b := make([]byte, len(data))
	for i, v := range data {
		b[i] = byte(v)
	}
	e.put(dataAt, b)
	h := e.call("fennec_tensor_new", 2, shapeAt, u(int32(len(shape))), dataAt, u(int32(len(b))))
	if h <= 0 {
		e.t.Fatalf("new i8 %v: %d %s", shape, h, e.host.LastError())
	}
	return h
}

func TestCompressThroughABI(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	// w [4, 3]: column maxima 4, 0.5, 254 (per-channel scales along axis 1)
	wd := []float32{
		1, 0.5, -254,
		-4, 0.2, 127,
		2, -0.5, 0,
		0.1, 0, 3,
	}
	w := e.newF32([]int32{4, 3}, wd...)
	sc := e.call("fennec_tensor_quant_scales", u(w), u(-1), 1, 0)
	if sc <= 0 {
		t.Fatalf("quant_scales = %d %s", sc, e.host.LastError())
	}
	scales := e.read(sc)
	want := []float32{4.0 / 127, 0.5 / 127, 2}
	for i := range want {
		if scales[i] != want[i] {
			t.Fatalf("scales = %v, want %v", scales, want)
		}
	}
	q := e.call("fennec_tensor_quantize", u(w), u(sc), 1, 0)
	if q <= 0 {
		t.Fatalf("quantize = %d %s", q, e.host.LastError())
	}
	if d := e.call("fennec_tensor_dtype", u(q)); d != 2 {
		t.Fatalf("quantized dtype %d", d)
	}
	qb := e.i8bytes(q)
	wantQ := []int8{32, 127, -127, -127, 51, 64, 64, -127, 0, 3, 0, 2}
	for i := range wantQ {
		if qb[i] != wantQ[i] {
			t.Fatalf("quantized = %v, want %v", qb, wantQ)
		}
	}
	// out reuse returns the same handle
	if q2 := e.call("fennec_tensor_quantize", u(w), u(sc), 1, u(q)); q2 != q {
		t.Fatalf("quantize into out = %d (%s), want %d", q2, e.host.LastError(), q)
	}
	dq := e.call("fennec_tensor_dequantize", u(q), u(sc), u(-1), 0)
	if dq <= 0 {
		t.Fatalf("dequantize = %d %s", dq, e.host.LastError())
	}
	for i, v := range e.read(dq) {
		if d := math.Abs(float64(v - wd[i])); d > float64(scales[i%3])/2*1.0001 {
			t.Fatalf("dequantized [%d] = %v, want %v within %v", i, v, wd[i], scales[i%3]/2)
		}
	}
	// per tensor: one scale, axis ignored
	st := e.call("fennec_tensor_quant_scales", u(w), 99, 0, 0)
	if got := e.read(st); len(got) != 1 || got[0] != 2 {
		t.Fatalf("per-tensor scale = %v (%d %s)", got, st, e.host.LastError())
	}
	qt := e.call("fennec_tensor_quantize", u(w), u(st), 99, 0)
	if got := e.i8bytes(qt); got[0] != 0 || got[2] != -127 || got[5] != 64 {
		t.Fatalf("per-tensor quantized = %v", got)
	}

	// int8 matmul: x [2, 4] against the quantized w, f32 out [2, 3]
	xd := []float32{1, 2, 3, 4, -1, 0.5, 0, 2}
	x := e.newF32([]int32{2, 4}, xd...)
	y := e.call("fennec_tensor_matmul_i8", u(x), u(q), u(sc), 0)
	if y <= 0 {
		t.Fatalf("matmul_i8 = %d %s", y, e.host.LastError())
	}
	got := e.read(y)
	if len(got) != 6 {
		t.Fatalf("matmul_i8 out %v", got)
	}
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			var ref, mag float64
			for k := 0; k < 4; k++ {
				ref += float64(xd[i*4+k]) * float64(wd[k*3+j])
				mag += math.Abs(float64(xd[i*4+k])) * float64(scales[j]) * 127
			}
			// int8 error: half a step of x's and w's scales per term
			if d := math.Abs(float64(got[i*3+j]) - ref); d > 0.02*mag+1e-6 {
				t.Errorf("matmul_i8 [%d,%d] = %v, want %v (mag %v)", i, j, got[i*3+j], ref, mag)
			}
		}
	}
	// through out, against the backend computing the same thing directly
	if y2 := e.call("fennec_tensor_matmul_i8", u(x), u(q), u(sc), u(y)); y2 != y {
		t.Fatalf("matmul_i8 into out = %d, want %d", y2, y)
	}

	// distillation: loss and gradient match the library function
	sd := []float32{1, 2, 3, -1, 0, 1}
	td := []float32{3, 2, 1, 0, 0, 4}
	s := e.newF32([]int32{2, 3}, sd...)
	te := e.newF32([]int32{2, 3}, td...)
	g := e.call("fennec_tensor_kl_distill", u(s), u(te), fa(2), outAt, 0)
	if g <= 0 {
		t.Fatalf("kl_distill = %d %s", g, e.host.LastError())
	}
	wantG := make([]float32, 6)
	wantL, err := gpu.KLDistill(wantG, sd, td, 2, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l := floats(e.get(outAt, 4))[0]; l != wantL || !(l > 0) {
		t.Fatalf("kl loss = %v, want %v", l, wantL)
	}
	for i, v := range e.read(g) {
		if v != wantG[i] {
			t.Fatalf("kl grad = %v, want %v", e.read(g), wantG)
		}
	}
	// grad_out -1: loss only, returns 0; grad reuse returns the handle
	e.put(outAt, f32bytes(-1))
	if r := e.call("fennec_tensor_kl_distill", u(te), u(te), fa(1), outAt, u(-1)); r != 0 {
		t.Fatalf("kl_distill loss only = %d %s", r, e.host.LastError())
	}
	if l := floats(e.get(outAt, 4))[0]; math.Abs(float64(l)) > 1e-6 {
		t.Fatalf("KL of a distribution with itself = %v", l)
	}
	if r := e.call("fennec_tensor_kl_distill", u(s), u(te), fa(4), 0, u(g)); r != g {
		t.Fatalf("kl_distill into grad = %d %s", r, e.host.LastError())
	}
}

// TestCompressHostile calls the compression functions with forged handles,
// wrong dtypes and shapes, bad axes and temperatures, aliasing outputs and
// far pointers: each returns its code with a message and changes nothing.
func TestCompressHostile(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "hostile"})
	w := e.newF32([]int32{4, 3})
	sc := e.newF32([]int32{3}, 1, 1, 1)
	one := e.newF32([]int32{1}, 1)
	sc4 := e.newF32([]int32{4}, 1, 1, 1, 1)
	q := e.newI8([]int32{4, 3}, make([]int8, 12)...)
	q1 := e.newI8([]int32{1, 1}, 5)
	s11 := e.newF32([]int32{1, 1}, 1)
	x := e.newF32([]int32{2, 4})
	y := e.newF32([]int32{2, 3})
	logits := e.newF32([]int32{2, 3})
	v := e.newF32([]int32{3})
	empty := e.newF32([]int32{0, 3})
	const far = 0xFFFFFFF0
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name string
		fn   string
		args []uint64
		want hostfuncs.Code
	}{
		{"scales forged", "quant_scales", []uint64{99, 0, 1, 0}, hostfuncs.EHANDLE},
		{"scales of i8", "quant_scales", []uint64{u(q), 0, 1, 0}, hostfuncs.EDTYPE},
		{"scales bad axis", "quant_scales", []uint64{u(w), 2, 1, 0}, hostfuncs.EINVAL},
		{"scales bad negative axis", "quant_scales", []uint64{u(w), u(-3), 1, 0}, hostfuncs.EINVAL},
		{"scales out wrong shape", "quant_scales", []uint64{u(w), 1, 1, u(sc4)}, hostfuncs.ESHAPE},
		{"scales out aliases a", "quant_scales", []uint64{u(v), 0, 1, u(v)}, hostfuncs.EINVAL},
		{"scales out forged", "quant_scales", []uint64{u(w), 1, 1, 12345}, hostfuncs.EHANDLE},
		{"quantize forged a", "quantize", []uint64{7, u(sc), 1, 0}, hostfuncs.EHANDLE},
		{"quantize forged scale", "quantize", []uint64{u(w), 7, 1, 0}, hostfuncs.EHANDLE},
		{"quantize i8 input", "quantize", []uint64{u(q), u(sc), 1, 0}, hostfuncs.EDTYPE},
		{"quantize i8 scale", "quantize", []uint64{u(w), u(q), 1, 0}, hostfuncs.EDTYPE},
		{"quantize scale count", "quantize", []uint64{u(w), u(sc4), 1, 0}, hostfuncs.ESHAPE},
		{"quantize bad axis", "quantize", []uint64{u(w), u(sc), 5, 0}, hostfuncs.EINVAL},
		{"quantize out aliases a", "quantize", []uint64{u(w), u(sc), 1, u(w)}, hostfuncs.EINVAL},
		{"quantize out f32", "quantize", []uint64{u(w), u(sc), 1, u(sc4)}, hostfuncs.ESHAPE},
		{"quantize out wrong shape", "quantize", []uint64{u(w), u(sc), 1, u(q1)}, hostfuncs.ESHAPE},
		{"dequantize f32 input", "dequantize", []uint64{u(w), u(sc), 1, 0}, hostfuncs.EDTYPE},
		{"dequantize forged", "dequantize", []uint64{u(-1), u(sc), 1, 0}, hostfuncs.EHANDLE},
		{"dequantize scale count", "dequantize", []uint64{u(q), u(sc4), 1, 0}, hostfuncs.ESHAPE},
		{"dequantize out i8", "dequantize", []uint64{u(q), u(sc), 1, u(q)}, hostfuncs.ESHAPE},
		{"dequantize out aliases scale", "dequantize", []uint64{u(q1), u(s11), 0, u(s11)}, hostfuncs.EINVAL},
		{"matmul_i8 f32 weights", "matmul_i8", []uint64{u(x), u(w), u(sc), 0}, hostfuncs.EDTYPE},
		{"matmul_i8 i8 x", "matmul_i8", []uint64{u(q), u(q), u(sc), 0}, hostfuncs.EDTYPE},
		{"matmul_i8 forged scale", "matmul_i8", []uint64{u(x), u(q), 0, 0}, hostfuncs.EHANDLE},
		{"matmul_i8 inner mismatch", "matmul_i8", []uint64{u(w), u(q), u(sc), 0}, hostfuncs.ESHAPE},
		{"matmul_i8 rank 1 x", "matmul_i8", []uint64{u(v), u(q), u(sc), 0}, hostfuncs.ESHAPE},
		{"matmul_i8 scale count", "matmul_i8", []uint64{u(x), u(q), u(sc4), 0}, hostfuncs.ESHAPE},
		{"matmul_i8 out wrong shape", "matmul_i8", []uint64{u(x), u(q), u(sc), u(w)}, hostfuncs.ESHAPE},
		{"matmul_i8 out aliases scale", "matmul_i8", []uint64{u(s11), u(q1), u(s11), u(s11)}, hostfuncs.EINVAL},
		{"kl T zero", "kl_distill", []uint64{u(logits), u(y), fa(0), 0, u(-1)}, hostfuncs.EINVAL},
		{"kl T negative", "kl_distill", []uint64{u(logits), u(y), fa(-2), 0, u(-1)}, hostfuncs.EINVAL},
		{"kl T NaN", "kl_distill", []uint64{u(logits), u(y), fa(nan), 0, u(-1)}, hostfuncs.EINVAL},
		{"kl T Inf", "kl_distill", []uint64{u(logits), u(y), fa(inf), 0, u(-1)}, hostfuncs.EINVAL},
		{"kl forged teacher", "kl_distill", []uint64{u(logits), 3, fa(1), 0, u(-1)}, hostfuncs.EHANDLE},
		{"kl i8 student", "kl_distill", []uint64{u(q), u(y), fa(1), 0, u(-1)}, hostfuncs.EDTYPE},
		{"kl shape mismatch", "kl_distill", []uint64{u(logits), u(w), fa(1), 0, u(-1)}, hostfuncs.ESHAPE},
		{"kl rank 1", "kl_distill", []uint64{u(v), u(v), fa(1), 0, u(-1)}, hostfuncs.ESHAPE},
		{"kl empty batch", "kl_distill", []uint64{u(empty), u(empty), fa(1), 0, u(-1)}, hostfuncs.ESHAPE},
		{"kl far loss_ptr", "kl_distill", []uint64{u(logits), u(y), fa(1), far, u(-1)}, hostfuncs.EMEM},
		{"kl grad aliases student", "kl_distill", []uint64{u(logits), u(y), fa(1), 0, u(logits)}, hostfuncs.EINVAL},
		{"kl grad wrong shape", "kl_distill", []uint64{u(logits), u(y), fa(1), 0, u(x)}, hostfuncs.ESHAPE},
		{"kl grad forged", "kl_distill", []uint64{u(logits), u(y), fa(1), 0, 4242}, hostfuncs.EHANDLE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			handles, bytes := e.host.Stats()
			if got := e.call("fennec_tensor_"+c.fn, c.args...); got != int32(c.want) {
				t.Fatalf("%s%v = %d (%s), want %s", c.fn, c.args, got, e.host.LastError(), c.want)
			}
			if e.host.LastError() == "" {
				t.Fatal("no error message set")
			}
			if h2, b2 := e.host.Stats(); h2 != handles || b2 != bytes {
				t.Fatalf("failed call changed the instance: %d/%d handles, %d/%d bytes", handles, h2, bytes, b2)
			}
		})
	}
	e.t = t
	// per-tensor scales of any shape with one element, whatever the axis
	if r := e.call("fennec_tensor_quantize", u(w), u(one), 12345, 0); r <= 0 {
		t.Fatalf("quantize with one scale and a wild axis = %d %s", r, e.host.LastError())
	}
	if r := e.call("fennec_tensor_dequantize", u(q1), u(s11), u(-7), 0); r <= 0 {
		t.Fatalf("dequantize with a [1,1] scale = %d %s", r, e.host.LastError())
	}
	if r := e.call("fennec_tensor_matmul_i8", u(s11), u(q1), u(one), 0); r <= 0 {
		t.Fatalf("matmul_i8 1x1 = %d %s", r, e.host.LastError())
	}
}

// TestCompressGarbageValues feeds non-finite and zero scales and values:
// results are defined (clamped, NaN -> 0) and nothing panics.
func TestCompressGarbageValues(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	a := e.newF32([]int32{2, 3}, nan, inf, -inf, 1, -1, 0)
	for _, scale := range []float32{0, -1, nan, inf, -inf, 1e-45} {
		s := e.newF32([]int32{1}, scale)
		q := e.call("fennec_tensor_quantize", u(a), u(s), 0, 0)
		if q <= 0 {
			t.Fatalf("quantize with scale %v: %d %s", scale, q, e.host.LastError())
		}
		for _, v := range e.i8bytes(q) {
			if v < -127 {
				t.Fatalf("scale %v quantized to %d", scale, v)
			}
		}
		if d := e.call("fennec_tensor_dequantize", u(q), u(s), 0, 0); d <= 0 {
			t.Fatalf("dequantize with scale %v: %d %s", scale, d, e.host.LastError())
		}
		x := e.newF32([]int32{1, 2}, nan, inf)
		if y := e.call("fennec_tensor_matmul_i8", u(x), u(q), u(s), 0); y <= 0 {
			t.Fatalf("matmul_i8 with scale %v: %d %s", scale, y, e.host.LastError())
		}
	}
	sc := e.call("fennec_tensor_quant_scales", u(a), 0, 1, 0)
	if got := e.read(sc); len(got) != 2 || got[1] != 1.0/127 {
		t.Fatalf("scales of non-finite rows = %v", got)
	}
	if g := e.call("fennec_tensor_kl_distill", u(a), u(a), fa(1), outAt, 0); g <= 0 {
		t.Fatalf("kl_distill of non-finite logits: %d %s", g, e.host.LastError())
	}
}

// TestCompressUnsupported runs the functions on a backend without the
// Quantizer and Distiller extensions: EINVAL, "not supported by backend".
func TestCompressUnsupported(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", Backend: plainBackend{gpu.NewCPU()}})
	w := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	s := e.newF32([]int32{1}, 1)
	q := e.newI8([]int32{2, 2}, 1, 2, 3, 4)
	for _, c := range []struct {
		fn   string
		args []uint64
	}{
		{"quant_scales", []uint64{u(w), 0, 1, 0}},
		{"quantize", []uint64{u(w), u(s), 0, 0}},
		{"dequantize", []uint64{u(q), u(s), 0, 0}},
		{"matmul_i8", []uint64{u(w), u(q), u(s), 0}},
		{"kl_distill", []uint64{u(w), u(w), fa(1), 0, u(-1)}},
	} {
		if got := e.call("fennec_tensor_"+c.fn, c.args...); got != int32(hostfuncs.EINVAL) {
			t.Errorf("%s = %d, want EINVAL", c.fn, got)
		}
		if msg := e.host.LastError(); !strings.Contains(msg, "not supported by backend") {
			t.Errorf("%s: message %q", c.fn, msg)
		}
	}
}

// TestCompressQuota checks that a result over the tensor quota is refused
// and nothing leaks.
func TestCompressQuota(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: 4096})
	e.newF32([]int32{16, 32}) // half the quota
	s := e.newF32([]int32{1}, 1)
	_, before := e.host.Stats()
	if got := e.call("fennec_tensor_dequantize", u(e.newI8([]int32{16, 32}, make([]int8, 512)...)), u(s), 0, 0); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("dequantize over quota = %d (%s)", got, e.host.LastError())
	}
	if h, b := e.host.Stats(); b != before+512 || h != 3 {
		t.Fatalf("after refused call: %d handles, %d bytes (before %d + 512)", h, b, before)
	}
}

// FuzzCompressArgs calls the compression functions with arbitrary
// arguments over a few live tensors: any result is fine except a trap or a
// failure without a message.
func FuzzCompressArgs(f *testing.F) {
	f.Add(uint8(0), int32(1), int32(2), int32(1), int32(0), float32(1))
	f.Add(uint8(3), int32(5), int32(4), int32(3), int32(0), float32(2))
	f.Add(uint8(4), int32(6), int32(6), int32(0), int32(-1), float32(0.5))
	f.Fuzz(func(t *testing.T, fn uint8, a, b, c, d int32, temp float32) {
		e := newEnv(t, hostfuncs.InstanceConfig{Module: "fuzz", MaxTensorBytes: 1 << 20})
		hs := []int32{
			e.newF32([]int32{4, 3}, make([]float32, 12)...),
			e.newF32([]int32{3}, 1, 2, 3),
			e.newI8([]int32{4, 3}, make([]int8, 12)...),
			e.newF32([]int32{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8),
			e.newF32([]int32{1}, 0.5),
			e.newF32([]int32{2, 3}, 1, 2, 3, 4, 5, 6),
		}
		pick := func(v int32) uint64 {
			if v >= 1 && int(v) <= len(hs) {
				return u(hs[v-1])
			}
			return u(v)
		}
		var r int32
		switch fn % 5 {
		case 0:
			r = e.call("fennec_tensor_quant_scales", pick(a), u(b), u(c), pick(d))
		case 1:
			r = e.call("fennec_tensor_quantize", pick(a), pick(b), u(c), pick(d))
		case 2:
			r = e.call("fennec_tensor_dequantize", pick(a), pick(b), u(c), pick(d))
		case 3:
			r = e.call("fennec_tensor_matmul_i8", pick(a), pick(b), pick(c), pick(d))
		case 4:
			r = e.call("fennec_tensor_kl_distill", pick(a), pick(b), fa(temp), u(c), pick(d))
		}
		if r < 0 && e.host.LastError() == "" {
			t.Fatalf("error %d without a message", r)
		}
	})
}
