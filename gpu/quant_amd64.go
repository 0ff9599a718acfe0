//go:build amd64 && !purego

package gpu

import "golang.org/x/sys/cpu"

//go:noescape
func dot4VNNI(x *uint8, w *int8, ldw, kp int, out *int32)

//go:noescape
func dot4AVX2(x *int8, w *int8, ldw, kp int, out *int32)

// vnni4x16 sets tile[r*16+j] (r < 4, j < 16) to the sum over 4*k4 bytes of
// a's row r (lda apart, unsigned) times the panel's column j (signed).
//
//go:noescape
func vnni4x16(tile *int32, a *uint8, lda int, panel *int8, k4 int)

// vnni4x32 is vnni4x16 over two adjacent panels (the second pstride bytes
// after the first) into a tile of 4 rows of 32.
//
//go:noescape
func vnni4x32(tile *int32, a *uint8, lda int, panel *int8, pstride, k4 int)

func init() {
	if cpu.X86.HasAVX2 {
		int8Kernels["avx2"] = &int8Kernel{name: "avx2", step: 16, dot4: func(xs []int8, xu []uint8, w []int8, ldw, kp int, out *[4]int32) {
			_, _ = xs[kp-1], w[3*ldw+kp-1]
			dot4AVX2(&xs[0], &w[0], ldw, kp, &out[0])
		}}
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI {
		int8Kernels["vnni"] = &int8Kernel{name: "vnni", unsigned: true, step: 64, dot4: func(xs []int8, xu []uint8, w []int8, ldw, kp int, out *[4]int32) {
			_, _ = xu[kp-1], w[3*ldw+kp-1]
			dot4VNNI(&xu[0], &w[0], ldw, kp, &out[0])
		}}
	}
}
