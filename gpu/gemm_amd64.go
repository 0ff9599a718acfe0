//go:build amd64 && !purego

package gpu

import "golang.org/x/sys/cpu"

//go:generate go run ./internal/asmgen gemm_amd64.s

//go:noescape
func microAVX512(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r1(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r2(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r3(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r4(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r5(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r6(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r7(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r8(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r9(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r10(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX512r11(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2r1(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2r2(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2r3(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2r4(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

//go:noescape
func microAVX2r5(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)

// avx512Tail wraps the AVX-512 kernel for a last strip of rows (1-11).
func avx512Tail(rows int, f func(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)) func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
	return func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
		_, _, _ = a[(rows-1)*rs+(kc-1)*ks], b[kc*32-1], c[(rows-1)*ldc+31]
		f(kc, &a[0], rs, ks, &b[0], &c[0], ldc, acc)
	}
}

// avx2Tail wraps the AVX2 kernel for a last strip of rows (1-5) rows.
func avx2Tail(rows int, f func(kc int, a *float32, rs, ks int, b, c *float32, ldc int, acc bool)) func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
	return func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
		_, _, _ = a[(rows-1)*rs+(kc-1)*ks], b[kc*16-1], c[(rows-1)*ldc+15]
		f(kc, &a[0], rs, ks, &b[0], &c[0], ldc, acc)
	}
}

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		registerKernel(&gemmKernel{name: "avx2", mr: 6, nr: 16, kc: 256, mc: 96, nc: 4096,
			micro: func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
				// bounds checks: a bug here must panic, not corrupt memory
				_, _, _ = a[5*rs+(kc-1)*ks], b[kc*16-1], c[5*ldc+15]
				microAVX2(kc, &a[0], rs, ks, &b[0], &c[0], ldc, acc)
			},
			tails: []func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool){
				nil, avx2Tail(1, microAVX2r1), avx2Tail(2, microAVX2r2), avx2Tail(3, microAVX2r3),
				avx2Tail(4, microAVX2r4), avx2Tail(5, microAVX2r5)}})
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL {
		registerKernel(&gemmKernel{name: "avx512", mr: 12, nr: 32, kc: 256, mc: 120, nc: 4096,
			micro: func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
				_, _, _ = a[11*rs+(kc-1)*ks], b[kc*32-1], c[11*ldc+31]
				microAVX512(kc, &a[0], rs, ks, &b[0], &c[0], ldc, acc)
			},
			tails: []func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool){
				nil, avx512Tail(1, microAVX512r1), avx512Tail(2, microAVX512r2), avx512Tail(3, microAVX512r3),
				avx512Tail(4, microAVX512r4), avx512Tail(5, microAVX512r5), avx512Tail(6, microAVX512r6),
				avx512Tail(7, microAVX512r7), avx512Tail(8, microAVX512r8), avx512Tail(9, microAVX512r9),
				avx512Tail(10, microAVX512r10), avx512Tail(11, microAVX512r11)}})
	}
}
