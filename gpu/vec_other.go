//go:build !amd64 || purego

package gpu

// axpy computes y += alpha * x (len(x) >= len(y)).
func axpy(y, x []float32, alpha float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}

func spRow32(cols []int32, vals []float32, xt []float32, ld int, out []float32) {
	spRow32Go(cols, vals, xt, ld, out)
}

func packRows16(dst []float32, b *matView, p0, kc, base, dstride int) bool { return false }
