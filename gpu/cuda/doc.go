// Package cuda is fennec's CUDA tensor backend: gpu.Backend on an NVIDIA GPU
// through gorgonia.org/cu (driver API and NVRTC) and cuBLAS.
//
// The backend itself is compiled only with the "cuda" build tag, against the
// CUDA headers and libraries, and with the compatibility header
// compat/cudacompat.h force-included into every cgo unit:
//
//	export CGO_CFLAGS="-O2 -g -I/usr/local/cuda/include -include $PWD/gpu/cuda/compat/cudacompat.h"
//	export CGO_LDFLAGS="-L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs"
//	go build -tags cuda ./cmd/fennec
//
// (docs/GPU.md has the details). Without the tag the package
// holds only the pure-Go parts (kernel source and signatures, launch
// geometry, broadcast plans, the row-major GEMM mapping), which are tested
// on any machine.
//
// Design: tensors live in device memory for their whole life; Write and
// Read are the only host copies. Kernels are CUDA C (kernels.cu, embedded)
// compiled with NVRTC for the device at start. MatMul is cuBLAS SGEMM on
// row-major data through the transpose identity (see gemmFor). Each call
// borrows one of a pool of streams (each with its own cuBLAS handle and
// scratch memory), runs on it and waits for it, so calls from different
// instances (goroutines) run concurrently on different streams and never
// queue behind one another, while calls of one instance stay in order.
// Allocations come from the device's stream-ordered memory pool; a failed
// allocation is gpu.ErrOutOfMemory, never a crash.
package cuda
