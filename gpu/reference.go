package gpu

// ReferenceSgemm is OpenBLAS's cblas_sgemm (row major, c = op(a) x op(b))
// when the binary is built with `-tags openblas` (cgo and libopenblas-dev),
// and nil otherwise. Benchmarks use it to measure fennec's SGEMM side by side
// with OpenBLAS in one run; nothing else does.
var ReferenceSgemm func(transA, transB bool, m, n, k int, a, b, c []float32)

// ReferenceName describes ReferenceSgemm ("" when it is nil).
var ReferenceName string
