//go:build openblas && cgo

package openblasref

/*
#cgo CFLAGS: -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// Available reports whether the reference is compiled in.
const Available = true

// Sgemm computes c[m x n] = op(a) x op(b), row major, with OpenBLAS.
func Sgemm(transA, transB bool, m, n, k int, a, b, c []float32) {
	ta, tb := C.CblasNoTrans, C.CblasNoTrans
	lda, ldb := k, n
	if transA {
		ta, lda = C.CblasTrans, m
	}
	if transB {
		tb, ldb = C.CblasTrans, k
	}
	_, _, _ = a[m*k-1], b[k*n-1], c[m*n-1]
	C.cblas_sgemm(C.CblasRowMajor, uint32(ta), uint32(tb), C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		0, (*C.float)(unsafe.Pointer(&c[0])), C.blasint(n))
}

// Threads returns the number of threads OpenBLAS uses.
func Threads() int { return int(C.openblas_get_num_threads()) }

// Config returns OpenBLAS's build configuration string (its core type).
func Config() string { return C.GoString(C.openblas_get_config()) }
