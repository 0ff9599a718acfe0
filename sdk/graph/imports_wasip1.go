//go:build wasip1

package graph

import "unsafe"

// Raw imports of fennec_nn (docs/ABI.md).

//go:wasmimport fennec_nn graph_load
func gLoad(name unsafe.Pointer, n int32) int32

//go:wasmimport fennec_nn graph_free
func gFree(g int32) int32

//go:wasmimport fennec_nn graph_io_count
func gIOCount(g, which int32) int32

//go:wasmimport fennec_nn graph_io_name
func gIOName(g, which, index int32, buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport fennec_nn graph_io_shape
func gIOShape(g, which, index int32, dims unsafe.Pointer, dimsCap int32) int32

//go:wasmimport fennec_nn graph_io_dtype
func gIODType(g, which, index int32) int32

//go:wasmimport fennec_nn graph_run
func gRun(g int32, in unsafe.Pointer, nIn int32, out unsafe.Pointer, outCap int32) int32
