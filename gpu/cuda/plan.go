package cuda

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
)

// maxDims is the number of dimensions binary_bcast walks; gpu.MaxRank
// bounds the rank of any tensor, and coalescing only lowers it.
const maxDims = gpu.MaxRank

// bcastPlan is the launch form of a broadcast binary op: the output viewed
// as dims (padded at the front with 1 to maxDims), and the element strides
// of a and b along each dimension (0 where the operand is broadcast).
type bcastPlan struct {
	dims, sa, sb [maxDims]int
}

// planBroadcast aligns a and b to out (the shape BroadcastShape returned),
// drops size-1 output dimensions and merges neighbours whose strides allow
// it, so that the kernel does as few divisions per element as possible.
func planBroadcast(out, a, b []int) (bcastPlan, error) {
	var p bcastPlan
	r := len(out)
	if r > maxDims || len(a) > r || len(b) > r {
		return p, fmt.Errorf("%w: broadcast of %v and %v into %v", gpu.ErrShape, a, b, out)
	}
	ext := func(s []int, i int) int {
		if j := i - (r - len(s)); j >= 0 {
			return s[j]
		}
		return 1
	}
	strides := func(s []int) []int {
		st := make([]int, r)
		acc := 1
		for i := r - 1; i >= 0; i-- {
			e := ext(s, i)
			switch {
			case e == out[i]:
				st[i] = acc
			case e == 1:
				st[i] = 0
			default:
				return nil
			}
			acc *= e
		}
		return st
	}
	fa, fb := strides(a), strides(b)
	if fa == nil || fb == nil {
		return p, fmt.Errorf("%w: cannot broadcast %v and %v into %v", gpu.ErrShape, a, b, out)
	}
	var dims, sa, sb []int
	for i := 0; i < r; i++ {
		if out[i] == 1 {
			continue
		}
		if k := len(dims) - 1; k >= 0 && sa[k] == fa[i]*out[i] && sb[k] == fb[i]*out[i] {
			dims[k] *= out[i]
			sa[k], sb[k] = fa[i], fb[i]
			continue
		}
		dims = append(dims, out[i])
		sa = append(sa, fa[i])
		sb = append(sb, fb[i])
	}
	pad := maxDims - len(dims)
	for i := 0; i < maxDims; i++ {
		p.dims[i] = 1
		if i >= pad {
			p.dims[i], p.sa[i], p.sb[i] = dims[i-pad], sa[i-pad], sb[i-pad]
		}
	}
	return p, nil
}

// offsets returns the element offsets into a and b of output element i,
// exactly as binary_bcast computes them (used by tests).
func (p bcastPlan) offsets(i int) (oa, ob int) {
	rem := i
	for k := maxDims - 1; k >= 0; k-- {
		q, r := rem/p.dims[k], rem%p.dims[k]
		oa += r * p.sa[k]
		ob += r * p.sb[k]
		rem = q
	}
	return oa, ob
}

// axisLayout views shape as [outer, length, inner] around axis.
func axisLayout(shape []int, axis int) (outer, length, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, shape[axis], inner
}

// cuBLAS operation codes (cublasOperation_t).
const (
	opN = 0 // CUBLAS_OP_N
	opT = 1 // CUBLAS_OP_T
)

// gemmCall is one column-major cublasSgemm call:
// C(m x n, ldc) = op(X)(m x k) * op(Y)(k x n), X first.
type gemmCall struct {
	opX, opY      int
	m, n, k       int
	ldx, ldy, ldc int
	swap          bool // X is the caller's b and Y its a
}

// gemmFor maps the row-major product out[m,n] = op(a) x op(b) (a and b
// stored row major, op transposing when the flag is set) onto column-major
// SGEMM. A row-major r x c matrix read column-major with ld = c is its
// transpose, so out^T = op(b)^T x op(a)^T is an SGEMM with b first: b
// untransposed is already op(b)^T in that view (OP_N, ld = n), b
// transposed needs OP_T (ld = k); likewise a with ld = k or m.
func gemmFor(m, n, k int, transA, transB bool) (gemmCall, error) {
	c := gemmCall{m: n, n: m, k: k, ldc: max(n, 1), swap: true}
	if transB {
		c.opX, c.ldx = opT, max(k, 1)
	} else {
		c.opX, c.ldx = opN, max(n, 1)
	}
	if transA {
		c.opY, c.ldy = opT, max(m, 1)
	} else {
		c.opY, c.ldy = opN, max(k, 1)
	}
	for _, v := range []int{m, n, k} {
		if v > math.MaxInt32 {
			return c, fmt.Errorf("%w: matmul dimension %d exceeds cuBLAS's 32-bit limit", gpu.ErrUnsupported, v)
		}
	}
	return c, nil
}

// Launch geometry.
const (
	elemThreads = 256 // threads per block of elementwise kernels
	maxWaves    = 8   // blocks per SM an elementwise grid is capped at
	partSlots   = 1024
)

// elemGrid returns the blocks for an n-element grid-stride kernel on a
// device with sms multiprocessors: enough to cover n, at most maxWaves
// blocks per SM, at least 1.
func elemGrid(n, sms int) int {
	if n <= 0 {
		return 1
	}
	blocks := (n + elemThreads - 1) / elemThreads
	return max(1, min(blocks, max(sms, 1)*maxWaves))
}

// rowBlock returns the block size for kernels that give each row of length
// L one block: a power of two between 32 and 256 that covers L when it can.
func rowBlock(L int) int {
	b := 32
	for b < L && b < 256 {
		b *= 2
	}
	return b
}

// rowGrid returns the blocks for a row-per-block kernel: one per row, at
// most limit (the kernels loop over rows with a grid stride).
func rowGrid(rows, limit int) int {
	return max(1, min(rows, limit))
}
