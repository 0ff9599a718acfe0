//go:build !wasip1

package graph

import "unsafe"

// Without a host every import answers codeNotWasm (sdk.ErrNotWasm).

func gLoad(unsafe.Pointer, int32) int32                              { return codeNotWasm }
func gFree(int32) int32                                              { return codeNotWasm }
func gIOCount(int32, int32) int32                                    { return codeNotWasm }
func gIOName(int32, int32, int32, unsafe.Pointer, int32) int32       { return codeNotWasm }
func gIOShape(int32, int32, int32, unsafe.Pointer, int32) int32      { return codeNotWasm }
func gIODType(int32, int32, int32) int32                             { return codeNotWasm }
func gRun(int32, unsafe.Pointer, int32, unsafe.Pointer, int32) int32 { return codeNotWasm }
