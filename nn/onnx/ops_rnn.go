package onnx

import (
	"fmt"
	"math"
	"slices"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// lstm implements ONNX LSTM with the default activations (sigmoid, tanh,
// tanh), gate order i, o, f, c, optional bias, initial states and
// peepholes, sequence_lens, forward, reverse or bidirectional, layout 0. The input
// projection X*W^T of all time steps is one product on the backend; the
// recurrent H*R^T is one per step.
func lstm(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	opt := func(i int) *nn.Tensor {
		if i < len(in) {
			return in[i]
		}
		return nil
	}
	x, w, r := in[0], in[1], in[2]
	b, seqLens, h0, c0, p := opt(3), opt(4), opt(5), opt(6), opt(7)
	if c.n.attrInt("layout", 0) != 0 || c.n.attrInt("input_forget", 0) != 0 {
		return nil, fmt.Errorf("%w: layout=1 or input_forget=1", ErrUnsupported)
	}
	for _, t := range []*nn.Tensor{x, w, r, b, h0, c0, p} {
		if t != nil && t.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: %v input", ErrUnsupported, t)
		}
	}
	if len(x.Shape) != 3 || len(w.Shape) != 3 || len(r.Shape) != 3 {
		return nil, fmt.Errorf("%w: X %v, W %v, R %v (want rank 3)", ErrInvalid, x.Shape, w.Shape, r.Shape)
	}
	seq, batch, inSize := x.Shape[0], x.Shape[1], x.Shape[2]
	hid := int(c.n.attrInt("hidden_size", int64(r.Shape[2])))
	dirs := 1
	dir := c.n.attrString("direction", "forward")
	switch dir {
	case "forward", "reverse":
	case "bidirectional":
		dirs = 2
	default:
		return nil, fmt.Errorf("%w: direction %q", ErrInvalid, dir)
	}
	if hid <= 0 || w.Shape[0] != dirs || w.Shape[1] != 4*hid || w.Shape[2] != inSize ||
		r.Shape[0] != dirs || r.Shape[1] != 4*hid || r.Shape[2] != hid {
		return nil, fmt.Errorf("%w: W %v and R %v for hidden_size %d, %d direction(s), input %v", ErrInvalid, w.Shape, r.Shape, hid, dirs, x.Shape)
	}
	check := func(t *nn.Tensor, name string, shape ...int) error {
		if t != nil && !slices.Equal(t.Shape, shape) {
			return fmt.Errorf("%w: %s is %v, want %v", ErrInvalid, name, t.Shape, slices.Clone(shape))
		}
		return nil
	}
	if err := check(b, "B", dirs, 8*hid); err != nil {
		return nil, err
	}
	if err := check(h0, "initial_h", dirs, batch, hid); err != nil {
		return nil, err
	}
	if err := check(c0, "initial_c", dirs, batch, hid); err != nil {
		return nil, err
	}
	if err := check(p, "P", dirs, 3*hid); err != nil {
		return nil, err
	}
	// lens[bi] is batch entry bi's length: its steps past it are skipped
	// (Y stays zero there, Y_h and Y_c are the state after its last step,
	// zero for a length of 0; the reverse direction starts at its last
	// step), as onnxruntime does.
	var lens []int64
	if seqLens != nil {
		var err error
		if lens, err = ints(seqLens); err != nil {
			return nil, err
		}
		if len(lens) != batch {
			return nil, fmt.Errorf("%w: sequence_lens has %d values for a batch of %d", ErrInvalid, len(lens), batch)
		}
		full := true
		for i, l := range lens {
			if l < 0 || l > int64(seq) {
				return nil, fmt.Errorf("%w: sequence_lens[%d] = %d outside 0..%d", ErrInvalid, i, l, seq)
			}
			full = full && l == int64(seq)
		}
		if full {
			lens = nil
		}
	}
	y, err := c.alloc(nn.Float32, []int{seq, dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	yh, err := c.alloc(nn.Float32, []int{dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	yc, err := c.alloc(nn.Float32, []int{dirs, batch, hid})
	if err != nil {
		return nil, err
	}
	g4 := 4 * hid
	xw, hr, gates := c.s.hostGet(seq*batch*g4), c.s.hostGet(batch*g4), c.s.hostGet(g4+hid)
	defer c.s.hostPut(xw)
	defer c.s.hostPut(hr)
	defer c.s.hostPut(gates)
	// the state and the summed bias, one direction at a time
	h, cc, biasBuf := c.s.hostGet(batch*hid), c.s.hostGet(batch*hid), c.s.hostGet(g4)
	defer c.s.hostPut(h)
	defer c.s.hostPut(cc)
	defer c.s.hostPut(biasBuf)
	for d := 0; d < dirs; d++ {
		wd := w.F32[d*g4*inSize : (d+1)*g4*inSize]
		rd := r.F32[d*g4*hid : (d+1)*g4*hid]
		if err := c.gemm(xw, x.F32, wd, seq*batch, inSize, g4, false, true, false, c.isConst(w)); err != nil {
			return nil, err
		}
		clear(h)
		clear(cc)
		if h0 != nil {
			copy(h, h0.F32[d*batch*hid:])
		}
		if c0 != nil {
			copy(cc, c0.F32[d*batch*hid:])
		}
		var bias, peep []float32
		if b != nil {
			bias = biasBuf
			for i := range bias {
				bias[i] = b.F32[d*8*hid+i] + b.F32[d*8*hid+g4+i]
			}
		}
		if p != nil {
			peep = p.F32[d*3*hid : (d+1)*3*hid]
		}
		for step := 0; step < seq; step++ {
			t := step
			if dir == "reverse" || d == 1 {
				t = seq - 1 - step
			}
			if err := c.gemm(hr, h, rd, batch, hid, g4, false, true, false, false); err != nil {
				return nil, err
			}
			if lens == nil {
				for bi := 0; bi < batch; bi++ {
					gx := xw[(t*batch+bi)*g4 : (t*batch+bi+1)*g4]
					gh := hr[bi*g4 : (bi+1)*g4]
					hb, cb := h[bi*hid:(bi+1)*hid], cc[bi*hid:(bi+1)*hid]
					lstmCell(gates, gx, gh, bias, peep, hb, cb, hid)
				}
				copy(y.F32[((t*dirs+d)*batch)*hid:], h)
				continue
			}
			for bi := 0; bi < batch; bi++ {
				l := int(lens[bi])
				if step >= l {
					continue // past this entry's end: its state stays, Y stays zero
				}
				tb := step
				if dir == "reverse" || d == 1 {
					tb = l - 1 - step
				}
				gx := xw[(tb*batch+bi)*g4 : (tb*batch+bi+1)*g4]
				gh := hr[bi*g4 : (bi+1)*g4]
				hb, cb := h[bi*hid:(bi+1)*hid], cc[bi*hid:(bi+1)*hid]
				lstmCell(gates, gx, gh, bias, peep, hb, cb, hid)
				copy(y.F32[((tb*dirs+d)*batch+bi)*hid:][:hid], hb)
			}
		}
		for bi, l := range lens {
			if l == 0 { // onnxruntime: an empty sequence's Y_h and Y_c are zero, not the initial state
				clear(h[bi*hid : (bi+1)*hid])
				clear(cc[bi*hid : (bi+1)*hid])
			}
		}
		copy(yh.F32[d*batch*hid:], h)
		copy(yc.F32[d*batch*hid:], cc)
	}
	return c.three(y, yh, yc), nil
}

// lstmCell advances one batch row of an LSTM by one step: gates (4*hid +
// hid floats of scratch) = gx + gh + bias in the order i, o, f, c, then
// c' = f*c + i*tanh(c~), h' = o*tanh(c'), with peepholes when peep is set;
// vector kernels throughout (gpu's AVX2 sigmoid and tanh).
func lstmCell(gates, gx, gh, bias, peep, h, c []float32, hid int) {
	g4 := 4 * hid
	g, tmp := gates[:g4], gates[g4:g4+hid]
	vec.Add(g, gx[:g4], gh[:g4])
	if bias != nil {
		vec.Add(g, g, bias)
	}
	ig, og, fg, cg := g[:hid], g[hid:2*hid], g[2*hid:3*hid], g[3*hid:]
	if peep != nil {
		vec.MulAdd(ig, peep[:hid], c)
		vec.MulAdd(fg, peep[2*hid:3*hid], c)
	}
	gpu.SigmoidF32(ig, ig)
	gpu.SigmoidF32(fg, fg)
	gpu.TanhF32(cg, cg)
	vec.Mul(c, c, fg)
	vec.MulAdd(c, ig, cg)
	if peep != nil {
		vec.MulAdd(og, peep[hid:2*hid], c)
	}
	gpu.SigmoidF32(og, og)
	gpu.TanhF32(tmp, c)
	vec.Mul(h, og, tmp)
}

// pad implements Pad in constant, reflect and edge modes.
func pad(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	r := len(x.Shape)
	mode := c.n.attrString("mode", "constant")
	var pads []int64
	var cval *nn.Tensor
	if c.n.opset < 11 {
		pads, _ = c.n.attrInts("pads")
		cval = &nn.Tensor{DType: nn.Float32, Shape: []int{}, F32: []float32{c.n.attrFloat("value", 0)}}
	} else {
		if len(in) < 2 || in[1] == nil {
			return nil, fmt.Errorf("%w: pads input is required", ErrInvalid)
		}
		var err error
		if pads, err = ints(in[1]); err != nil {
			return nil, err
		}
		if len(in) > 2 && in[2] != nil {
			cval = in[2]
		}
		if len(in) > 3 && in[3] != nil {
			axes, err := ints(in[3])
			if err != nil {
				return nil, err
			}
			if len(pads) != 2*len(axes) {
				return nil, fmt.Errorf("%w: %d pads for %d axes", ErrInvalid, len(pads), len(axes))
			}
			full := make([]int64, 2*r)
			for i, a := range axes {
				k, err := normAxis(a, r)
				if err != nil {
					return nil, err
				}
				full[k], full[k+r] = pads[i], pads[i+len(axes)]
			}
			pads = full
		}
	}
	if len(pads) != 2*r {
		return nil, fmt.Errorf("%w: %d pads for rank %d", ErrInvalid, len(pads), r)
	}
	if cval != nil && (cval.DType != x.DType || cval.Len() != 1) {
		return nil, fmt.Errorf("%w: constant_value %v for %v input", ErrInvalid, cval, x.DType)
	}
	shape := make([]int, r)
	for i := range shape {
		d := int64(x.Shape[i]) + pads[i] + pads[i+r]
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: pads %v give dimension %d", ErrInvalid, pads, d)
		}
		if mode == "reflect" && (pads[i] >= int64(x.Shape[i]) || pads[i+r] >= int64(x.Shape[i])) && (pads[i] > 0 || pads[i+r] > 0) {
			return nil, fmt.Errorf("%w: reflect pads %v exceed dimension %d", ErrInvalid, pads, x.Shape[i])
		}
		if mode == "edge" && x.Shape[i] == 0 && d > 0 {
			return nil, fmt.Errorf("%w: edge padding of an empty dimension", ErrInvalid)
		}
		shape[i] = int(d)
	}
	if mode != "constant" && mode != "reflect" && mode != "edge" {
		return nil, fmt.Errorf("%w: mode %q", ErrUnsupported, mode)
	}
	out, err := c.alloc(x.DType, shape)
	if err != nil {
		return nil, err
	}
	st := strides(x.Shape)
	idx := make([]int, r)
	for o := 0; o < out.Len(); o++ {
		j, inside := 0, true
		for k := 0; k < r; k++ {
			s := idx[k] - int(pads[k])
			n := x.Shape[k]
			if s < 0 || s >= n {
				switch mode {
				case "constant":
					inside = false
				case "edge":
					s = min(max(s, 0), n-1)
				case "reflect":
					if s < 0 {
						s = -s
					} else {
						s = 2*(n-1) - s
					}
				}
			}
			j += s * st[k]
		}
		if inside {
			copyElem(out, o, x, j)
		} else if cval != nil {
			copyElem(out, o, cval, 0)
		}
		for k := r - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return c.one(out), nil
}

func size(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	out, err := c.allocFull(nn.Int64, nil)
	if err != nil {
		return nil, err
	}
	out.I64[0] = int64(in[0].Len())
	return c.one(out), nil
}

func init() {
	reg("LSTM", opDef{since: 7, attrs: []string{"hidden_size", "direction", "layout", "input_forget"}, minIn: 3, maxIn: 8, run: lstm, backend: true, foldable: true})
	reg("Pad", opDef{since: 2, attrs: []string{"mode", "pads", "value"}, minIn: 1, maxIn: 4, run: pad, foldable: true})
	reg("Size", opDef{since: 1, minIn: 1, maxIn: 1, run: size, foldable: true})
}
