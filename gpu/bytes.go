package gpu

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// nativeLittle reports whether the host stores words little endian, in which
// case tensor bytes are copied with one memmove instead of element by element.
var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func f32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}

func i32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// putF32 decodes little-endian bytes (len(src) == 4*len(dst)) into dst.
func putF32(dst []float32, src []byte) {
	if nativeLittle {
		copy(f32Bytes(dst), src)
		return
	}
	putF32Portable(dst, src)
}

func putF32Portable(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// getF32 encodes src as little-endian bytes into dst (len(dst) == 4*len(src)).
func getF32(dst []byte, src []float32) {
	if nativeLittle {
		copy(dst, f32Bytes(src))
		return
	}
	getF32Portable(dst, src)
}

func getF32Portable(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func putI32(dst []int32, src []byte) {
	if nativeLittle {
		copy(i32Bytes(dst), src)
		return
	}
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func getI32(dst []byte, src []int32) {
	if nativeLittle {
		copy(dst, i32Bytes(src))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], uint32(v))
	}
}

// F32ToBytes encodes f as little-endian bytes (a new slice).
func F32ToBytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	getF32(b, f)
	return b
}

// BytesToF32 decodes little-endian bytes into float32s; a trailing partial
// element is ignored.
func BytesToF32(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	putF32(f, b[:4*len(f)])
	return f
}

// ReadF32 copies the elements of b's f32 tensor t into dst (t.Len()
// values). On little-endian hosts it needs no scratch memory beyond dst.
func ReadF32(b Backend, t Tensor, dst []float32) error {
	if nativeLittle {
		return b.Read(t, f32Bytes(dst))
	}
	buf := make([]byte, 4*len(dst))
	if err := b.Read(t, buf); err != nil {
		return err
	}
	putF32(dst, buf)
	return nil
}

// WriteF32 overwrites b's f32 tensor t with src (t.Len() values). On
// little-endian hosts it allocates nothing.
func WriteF32(b Backend, t Tensor, src []float32) error {
	if nativeLittle {
		return b.Write(t, f32Bytes(src))
	}
	return b.Write(t, F32ToBytes(src))
}
