package cbor

import "math"

// halfToFloat32 converts IEEE 754 half-precision bits to float32 (exact).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch e {
	case 0: // zero or subnormal: m * 2^-24, exact in float32
		if m == 0 {
			return math.Float32frombits(sign)
		}
		return math.Float32frombits(math.Float32bits(float32(m)*(1.0/(1<<24))) | sign)
	case 31: // infinity or NaN (payload kept)
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	return math.Float32frombits(sign | (e+112)<<23 | m<<13)
}

// halfExact returns the half-precision bits of a finite f when the
// conversion is exact (the value is preserved), as the shortest-float rule
// of deterministic encoding needs.
func halfExact(f float32) (uint16, bool) {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	if b&0x7fffffff == 0 {
		return sign, true
	}
	exp := int(b>>23&0xff) - 127
	mant := b & 0x7fffff
	switch {
	case exp > 15 || exp < -24:
		return 0, false
	case exp >= -14: // a normal half
		if mant&0x1fff != 0 {
			return 0, false
		}
		return sign | uint16(exp+15)<<10 | uint16(mant>>13), true
	default: // a subnormal half: sig * 2^(exp+1) must be an integer
		sig := mant | 0x800000
		s := uint(-(exp + 1))
		if sig&(1<<s-1) != 0 {
			return 0, false
		}
		return sign | uint16(sig>>s), true
	}
}

// halfFromFloat32 rounds f to half precision (round to nearest, ties to
// even; overflow to infinity; NaN stays NaN).
func halfFromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 31 {
		return sign | 0x7c00
	}
	if e <= 0 { // subnormal half (or zero)
		if exp == 0 {
			return sign // float32 subnormals are far below half's range
		}
		sig := mant | 0x800000
		shift := uint32(14 - e)
		if shift > 24 {
			return sign
		}
		m := sig >> shift
		rem := sig & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	h := sign | uint16(e)<<10 | uint16(mant>>13)
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to infinity: still correct
	}
	return h
}
