// Package openblasref calls OpenBLAS's cblas_sgemm through cgo so that
// benchmarks can measure fennec's SGEMM side by side with it in one run. It
// is compiled only with the "openblas" build tag (and cgo, and Debian's
// libopenblas-dev installed), so the default build stays free of cgo.
package openblasref
