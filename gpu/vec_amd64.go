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
