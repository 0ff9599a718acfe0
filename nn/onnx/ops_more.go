package onnx

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fennec-edge/fennec/nn"
)

// rnnArgs are the checked operands of GRU and RNN: X [seq, batch, in],
// W [dirs, g*hid, in], R [dirs, g*hid, hid], B [dirs, 2*g*hid],
// sequence_lens [batch], initial_h [dirs, batch, hid]; layout 0.
type rnnArgs struct {
	x, w, r, b, h0          *nn.Tensor
	lens                    []int
	seq, batch, inSize, hid int
	dirs                    int
	dir                     string
}

func rnnOperands(c *kctx, in []*nn.Tensor, gates int, defaultActs []string) (*rnnArgs, error) {
	opt := func(i int) *nn.Tensor {
		if i < len(in) {
			return in[i]
		}
		return nil
	}
	a := &rnnArgs{x: in[0], w: in[1], r: in[2], b: opt(3), h0: opt(5)}
	if c.n.attrInt("layout", 0) != 0 {
		return nil, fmt.Errorf("%w: layout=1", ErrUnsupported)
	}
	if at, ok := c.n.attrs["clip"]; ok && at != nil {
		return nil, fmt.Errorf("%w: clip", ErrUnsupported)
	}
	if at, ok := c.n.attrs["activations"]; ok && at != nil {
		acts := at.strs
		for i, s := range acts {
			if want := defaultActs[i%len(defaultActs)]; !strings.EqualFold(s, want) {
				return nil, fmt.Errorf("%w: activations %v (only the defaults %v)", ErrUnsupported, acts, defaultActs)
			}
		}
	}
	for _, t := range []*nn.Tensor{a.x, a.w, a.r, a.b, a.h0} {
		if t != nil && t.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: %v input", ErrUnsupported, t)
		}
	}
	if len(a.x.Shape) != 3 || len(a.w.Shape) != 3 || len(a.r.Shape) != 3 {
		return nil, fmt.Errorf("%w: X %v, W %v, R %v (want rank 3)", ErrInvalid, a.x.Shape, a.w.Shape, a.r.Shape)
	}
	a.seq, a.batch, a.inSize = a.x.Shape[0], a.x.Shape[1], a.x.Shape[2]
	a.hid = int(c.n.attrInt("hidden_size", int64(a.r.Shape[2])))
	a.dirs = 1
	a.dir = c.n.attrString("direction", "forward")
	switch a.dir {
	case "forward", "reverse":
	case "bidirectional":
		a.dirs = 2
	default:
		return nil, fmt.Errorf("%w: direction %q", ErrInvalid, a.dir)
	}
	gh := gates * a.hid
	if a.hid <= 0 || a.w.Shape[0] != a.dirs || a.w.Shape[1] != gh || a.w.Shape[2] != a.inSize ||
		a.r.Shape[0] != a.dirs || a.r.Shape[1] != gh || a.r.Shape[2] != a.hid {
		return nil, fmt.Errorf("%w: W %v and R %v for hidden_size %d, %d direction(s), input %v", ErrInvalid, a.w.Shape, a.r.Shape, a.hid, a.dirs, a.x.Shape)
	}
	if a.b != nil && !slices.Equal(a.b.Shape, []int{a.dirs, 2 * gh}) {
		return nil, fmt.Errorf("%w: B is %v, want %v", ErrInvalid, a.b.Shape, []int{a.dirs, 2 * gh})
	}
	if a.h0 != nil && !slices.Equal(a.h0.Shape, []int{a.dirs, a.batch, a.hid}) {
		return nil, fmt.Errorf("%w: initial_h is %v, want %v", ErrInvalid, a.h0.Shape, []int{a.dirs, a.batch, a.hid})
	}
	a.lens = make([]int, a.batch)
	for i := range a.lens {
		a.lens[i] = a.seq
	}
	if sl := opt(4); sl != nil {
		v, err := ints(sl)
		if err != nil {
			return nil, err
		}
		if len(v) != a.batch {
			return nil, fmt.Errorf("%w: sequence_lens has %d values for a batch of %d", ErrInvalid, len(v), a.batch)
		}
		for i, l := range v {
			if l < 0 || l > int64(a.seq) {
				return nil, fmt.Errorf("%w: sequence_lens[%d] = %d outside 0..%d", ErrInvalid, i, l, a.seq)
			}
			a.lens[i] = int(l)
		}
	}
	return a, nil
}

// timeOf is the time index that step s of direction d reads for a batch
// entry of length l (reverse directions start at its last valid step).
func (a *rnnArgs) timeOf(d, s, l int) int {
	if a.dir == "reverse" || d == 1 {
		return l - 1 - s
	}
	return s
}

// gru implements ONNX GRU (gates z, r, h; sigmoid and tanh; either
// linear_before_reset), every direction, initial state and sequence
// lengths: past a batch entry's length its outputs are zero and its state
// is kept, as onnxruntime does.
func gru(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a, err := rnnOperands(c, in, 3, []string{"Sigmoid", "Tanh"})
	if err != nil {
		return nil, err
	}
	lbr := c.n.attrInt("linear_before_reset", 0) != 0
	seq, batch, hid, dirs := a.seq, a.batch, a.hid, a.dirs
	y, err := c.alloc(nn.Float32, []int{seq, dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	clear(y.F32)
	yh, err := c.alloc(nn.Float32, []int{dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	g3 := 3 * hid
	xw, hr := c.s.hostGet(seq*batch*g3), c.s.hostGet(batch*g3)
	defer c.s.hostPut(xw)
	defer c.s.hostPut(hr)
	rh := make([]float32, batch*hid) // r ⊙ H, for linear_before_reset 0
	hh := make([]float32, batch*hid) // (r ⊙ H) Rh^T
	for d := 0; d < dirs; d++ {
		wd := a.w.F32[d*g3*a.inSize : (d+1)*g3*a.inSize]
		rd := a.r.F32[d*g3*hid : (d+1)*g3*hid]
		if err := c.gemm(xw, a.x.F32, wd, seq*batch, a.inSize, g3, false, true, false, c.isConst(a.w)); err != nil {
			return nil, err
		}
		h := make([]float32, batch*hid)
		if a.h0 != nil {
			copy(h, a.h0.F32[d*batch*hid:])
		}
		wb, rb := make([]float32, g3), make([]float32, g3)
		if a.b != nil {
			copy(wb, a.b.F32[d*2*g3:])
			copy(rb, a.b.F32[d*2*g3+g3:])
		}
		for s := 0; s < seq; s++ {
			// z and r (and h when linear_before_reset) recurrent products
			// for the whole batch.
			if err := c.gemm(hr, h, rd, batch, hid, g3, false, true, false, false); err != nil {
				return nil, err
			}
			if !lbr {
				for bi := 0; bi < batch; bi++ {
					if s >= a.lens[bi] {
						continue
					}
					t := a.timeOf(d, s, a.lens[bi])
					gx, gh := xw[(t*batch+bi)*g3:], hr[bi*g3:]
					for j := 0; j < hid; j++ {
						r := logistic(gx[hid+j] + gh[hid+j] + wb[hid+j] + rb[hid+j])
						rh[bi*hid+j] = r * h[bi*hid+j]
					}
				}
				if err := c.gemm(hh, rh, rd[2*hid*hid:], batch, hid, hid, false, true, false, false); err != nil {
					return nil, err
				}
			}
			for bi := 0; bi < batch; bi++ {
				if s >= a.lens[bi] {
					continue
				}
				t := a.timeOf(d, s, a.lens[bi])
				gx, gh := xw[(t*batch+bi)*g3:], hr[bi*g3:]
				hb := h[bi*hid : (bi+1)*hid]
				for j := 0; j < hid; j++ {
					z := logistic(gx[j] + gh[j] + wb[j] + rb[j])
					var cand float32
					if lbr {
						r := logistic(gx[hid+j] + gh[hid+j] + wb[hid+j] + rb[hid+j])
						cand = gx[2*hid+j] + wb[2*hid+j] + r*(gh[2*hid+j]+rb[2*hid+j])
					} else {
						cand = gx[2*hid+j] + wb[2*hid+j] + hh[bi*hid+j] + rb[2*hid+j]
					}
					ht := float32(math.Tanh(float64(cand)))
					hb[j] = (1-z)*ht + z*hb[j]
				}
				copy(y.F32[((t*dirs+d)*batch+bi)*hid:], hb)
			}
		}
		copy(yh.F32[d*batch*hid:], h)
	}
	return []*nn.Tensor{y, yh}, nil
}

// rnn implements ONNX RNN with tanh, every direction, initial state and
// sequence lengths.
func rnn(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a, err := rnnOperands(c, in, 1, []string{"Tanh"})
	if err != nil {
		return nil, err
	}
	seq, batch, hid, dirs := a.seq, a.batch, a.hid, a.dirs
	y, err := c.alloc(nn.Float32, []int{seq, dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	clear(y.F32)
	yh, err := c.alloc(nn.Float32, []int{dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	xw, hr := c.s.hostGet(seq*batch*hid), c.s.hostGet(batch*hid)
	defer c.s.hostPut(xw)
	defer c.s.hostPut(hr)
	for d := 0; d < dirs; d++ {
		wd := a.w.F32[d*hid*a.inSize : (d+1)*hid*a.inSize]
		rd := a.r.F32[d*hid*hid : (d+1)*hid*hid]
		if err := c.gemm(xw, a.x.F32, wd, seq*batch, a.inSize, hid, false, true, false, c.isConst(a.w)); err != nil {
			return nil, err
		}
		h := make([]float32, batch*hid)
		if a.h0 != nil {
			copy(h, a.h0.F32[d*batch*hid:])
		}
		bias := make([]float32, hid)
		if a.b != nil {
			for j := range bias {
				bias[j] = a.b.F32[d*2*hid+j] + a.b.F32[d*2*hid+hid+j]
			}
		}
		for s := 0; s < seq; s++ {
			if err := c.gemm(hr, h, rd, batch, hid, hid, false, true, false, false); err != nil {
				return nil, err
			}
			for bi := 0; bi < batch; bi++ {
				if s >= a.lens[bi] {
					continue
				}
				t := a.timeOf(d, s, a.lens[bi])
				hb := h[bi*hid : (bi+1)*hid]
				for j := range hb {
					hb[j] = float32(math.Tanh(float64(xw[(t*batch+bi)*hid+j] + hr[bi*hid+j] + bias[j])))
				}
				copy(y.F32[((t*dirs+d)*batch+bi)*hid:], hb)
			}
		}
		copy(yh.F32[d*batch*hid:], h)
	}
	return []*nn.Tensor{y, yh}, nil
}

// split implements Split: sizes from the split input (opset 13+), the split
// attribute (before 13), num_outputs (18+) or equal parts.
func split(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("%w: Split of a scalar", ErrInvalid)
	}
	axis, err := normAxis(c.n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return nil, err
	}
	nOut := len(c.n.outputs)
	if nOut == 0 {
		return nil, fmt.Errorf("%w: Split without outputs", ErrInvalid)
	}
	dim := x.Shape[axis]
	var sizes []int64
	if len(in) > 1 && in[1] != nil {
		if sizes, err = ints(in[1]); err != nil {
			return nil, err
		}
	} else if v, ok := c.n.attrInts("split"); ok {
		sizes = v
	}
	if sizes == nil {
		if no := c.n.attrInt("num_outputs", 0); no != 0 && int(no) != nOut {
			return nil, fmt.Errorf("%w: num_outputs %d for %d outputs", ErrInvalid, no, nOut)
		}
		// Equal parts; with num_outputs the last may be smaller (ceil).
		part := (dim + nOut - 1) / nOut
		if c.n.attrInt("num_outputs", 0) == 0 && dim%nOut != 0 {
			return nil, fmt.Errorf("%w: dimension %d does not split into %d equal parts", ErrInvalid, dim, nOut)
		}
		for i, left := 0, dim; i < nOut; i++ {
			sizes = append(sizes, int64(min(part, left)))
			left -= min(part, left)
		}
	}
	if len(sizes) != nOut {
		return nil, fmt.Errorf("%w: %d split sizes for %d outputs", ErrInvalid, len(sizes), nOut)
	}
	var total int64
	for _, s := range sizes {
		if s < 0 {
			return nil, fmt.Errorf("%w: split size %d", ErrInvalid, s)
		}
		total += s
	}
	if total != int64(dim) {
		return nil, fmt.Errorf("%w: split sizes %v add up to %d, the axis has %d", ErrInvalid, sizes, total, dim)
	}
	outer, inner := 1, 1
	for _, d := range x.Shape[:axis] {
		outer *= d
	}
	for _, d := range x.Shape[axis+1:] {
		inner *= d
	}
	outs := make([]*nn.Tensor, nOut)
	off := 0
	for k, s := range sizes {
		shape := slices.Clone(x.Shape)
		shape[axis] = int(s)
		o, err := c.alloc(x.DType, shape)
		if err != nil {
			return nil, err
		}
		n := int(s) * inner
		for i := 0; i < outer; i++ {
			src, dst := i*dim*inner+off*inner, i*n
			for e := 0; e < n; e++ {
				copyElem(o, dst+e, x, src+e)
			}
		}
		off += int(s)
		outs[k] = o
	}
	return outs, nil
}

// tile implements Tile; the output's size is checked by alloc before
// anything is copied.
func tile(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	reps, err := ints(in[1])
	if err != nil {
		return nil, err
	}
	if len(reps) != len(x.Shape) {
		return nil, fmt.Errorf("%w: %d repeats for input %v", ErrInvalid, len(reps), x.Shape)
	}
	shape := make([]int, len(x.Shape))
	for i, r := range reps {
		if r < 0 || r > math.MaxInt32 {
			return nil, fmt.Errorf("%w: repeats %v", ErrInvalid, reps)
		}
		hi := int64(x.Shape[i]) * r
		if hi > math.MaxInt32 {
			return nil, fmt.Errorf("%w: repeats %v of input %v: dimension over 2^31", ErrInvalid, reps, x.Shape)
		}
		shape[i] = int(hi)
	}
	out, err := c.alloc(x.DType, shape)
	if err != nil {
		return nil, err
	}
	n := out.Len()
	if n == 0 {
		return []*nn.Tensor{out}, nil
	}
	idx := make([]int, len(shape))
	for o := 0; o < n; o++ {
		// Source index: each output coordinate modulo the input's dim.
		src := 0
		for k := range shape {
			src = src*x.Shape[k] + idx[k]%x.Shape[k]
		}
		copyElem(out, o, x, src)
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return []*nn.Tensor{out}, nil
}

// trilu implements Trilu over the last two dimensions.
func trilu(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if len(x.Shape) < 2 {
		return nil, fmt.Errorf("%w: Trilu of %v (want rank >= 2)", ErrInvalid, x.Shape)
	}
	var k int64
	if len(in) > 1 && in[1] != nil {
		v, err := ints(in[1])
		if err != nil || len(v) != 1 {
			return nil, fmt.Errorf("%w: k must be one integer", ErrInvalid)
		}
		k = v[0]
	}
	upper := c.n.attrInt("upper", 1) != 0
	out, err := c.alloc(x.DType, x.Shape)
	if err != nil {
		return nil, err
	}
	rows, cols := x.Shape[len(x.Shape)-2], x.Shape[len(x.Shape)-1]
	zero := &nn.Tensor{DType: x.DType, F32: []float32{0}, I64: []int64{0}, I32: []int32{0}, U8: []uint8{0}}
	n := x.Len()
	for i := 0; i < n; i++ {
		col := i % cols
		row := (i / cols) % rows
		keep := int64(col-row) >= k
		if !upper {
			keep = int64(col-row) <= k
		}
		if keep {
			copyElem(out, i, x, i)
		} else {
			copyElem(out, i, zero, 0)
		}
	}
	return []*nn.Tensor{out}, nil
}

func init() {
	rnnAttrs := []string{"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout"}
	reg("GRU", opDef{since: 7, attrs: append(slices.Clone(rnnAttrs), "linear_before_reset"), minIn: 3, maxIn: 6, run: gru, backend: true})
	reg("RNN", opDef{since: 7, attrs: rnnAttrs, minIn: 3, maxIn: 6, run: rnn, backend: true})
	reg("Split", opDef{since: 2, attrs: []string{"axis", "split", "num_outputs"}, minIn: 1, maxIn: 2, run: split, foldable: true})
	reg("Tile", opDef{since: 6, minIn: 2, maxIn: 2, run: tile, foldable: true})
	reg("Trilu", opDef{since: 14, attrs: []string{"upper"}, minIn: 1, maxIn: 2, run: trilu, foldable: true})
}

// logistic is the scalar sigmoid of the GRU gates.
func logistic(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}
