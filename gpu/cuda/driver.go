//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda -lcublas
#ifndef FENNEC_CUDACOMPAT_APPLIED
#error "gpu/cuda needs CGO_CFLAGS=\"-include $REPO/gpu/cuda/compat/cudacompat.h\" (and the CUDA include directory); see docs/GPU.md"
#endif
#undef cuInit
#include <stdint.h>
#include <cuda.h>
#include <cublas_v2.h>

// The real cuInit (the compat header makes the one gorgonia calls from its
// package init always succeed).
static CUresult fennec_init(void) { return cuInit(0); }

static int fennec_toolkit(void) { return CUDA_VERSION; }

static int fennec_pools_supported(int dev) {
	int v = 0;
	if (cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, (CUdevice)dev) != CUDA_SUCCESS) return 0;
	return v;
}

// fennec_pool_keep makes the device's default pool keep freed memory for
// reuse instead of returning it to the driver at every synchronisation.
static CUresult fennec_pool_keep(int dev) {
	CUmemoryPool pool;
	CUresult r = cuDeviceGetDefaultMemPool(&pool, (CUdevice)dev);
	if (r != CUDA_SUCCESS) return r;
	cuuint64_t keep = ~(cuuint64_t)0;
	return cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
}

static CUresult fennec_pool_trim(int dev) {
	CUmemoryPool pool;
	CUresult r = cuDeviceGetDefaultMemPool(&pool, (CUdevice)dev);
	if (r != CUDA_SUCCESS) return r;
	return cuMemPoolTrimTo(pool, 0);
}

static CUresult fennec_alloc(uint64_t *p, size_t n, uintptr_t stream, int pooled) {
	CUdeviceptr d = 0;
	CUresult r = pooled ? cuMemAllocAsync(&d, n, (CUstream)stream) : cuMemAlloc(&d, n);
	*p = (uint64_t)d;
	return r;
}

static CUresult fennec_free(uint64_t p, uintptr_t stream, int pooled) {
	return pooled ? cuMemFreeAsync((CUdeviceptr)p, (CUstream)stream) : cuMemFree((CUdeviceptr)p);
}

static int fennec_blas_create(uintptr_t *h, uintptr_t stream) {
	cublasHandle_t hh;
	cublasStatus_t s = cublasCreate(&hh);
	if (s != CUBLAS_STATUS_SUCCESS) return (int)s;
	s = cublasSetStream(hh, (cudaStream_t)stream);
	if (s != CUBLAS_STATUS_SUCCESS) { cublasDestroy(hh); return (int)s; }
	*h = (uintptr_t)hh;
	return 0;
}

static int fennec_blas_destroy(uintptr_t h) { return (int)cublasDestroy((cublasHandle_t)h); }

static int fennec_blas_math(uintptr_t h, int tf32) {
	return (int)cublasSetMathMode((cublasHandle_t)h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}

static int fennec_sgemm(uintptr_t h, int opx, int opy, int m, int n, int k,
		uint64_t x, int ldx, uint64_t y, int ldy, uint64_t c, int ldc) {
	const float one = 1.0f, zero = 0.0f;
	return (int)cublasSgemm((cublasHandle_t)h, (cublasOperation_t)opx, (cublasOperation_t)opy, m, n, k,
		&one, (const float *)(uintptr_t)x, ldx, (const float *)(uintptr_t)y, ldy, &zero, (float *)(uintptr_t)c, ldc);
}

// fennec_gemm_ex runs one n x n x n GEMM in a reduced-precision mode for
// the benchmarks: 1 = f32 data with TF32 tensor cores, 2 = bf16 data (f32
// accumulation, bf16 result).
static int fennec_gemm_ex(uintptr_t h, int mode, int n, uint64_t x, uint64_t y, uint64_t c) {
	const float one = 1.0f, zero = 0.0f;
	if (mode == 1)
		return (int)cublasGemmEx((cublasHandle_t)h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
			(const void *)(uintptr_t)x, CUDA_R_32F, n, (const void *)(uintptr_t)y, CUDA_R_32F, n, &zero,
			(void *)(uintptr_t)c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
	return (int)cublasGemmEx((cublasHandle_t)h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
		(const void *)(uintptr_t)x, CUDA_R_16BF, n, (const void *)(uintptr_t)y, CUDA_R_16BF, n, &zero,
		(void *)(uintptr_t)c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

static int fennec_cublas_version(int *v) {
	int maj = 0, min = 0, patch = 0;
	cublasStatus_t s = cublasGetProperty(MAJOR_VERSION, &maj);
	if (s == CUBLAS_STATUS_SUCCESS) s = cublasGetProperty(MINOR_VERSION, &min);
	if (s == CUBLAS_STATUS_SUCCESS) s = cublasGetProperty(PATCH_LEVEL, &patch);
	*v = maj * 10000 + min * 100 + patch;
	return (int)s;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/fennec-edge/fennec/gpu"
	"gorgonia.org/cu"
)

// driverError is a CUresult from a call this package makes itself.
type driverError struct {
	call string
	code int
}

func (e driverError) Error() string {
	return fmt.Sprintf("%s: CUDA error %d (%v)", e.call, e.code, cuName(e.code))
}

// Is makes an out-of-memory result match gpu.ErrOutOfMemory.
func (e driverError) Is(target error) bool {
	return target == gpu.ErrOutOfMemory && e.code == int(C.CUDA_ERROR_OUT_OF_MEMORY)
}

func cuName(code int) string {
	var s *C.char
	if C.cuGetErrorName(C.CUresult(code), &s) != C.CUDA_SUCCESS || s == nil {
		return "unknown"
	}
	return C.GoString(s)
}

func check(call string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return driverError{call, int(r)}
}

// blasError is a cublasStatus_t.
type blasError struct {
	call string
	code int
}

func (e blasError) Error() string { return fmt.Sprintf("%s: cuBLAS status %d", e.call, e.code) }

func (e blasError) Is(target error) bool {
	return target == gpu.ErrOutOfMemory && e.code == int(C.CUBLAS_STATUS_ALLOC_FAILED)
}

func checkBLAS(call string, s C.int) error {
	if s == 0 {
		return nil
	}
	return blasError{call, int(s)}
}

// initDriver runs the real cuInit.
func initDriver() error { return check("cuInit", C.fennec_init()) }

func toolkitVersion() int { return int(C.fennec_toolkit()) }

func cublasVersion() (int, error) {
	var v C.int
	err := checkBLAS("cublasGetProperty", C.fennec_cublas_version(&v))
	return int(v), err
}

// streamHandle is the CUstream of a gorgonia stream, as an integer that
// crosses into this package's C code.
func streamHandle(s cu.Stream) uintptr { return uintptr(unsafe.Pointer(s.C())) }

func poolsSupported(dev cu.Device) bool { return C.fennec_pools_supported(C.int(dev)) != 0 }

func keepPool(dev cu.Device) error {
	return check("cuMemPoolSetAttribute", C.fennec_pool_keep(C.int(dev)))
}

func trimPool(dev cu.Device) error { return check("cuMemPoolTrimTo", C.fennec_pool_trim(C.int(dev))) }

func devAlloc(n int64, stream uintptr, pooled bool) (cu.DevicePtr, error) {
	var p C.uint64_t
	err := check("cuMemAlloc", C.fennec_alloc(&p, C.size_t(n), C.uintptr_t(stream), cbool(pooled)))
	return cu.DevicePtr(p), err
}

func devFree(p cu.DevicePtr, stream uintptr, pooled bool) error {
	return check("cuMemFree", C.fennec_free(C.uint64_t(p), C.uintptr_t(stream), cbool(pooled)))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func blasCreate(stream uintptr) (uintptr, error) {
	var h C.uintptr_t
	err := checkBLAS("cublasCreate", C.fennec_blas_create(&h, C.uintptr_t(stream)))
	return uintptr(h), err
}

func blasDestroy(h uintptr) error {
	return checkBLAS("cublasDestroy", C.fennec_blas_destroy(C.uintptr_t(h)))
}

func blasMath(h uintptr, tf32 bool) error {
	return checkBLAS("cublasSetMathMode", C.fennec_blas_math(C.uintptr_t(h), cbool(tf32)))
}

func sgemm(h uintptr, c gemmCall, x, y, out cu.DevicePtr) error {
	return checkBLAS("cublasSgemm", C.fennec_sgemm(C.uintptr_t(h), C.int(c.opX), C.int(c.opY), C.int(c.m), C.int(c.n), C.int(c.k),
		C.uint64_t(x), C.int(c.ldx), C.uint64_t(y), C.int(c.ldy), C.uint64_t(out), C.int(c.ldc)))
}

// Reduced-precision GEMM modes for benchmarks.
const (
	gemmTF32 = 1
	gemmBF16 = 2
)

func gemmEx(h uintptr, mode, n int, x, y, out cu.DevicePtr) error {
	return checkBLAS("cublasGemmEx", C.fennec_gemm_ex(C.uintptr_t(h), C.int(mode), C.int(n), C.uint64_t(x), C.uint64_t(y), C.uint64_t(out)))
}
