//go:build !wasip1

package sdk

import "unsafe"

// On anything but wasip1 there is no host: every import returns codeNotWasm,
// which the wrappers turn into ErrNotWasm. This keeps the package buildable
// (and its pure parts testable) on the developer's machine.

func hostABIVersion() int32                                          { return codeNotWasm }
func hostLastError(unsafe.Pointer, int32) int32                      { return 0 }
func hostInput(unsafe.Pointer, int32) int32                          { return codeNotWasm }
func hostOutput(unsafe.Pointer, int32) int32                         { return codeNotWasm }
func hostFail(unsafe.Pointer, int32) int32                           { return codeNotWasm }
func hostLog(int32, unsafe.Pointer, int32) int32                     { return codeNotWasm }
func tNew(int32, unsafe.Pointer, int32, unsafe.Pointer, int32) int32 { return codeNotWasm }
func tFree(int32) int32                                              { return codeNotWasm }
func tDType(int32) int32                                             { return codeNotWasm }
func tRank(int32) int32                                              { return codeNotWasm }
func tShape(int32, unsafe.Pointer, int32) int32                      { return codeNotWasm }
func tRead(int32, unsafe.Pointer, int32) int32                       { return codeNotWasm }
func tWrite(int32, unsafe.Pointer, int32) int32                      { return codeNotWasm }
func tReshape(int32, unsafe.Pointer, int32) int32                    { return codeNotWasm }
func tMatMul(int32, int32, int32, int32) int32                       { return codeNotWasm }
func tBinary(int32, int32, int32, int32) int32                       { return codeNotWasm }
func tUnary(int32, int32, float32, int32) int32                      { return codeNotWasm }
func tUnaryGrad(int32, int32, int32, float32, int32) int32           { return codeNotWasm }
func tAxpy(int32, int32, float32) int32                              { return codeNotWasm }
func tAdam(int32, int32, int32, int32, float32, float32, float32, float32, int32) int32 {
	return codeNotWasm
}
func tSoftmax(int32, int32, int32, int32) int32              { return codeNotWasm }
func tReduce(int32, int32, int32, int32, int32) int32        { return codeNotWasm }
func tArgMax(int32, int32, int32) int32                      { return codeNotWasm }
func tLoss(int32, int32, int32, unsafe.Pointer, int32) int32 { return codeNotWasm }
