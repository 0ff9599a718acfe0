//go:build !amd64 || purego

package gpu

const hasAVX512 = false

// The kernels below are never called here (hasAVX512 is false and no
// "vnni" int8 kernel is registered); they exist so that qlin.go builds.

func minMaxAVX512(x *float32, n int, r *[3]float32) { panic("gpu: no AVX-512") }

func quantAVX512(dst *uint8, src *float32, n int, scale, flo, fhi float32, zp int32) {
	panic("gpu: no AVX-512")
}

func dequantAVX512(dst *float32, src *uint8, n int, signed bool, scale float32, zp int32) {
	panic("gpu: no AVX-512")
}

func requantAVX512(dst *uint8, acc *int32, n int, mult, flo, fhi float32, zp int32) {
	panic("gpu: no AVX-512")
}

func packU8x16(dst *uint8, src *uint8, ld, k4 int) { panic("gpu: no AVX-512") }

func s8u8vnni4x16(tile *int32, w *int8, ldw int, panel *uint8, k4 int) { panic("gpu: no VNNI") }

func s8u8vnni4x32(tile *int32, w *int8, ldw int, panel *uint8, pstride, k4 int) {
	panic("gpu: no VNNI")
}
