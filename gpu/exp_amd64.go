//go:build amd64 && !purego

package gpu

//go:generate go run ./internal/asmgen exp_amd64.s

//go:noescape
func expAVX2(dst, src *float32, n int)

//go:noescape
func expSumAVX2(dst, src *float32, n int, bias float32) float64

//go:noescape
func sigmoidAVX2(dst, src *float32, n int)

//go:noescape
func tanhAVX2(dst, src *float32, n int)

// vecMath reports whether the AVX2 kernels run (the scalar *Go versions in
// math32.go otherwise).
var vecMath = haveAVX2FMA

// vecTail runs an 8-wide kernel over the last len(o) < 8 elements through a
// padded buffer, so that every element gets the same arithmetic.
func vecTail(k func(dst, src *float32, n int), o, a []float32, pad float32) {
	var in, out [8]float32
	for i := range in {
		in[i] = pad
	}
	copy(in[:], a[:len(o)])
	k(&out[0], &in[0], 8)
	copy(o, out[:len(o)])
}

// expSlice sets o[i] = e^a[i]; o may alias a.
func expSlice(o, a []float32) {
	a = a[:len(o)]
	if !vecMath {
		expSliceGo(o, a)
		return
	}
	n := len(o) &^ 7
	if n > 0 {
		expAVX2(&o[0], &a[0], n)
	}
	if n < len(o) {
		vecTail(expAVX2, o[n:], a[n:], 0)
	}
}

// expBiasSum sets o[i] = e^(a[i]+bias) and returns the sum of o in float64;
// o may alias a.
func expBiasSum(o, a []float32, bias float32) float64 {
	a = a[:len(o)]
	if !vecMath {
		return expBiasSumGo(o, a, bias)
	}
	n := len(o) &^ 7
	var s float64
	if n > 0 {
		s = expSumAVX2(&o[0], &a[0], n, bias)
	}
	if n < len(o) {
		// the tail through an 8-wide buffer padded with -bias (e^0 = 1,
		// left out of the sum): padding with -Inf, whose e^ is 0, took the
		// kernel through its underflow path and cost ~85 ns a call (a
		// 12-long softmax row 100 ns against 14 ns for a 16-long one)
		var in, out [8]float32
		for i := range in {
			in[i] = -bias
		}
		copy(in[:], a[n:])
		expSumAVX2(&out[0], &in[0], 8, bias)
		for _, e := range out[:len(o)-n] {
			s += float64(e)
		}
		copy(o[n:], out[:len(o)-n])
	}
	return s
}

// sigmoidSlice sets o[i] = sigmoid(a[i]); o may alias a.
func sigmoidSlice(o, a []float32) {
	a = a[:len(o)]
	if !vecMath {
		sigmoidSliceGo(o, a)
		return
	}
	n := len(o) &^ 7
	if n > 0 {
		sigmoidAVX2(&o[0], &a[0], n)
	}
	if n < len(o) {
		vecTail(sigmoidAVX2, o[n:], a[n:], 0)
	}
}

// tanhSlice sets o[i] = tanh(a[i]); o may alias a.
func tanhSlice(o, a []float32) {
	a = a[:len(o)]
	if !vecMath {
		tanhSliceGo(o, a)
		return
	}
	n := len(o) &^ 7
	if n > 0 {
		tanhAVX2(&o[0], &a[0], n)
	}
	if n < len(o) {
		vecTail(tanhAVX2, o[n:], a[n:], 0)
	}
}
