//go:build wasip1

package privacy

import "unsafe"

// Raw imports of fennec_privacy (docs/ABI.md).

//go:wasmimport fennec_privacy dp_clip
func dpClip(h int32, clip float64, normPtr unsafe.Pointer) int32

//go:wasmimport fennec_privacy dp_gaussian
func dpGaussian(h int32, l2Sensitivity, noiseMultiplier, samplingRate float64, out int32) int32

//go:wasmimport fennec_privacy dp_gaussian_eps
func dpGaussianEps(h int32, l2Sensitivity, epsilon, delta float64, out int32) int32

//go:wasmimport fennec_privacy dp_laplace
func dpLaplace(h int32, l1Sensitivity, epsilon float64, out int32) int32

//go:wasmimport fennec_privacy dp_remaining
func dpRemaining(buf unsafe.Pointer) int32

//go:wasmimport fennec_privacy dp_sgd_begin
func dpSGDBegin(groups int32, clip, noiseMultiplier, samplingRate float64, steps int32) int32

//go:wasmimport fennec_privacy dp_sgd_step
func dpSGDStep(params unsafe.Pointer, n int32, x, y int32, out unsafe.Pointer) int32

//go:wasmimport fennec_privacy he_encrypt
func heEncrypt(h int32, buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport fennec_privacy he_add
func heAdd(ptr unsafe.Pointer, n int32) int32

//go:wasmimport fennec_privacy he_decrypt_aggregate
func heDecryptAggregate(out int32) int32
