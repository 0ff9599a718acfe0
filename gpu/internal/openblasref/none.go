//go:build !openblas || !cgo

package openblasref

// Available reports whether the reference is compiled in.
const Available = false

// Sgemm is not available without the openblas build tag; it panics.
func Sgemm(transA, transB bool, m, n, k int, a, b, c []float32) {
	panic("openblasref: built without the openblas tag")
}

// Threads returns 0 without OpenBLAS.
func Threads() int { return 0 }

// Config returns "" without OpenBLAS.
func Config() string { return "" }
