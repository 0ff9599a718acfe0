package gpu

import (
	"fmt"
	"math"
)

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

// reducedOut checks that out has the shape of a reduced along axis, with or
// without the kept size-1 dimension.
func reducedOut(out *cpuTensor, in []int, axis int) error {
	if EqualShape(out.shape, ReduceShape(in, axis, false)) || EqualShape(out.shape, ReduceShape(in, axis, true)) {
		return nil
	}
	return fmt.Errorf("%w: out has shape %v, want %v (or keepdims %v)", ErrShape, out.shape, ReduceShape(in, axis, false), ReduceShape(in, axis, true))
}

// chunk is the number of inner columns handled together in strided
// reductions; the float64 accumulators live on the stack.
const chunk = 256

// Reduce reduces a along axis into out.
func (cpu *CPU) Reduce(op ReduceOp, out, a Tensor, axis int) error {
	if op < Sum || op > RMin {
		return fmt.Errorf("%w: reduce op %d", ErrUnsupported, op)
	}
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := reducedOut(o, x.shape, ax); err != nil {
		return err
	}
	outer, L, inner := axisLayout(x.shape, ax)
	if o.n == 0 {
		return nil
	}
	if inner == 1 {
		cpu.parallel(outer, max(1, elemParallelMin/max(L, 1)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				o.f[r] = reduceRow(op, x.f[r*L:r*L+L])
			}
		})
		return nil
	}
	cpu.parallel(outer, max(1, elemParallelMin/max(L*inner, 1)), func(lo, hi int) {
		var acc [chunk]float64
		for r := lo; r < hi; r++ {
			base := r * L * inner
			for j0 := 0; j0 < inner; j0 += chunk {
				w := min(chunk, inner-j0)
				dst := o.f[r*inner+j0 : r*inner+j0+w]
				switch op {
				case Sum, Mean:
					acc := acc[:w]
					clear(acc)
					for k := 0; k < L; k++ {
						src := x.f[base+k*inner+j0 : base+k*inner+j0+w]
						for j, v := range src {
							acc[j] += float64(v)
						}
					}
					div := 1.0
					if op == Mean {
						div = float64(L)
					}
					for j := range dst {
						dst[j] = float32(acc[j] / div)
					}
				case RMax, RMin:
					init := float32(math.Inf(-1))
					if op == RMin {
						init = float32(math.Inf(1))
					}
					for j := range dst {
						dst[j] = init
					}
					for k := 0; k < L; k++ {
						src := x.f[base+k*inner+j0 : base+k*inner+j0+w]
						if op == RMax {
							for j, v := range src {
								dst[j] = max32(dst[j], v)
							}
						} else {
							for j, v := range src {
								dst[j] = min32(dst[j], v)
							}
						}
					}
				}
			}
		}
	})
	return nil
}

// reduceRow reduces a contiguous row. Sums accumulate in float64 (four
// independent chains, so the adds overlap).
func reduceRow(op ReduceOp, row []float32) float32 {
	switch op {
	case Sum, Mean:
		s := sum64(row)
		if op == Mean {
			s /= float64(len(row))
		}
		return float32(s)
	case RMax:
		m := float32(math.Inf(-1))
		for _, v := range row {
			m = max32(m, v)
		}
		return m
	default:
		m := float32(math.Inf(1))
		for _, v := range row {
			m = min32(m, v)
		}
		return m
	}
}

func sum64(row []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(row); i += 4 {
		r := row[i : i+4 : i+4]
		s0 += float64(r[0])
		s1 += float64(r[1])
		s2 += float64(r[2])
		s3 += float64(r[3])
	}
	for ; i < len(row); i++ {
		s0 += float64(row[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// Softmax computes softmax (or log-softmax) of a along axis into out.
func (cpu *CPU) Softmax(out, a Tensor, axis int, log bool) error {
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := sameShape(o, x.shape, "out"); err != nil {
		return err
	}
	outer, L, inner := axisLayout(x.shape, ax)
	if o.n == 0 {
		return nil
	}
	if inner == 1 {
		cpu.parallel(outer, max(1, elemParallelMin/8/L), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				softmaxRow(o.f[r*L:r*L+L], x.f[r*L:r*L+L], log)
			}
		})
		return nil
	}
	// Along a strided axis: chunks of up to 256 columns, max over the axis,
	// then exps (written to out for softmax only, so that out may alias a
	// in both forms), then normalisation.
	cpu.parallel(outer, max(1, elemParallelMin/8/(L*inner)), func(lo, hi int) {
		var mx, norm, buf [chunk]float32
		var sum [chunk]float64
		for r := lo; r < hi; r++ {
			base := r * L * inner
			for j0 := 0; j0 < inner; j0 += chunk {
				w := min(chunk, inner-j0)
				m, s, e, nm := mx[:w], sum[:w], buf[:w], norm[:w]
				copy(m, x.f[base+j0:base+j0+w])
				clear(s)
				for k := 1; k < L; k++ {
					for j, v := range x.f[base+k*inner+j0 : base+k*inner+j0+w] {
						m[j] = max32(m[j], v)
					}
				}
				for k := 0; k < L; k++ {
					off := base + k*inner + j0
					for j, v := range x.f[off : off+w] {
						e[j] = v - m[j]
					}
					expSlice(e, e)
					for j, v := range e {
						s[j] += float64(v)
					}
					if !log {
						copy(o.f[off:off+w], e)
					}
				}
				for j := range nm {
					if log {
						nm[j] = float32(math.Log(s[j]))
					} else {
						nm[j] = float32(1 / s[j])
					}
				}
				for k := 0; k < L; k++ {
					off := base + k*inner + j0
					src, dst := x.f[off:off+w], o.f[off:off+w]
					if log {
						for j := range dst {
							dst[j] = (src[j] - m[j]) - nm[j]
						}
					} else {
						for j := range dst {
							dst[j] *= nm[j]
						}
					}
				}
			}
		}
	})
	return nil
}

// softmaxRow writes the (log-)softmax of x into o (which may alias x).
func softmaxRow(o, x []float32, log bool) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max32(m, v)
	}
	if log {
		s := expSum(x, -m)
		ls := float32(math.Log(s))
		for j, v := range x {
			o[j] = (v - m) - ls // v-m is exact for nearby values; m+ls would round
		}
		return
	}
	s := expBiasSum(o, x, -m)
	inv := float32(1 / s)
	for j := range o {
		o[j] *= inv
	}
}

// expSum returns sum_j e^(x[j]+bias) in float64 without writing anywhere
// but a stack buffer.
func expSum(x []float32, bias float32) float64 {
	var buf [chunk]float32
	var s float64
	for lo := 0; lo < len(x); lo += chunk {
		hi := min(lo+chunk, len(x))
		s += expBiasSum(buf[:hi-lo], x[lo:hi], bias)
	}
	return s
}

// ArgMax writes the index of the first maximum along axis into out (i32).
func (cpu *CPU) ArgMax(out, a Tensor, axis int) error {
	o, err := cpu.tensor(out, "out")
	if err != nil {
		return err
	}
	if o.dt != I32 {
		return fmt.Errorf("%w: argmax out is %s, want i32", ErrDType, o.dt)
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := reducedOut(o, x.shape, ax); err != nil {
		return err
	}
	outer, L, inner := axisLayout(x.shape, ax)
	if o.n == 0 {
		return nil
	}
	if L == 0 {
		return fmt.Errorf("%w: argmax along an empty axis %d of %v", ErrShape, ax, x.shape)
	}
	cpu.parallel(outer, max(1, elemParallelMin/(L*inner)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			base := r * L * inner
			for j := 0; j < inner; j++ {
				best, bi := x.f[base+j], 0
				for k := 1; k < L; k++ {
					if v := x.f[base+k*inner+j]; v > best {
						best, bi = v, k
					}
				}
				o.i[r*inner+j] = int32(bi)
			}
		}
	})
	return nil
}
