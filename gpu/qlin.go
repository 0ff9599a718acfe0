package gpu

import (
	"fmt"
	"math"
)

// Linear (affine) u8/s8 quantization as ONNX defines it, on whole slices:
// QuantizeLinear y = saturate(round_half_even(x / scale) + zero_point),
// DequantizeLinear x = (y - zero_point) * scale, the min/max reduction of
// DynamicQuantizeLinear, the requantization of int32 accumulators
// (onnxruntime's MlasRequantizeOutput), and a product of s8 rows by u8
// column panels (a convolution's weights [M, K] times its patches [K, N]).
// On AVX-512 they run 16 lanes at a time; elsewhere the same arithmetic
// runs in Go, with the same results bit for bit.

// MinMaxF32 returns min(0, min x) and max(0, max x) and whether x holds a
// NaN or an infinity (nonFinite; lo and hi are then meaningless).
func MinMaxF32(x []float32) (lo, hi float32, nonFinite bool) {
	n := 0
	if hasAVX512 {
		n = len(x) &^ 31
		if n > 0 {
			var r [3]float32
			minMaxAVX512(&x[0], n, &r)
			lo, hi = r[0], r[1]
			nonFinite = r[2] != 0
		}
	}
	var nf float32
	for _, v := range x[n:] {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		nf += v * 0 // NaN for a NaN or an infinity, and it stays NaN
	}
	return lo, hi, nonFinite || nf != 0
}

// QuantizeU8 sets dst[i] to the byte of saturate(round_half_even(src[i] /
// scale) + zp) within [lo, hi] (0..255 for u8, -128..127 for s8, written as
// its two's complement byte). The division is a true division, as ONNX and
// onnxruntime's MLAS specify, and the value is clamped before rounding to
// [lo-zp, hi-zp] (the same for integer bounds); a NaN becomes lo, as in
// MLAS (its max/min return the bound for a NaN). scale must be positive.
func QuantizeU8(dst []uint8, src []float32, scale float32, zp, lo, hi int32) {
	dst = dst[:len(src)]
	n := 0
	if hasAVX512 {
		n = len(src) &^ 15
		if n > 0 {
			quantAVX512(&dst[0], &src[0], n, scale, float32(lo-zp), float32(hi-zp), zp)
		}
	}
	flo, fhi := float32(lo-zp), float32(hi-zp)
	for i, v := range src[n:] {
		dst[n+i] = quant1Lin(v/scale, flo, fhi, zp)
	}
}

func quant1Lin(v, flo, fhi float32, zp int32) uint8 {
	if !(v >= flo) { // and NaN
		v = flo
	}
	if v > fhi {
		v = fhi
	}
	return uint8(int32(math.RoundToEven(float64(v))) + zp)
}

// DequantizeU8 sets dst[i] = float32(int32(src[i]) - zp) * scale, src read
// as u8, or as s8 when signed.
func DequantizeU8(dst []float32, src []uint8, signed bool, scale float32, zp int32) {
	dst = dst[:len(src)]
	n := 0
	if hasAVX512 {
		n = len(src) &^ 15
		if n > 0 {
			dequantAVX512(&dst[0], &src[0], n, signed, scale, zp)
		}
	}
	for i, v := range src[n:] {
		q := int32(v)
		if signed {
			q = int32(int8(v))
		}
		dst[n+i] = float32(q-zp) * scale
	}
}

// RequantU8 sets dst[i] to the byte of onnxruntime's requantization of
// the int32 accumulator acc[i]: float32(acc)*mult clamped to [lo-zp, hi-zp],
// rounded half to even, plus zp.
func RequantU8(dst []uint8, acc []int32, mult float32, zp, lo, hi int32) {
	dst = dst[:len(acc)]
	n := 0
	if hasAVX512 {
		n = len(acc) &^ 15
		if n > 0 {
			requantAVX512(&dst[0], &acc[0], n, mult, float32(lo-zp), float32(hi-zp), zp)
		}
	}
	flo, fhi := float32(lo-zp), float32(hi-zp)
	for i, a := range acc[n:] {
		dst[n+i] = quant1Lin(float32(a)*mult, flo, fhi, zp)
	}
}

// S8Rows is a constant s8 matrix [M, K] (a convolution's weights, one row
// per output channel) laid out for MatMulS8U8: rows padded to a multiple
// of 4 bytes and their count to a multiple of 4 with zeros; RowSum[i] is
// row i's sum (for the zero point of the u8 side).
type S8Rows struct {
	M, K   int
	k4     int
	w      []int8
	RowSum []int32
}

// PackS8Rows lays out w [m, k] (row major) for MatMulS8U8.
func PackS8Rows(w []int8, m, k int) (*S8Rows, error) {
	if m <= 0 || k <= 0 || len(w) < m*k {
		return nil, fmt.Errorf("%w: s8 rows [%d, %d] from %d values", ErrShape, m, k, len(w))
	}
	r := &S8Rows{M: m, K: k, k4: (k + 3) / 4, RowSum: make([]int32, m)}
	ld := 4 * r.k4
	r.w = make([]int8, (m+3)/4*4*ld)
	for i := 0; i < m; i++ {
		copy(r.w[i*ld:i*ld+k], w[i*k:(i+1)*k])
		for _, v := range w[i*k : (i+1)*k] {
			r.RowSum[i] += int32(v)
		}
	}
	return r, nil
}

// U8PanelBytes is the size of PackU8Panels' layout of a u8 [k, n] matrix.
func U8PanelBytes(k, n int) int { return (n + 15) / 16 * (k + 3) / 4 * 64 }

// PackU8Panels lays out the u8 matrix x [k, n] (row stride ld) as
// MatMulS8U8's column panels: 16 columns at a time, each 4 consecutive
// rows of a column together (VPDPBUSD's unsigned operand), rows and
// columns zero-padded to multiples of 4 and 16. dst holds U8PanelBytes.
func PackU8Panels(dst, x []uint8, k, n, ld int) error {
	k4, np := (k+3)/4, (n+15)/16
	if k <= 0 || n <= 0 || ld < n || len(x) < (k-1)*ld+n || len(dst) < np*k4*64 {
		return fmt.Errorf("%w: u8 panels of [%d, %d] (stride %d) from %d into %d bytes", ErrShape, k, n, ld, len(x), len(dst))
	}
	kf := k &^ 3
	for p := 0; p < np; p++ {
		d := dst[p*k4*64 : (p+1)*k4*64]
		c0 := 16 * p
		if hasAVX512 && c0+16 <= n && kf > 0 {
			packU8x16(&d[0], &x[c0], ld, kf/4)
		} else if kf > 0 {
			packPanelGo(d, x, 0, kf, c0, n, ld)
		}
		if kf < k {
			clear(d[kf/4*64:])
			packPanelGo(d, x, kf, k, c0, n, ld)
		}
	}
	return nil
}

// packPanelGo writes rows [r0, r1) of panel columns [c0, c0+16) (those
// below n; the rest zero).
func packPanelGo(d, x []uint8, r0, r1, c0, n, ld int) {
	for r := r0; r < r1; r++ {
		g := d[r/4*64:]
		row := x[r*ld:]
		for j := 0; j < 16; j++ {
			var v uint8
			if c0+j < n {
				v = row[c0+j]
			}
			g[j*4+r%4] = v
		}
	}
}

// MatMulS8U8 sets acc[i*ldc+j] = sum_t w[i, t] * x[t, j] for i < M and j <
// n, with x in PackU8Panels' layout of a [K, n] matrix: exact int32 sums
// (an ONNX ConvInteger's products in its output layout, channel-major).
// On AVX-512 VNNI a 4x32 tile (four rows' 4-byte groups broadcast against
// two 64-byte panel rows); Go elsewhere.
func (r *S8Rows) MatMulS8U8(acc []int32, ldc int, panels []uint8, n int) error {
	k4, np := r.k4, (n+15)/16
	if n <= 0 || ldc < n || len(acc) < (r.M-1)*ldc+n || len(panels) < np*k4*64 {
		return fmt.Errorf("%w: s8 x u8 product [%d, %d] x [%d, %d] into %d values (stride %d)", ErrShape, r.M, r.K, r.K, n, len(acc), ldc)
	}
	vnni := int8Kernels["vnni"] != nil
	ld := 4 * k4
	var wide [128]int32
	for p, step := 0, 1; p < np; p += step {
		two := vnni && p+1 < np
		step = 1
		if two {
			step = 2
		}
		cols := min(16, n-16*p)
		if two {
			cols = min(32, n-16*p)
		}
		for i := 0; i < r.M; i += 4 {
			rows := min(4, r.M-i)
			switch {
			case two:
				s8u8vnni4x32(&wide[0], &r.w[i*ld], ld, &panels[p*k4*64], k4*64, k4)
			case vnni:
				s8u8vnni4x16(&wide[0], &r.w[i*ld], ld, &panels[p*k4*64], k4)
			default:
				s8u8TileGo(&wide, r.w[i*ld:], ld, panels[p*k4*64:], k4)
			}
			w := 16
			if two {
				w = 32
			}
			for q := 0; q < rows; q++ {
				copy(acc[(i+q)*ldc+16*p:(i+q)*ldc+16*p+cols], wide[q*w:q*w+cols])
			}
		}
	}
	return nil
}

// s8u8TileGo is s8u8vnni4x16 in Go: rows of 16 in wide.
func s8u8TileGo(wide *[128]int32, w []int8, ld int, panel []uint8, k4 int) {
	*wide = [128]int32{}
	for r := 0; r < 4; r++ {
		row := w[r*ld : r*ld+4*k4]
		out := wide[r*16 : r*16+16]
		for t := 0; t < k4; t++ {
			pr := panel[t*64 : t*64+64]
			w0, w1, w2, w3 := int32(row[4*t]), int32(row[4*t+1]), int32(row[4*t+2]), int32(row[4*t+3])
			for j := range out {
				out[j] += w0*int32(pr[4*j]) + w1*int32(pr[4*j+1]) + w2*int32(pr[4*j+2]) + w3*int32(pr[4*j+3])
			}
		}
	}
}
