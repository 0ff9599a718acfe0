//go:build wasip1

package distill

import "unsafe"

// Raw imports of the compression functions of fennec_tensor
// (docs/ABI.md, "Model compression").

//go:wasmimport fennec_tensor quant_scales
func tQuantScales(a, axis, perChannel, out int32) int32

//go:wasmimport fennec_tensor quantize
func tQuantize(a, scale, axis, out int32) int32

//go:wasmimport fennec_tensor dequantize
func tDequantize(q, scale, axis, out int32) int32

//go:wasmimport fennec_tensor matmul_i8
func tMatMulI8(x, w, scale, out int32) int32

//go:wasmimport fennec_tensor kl_distill
func tKLDistill(student, teacher int32, temp float32, loss unsafe.Pointer, gradOut int32) int32
