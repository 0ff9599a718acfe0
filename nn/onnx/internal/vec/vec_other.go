//go:build !amd64 || purego

package vec

func Axpy(dst, x []float32, a float32)       { axpyGo(dst, x, a) }
func Affine(dst, x []float32, a, b float32)  { affineGo(dst, x, a, b) }
func Clamp(dst, x []float32, lo, hi float32) { clampGo(dst, x, lo, hi) }
func Mul(dst, x, y []float32)                { mulGo(dst, x, y) }
func Add(dst, x, y []float32)                { addGo(dst, x, y) }
func HardSwish(dst, x []float32)             { hardSwishGo(dst, x) }
func LeakyRelu(dst, x []float32, a float32)  { leakyGo(dst, x, a) }

func Dot(x, y []float32) float32 { return dotGo(x, y) }

func MulAdd(dst, x, y []float32) { mulAddGo(dst, x, y) }

func Max(dst, x, y []float32) { maxGo(dst, x, y) }

func Sum(x []float32) float32 { return sumGo(x) }

func Dot4(out *[4]float32, x, y []float32, ldy int) { dot4Go(out, x, y, ldy) }

func Dot4x2(out *[8]float32, x []float32, ldx int, y []float32, ldy int) {
	n := len(x) - ldx
	for j := 0; j < 4; j++ {
		out[j] = dotGo(x[:n], y[j*ldy:j*ldy+n])
		out[4+j] = dotGo(x[ldx:ldx+n], y[j*ldy:j*ldy+n])
	}
}

func Gather2(dst, src []float32) { gather2Go(dst, src) }

func Taps(dst, src []float32, offs []int, wts []float32) { tapsGo(dst, src, offs, wts, 0) }

func Transpose(dst, src []float32, rows, cols int) { transposeTail(dst, src, rows, cols, 0, 0) }

func LeakyMax(dst, x []float32, b, a, c float32) { leakyMaxGo(dst, x, b, a, c) }

func GeluPoly(tp, e, x []float32)         { geluPolyGo(tp, e, x) }
func GeluCombine(dst, x, tp, e []float32) { geluCombineGo(dst, x, tp, e) }

func TransposeLd(dst, src []float32, rows, cols, lds, ldd int) {
	checkLd(dst, src, rows, cols, lds, ldd)
	transposeLdGo(dst, src, rows, cols, lds, ldd, 0, 0)
}
