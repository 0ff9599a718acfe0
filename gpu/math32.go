package gpu

import "math"

// exp32 is e^x in float32 with at most about 1 ulp of error: Cody-Waite
// range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 minimax
// polynomial for e^r (Cephes expf), and 2^n applied through the exponent
// bits. It is several times faster than float32(math.Exp(float64(x))).
func exp32(x float32) float32 {
	const (
		hi    = 88.72283905206835 // ln(MaxFloat32)
		lo    = -87.33654475      // ln(smallest normal)
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if !(x < hi) { // also catches +Inf and NaN
		if x != x {
			return x
		}
		return float32(math.Inf(1))
	}
	if x < lo {
		// subnormal results or zero: rare, take the slow exact path
		return float32(math.Exp(float64(x)))
	}
	// round x*log2e to the nearest integer without a branch or a call: adding
	// and subtracting 1.5*2^23 leaves the integer part (|x*log2e| < 2^22)
	const magic = 12582912
	fn := (x*log2e + magic) - magic
	r := x - fn*c1
	r -= fn * c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	e := p*r*r + r + 1
	n := int32(fn)
	if n >= 128 { // x just below hi: 2^128 is out of range, scale in two steps
		return e * 2 * math.Float32frombits(uint32(n-1+127)<<23)
	}
	return e * math.Float32frombits(uint32(n+127)<<23)
}

var negInf = math.Inf(-1)

// The scalar slice functions below are the portable versions of the vector
// kernels (exp_amd64.s); expSlice, expBiasSum, sigmoidSlice and tanhSlice
// pick one. len(a) >= len(o); o may alias a.

func expSliceGo(o, a []float32) {
	a = a[:len(o)]
	for i := range o {
		o[i] = exp32(a[i])
	}
}

func expBiasSumGo(o, a []float32, bias float32) float64 {
	a = a[:len(o)]
	var s float64
	for i := range o {
		e := exp32(a[i] + bias)
		o[i] = e
		s += float64(e)
	}
	return s
}

func sigmoidSliceGo(o, a []float32) {
	a = a[:len(o)]
	for i := range o {
		o[i] = sigmoid32(a[i])
	}
}

func tanhSliceGo(o, a []float32) {
	a = a[:len(o)]
	for i := range o {
		o[i] = tanh32(a[i])
	}
}

// SigmoidF32 sets dst[i] = 1/(1+e^-src[i]) for i < len(dst) (src at least as
// long; dst may be src), with the AVX2 kernel where the CPU has one: within
// 3 ulp of the float64 result (math32_test.go). For host code in this
// module that computes activations on plain slices (the ONNX engine's
// kernels).
func SigmoidF32(dst, src []float32) { sigmoidSlice(dst, src[:len(dst)]) }

// TanhF32 sets dst[i] = tanh(src[i]) for i < len(dst), like SigmoidF32: within 2
// ulp of the float64 result.
func TanhF32(dst, src []float32) { tanhSlice(dst, src[:len(dst)]) }

// ExpF32 sets dst[i] = e^src[i] for i < len(dst), like SigmoidF32 (the AVX2
// kernel where the CPU has one, exp32 otherwise): within about 1 ulp.
func ExpF32(dst, src []float32) { expSlice(dst, src[:len(dst)]) }

// ExpBiasSumF32 sets dst[i] = e^(src[i]+bias) for i < len(dst) and returns
// the sum of dst in float64: a softmax row's exponentials and denominator in
// one pass (bias is minus the row's maximum).
func ExpBiasSumF32(dst, src []float32, bias float32) float64 {
	return expBiasSum(dst, src[:len(dst)], bias)
}
