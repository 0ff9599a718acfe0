package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMinMaxF32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 31, 32, 33, 64, 100, 1000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = r.Float32()*10 - 3
		}
		lo, hi, nf := MinMaxF32(x)
		var wl, wh float32
		for _, v := range x {
			wl, wh = min(wl, v), max(wh, v)
		}
		if lo != wl || hi != wh || nf {
			t.Fatalf("n=%d: %v %v %v, want %v %v", n, lo, hi, nf, wl, wh)
		}
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			if n == 0 {
				continue
			}
			for _, at := range []int{0, n - 1, n / 2} {
				y := append([]float32{}, x...)
				y[at] = bad
				if _, _, nf := MinMaxF32(y); !nf {
					t.Fatalf("n=%d: %v at %d not seen", n, bad, at)
				}
			}
		}
	}
}

func refQuant(v, scale float32, zp, lo, hi int32) uint8 {
	q := v / scale
	if q != q {
		return uint8(lo)
	}
	r := math.RoundToEven(float64(q)) + float64(zp)
	r = max(float64(lo), min(float64(hi), r))
	return uint8(int32(r))
}

func TestQuantizeU8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 15, 16, 17, 100, 1003} {
		for _, c := range []struct{ zp, lo, hi int32 }{{0, 0, 255}, {128, 0, 255}, {17, 0, 255}, {0, -128, 127}, {-5, -128, 127}} {
			scale := float32(0.05)
			x := make([]float32, n)
			for i := range x {
				switch i % 5 {
				case 0: // an exact tie: k + 0.5 scales
					x[i] = (float32(r.IntN(300)-150) + 0.5) * scale
				case 1:
					x[i] = float32(r.NormFloat64() * 1000) // saturates
				case 2:
					x[i] = float32(math.NaN())
				default:
					x[i] = float32(r.NormFloat64() * 5)
				}
			}
			got := make([]uint8, n)
			QuantizeU8(got, x, scale, c.zp, c.lo, c.hi)
			for i, v := range x {
				if w := refQuant(v, scale, c.zp, c.lo, c.hi); got[i] != w {
					t.Fatalf("n=%d %+v: x[%d]=%v -> %d, want %d", n, c, i, v, got[i], w)
				}
			}
			acc := make([]int32, n)
			for i := range acc {
				acc[i] = int32(r.IntN(1<<20) - 1<<19)
			}
			RequantU8(got, acc, 0.001, c.zp, c.lo, c.hi)
			for i, a := range acc {
				if w := refQuant(float32(a)*0.001, 1, c.zp, c.lo, c.hi); got[i] != w {
					t.Fatalf("requant n=%d %+v: acc[%d]=%v -> %d, want %d", n, c, i, a, got[i], w)
				}
			}
		}
	}
}

func TestDequantizeU8(t *testing.T) {
	for _, n := range []int{1, 16, 33, 257} {
		src := make([]uint8, n)
		for i := range src {
			src[i] = uint8(i * 37)
		}
		for _, signed := range []bool{false, true} {
			dst := make([]float32, n)
			DequantizeU8(dst, src, signed, 0.125, 3)
			for i, v := range src {
				q := int32(v)
				if signed {
					q = int32(int8(v))
				}
				if w := float32(q-3) * 0.125; dst[i] != w {
					t.Fatalf("n=%d signed=%v: %d -> %v, want %v", n, signed, v, dst[i], w)
				}
			}
		}
	}
}

func TestMatMulS8U8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, d := range [][3]int{{1, 1, 1}, {4, 4, 16}, {3, 9, 17}, {8, 64, 32}, {5, 27, 50}, {16, 147, 100}, {7, 3, 33}, {64, 576, 49}} {
		m, k, n := d[0], d[1], d[2]
		for _, ld := range []int{n, n + 5} {
			w := make([]int8, m*k)
			for i := range w {
				w[i] = int8(r.IntN(256) - 128)
			}
			x := make([]uint8, k*ld)
			for i := range x {
				x[i] = uint8(r.IntN(256))
			}
			rows, err := PackS8Rows(w, m, k)
			if err != nil {
				t.Fatal(err)
			}
			pan := make([]uint8, U8PanelBytes(k, n))
			for i := range pan {
				pan[i] = 0xAA // every byte must be written
			}
			if err := PackU8Panels(pan, x, k, n, ld); err != nil {
				t.Fatal(err)
			}
			ldc := n + 3
			acc := make([]int32, m*ldc)
			if err := rows.MatMulS8U8(acc, ldc, pan, n); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < m; i++ {
				var rs int32
				for tt := 0; tt < k; tt++ {
					rs += int32(w[i*k+tt])
				}
				if rs != rows.RowSum[i] {
					t.Fatalf("%v: row sum %d = %d, want %d", d, i, rows.RowSum[i], rs)
				}
				for j := 0; j < n; j++ {
					var s int32
					for tt := 0; tt < k; tt++ {
						s += int32(w[i*k+tt]) * int32(x[tt*ld+j])
					}
					if acc[i*ldc+j] != s {
						t.Fatalf("%v ld %d: acc[%d,%d] = %d, want %d", d, ld, i, j, acc[i*ldc+j], s)
					}
				}
			}
		}
	}
	if _, err := PackS8Rows(nil, 2, 2); err == nil {
		t.Fatal("short weights accepted")
	}
	if err := PackU8Panels(make([]uint8, 10), make([]uint8, 100), 4, 16, 16); err == nil {
		t.Fatal("short panels accepted")
	}
}

// Benchmarks of the linear quantization kernels (go test ./gpu -bench
// 'QuantizeU8|MinMaxF32|MatMulS8U8' -run XXX).
func BenchmarkQuantizeU8(b *testing.B) {
	x := make([]float32, 64<<10)
	for i := range x {
		x[i] = float32(i%1000) * 0.01
	}
	dst := make([]uint8, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		QuantizeU8(dst, x, 0.04, 3, 0, 255)
	}
}

func BenchmarkMinMaxF32(b *testing.B) {
	x := make([]float32, 64<<10)
	for i := range x {
		x[i] = float32(i%1000) * 0.01
	}
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		MinMaxF32(x)
	}
}

// BenchmarkMatMulS8U8 is a 3x3 convolution's product, 64 -> 64 channels on
// a 32x32 plane (kk = 576): packing the patch panels and the product.
func BenchmarkMatMulS8U8(b *testing.B) {
	m, k, n := 64, 576, 1024
	w := make([]int8, m*k)
	for i := range w {
		w[i] = int8(i%127 - 63)
	}
	x := make([]uint8, k*n)
	for i := range x {
		x[i] = uint8(i)
	}
	rows, _ := PackS8Rows(w, m, k)
	pan := make([]uint8, U8PanelBytes(k, n))
	acc := make([]int32, m*n)
	for b.Loop() {
		_ = PackU8Panels(pan, x, k, n, n)
		_ = rows.MatMulS8U8(acc, n, pan, n)
	}
	b.ReportMetric(float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}
