package onnx

import (
	"fmt"
	"math"
	"slices"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// ints reads an i64 or i32 tensor (a shape, axes, indices) as ints.
func ints(t *nn.Tensor) ([]int64, error) {
	switch t.DType {
	case nn.Int64:
		return t.I64, nil
	case nn.Int32:
		out := make([]int64, len(t.I32))
		for i, v := range t.I32 {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: want an integer tensor, got %v", ErrInvalid, t)
}

func normAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(rank) {
		return 0, fmt.Errorf("%w: axis %d out of range for rank %d", ErrInvalid, axis, rank)
	}
	return int(axis), nil
}

func constant(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	n := c.n
	if len(n.attrs) != 1 {
		return nil, fmt.Errorf("%w: Constant needs exactly one value attribute, has %d", ErrInvalid, len(n.attrs))
	}
	for name, a := range n.attrs {
		switch name {
		case "value":
			return c.one(a.t), nil
		case "value_float":
			return []*nn.Tensor{{DType: nn.Float32, Shape: []int{}, F32: []float32{a.f}}}, nil
		case "value_floats":
			return []*nn.Tensor{{DType: nn.Float32, Shape: []int{len(a.floats)}, F32: a.floats}}, nil
		case "value_int":
			return []*nn.Tensor{{DType: nn.Int64, Shape: []int{}, I64: []int64{a.i}}}, nil
		case "value_ints":
			return []*nn.Tensor{{DType: nn.Int64, Shape: []int{len(a.ints)}, I64: a.ints}}, nil
		}
	}
	return nil, fmt.Errorf("%w: Constant attribute", ErrUnsupported)
}

func shapeOp(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	r := len(in[0].Shape)
	start, end := int(c.n.attrInt("start", 0)), int(c.n.attrInt("end", int64(r)))
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = min(max(start, 0), r), min(max(end, 0), r)
	end = max(end, start)
	dims := [1]int{end - start}
	out, err := c.allocFull(nn.Int64, dims[:])
	if err != nil {
		return nil, err
	}
	for i := start; i < end; i++ {
		out.I64[i-start] = int64(in[0].Shape[i])
	}
	return c.one(out), nil
}

func cast(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	to := nn.DType(c.n.attrInt("to", 0))
	a := in[0]
	out, err := c.alloc(to, a.Shape)
	if err != nil {
		return nil, fmt.Errorf("%w: Cast to %v", ErrUnsupported, to)
	}
	n := a.Len()
	if to == nn.Float32 && a.DType == nn.Int32 { // MatMulInteger's product, dequantized next
		for i, v := range a.I32[:n] {
			out.F32[i] = float32(v)
		}
		return c.one(out), nil
	}
	get := func(i int) float64 {
		switch a.DType {
		case nn.Float32:
			return float64(a.F32[i])
		case nn.Int64:
			return float64(a.I64[i])
		case nn.Int32:
			return float64(a.I32[i])
		case nn.Int8:
			return float64(int8(a.U8[i]))
		}
		return float64(a.U8[i])
	}
	for i := 0; i < n; i++ {
		switch to {
		case nn.Float32:
			out.F32[i] = float32(get(i))
		case nn.Int64:
			if a.DType == nn.Int64 {
				out.I64[i] = a.I64[i]
			} else {
				out.I64[i] = int64(get(i))
			}
		case nn.Int32:
			out.I32[i] = int32(get(i))
		case nn.Bool:
			out.U8[i] = b2u(get(i) != 0)
		case nn.Int8:
			out.U8[i] = uint8(int8(get(i)))
		default:
			out.U8[i] = uint8(get(i))
		}
	}
	return c.one(out), nil
}

func reshape(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	spec, err := ints(in[1])
	if err != nil {
		return nil, err
	}
	allowZero := c.n.attrInt("allowzero", 0) != 0
	if len(spec) > nn.MaxRank {
		return nil, fmt.Errorf("%w: target rank %d", ErrInvalid, len(spec))
	}
	shape := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in[0].Shape) {
				return nil, fmt.Errorf("%w: shape %v copies dimension %d of %v", ErrInvalid, spec, i, in[0].Shape)
			}
			shape[i] = in[0].Shape[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("%w: shape %v has two -1", ErrInvalid, spec)
			}
			infer = i
			continue
		case d < 0 || d > math.MaxInt32:
			return nil, fmt.Errorf("%w: shape %v", ErrInvalid, spec)
		default:
			shape[i] = int(d)
		}
		if shape[i] != 0 && known > math.MaxInt64/shape[i] {
			return nil, fmt.Errorf("%w: shape %v overflows", ErrInvalid, spec)
		}
		known *= shape[i]
	}
	total := in[0].Len()
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("%w: cannot reshape %v to %v", ErrInvalid, in[0].Shape, spec)
		}
		shape[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("%w: cannot reshape %v (%d elements) to %v", ErrInvalid, in[0].Shape, total, spec)
	}
	return c.viewOut(in[0], shape), nil
}

// view shares t's data under another shape of the same element count.
func view(t *nn.Tensor, shape []int) *nn.Tensor {
	v := *t
	v.Shape = shape
	return &v
}

// axesArg reads axes from an attribute (before opset since) or the input.
func axesArg(c *kctx, in []*nn.Tensor, idx, since int) ([]int64, bool, error) {
	if c.n.opset < since {
		a, ok := c.n.attrInts("axes")
		return a, ok, nil
	}
	if len(in) <= idx || in[idx] == nil {
		return nil, false, nil
	}
	a, err := ints(in[idx])
	return a, true, err
}

func unsqueeze(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	axes, ok, err := axesArg(c, in, 1, 13)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: Unsqueeze without axes", ErrInvalid)
	}
	r := len(in[0].Shape) + len(axes)
	if r > nn.MaxRank {
		return nil, fmt.Errorf("%w: rank %d", ErrInvalid, r)
	}
	mark := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if mark[ax] {
			return nil, fmt.Errorf("%w: axis %d repeated", ErrInvalid, a)
		}
		mark[ax] = true
	}
	var shapeBuf [8]int
	shape := shapeBuf[:0]
	j := 0
	for i := 0; i < r; i++ {
		if mark[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, in[0].Shape[j])
			j++
		}
	}
	return c.viewOut(in[0], shape), nil
}

func squeeze(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	axes, ok, err := axesArg(c, in, 1, 13)
	if err != nil {
		return nil, err
	}
	r := len(in[0].Shape)
	var dropBuf [8]bool
	drop := dropBuf[:0]
	if r <= len(dropBuf) {
		drop = dropBuf[:r]
	} else {
		drop = make([]bool, r)
	}
	if !ok {
		for i, d := range in[0].Shape {
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if in[0].Shape[ax] != 1 {
			return nil, fmt.Errorf("%w: cannot squeeze axis %d of %v", ErrInvalid, a, in[0].Shape)
		}
		drop[ax] = true
	}
	var shapeBuf [8]int
	shape := shapeBuf[:0]
	for i, d := range in[0].Shape {
		if !drop[i] {
			shape = append(shape, d)
		}
	}
	return c.viewOut(in[0], shape), nil
}

func flatten(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	r := len(in[0].Shape)
	ax := c.n.attrInt("axis", 1)
	if ax < 0 {
		ax += int64(r)
	}
	if ax < 0 || ax > int64(r) {
		return nil, fmt.Errorf("%w: axis %d for rank %d", ErrInvalid, ax, r)
	}
	a, b := 1, 1
	for i, d := range in[0].Shape {
		if i < int(ax) {
			a *= d
		} else {
			b *= d
		}
	}
	return c.viewOut(in[0], []int{a, b}), nil
}

// strides returns row-major element strides.
func strides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// gatherCopy builds out by reading, for each output index, the input index
// that src computes from the output's multi-index.
func gatherCopy(c *kctx, a *nn.Tensor, shape []int, src func(idx []int) int) (*nn.Tensor, error) {
	out, err := c.alloc(a.DType, shape)
	if err != nil {
		return nil, err
	}
	n := out.Len()
	idx := c.ints(len(shape)) // the closure takes it: from the run's scratch, not the stack
	for i := 0; i < n; i++ {
		copyElem(out, i, a, src(idx))
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out, nil
}

func transpose(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a := in[0]
	r := len(a.Shape)
	var pb [nn.MaxRank]int64
	perm, ok := c.n.attrInts("perm")
	if !ok {
		perm = pb[:r]
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	if len(perm) != r || r > nn.MaxRank {
		return nil, fmt.Errorf("%w: perm %v for rank %d", ErrInvalid, slices.Clone(perm), r)
	}
	var seen [nn.MaxRank]bool
	var sb [nn.MaxRank]int
	shape := sb[:r]
	for i, p := range perm {
		if p < 0 || p >= int64(r) || seen[p] {
			return nil, fmt.Errorf("%w: perm %v", ErrInvalid, slices.Clone(perm))
		}
		seen[p] = true
		shape[i] = a.Shape[p]
	}
	if a.DType == nn.Float32 {
		if batch, rows, cols, ok := transpose2D(a.Shape, perm); ok {
			// a swap of two groups of axes (the melspectrogram's
			// [1,1,257,5] -> [1,1,5,257]): 8x8 blocks per batch
			out, err := c.allocFull(nn.Float32, shape)
			if err != nil {
				return nil, err
			}
			for b := 0; b < batch; b++ {
				o := b * rows * cols
				vec.Transpose(out.F32[o:o+rows*cols], a.F32[o:o+rows*cols], rows, cols)
			}
			return c.one(out), nil
		}
	}
	out, err := c.allocFull(a.DType, shape)
	if err != nil {
		return nil, err
	}
	// an odometer over the output's outer axes, each output row (the last
	// axis) read at its input stride: a copy where the last axis stays last
	// (attention's [B,S,H,D] -> [B,H,S,D])
	var st, ist, idx [nn.MaxRank]int
	for i, s := 1, r-1; s >= 0; s-- {
		st[s] = i
		i *= a.Shape[s]
	}
	for i, p := range perm {
		ist[i] = st[p]
	}
	n := out.Len()
	if n == 0 {
		return c.one(out), nil
	}
	inner, d := 1, 0
	if r > 0 {
		inner, d = shape[r-1], ist[r-1]
	}
	j := 0
	for o := 0; o < n; o += inner {
		if d == 1 {
			copyRun(out, o, a, j, inner)
		} else {
			for i := 0; i < inner; i++ {
				copyElem(out, o+i, a, j+i*d)
			}
		}
		for k := r - 2; k >= 0; k-- {
			idx[k]++
			j += ist[k]
			if idx[k] < shape[k] {
				break
			}
			j -= ist[k] * shape[k]
			idx[k] = 0
		}
	}
	return c.one(out), nil
}

// copyRun copies n elements of src from j to dst from i (same dtype).
func copyRun(dst *nn.Tensor, i int, src *nn.Tensor, j, n int) {
	switch dst.DType {
	case nn.Float32:
		copy(dst.F32[i:i+n], src.F32[j:j+n])
	case nn.Int64:
		copy(dst.I64[i:i+n], src.I64[j:j+n])
	case nn.Int32:
		copy(dst.I32[i:i+n], src.I32[j:j+n])
	default:
		copy(dst.U8[i:i+n], src.U8[j:j+n])
	}
}

// transpose2D reports whether perm (valid for shape) moves data as a batch
// of 2-D transposes: with the size-1 axes left out, a prefix of axes that
// stay in place (the batch) and then the rest rotated, so that a block of
// rows axes and a block of cols axes swap places.
func transpose2D(shape []int, perm []int64) (batch, rows, cols int, ok bool) {
	var ax, op []int
	for i, d := range shape {
		if d != 1 {
			ax = append(ax, i)
		}
	}
	for _, p := range perm {
		if shape[p] != 1 {
			op = append(op, int(p))
		}
	}
	b := 0
	for b < len(ax) && op[b] == ax[b] {
		b++
	}
	rest, orest := ax[b:], op[b:]
	if len(rest) < 2 {
		return 0, 0, 0, false
	}
	var rot [nn.MaxRank]int
	for k := 1; k < len(rest); k++ {
		if len(rest) <= nn.MaxRank && slices.Equal(orest, append(append(rot[:0], rest[k:]...), rest[:k]...)) {
			batch, rows, cols = 1, 1, 1
			for _, i := range ax[:b] {
				batch *= shape[i]
			}
			for _, i := range rest[:k] {
				rows *= shape[i]
			}
			for _, i := range rest[k:] {
				cols *= shape[i]
			}
			return batch, rows, cols, true
		}
	}
	return 0, 0, 0, false
}

func concat(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	var parts []*nn.Tensor
	for _, t := range in {
		if t != nil {
			parts = append(parts, t)
		}
	}
	r := len(parts[0].Shape)
	ax, err := normAxis(c.n.attrInt("axis", 0), r)
	if err != nil {
		return nil, err
	}
	var sb [nn.MaxRank]int
	shape := append(sb[:0], parts[0].Shape...)
	shape[ax] = 0
	for _, t := range parts {
		if t.DType != parts[0].DType || len(t.Shape) != r {
			return nil, fmt.Errorf("%w: cannot concatenate %v with %v", ErrInvalid, parts[0], t)
		}
		for i := range shape {
			if i != ax && t.Shape[i] != parts[0].Shape[i] {
				return nil, fmt.Errorf("%w: cannot concatenate %v with %v on axis %d", ErrInvalid, parts[0], t, ax)
			}
		}
		shape[ax] += t.Shape[ax]
	}
	out, err := c.allocFull(parts[0].DType, shape) // the copies below write all of it
	if err != nil {
		return nil, err
	}
	outer := 1
	for _, d := range shape[:ax] {
		outer *= d
	}
	inner := 1
	for _, d := range shape[ax+1:] {
		inner *= d
	}
	if n := out.Len(); out.DType == nn.Float32 && !c.serial(n, elemGrain) {
		// the output's flat range split over the threads; the closure
		// escapes, so it gets a copy of parts (which then stays on the
		// stack on the serial path)
		of, ps := out.F32, append([]*nn.Tensor(nil), parts...)
		c.parallel(n, elemGrain, func(lo, hi int) { concatF32(of, ps, ax, inner, outer, lo, hi) })
		return c.one(out), nil
	}
	o := 0
	for i := 0; i < outer; i++ {
		for _, t := range parts {
			n := t.Shape[ax] * inner
			copyRange(out, o, t, i*n, n)
			o += n
		}
	}
	return c.one(out), nil
}

// concatF32 writes the output elements [lo, hi) of an f32 Concat along
// axis ax of parts.
func concatF32(out []float32, parts []*nn.Tensor, ax, inner, outer, lo, hi int) {
	o := 0
	for i := 0; i < outer && o < hi; i++ {
		for _, t := range parts {
			n := t.Shape[ax] * inner
			if o+n > lo && o < hi {
				a, b := max(o, lo), min(o+n, hi)
				copy(out[a:b], t.F32[i*n+a-o:i*n+b-o])
			}
			o += n
		}
	}
}

func copyRange(dst *nn.Tensor, o int, src *nn.Tensor, s, n int) {
	switch dst.DType {
	case nn.Float32:
		copy(dst.F32[o:o+n], src.F32[s:s+n])
	case nn.Int64:
		copy(dst.I64[o:o+n], src.I64[s:s+n])
	case nn.Int32:
		copy(dst.I32[o:o+n], src.I32[s:s+n])
	default:
		copy(dst.U8[o:o+n], src.U8[s:s+n])
	}
}

func slice(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a := in[0]
	r := len(a.Shape)
	var starts, ends, axes, steps []int64
	if c.n.opset < 10 {
		starts, _ = c.n.attrInts("starts")
		ends, _ = c.n.attrInts("ends")
		axes, _ = c.n.attrInts("axes")
	} else {
		var err error
		if len(in) < 3 || in[1] == nil || in[2] == nil {
			return nil, fmt.Errorf("%w: Slice needs starts and ends", ErrInvalid)
		}
		if starts, err = ints(in[1]); err != nil {
			return nil, err
		}
		if ends, err = ints(in[2]); err != nil {
			return nil, err
		}
		if len(in) > 3 && in[3] != nil {
			if axes, err = ints(in[3]); err != nil {
				return nil, err
			}
		}
		if len(in) > 4 && in[4] != nil {
			if steps, err = ints(in[4]); err != nil {
				return nil, err
			}
		}
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, fmt.Errorf("%w: starts, ends, axes and steps differ in length", ErrInvalid)
	}
	if r > nn.MaxRank {
		return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, r, nn.MaxRank)
	}
	var bb, sb, shb [nn.MaxRank]int
	begin, step := bb[:r], sb[:r]
	shape := append(shb[:0], a.Shape...)
	for i := range step {
		step[i] = 1
	}
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			ax = axes[i]
		}
		k, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, fmt.Errorf("%w: Slice step 0", ErrInvalid)
		}
		d := int64(a.Shape[k])
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		var n int64
		if st > 0 {
			s, e = min(max(s, 0), d), min(max(e, 0), d)
			if e > s {
				n = (e - s + st - 1) / st
			}
		} else {
			s, e = min(max(s, -1), d-1), min(max(e, -1), d-1)
			if s > e {
				n = (s - e - st - 1) / -st
			}
		}
		begin[k], step[k], shape[k] = int(s), int(st), int(n)
	}
	st := strides(a.Shape)
	out, err := gatherCopy(c, a, shape, func(idx []int) int {
		j := 0
		for i, v := range idx {
			j += (begin[i] + v*step[i]) * st[i]
		}
		return j
	})
	if err != nil {
		return nil, err
	}
	return c.one(out), nil
}

func gather(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a := in[0]
	idx, err := ints(in[1])
	if err != nil {
		return nil, err
	}
	ax, err := normAxis(c.n.attrInt("axis", 0), len(a.Shape))
	if err != nil {
		return nil, err
	}
	d := a.Shape[ax]
	for _, v := range idx {
		if v < -int64(d) || v >= int64(d) {
			return nil, fmt.Errorf("%w: index %d out of range [%d, %d)", ErrInvalid, v, -d, d)
		}
	}
	var sb [nn.MaxRank]int
	shape := append(append(append(sb[:0], a.Shape[:ax]...), in[1].Shape...), a.Shape[ax+1:]...)
	out, err := c.allocFull(a.DType, shape)
	if err != nil {
		return nil, err
	}
	// outer x len(idx) blocks of inner contiguous elements (an embedding
	// lookup is len(idx) row copies)
	outer, inner := 1, 1
	for _, v := range a.Shape[:ax] {
		outer *= v
	}
	for _, v := range a.Shape[ax+1:] {
		inner *= v
	}
	if out.Len() == 0 {
		return c.one(out), nil
	}
	o := 0
	for b := 0; b < outer; b++ {
		for _, v := range idx {
			if v < 0 {
				v += int64(d)
			}
			copyRun(out, o, a, (b*d+int(v))*inner, inner)
			o += inner
		}
	}
	return c.one(out), nil
}

// shapeArg reads a requested output shape, checking it against the element
// limit before anything is allocated (a shape bomb is refused here).
func shapeArg(c *kctx, t *nn.Tensor) ([]int, error) {
	v, err := ints(t)
	if err != nil {
		return nil, err
	}
	if len(v) > nn.MaxRank {
		return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, len(v), nn.MaxRank)
	}
	shape := make([]int, len(v))
	for i, d := range v {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dimension %d is %d", ErrInvalid, i, d)
		}
		shape[i] = int(d)
	}
	if _, err := nn.Elements(shape, c.limit); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return shape, nil
}

func constantOfShape(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	shape, err := shapeArg(c, in[0])
	if err != nil {
		return nil, err
	}
	val := &nn.Tensor{DType: nn.Float32, Shape: []int{1}, F32: []float32{0}}
	if a, ok := c.n.attrs["value"]; ok {
		if a.t == nil || a.t.Len() != 1 {
			return nil, fmt.Errorf("%w: value must be a one-element tensor", ErrInvalid)
		}
		val = a.t
	}
	out, err := c.alloc(val.DType, shape)
	if err != nil {
		return nil, err
	}
	for i := 0; i < out.Len(); i++ {
		copyElem(out, i, val, 0)
	}
	return c.one(out), nil
}

func expand(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	want, err := shapeArg(c, in[1])
	if err != nil {
		return nil, err
	}
	shape, err := broadcast(in[0].Shape, want)
	if err != nil {
		return nil, err
	}
	if _, err := nn.Elements(shape, c.limit); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ix := indexer(in[0].Shape, shape)
	out, err := c.alloc(in[0].DType, shape)
	if err != nil {
		return nil, err
	}
	for i := 0; i < out.Len(); i++ {
		copyElem(out, i, in[0], ix(i))
	}
	return c.one(out), nil
}

func rangeOp(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	dt := in[0].DType
	for _, t := range in {
		if t.DType != dt || t.Len() != 1 {
			return nil, fmt.Errorf("%w: Range needs three scalars of one dtype", ErrInvalid)
		}
	}
	get := func(t *nn.Tensor) float64 {
		switch dt {
		case nn.Float32:
			return float64(t.F32[0])
		case nn.Int64:
			return float64(t.I64[0])
		case nn.Int32:
			return float64(t.I32[0])
		}
		return math.NaN()
	}
	start, limit, delta := get(in[0]), get(in[1]), get(in[2])
	if delta == 0 || math.IsNaN(start+limit+delta) {
		return nil, fmt.Errorf("%w: Range(%v, %v, %v)", ErrInvalid, start, limit, delta)
	}
	n := math.Max(math.Ceil((limit-start)/delta), 0)
	if n > float64(c.limit) {
		return nil, fmt.Errorf("%w: Range of %.0f elements exceeds the limit of %d", ErrInvalid, n, c.limit)
	}
	out, err := c.alloc(dt, []int{int(n)})
	if err != nil {
		return nil, err
	}
	for i := 0; i < int(n); i++ {
		v := start + float64(i)*delta
		switch dt {
		case nn.Float32:
			out.F32[i] = float32(v)
		case nn.Int64:
			out.I64[i] = in[0].I64[0] + int64(i)*in[2].I64[0]
		case nn.Int32:
			out.I32[i] = in[0].I32[0] + int32(i)*in[2].I32[0]
		}
	}
	return c.one(out), nil
}

// reduce implements ReduceMax/Min/Sum/Mean on f32 over any set of axes.
func reduce(kind string, axesInputSince int) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		a := in[0]
		if a.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: %s of %v", ErrUnsupported, kind, a.DType)
		}
		axes, ok, err := axesArg(c, in, 1, axesInputSince)
		if err != nil {
			return nil, err
		}
		keep := c.n.attrInt("keepdims", 1) != 0
		r := len(a.Shape)
		if r > nn.MaxRank {
			return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, r, nn.MaxRank)
		}
		var redb [nn.MaxRank]bool
		red := redb[:r]
		if !ok || len(axes) == 0 {
			if c.n.attrInt("noop_with_empty_axes", 0) != 0 {
				return c.one(a), nil
			}
			for i := range red {
				red[i] = true
			}
		}
		for _, ax := range axes {
			k, err := normAxis(ax, r)
			if err != nil {
				return nil, err
			}
			red[k] = true
		}
		var shb, fb [nn.MaxRank]int
		shape, full := shb[:0], fb[:0]
		for i, d := range a.Shape {
			if red[i] {
				full = append(full, 1)
				if keep {
					shape = append(shape, 1)
				}
			} else {
				full = append(full, d)
				shape = append(shape, d)
			}
		}
		out, err := c.alloc(nn.Float32, shape)
		if err != nil {
			return nil, err
		}
		init := float32(0)
		switch kind {
		case "max":
			init = float32(math.Inf(-1))
		case "min":
			init = float32(math.Inf(1))
		}
		for i := range out.F32 {
			out.F32[i] = init
		}
		// the input in order, one row of its last axis at a time, its
		// output cell stepped like an odometer (stride 0 on reduced axes)
		var stb, idx [nn.MaxRank]int
		st := bstridesInto(stb[:r], full, a.Shape)
		inner, d := 1, 0
		if r > 0 {
			inner, d = a.Shape[r-1], st[r-1]
		}
		j := 0
		for o := 0; o < len(a.F32); o += inner {
			row := a.F32[o : o+inner]
			switch kind {
			case "max":
				for i, v := range row {
					out.F32[j+i*d] = max(out.F32[j+i*d], v)
				}
			case "min":
				for i, v := range row {
					out.F32[j+i*d] = min(out.F32[j+i*d], v)
				}
			default:
				for i, v := range row {
					out.F32[j+i*d] += v
				}
			}
			for k := r - 2; k >= 0; k-- {
				idx[k]++
				j += st[k]
				if idx[k] < a.Shape[k] {
					break
				}
				j -= st[k] * a.Shape[k]
				idx[k] = 0
			}
		}
		if kind == "mean" && len(out.F32) > 0 {
			cnt := float32(a.Len() / len(out.F32))
			for i := range out.F32 {
				out.F32[i] /= cnt
			}
		}
		return c.one(out), nil
	}
}

func init() {
	reg("Constant", opDef{since: 9, attrs: []string{"value", "value_float", "value_floats", "value_int", "value_ints"}, run: constant, foldable: true})
	reg("Shape", opDef{since: 1, attrs: []string{"start", "end"}, minIn: 1, maxIn: 1, run: shapeOp, foldable: true})
	reg("Cast", opDef{since: 6, attrs: []string{"to", "saturate"}, minIn: 1, maxIn: 1, run: cast, foldable: true})
	reg("Reshape", opDef{since: 5, attrs: []string{"allowzero"}, minIn: 2, maxIn: 2, run: reshape, foldable: true})
	reg("Unsqueeze", opDef{since: 1, attrs: []string{"axes"}, minIn: 1, maxIn: 2, run: unsqueeze, foldable: true})
	reg("Squeeze", opDef{since: 1, attrs: []string{"axes"}, minIn: 1, maxIn: 2, run: squeeze, foldable: true})
	reg("Flatten", opDef{since: 1, attrs: []string{"axis"}, minIn: 1, maxIn: 1, run: flatten, foldable: true})
	reg("Transpose", opDef{since: 1, attrs: []string{"perm"}, minIn: 1, maxIn: 1, run: transpose, foldable: true})
	reg("Concat", opDef{since: 4, attrs: []string{"axis"}, minIn: 1, maxIn: -1, run: concat, foldable: true})
	reg("Slice", opDef{since: 1, attrs: []string{"starts", "ends", "axes"}, minIn: 1, maxIn: 5, run: slice, foldable: true})
	reg("Gather", opDef{since: 1, attrs: []string{"axis"}, minIn: 2, maxIn: 2, run: gather, foldable: true})
	reg("ConstantOfShape", opDef{since: 9, attrs: []string{"value"}, minIn: 1, maxIn: 1, run: constantOfShape, foldable: true})
	reg("Expand", opDef{since: 8, minIn: 2, maxIn: 2, run: expand, foldable: true})
	reg("Range", opDef{since: 11, minIn: 3, maxIn: 3, run: rangeOp, foldable: true})
	red := []string{"axes", "keepdims", "noop_with_empty_axes"}
	reg("ReduceMax", opDef{since: 1, attrs: red, minIn: 1, maxIn: 2, run: reduce("max", 18), foldable: true})
	reg("ReduceMin", opDef{since: 1, attrs: red, minIn: 1, maxIn: 2, run: reduce("min", 18), foldable: true})
	reg("ReduceMean", opDef{since: 1, attrs: red, minIn: 1, maxIn: 2, run: reduce("mean", 18), foldable: true})
	reg("ReduceSum", opDef{since: 1, attrs: red, minIn: 1, maxIn: 2, run: reduce("sum", 13), foldable: true})
}
