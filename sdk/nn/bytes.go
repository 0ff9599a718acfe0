package nn

import "unsafe"

// i32Bytes views v as its little-endian bytes (wasm and every supported
// host are little endian).
func i32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}
