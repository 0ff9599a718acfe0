//go:build !amd64 || purego

package gpu

// vnni4x16 is never called here (no "vnni" kernel is registered off amd64
// or under purego); it exists so that MatMulU8S8 builds.
func vnni4x16(tile *int32, a *uint8, lda int, panel *int8, k4 int) {
	panic("gpu: vnni4x16 without VNNI")
}

func vnni4x32(tile *int32, a *uint8, lda int, panel *int8, pstride, k4 int) {
	panic("gpu: vnni4x32 without VNNI")
}
