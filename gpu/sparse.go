package gpu

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/fennec-edge/fennec/internal/par"
)

// Magnitude pruning and sparse inference.

// Prune zeroes the smallest-magnitude entries of w in place so that at least
// the fraction sparsity (in [0, 1)) of them are zero, and returns the
// magnitude threshold used (entries with |w| <= threshold are zero). Ties at
// the threshold are all pruned, so the achieved sparsity can be a little
// higher than asked.
func Prune(w []float32, sparsity float64) (float32, error) {
	if !(sparsity >= 0 && sparsity < 1) {
		return 0, fmt.Errorf("gpu: prune sparsity %v not in [0, 1)", sparsity)
	}
	if len(w) == 0 {
		return 0, nil
	}
	k := int(math.Ceil(sparsity * float64(len(w))))
	if k == 0 {
		return 0, nil
	}
	a := make([]float32, len(w))
	for i, v := range w {
		a[i] = abs32(v)
	}
	slices.Sort(a)
	th := a[k-1]
	for i, v := range w {
		if abs32(v) <= th {
			w[i] = 0
		}
	}
	return th, nil
}

// Sparsity returns the fraction of zero entries of w.
func Sparsity(w []float32) float64 {
	if len(w) == 0 {
		return 0
	}
	z := 0
	for _, v := range w {
		if v == 0 {
			z++
		}
	}
	return float64(z) / float64(len(w))
}

// SparseLinear is a fully connected layer y = x W + b whose weights W
// [In, Out] are stored in compressed sparse rows of W's transpose: output
// channel o lists its non-zero inputs Col[RowPtr[o]:RowPtr[o+1]] with values
// Val. For small batches Forward gathers inputs per output; for larger ones
// it works on the transposed batch so that each non-zero weight becomes a
// vector update over the whole batch (a SIMD axpy).
type SparseLinear struct {
	In, Out int
	RowPtr  []int32
	Col     []int32
	Val     []float32
	Bias    []float32
}

// NewSparseLinear builds the sparse layer from dense (usually pruned) f32
// weights w, row major [in, out], keeping the non-zero entries.
func NewSparseLinear(w []float32, in, out int, bias []float32) (*SparseLinear, error) {
	if in <= 0 || out <= 0 || len(w) != in*out || in > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d weights for [%d, %d]", ErrShape, len(w), in, out)
	}
	if bias != nil && len(bias) != out {
		return nil, fmt.Errorf("%w: %d biases for %d outputs", ErrShape, len(bias), out)
	}
	s := &SparseLinear{In: in, Out: out, RowPtr: make([]int32, out+1), Bias: slices.Clone(bias)}
	for o := 0; o < out; o++ {
		for k := 0; k < in; k++ {
			if v := w[k*out+o]; v != 0 {
				s.Col = append(s.Col, int32(k))
				s.Val = append(s.Val, v)
			}
		}
		if len(s.Val) > math.MaxInt32 {
			return nil, fmt.Errorf("%w: too many non-zero weights", ErrShape)
		}
		s.RowPtr[o+1] = int32(len(s.Val))
	}
	return s, nil
}

// NNZ is the number of stored weights.
func (s *SparseLinear) NNZ() int { return len(s.Val) }

// Bytes is the storage of the sparse layer: 8 bytes per non-zero (value and
// index), the row pointers and the bias.
func (s *SparseLinear) Bytes() int { return 8*len(s.Val) + 4*len(s.RowPtr) + 4*len(s.Bias) }

// sparseBatchMin is the batch from which Forward transposes the batch and
// runs vector updates rather than per-row gathers.
const sparseBatchMin = 16

type sparseBuf struct{ xt, yt []float32 }

var sparseBufs = sync.Pool{New: func() any { return new(sparseBuf) }}

// Forward computes dst [batch, Out] = x [batch, In] W + b.
func (s *SparseLinear) Forward(dst, x []float32, batch int) error {
	if batch < 0 || len(x) != batch*s.In || len(dst) != batch*s.Out {
		return fmt.Errorf("%w: forward of %d inputs into %d outputs for batch %d of [%d, %d]", ErrShape, len(x), len(dst), batch, s.In, s.Out)
	}
	threads := runtime.GOMAXPROCS(0)
	work := batch * len(s.Val)
	// At least 128K multiply-adds for a helper (grain in output columns).
	grain := max(1, s.Out*(1<<17)/max(1, work))
	parallel := func(f func(lo, hi int)) { par.For(threads, s.Out, grain, f) }
	if batch < sparseBatchMin {
		parallel(func(lo, hi int) {
			for b := 0; b < batch; b++ {
				xr := x[b*s.In : (b+1)*s.In]
				for o := lo; o < hi; o++ {
					var acc float32
					if s.Bias != nil {
						acc = s.Bias[o]
					}
					cols := s.Col[s.RowPtr[o]:s.RowPtr[o+1]]
					vals := s.Val[s.RowPtr[o]:s.RowPtr[o+1]]
					vals = vals[:len(cols)]
					for i, c := range cols {
						acc += vals[i] * xr[c]
					}
					dst[b*s.Out+o] = acc
				}
			}
		})
		return nil
	}
	// Transposed batch, padded to a multiple of 32 columns: each non-zero
	// weight then updates a 32-wide slice of one output row held in
	// registers (spRow32).
	bp := roundUp(batch, 32)
	buf := sparseBufs.Get().(*sparseBuf)
	defer sparseBufs.Put(buf)
	buf.xt = grow(buf.xt, s.In*bp)
	buf.yt = grow(buf.yt, s.Out*bp)
	xt, yt := buf.xt, buf.yt
	transposeLD(xt, bp, x, batch, s.In)
	if bp > batch {
		for k := 0; k < s.In; k++ {
			clear(xt[k*bp+batch : (k+1)*bp])
		}
	}
	parallel(func(lo, hi int) {
		for o := lo; o < hi; o++ {
			cols := s.Col[s.RowPtr[o]:s.RowPtr[o+1]]
			vals := s.Val[s.RowPtr[o]:s.RowPtr[o+1]]
			for j := 0; j < bp; j += 32 {
				spRow32(cols, vals, xt[j:], bp, yt[o*bp+j:o*bp+j+32])
			}
		}
	})
	for b := 0; b < batch; b++ {
		row := dst[b*s.Out : (b+1)*s.Out]
		for o := range row {
			v := yt[o*bp+b]
			if s.Bias != nil {
				v += s.Bias[o]
			}
			row[o] = v
		}
	}
	return nil
}

// spRow32Go is the portable spRow32.
func spRow32Go(cols []int32, vals []float32, xt []float32, ld int, out []float32) {
	var acc [32]float32
	for i, c := range cols {
		v := vals[i]
		src := xt[int(c)*ld : int(c)*ld+32]
		for j := range acc {
			acc[j] += v * src[j]
		}
	}
	copy(out, acc[:])
}

// transposeLD writes src [rows, cols] transposed into dst [cols, ld]
// (ld >= rows), in 16x16 tiles so that both sides stay in cache.
func transposeLD(dst []float32, ld int, src []float32, rows, cols int) {
	const t = 16
	for i0 := 0; i0 < rows; i0 += t {
		i1 := min(i0+t, rows)
		for j0 := 0; j0 < cols; j0 += t {
			j1 := min(j0+t, cols)
			for i := i0; i < i1; i++ {
				srow := src[i*cols+j0 : i*cols+j1]
				for j, v := range srow {
					dst[(j0+j)*ld+i] = v
				}
			}
		}
	}
}
