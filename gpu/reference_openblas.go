//go:build openblas && cgo

package gpu

import "github.com/fennec-edge/fennec/gpu/internal/openblasref"

func init() {
	ReferenceSgemm = openblasref.Sgemm
	ReferenceName = "openblas " + openblasref.Config()
}
