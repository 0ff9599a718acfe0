//go:build amd64 && !purego

package gpu

import "golang.org/x/sys/cpu"

//go:noescape
func axpyAVX2(alpha float32, x, y *float32, n int)

var haveAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// axpy computes y += alpha * x (len(x) >= len(y)).
func axpy(y, x []float32, alpha float32) {
	x = x[:len(y)]
	n := len(y) &^ 31
	if haveAVX2FMA && n > 0 {
		axpyAVX2(alpha, &x[0], &y[0], n)
	}
	for i := n; i < len(y); i++ {
		y[i] += alpha * x[i]
	}
}

//go:noescape
func spRowAVX2(cols *int32, vals *float32, nnz int, xt *float32, ld int, out *float32)

// spRow32 sets out[0:32] = sum_i vals[i] * xt[cols[i]*ld : +32]. The column
// indices were validated when the layer was built (each < In, and xt holds
// In rows of ld >= 32 floats).
func spRow32(cols []int32, vals []float32, xt []float32, ld int, out []float32) {
	_ = out[31]
	if haveAVX2FMA && len(cols) > 0 {
		_ = vals[len(cols)-1]
		spRowAVX2(&cols[0], &vals[0], len(cols), &xt[0], ld, &out[0])
		return
	}
	spRow32Go(cols, vals, xt, ld, out)
}

//go:noescape
func packRowsAVX(dst, src *float32, offs *int, ld, kc, dstride int)

var haveAVX = cpu.X86.HasAVX

// packRows16 sets dst[p*dstride : +16] = B's row p0+p, columns [base,
// base+16), for p < kc, where B is the row-major (not transposed) b. The
// caller guarantees the columns exist; the last row's end is checked here so
// that a bad offset panics instead of reading past the slice.
func packRows16(dst []float32, b *matView, p0, kc, base, dstride int) bool {
	if !haveAVX || kc == 0 {
		return false
	}
	_ = dst[(kc-1)*dstride+15]
	if b.rows != nil {
		rows := b.rows[p0 : p0+kc]
		// SgemmRows checked every row offset against len(b.d)-n and base+16 <= n
		packRowsAVX(&dst[0], &b.d[base], &rows[0], 0, kc, dstride)
		return true
	}
	_ = b.d[(p0+kc-1)*b.ld+base+15]
	packRowsAVX(&dst[0], &b.d[p0*b.ld+base], nil, b.ld, kc, dstride)
	return true
}
