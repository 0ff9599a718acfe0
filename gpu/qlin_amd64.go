//go:build amd64 && !purego

package gpu

import "golang.org/x/sys/cpu"

// hasAVX512 selects qlin.go's AVX-512F kernels.
var hasAVX512 = cpu.X86.HasAVX512F

//go:noescape
func minMaxAVX512(x *float32, n int, r *[3]float32)

//go:noescape
func quantAVX512(dst *uint8, src *float32, n int, scale, flo, fhi float32, zp int32)

//go:noescape
func dequantAVX512(dst *float32, src *uint8, n int, signed bool, scale float32, zp int32)

//go:noescape
func requantAVX512(dst *uint8, acc *int32, n int, mult, flo, fhi float32, zp int32)

// packU8x16 writes k4 groups of 64 bytes: 16 columns of 4 rows (ld apart)
// interleaved, row fastest.
//
//go:noescape
func packU8x16(dst *uint8, src *uint8, ld, k4 int)

//go:noescape
func s8u8vnni4x16(tile *int32, w *int8, ldw int, panel *uint8, k4 int)

//go:noescape
func s8u8vnni4x32(tile *int32, w *int8, ldw int, panel *uint8, pstride, k4 int)
