package gpu

import (
	"fmt"
	"github.com/fennec-edge/fennec/internal/par"
	"sync"
)

// SGEMM: C = op(A) x op(B), row major, in the BLIS style. op(B) is packed in
// panels of kc x nc (strips of NR columns, contiguous per k), op(A) in blocks
// of mc x kc (strips of MR rows); a register-blocked micro-kernel multiplies
// one MR-row strip by one NR-column strip over kc. Transposes are absorbed by
// the packing, so one micro-kernel serves all four transpose combinations.
// Large products are split by rows (or columns when the result is wide and
// short) across goroutines, each packing its own panels.

// gemmKernel describes one micro-kernel and its blocking.
type gemmKernel struct {
	name       string
	mr, nr     int
	kc, mc, nc int
	// micro computes the MR x NR tile c (row stride ldc) as the product of
	// an MR x kc block of A, element (r, p) at a[r*rs + p*ks], and the packed
	// strip b (kc*NR), adding to c when acc is set and overwriting it
	// otherwise. kc >= 1.
	micro func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)
	// tails, when set, holds for each h in [1, mr) a micro-kernel of the
	// same form that computes an h x NR tile (tails[0] is unused): a last
	// strip of h rows of a row-major A is then read in place, not copied
	// into a zero-padded strip and multiplied through mr-h rows of zeros.
	tails []func(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)
}

var kernels = map[string]*gemmKernel{}

func registerKernel(k *gemmKernel) { kernels[k.name] = k }

// kernelOrder lists micro-kernels from fastest to slowest; selectKernel picks
// the first one registered (the assembly ones register only when the CPU
// supports them).
var kernelOrder = []string{"avx512", "avx2", "go"}

func init() {
	registerKernel(&gemmKernel{name: "go", mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048, micro: microGo})
}

func selectKernel(name string) (*gemmKernel, error) {
	if name == "" || name == "auto" {
		for _, n := range kernelOrder {
			if k, ok := kernels[n]; ok {
				return k, nil
			}
		}
	}
	if k, ok := kernels[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: kernel %q is not available on this CPU (have %v)", ErrUnsupported, name, AvailableKernels())
}

// AvailableKernels lists the SGEMM micro-kernels this CPU can run, fastest
// first.
func AvailableKernels() []string {
	var out []string
	for _, n := range kernelOrder {
		if _, ok := kernels[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// microGo is the portable 4x4 micro-kernel.
func microGo(kc int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	_ = a[3*rs+(kc-1)*ks]
	b = b[:kc*4]
	for p := 0; p < kc; p++ {
		bp := b[4*p : 4*p+4 : 4*p+4]
		o := p * ks
		a0, a1, a2, a3 := a[o], a[o+rs], a[o+2*rs], a[o+3*rs]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r0 := c[0:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	r2 := c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r3 := c[3*ldc : 3*ldc+4 : 3*ldc+4]
	if acc {
		r0[0], r0[1], r0[2], r0[3] = r0[0]+c00, r0[1]+c01, r0[2]+c02, r0[3]+c03
		r1[0], r1[1], r1[2], r1[3] = r1[0]+c10, r1[1]+c11, r1[2]+c12, r1[3]+c13
		r2[0], r2[1], r2[2], r2[3] = r2[0]+c20, r2[1]+c21, r2[2]+c22, r2[3]+c23
		r3[0], r3[1], r3[2], r3[3] = r3[0]+c30, r3[1]+c31, r3[2]+c32, r3[3]+c33
		return
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
	r3[0], r3[1], r3[2], r3[3] = c30, c31, c32, c33
}

// matView is a row-major matrix operand, optionally transposed: element
// (i, j) of op(M) is d[i*ld+j], or d[j*ld+i] when t is set.
type matView struct {
	d  []float32
	ld int
	t  bool
	// rows, when set (B only, not transposed), gives where each row of B
	// starts in d instead of i*ld: SgemmRows.
	rows []int
}

// row returns the offset of row i of a non-transposed operand.
func (v *matView) row(i int) int {
	if v.rows != nil {
		return v.rows[i]
	}
	return i * v.ld
}

// gemmBuf holds one goroutine's packing buffers.
type gemmBuf struct {
	a, b, tile []float32
	at         []float32 // the packed partial last strip of a row-major A
}

var gemmBufs = sync.Pool{New: func() any { return new(gemmBuf) }}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// gemmParallelFlops is the least work (multiply-adds, packing included:
// see sgemm) of a product's part on a thread of its own: products under two
// of them stay on the calling goroutine. About 100 microseconds of the
// AVX-512 kernel: starting a goroutine costs a microsecond, but on the
// busy 2-vCPU VM the helper's thread often gets a core only tens of
// microseconds later, or loses it mid-part, and the caller waits for it.
// Measured there (embedding_model at two threads, load 9-12): splitting
// its 1-7M multiply-add products made the median 1.64-1.85 ms against
// 1.28-1.43 unsplit (64^3, the old value, split products of 5 us).
const gemmParallelFlops = 1 << 22

// packCost is the cost of packing one element of B, in multiply-adds of
// the micro-kernel (measured on the AVX-512 kernel: 0.35 ns against 24 ps).
const packCost = 16

// sgemm computes c[m x n] (row stride ldc) = op(A)[m x k] x op(B)[k x n].
func (cpu *CPU) sgemm(m, n, k int, a, b matView, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	if m <= 2 && !b.t && !a.t && b.rows == nil && m*n*k < 1<<22 {
		// a few rows: y_i = sum_p a[i,p] * B[p,:] as vector axpys over
		// B's rows, with no packing (which would cost more than the product)
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			clear(row)
			for p := 0; p < k; p++ {
				axpy(row, b.d[p*b.ld:p*b.ld+n], a.d[i*a.ld+p])
			}
		}
		return
	}
	kern := cpu.kernelFor(n) // assigned once: the closures below copy it, not allocate it
	threads := cpu.Threads()
	// the work the kernel does, in multiply-adds: whole register strips of
	// rows and columns (a 4-row product costs a 12-row strip on the AVX-512
	// kernel), and packing B, about packCost multiply-adds an element (a
	// product with few rows is mostly packing: 12x6400x48 takes 190 us,
	// 90 of them in the kernel)
	mw, nw := roundUp(m, kern.mr), roundUp(n, kern.nr)
	work := (mw + packCost) * nw * k
	if threads <= 1 || work < gemmParallelFlops {
		gemmSerial(kern, 0, m, 0, n, k, a, b, c, ldc)
		return
	}
	// Split the larger side into chunks aligned to the register block,
	// claimed by the calling goroutine and a helper per further thread as
	// they start (internal/par), each with enough work to be worth it.
	// Columns when there are two strips of them or more and A is read in
	// place: each chunk then packs only its own columns of B. Rows pack
	// all of B per chunk, so a row split has one chunk per thread.
	splitM := m >= n
	if !a.t && n >= 2*kern.nr {
		splitM = false
	}
	// a column strip's work (its own packing included) or a row strip's
	// (which shares the packing of all of B)
	span, unit, perUnit := m, kern.mr, kern.mr*nw*k
	if !splitM {
		span, unit, perUnit = n, kern.nr, kern.nr*(mw+packCost)*k
	}
	units := (span + unit - 1) / unit
	grain := max(1, gemmParallelFlops/max(1, perUnit))
	if !par.Parallel(threads, units, grain) {
		gemmSerial(kern, 0, m, 0, n, k, a, b, c, ldc)
		return
	}
	chunks := par.ChunksPerThread * threads
	if splitM {
		chunks = threads
	}
	par.ForChunks(threads, units, grain, chunks, func(lo, hi int) {
		lo, hi = min(span, lo*unit), min(span, hi*unit)
		if splitM {
			gemmSerial(kern, lo, hi, 0, n, k, a, b, c, ldc)
		} else {
			gemmSerial(kern, 0, m, lo, hi, k, a, b, c, ldc)
		}
	})
}

// kernelFor picks the micro-kernel for an n-column product: a 16-wide
// kernel wastes less of each register tile on narrow outputs.
func (cpu *CPU) kernelFor(n int) *gemmKernel {
	if n <= 16 && cpu.kern.nr > 16 && cpu.narrow != nil {
		return cpu.narrow
	}
	return cpu.kern
}

// gemmSerial computes rows [m0,m1) and columns [n0,n1) of C on this goroutine.
func gemmSerial(kern *gemmKernel, m0, m1, n0, n1, k int, a, b matView, c []float32, ldc int) {
	buf := gemmBufs.Get().(*gemmBuf)
	defer gemmBufs.Put(buf)
	mr, nr := kern.mr, kern.nr
	kcMax := min(kern.kc, k)
	mcMax := min(kern.mc, roundUp(m1-m0, mr))
	ncMax := min(kern.nc, roundUp(n1-n0, nr))
	if a.t {
		buf.a = grow(buf.a, mcMax*kcMax)
	} else {
		buf.a = grow(buf.a, mr*kcMax)
	}
	buf.b = grow(buf.b, ncMax*kcMax)
	buf.tile = grow(buf.tile, mr*nr)
	tile := buf.tile
	for jc := n0; jc < n1; jc += kern.nc {
		nc := min(kern.nc, n1-jc)
		for pc := 0; pc < k; pc += kern.kc {
			kc := min(kern.kc, k-pc)
			acc := pc > 0
			// With all the rows in one block of a row-major A (a
			// convolution's 16-64 output channels), each strip of B is
			// packed just before the few micro-kernel calls that read it,
			// into one strip's buffer that stays in L1, instead of the
			// whole panel first (the first convolution of t_resnet packs
			// a 660 KB panel, past L2, to read each strip twice).
			byStrip := !a.t && m1-m0 <= kern.mc
			bp := buf.b[:roundUp(nc, nr)*kc]
			if byStrip {
				bp = buf.b[:nr*kc]
			} else {
				packB(bp, b, pc, kc, jc, nc, nr)
			}
			for ic := m0; ic < m1; ic += kern.mc {
				mc := min(kern.mc, m1-ic)
				// Row-major A is read in place (rows are contiguous runs
				// of kc); a transposed A is packed into strips, and so is
				// a partial last strip, which must be zero padded.
				var ap []float32
				if a.t {
					ap = buf.a[:roundUp(mc, mr)*kc]
					packA(ap, a, ic, mc, pc, kc, mr)
				}
				// A partial last strip of a row-major A, for a kernel
				// without tail kernels, is packed (zero padded) once per
				// block here, not once per column strip: with M = 16 or
				// 200 on the 12-row AVX-512 kernel that repacking was a
				// sixth of a product's time.
				var at []float32
				if last := mc / mr * mr; !a.t && kern.tails == nil && last < mc {
					buf.at = grow(buf.at, mr*kc)
					at = buf.at[:mr*kc]
					packA(at, a, ic+last, mc-last, pc, kc, mr)
				}
				for jr := 0; jr < nc; jr += nr {
					nw := min(nr, nc-jr)
					var bs []float32
					if byStrip {
						bs = bp
						packB(bs, b, pc, kc, jc+jr, nw, nr)
					} else {
						bs = bp[jr*kc : (jr+nr)*kc]
					}
					for ir := 0; ir < mc; ir += mr {
						mh := min(mr, mc-ir)
						var as []float32
						rs, ks := 1, mr
						micro := kern.micro
						direct := mh == mr // the kernel writes exactly mh rows
						switch {
						case a.t:
							as = ap[ir*kc : (ir+mr)*kc]
						case mh == mr:
							as = a.d[(ic+ir)*a.ld+pc:]
							rs, ks = a.ld, 1
						case kern.tails != nil:
							as = a.d[(ic+ir)*a.ld+pc:]
							rs, ks = a.ld, 1
							micro = kern.tails[mh]
							direct = true
						default:
							as = at
						}
						off := (ic+ir)*ldc + jc + jr
						if nw == nr && direct {
							// a full-width tile straight into C
							micro(kc, as, rs, ks, bs, c[off:], ldc, acc)
							continue
						}
						micro(kc, as, rs, ks, bs, tile, nr, false)
						for r := 0; r < mh; r++ {
							dst := c[off+r*ldc : off+r*ldc+nw]
							src := tile[r*nr : r*nr+nw]
							if acc {
								for j, v := range src {
									dst[j] += v
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into strips
// of mr rows: dst[s*kc*mr + p*mr + r] = op(A)[i0+s*mr+r, p0+p], zero padded.
func packA(dst []float32, a matView, i0, mc, p0, kc, mr int) {
	for s := 0; s*mr < mc; s++ {
		strip := dst[s*kc*mr : (s+1)*kc*mr]
		rows := min(mr, mc-s*mr)
		base := i0 + s*mr
		if a.t {
			// op(A)[i, p] = d[p*ld + i]: each k step is a contiguous run.
			for p := 0; p < kc; p++ {
				src := a.d[(p0+p)*a.ld+base : (p0+p)*a.ld+base+rows]
				d := strip[p*mr : p*mr+mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		for r := 0; r < rows; r++ {
			src := a.d[(base+r)*a.ld+p0 : (base+r)*a.ld+p0+kc]
			for p, v := range src {
				strip[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				strip[p*mr+r] = 0
			}
		}
	}
}

// packB packs rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into strips
// of nr columns: dst[s*kc*nr + p*nr + c] = op(B)[p0+p, j0+s*nr+c], zero padded.
func packB(dst []float32, b matView, p0, kc, j0, nc, nr int) {
	for s := 0; s*nr < nc; s++ {
		strip := dst[s*kc*nr : (s+1)*kc*nr]
		cols := min(nr, nc-s*nr)
		base := j0 + s*nr
		if !b.t {
			if cols == nr && nr%16 == 0 {
				done := true
				for h := 0; h < nr && done; h += 16 {
					done = packRows16(strip[h:], &b, p0, kc, base+h, nr)
				}
				if done {
					continue
				}
			}
			for p := 0; p < kc; p++ {
				r := b.row(p0 + p)
				src := b.d[r+base : r+base+cols]
				d := strip[p*nr : p*nr+nr]
				copy(d, src)
				clear(d[cols:])
			}
			continue
		}
		// op(B)[p, j] = d[j*ld + p]
		for cc := 0; cc < cols; cc++ {
			src := b.d[(base+cc)*b.ld+p0 : (base+cc)*b.ld+p0+kc]
			for p, v := range src {
				strip[p*nr+cc] = v
			}
		}
		for cc := cols; cc < nr; cc++ {
			for p := 0; p < kc; p++ {
				strip[p*nr+cc] = 0
			}
		}
	}
}

// MatMul computes out = op(a) x op(b).
func (cpu *CPU) MatMul(out, a, b Tensor, transA, transB bool) error {
	return cpu.MatMulRows(out, a, b, transA, transB, 0, -1)
}

// MatMulRows implements RowRanger; r1 < 0 means all rows.
func (cpu *CPU) MatMulRows(out, a, b Tensor, transA, transB bool, r0, r1 int) error {
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	y, err := cpu.f32(b, "b")
	if err != nil {
		return err
	}
	if len(x.shape) != 2 || len(y.shape) != 2 || len(o.shape) != 2 {
		return fmt.Errorf("%w: matmul needs rank-2 tensors, got out %v, a %v, b %v", ErrShape, o.shape, x.shape, y.shape)
	}
	m, ka, kb, n := x.shape[0], x.shape[1], y.shape[0], y.shape[1]
	if transA {
		m, ka = ka, m
	}
	if transB {
		kb, n = n, kb
	}
	if ka != kb {
		return fmt.Errorf("%w: matmul inner dimensions differ: %v x %v (transA=%v transB=%v)", ErrShape, x.shape, y.shape, transA, transB)
	}
	if o.shape[0] != m || o.shape[1] != n {
		return fmt.Errorf("%w: out has shape %v, want [%d %d]", ErrShape, o.shape, m, n)
	}
	if o == x || o == y {
		return fmt.Errorf("%w: matmul out aliases an input", ErrUnsupported)
	}
	if r1 < 0 {
		r1 = m
	}
	if r0 < 0 || r0 > r1 || r1 > m {
		return fmt.Errorf("%w: rows [%d, %d) of a %d-row product", ErrShape, r0, r1, m)
	}
	// Row i of op(a) starts at element i*ld, or at element i of a
	// transposed a (whose rows are op(a)'s columns).
	av := matView{d: x.f, ld: x.shape[1], t: transA}
	if r0 > 0 && n > 0 && ka > 0 {
		if transA {
			av.d = av.d[r0:]
		} else {
			av.d = av.d[r0*av.ld:]
		}
	}
	cpu.sgemm(r1-r0, n, ka, av, matView{d: y.f, ld: y.shape[1], t: transB}, o.f[r0*n:], n)
	return nil
}

// Sgemm computes c = op(a) x op(b) on plain row-major slices with this
// backend's kernels and threads: op(a) is m x k, op(b) is k x n, c is m x n
// (contiguous). It is the library entry point for code in this module that
// holds raw slices (quantized and sparse layers, benchmarks).
func (cpu *CPU) Sgemm(transA, transB bool, m, n, k int, a, b, c []float32) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("%w: negative sgemm size %dx%dx%d", ErrShape, m, n, k)
	}
	if len(a) < m*k || len(b) < k*n || len(c) < m*n {
		return fmt.Errorf("%w: sgemm %dx%dx%d with slices of %d, %d, %d", ErrShape, m, n, k, len(a), len(b), len(c))
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	cpu.sgemm(m, n, k, matView{d: a, ld: lda, t: transA}, matView{d: b, ld: ldb, t: transB}, c, n)
	return nil
}

// SgemmRows computes c = a x B like Sgemm (a is m x k row-major, c is m x n
// contiguous), where row p of B is b[rows[p] : rows[p]+n]: B's rows may lie
// anywhere in b, overlap or repeat. This is im2col without the copy: a
// convolution's unrolled input is, row by row, a run of its padded input
// planes. len(rows) must be k and every row must lie inside b.
func (cpu *CPU) SgemmRows(m, n, k int, a, b []float32, rows []int, c []float32) error {
	return cpu.SgemmRowsLd(m, n, k, a, b, rows, c, n)
}

// SgemmRowsLd is SgemmRows with rows of c ldc (>= n) elements apart.
func (cpu *CPU) SgemmRowsLd(m, n, k int, a, b []float32, rows []int, c []float32, ldc int) error {
	if m < 0 || n < 0 || k < 0 || ldc < n {
		return fmt.Errorf("%w: sgemm size %dx%dx%d, ldc %d", ErrShape, m, n, k, ldc)
	}
	if len(a) < m*k || (m > 0 && len(c) < (m-1)*ldc+n) || len(rows) != k {
		return fmt.Errorf("%w: sgemm %dx%dx%d (ldc %d) with slices of %d and %d and %d row offsets", ErrShape, m, n, k, ldc, len(a), len(c), len(rows))
	}
	for p, r := range rows {
		if r < 0 || r > len(b)-n {
			return fmt.Errorf("%w: row %d of B at %d (+%d) outside its %d elements", ErrShape, p, r, n, len(b))
		}
	}
	cpu.sgemm(m, n, k, matView{d: a, ld: k}, matView{d: b, ld: n, rows: rows}, c, ldc)
	return nil
}
