//go:build wasip1

package sdk

import "unsafe"

// Raw host imports of ABI v1 (docs/ABI.md). Pointers are offsets in this
// module's linear memory; the Go wasm port passes unsafe.Pointer as i32.

//go:wasmimport fennec abi_version
func hostABIVersion() int32

//go:wasmimport fennec last_error
func hostLastError(buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport fennec input
func hostInput(buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport fennec output
func hostOutput(ptr unsafe.Pointer, n int32) int32

//go:wasmimport fennec fail
func hostFail(ptr unsafe.Pointer, n int32) int32

//go:wasmimport fennec log
func hostLog(level int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport fennec_tensor new
func tNew(dtype int32, shape unsafe.Pointer, rank int32, data unsafe.Pointer, dataLen int32) int32

//go:wasmimport fennec_tensor free
func tFree(h int32) int32

//go:wasmimport fennec_tensor dtype
func tDType(h int32) int32

//go:wasmimport fennec_tensor rank
func tRank(h int32) int32

//go:wasmimport fennec_tensor shape
func tShape(h int32, buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport fennec_tensor read
func tRead(h int32, buf unsafe.Pointer, bufLen int32) int32

//go:wasmimport fennec_tensor write
func tWrite(h int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport fennec_tensor reshape
func tReshape(h int32, shape unsafe.Pointer, rank int32) int32

//go:wasmimport fennec_tensor matmul
func tMatMul(a, b, flags, out int32) int32

//go:wasmimport fennec_tensor binary
func tBinary(op, a, b, out int32) int32

//go:wasmimport fennec_tensor unary
func tUnary(op, a int32, alpha float32, out int32) int32

//go:wasmimport fennec_tensor unary_grad
func tUnaryGrad(op, x, g int32, alpha float32, out int32) int32

//go:wasmimport fennec_tensor axpy
func tAxpy(y, x int32, alpha float32) int32

//go:wasmimport fennec_tensor adam
func tAdam(p, g, m, v int32, lr, beta1, beta2, eps float32, step int32) int32

//go:wasmimport fennec_tensor softmax
func tSoftmax(a, axis, log, out int32) int32

//go:wasmimport fennec_tensor reduce
func tReduce(op, a, axis, keepdims, out int32) int32

//go:wasmimport fennec_tensor argmax
func tArgMax(a, axis, out int32) int32

//go:wasmimport fennec_tensor loss
func tLoss(op, pred, target int32, loss unsafe.Pointer, gradOut int32) int32
