//go:build !wasip1

package privacy

import "unsafe"

// Without a host every import answers codeNotWasm (sdk.ErrNotWasm), so the
// package builds and its pure parts test on the developer's machine.

func dpClip(int32, float64, unsafe.Pointer) int32                         { return codeNotWasm }
func dpGaussian(int32, float64, float64, float64, int32) int32            { return codeNotWasm }
func dpGaussianEps(int32, float64, float64, float64, int32) int32         { return codeNotWasm }
func dpLaplace(int32, float64, float64, int32) int32                      { return codeNotWasm }
func dpRemaining(unsafe.Pointer) int32                                    { return codeNotWasm }
func dpSGDBegin(int32, float64, float64, float64, int32) int32            { return codeNotWasm }
func dpSGDStep(unsafe.Pointer, int32, int32, int32, unsafe.Pointer) int32 { return codeNotWasm }
func heEncrypt(int32, unsafe.Pointer, int32) int32                        { return codeNotWasm }
func heAdd(unsafe.Pointer, int32) int32                                   { return codeNotWasm }
func heDecryptAggregate(int32) int32                                      { return codeNotWasm }
