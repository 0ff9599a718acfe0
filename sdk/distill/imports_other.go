//go:build !wasip1

package distill

import "unsafe"

// Without a host every import answers codeNotWasm, which check turns into
// sdk.ErrNotWasm, so the package builds (and its pure logic tests) anywhere.

func tQuantScales(int32, int32, int32, int32) int32                 { return codeNotWasm }
func tQuantize(int32, int32, int32, int32) int32                    { return codeNotWasm }
func tDequantize(int32, int32, int32, int32) int32                  { return codeNotWasm }
func tMatMulI8(int32, int32, int32, int32) int32                    { return codeNotWasm }
func tKLDistill(int32, int32, float32, unsafe.Pointer, int32) int32 { return codeNotWasm }
