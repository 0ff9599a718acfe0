package gpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randF32(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		shape []int
		axis  int
	}{{[]int{7, 33}, -1}, {[]int{7, 33}, 0}, {[]int{7, 33}, 1}, {[]int{2, 5, 3}, 1}, {[]int{1}, -1}, {[]int{4, 1}, 1}} {
		n := 1
		for _, d := range tc.shape {
			n *= d
		}
		src := randF32(r, n, 3)
		scales, err := ChannelScales(src, tc.shape, tc.axis)
		if err != nil {
			t.Fatal(err)
		}
		q := make([]int8, n)
		if err := Quantize(q, src, tc.shape, tc.axis, scales); err != nil {
			t.Fatal(err)
		}
		back := make([]float32, n)
		if err := Dequantize(back, q, tc.shape, tc.axis, scales); err != nil {
			t.Fatal(err)
		}
		outer, L, inner := 1, n, 1
		if tc.axis >= 0 {
			outer, L, inner = axisLayout(tc.shape, tc.axis)
		}
		for o := 0; o < outer; o++ {
			for k := 0; k < L; k++ {
				s := scales[0]
				if tc.axis >= 0 {
					s = scales[k]
				}
				for j := 0; j < inner; j++ {
					i := (o*L+k)*inner + j
					if e := math.Abs(float64(back[i] - src[i])); e > float64(s)/2*1.0001 {
						t.Fatalf("%v axis %d: |%v - %v| = %v > scale/2 = %v", tc.shape, tc.axis, back[i], src[i], e, s/2)
					}
					if q[i] == -128 {
						t.Fatalf("quantized to -128")
					}
				}
			}
		}
	}
	// errors, not panics
	if err := Quantize(make([]int8, 6), make([]float32, 6), []int{2, 3}, 1, []float32{1, 1}); err == nil {
		t.Error("wrong scale count accepted")
	}
	if err := Quantize(make([]int8, 5), make([]float32, 6), []int{2, 3}, -1, []float32{1}); err == nil {
		t.Error("wrong dst length accepted")
	}
	if _, err := ChannelScales(make([]float32, 6), []int{2, 3}, 2); err == nil {
		t.Error("bad axis accepted")
	}
	if s := ScaleFor(0); s != 1 {
		t.Errorf("ScaleFor(0) = %v", s)
	}
}

// TestInt8KernelsExact checks every int8 kernel against the Go kernel: the
// integer dot products must be identical, so the f32 outputs are too.
func TestInt8KernelsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 30, 16}, {5, 64, 4}, {7, 65, 7}, {33, 257, 10}, {2, 784, 129}, {300, 100, 40}} {
		batch, in, out := sz[0], sz[1], sz[2]
		w := randF32(r, in*out, 0.5)
		bias := randF32(r, out, 0.1)
		q, err := QuantizeLinear(w, in, out, bias)
		if err != nil {
			t.Fatal(err)
		}
		x := randF32(r, batch*in, 1)
		want := make([]float32, batch*out)
		q.Kernel = "go"
		if err := q.Forward(want, x, batch); err != nil {
			t.Fatal(err)
		}
		// the Go path against a float64 reference of the quantized math
		wd := q.Dequantize()
		for b := 0; b < batch; b++ {
			row := x[b*in : (b+1)*in]
			var m float32
			for _, v := range row {
				m = max32(m, abs32(v))
			}
			s := ScaleFor(m)
			for o := 0; o < out; o++ {
				var acc float64
				for k, v := range row {
					acc += float64(quant1(v, 1/s)) * float64(s) * float64(wd[k*out+o])
				}
				acc += float64(bias[o])
				if d := math.Abs(acc - float64(want[b*out+o])); d > 1e-4*(1+math.Abs(acc)) {
					t.Fatalf("%v: go kernel [%d,%d] = %v, reference %v", sz, b, o, want[b*out+o], acc)
				}
			}
		}
		for _, k := range Int8Kernels() {
			got := make([]float32, batch*out)
			q.Kernel = k
			if err := q.Forward(got, x, batch); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v kernel %s: [%d] = %v, go kernel %v", sz, k, i, got[i], want[i])
				}
			}
		}
	}
}

// TestQLinearAccuracy checks that int8 inference stays close to f32.
func TestQLinearAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	in, out, batch := 128, 32, 64
	w := randF32(r, in*out, 1/math.Sqrt(float64(in)))
	x := randF32(r, batch*in, 1)
	q, _ := QuantizeLinear(w, in, out, nil)
	if err := q.Calibrate(x, 1); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, batch*out)
	if err := q.Forward(got, x, batch); err != nil {
		t.Fatal(err)
	}
	cpu, _ := NewCPUWithConfig(CPUConfig{})
	want := make([]float32, batch*out)
	_ = cpu.Sgemm(false, false, batch, out, in, x, w, want)
	var num, den float64
	for i := range got {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if rel := math.Sqrt(num / den); rel > 0.02 {
		t.Errorf("int8 relative RMS error %.4f > 2%%", rel)
	}
	if q.Bytes() >= in*out*4/3 {
		t.Errorf("quantized layer %d bytes, f32 %d", q.Bytes(), in*out*4)
	}
	if err := q.Forward(got, x[:10], batch); err == nil {
		t.Error("short input accepted")
	}
	if _, err := QuantizeLinear(w, in, out+1, nil); err == nil {
		t.Error("wrong weight count accepted")
	}
}

// TestInt8PackSizeAndAccounting: MatMulInt8's cached kernel layout of w is
// k*n bytes (+4n when k >= 64), not padded to 64 values per row and 4 rows
// (68 bytes per weight byte for k = 1); it counts in LiveBytes and
// MaxBytes, and is dropped when w is written, reshaped or freed.
func TestInt8PackSizeAndAccounting(t *testing.T) {
	for _, kn := range [][2]int{{1, 1 << 16}, {3, 5}, {64, 7}, {65, 1000}, {300, 3}} {
		k, n := kn[0], kn[1]
		cpu, _ := NewCPUWithConfig(CPUConfig{})
		w, _ := cpu.New(I8, []int{k, n})
		x, _ := cpu.New(F32, []int{2, k})
		s, _ := cpu.New(F32, []int{1})
		out, _ := cpu.New(F32, []int{2, n})
		_ = cpu.Write(s, F32ToBytes([]float32{1}))
		want, _ := cpu.Int8PackBytes(w)
		if lim := int64(k*n) + 4*int64(n); want > lim || want < int64(k*n) {
			t.Fatalf("[%d,%d]: Int8PackBytes %d, want k*n (+4n) = %d..%d", k, n, want, k*n, lim)
		}
		before := cpu.LiveBytes()
		if err := cpu.MatMulInt8(out, x, w, s); err != nil {
			t.Fatal(err)
		}
		if got := cpu.LiveBytes() - before; got != want {
			t.Fatalf("[%d,%d]: the cache added %d live bytes, Int8PackBytes says %d", k, n, got, want)
		}
		_ = cpu.Write(w, make([]byte, k*n))
		if got := cpu.LiveBytes(); got != before {
			t.Fatalf("[%d,%d]: after writing w %d live bytes, want %d", k, n, got, before)
		}
		_ = cpu.MatMulInt8(out, x, w, s)
		cpu.Free(w)
		if got := cpu.LiveBytes(); got != before-int64(k*n) {
			t.Fatalf("[%d,%d]: after freeing w %d live bytes, want %d", k, n, got, before-int64(k*n))
		}
	}
	// Under MaxBytes the cache is refused like a tensor.
	capped, _ := NewCPUWithConfig(CPUConfig{MaxBytes: 1<<16 + 1<<18 + 16})
	w, _ := capped.New(I8, []int{1, 1 << 16})
	x, _ := capped.New(F32, []int{1, 1})
	s, _ := capped.New(F32, []int{1})
	out, err := capped.New(F32, []int{1, 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := capped.MatMulInt8(out, x, w, s); !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("cache over MaxBytes: %v, want ErrOutOfMemory", err)
	}
}

// TestUnsignedKernelPath runs the unsigned (VNNI-style) path of QLinear,
// x+128 against w with the row-sum correction, through a Go kernel of the
// same contract, so that it is checked on CPUs without AVX-512 VNNI too:
// row tails (In not a multiple of 64) and column tails (Out not a multiple
// of 4) must give exactly the signed kernel's results.
func TestUnsignedKernelPath(t *testing.T) {
	int8Kernels["go-unsigned"] = &int8Kernel{name: "go-unsigned", unsigned: true, step: 64, dot4: func(xs []int8, xu []uint8, w []int8, ldw, kp int, out *[4]int32) {
		for r := range 4 {
			var s int32
			for k, x := range xu[:kp] {
				s += int32(x) * int32(w[r*ldw+k])
			}
			out[r] = s
		}
	}}
	defer delete(int8Kernels, "go-unsigned")
	r := rand.New(rand.NewPCG(9, 10))
	for _, sz := range [][3]int{{1, 1, 1}, {2, 63, 5}, {3, 64, 3}, {2, 65, 6}, {4, 130, 9}, {1, 200, 1}} {
		batch, in, out := sz[0], sz[1], sz[2]
		q, err := QuantizeLinear(randF32(r, in*out, 0.5), in, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := randF32(r, batch*in, 1)
		want, got := make([]float32, batch*out), make([]float32, batch*out)
		q.Kernel = "go"
		_ = q.Forward(want, x, batch)
		q.Kernel = "go-unsigned"
		if err := q.Forward(got, x, batch); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: unsigned path [%d] = %v, signed %v", sz, i, got[i], want[i])
			}
		}
	}
}

// TestMatMulU8S8: the packed u8 x s8 product against int32 loops,
// full-range values, k and n with and without tails, m not a multiple of 4,
// on the VNNI tile and on the Go loops.
func TestMatMulU8S8(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vnni := int8Kernels["vnni"]
	for _, useVNNI := range []bool{true, false} {
		if useVNNI && vnni == nil {
			continue
		}
		if !useVNNI && vnni != nil {
			delete(int8Kernels, "vnni")
		}
		for _, sh := range [][3]int{{1, 64, 4}, {3, 130, 7}, {5, 32, 9}, {8, 768, 33}, {4, 1, 1}, {0, 8, 3}, {7, 6, 16}} {
			m, k, n := sh[0], sh[1], sh[2]
			a, b := make([]uint8, m*k), make([]int8, k*n)
			for i := range a {
				a[i] = uint8(rng.IntN(256))
			}
			for i := range b {
				b[i] = int8(rng.IntN(256) - 128)
			}
			w, err := PackU8S8Weights(b, k, n)
			if err != nil {
				t.Fatal(err)
			}
			acc := make([]int32, m*n)
			if err := w.MatMulU8S8(acc, a, m, nil); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var s int32
					for p := 0; p < k; p++ {
						s += int32(a[i*k+p]) * int32(b[p*n+j])
					}
					if acc[i*n+j] != s {
						t.Fatalf("vnni %v %v: [%d,%d] = %d, want %d", useVNNI, sh, i, j, acc[i*n+j], s)
					}
				}
			}
		}
		if vnni != nil {
			int8Kernels["vnni"] = vnni
		}
	}
	w, _ := PackU8S8Weights(make([]int8, 4), 4, 1)
	if err := w.MatMulU8S8(make([]int32, 1), make([]uint8, 3), 1, nil); err == nil {
		t.Fatal("short operands accepted")
	}
	if _, err := PackU8S8Weights(make([]int8, 3), 2, 2); err == nil {
		t.Fatal("short weights accepted")
	}
}
