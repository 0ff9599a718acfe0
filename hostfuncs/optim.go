package hostfuncs

import (
	"context"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/tetratelabs/wazero/api"
)

// adam(p, g, m, v, lr, beta1, beta2, eps, step) -> 0: one fused Adam step
// on the parameter p from its gradient g, with the moments m and v (all
// f32, one shape, four different live tensors) updated in place.
func tensorAdam(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.adam"
	hs := [4]int32{int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])}
	h := gpu.AdamParams{LR: api.DecodeF32(stack[4]), Beta1: api.DecodeF32(stack[5]),
		Beta2: api.DecodeF32(stack[6]), Eps: api.DecodeF32(stack[7]), Step: int(int32(stack[8]))}
	a, oka := in.cfg.Backend.(gpu.Adamer)
	if !oka {
		return in.fail(EINVAL, "%s: not supported by backend %s", op, in.cfg.Backend.Name())
	}
	if err := h.Check(); err != nil {
		return in.fail(EINVAL, "%s: %v", op, err)
	}
	var ts [4]gpu.Tensor
	for i, hi := range hs {
		t, c, okt := in.f32Tensor(op, hi)
		if !okt {
			return c
		}
		for j := range i {
			if hs[j] == hi {
				return in.fail(EINVAL, "%s: p, g, m and v must be four different tensors (handle %d is given twice)", op, hi)
			}
		}
		if i > 0 && !gpu.EqualShape(t.Shape(), ts[0].Shape()) {
			return in.fail(ESHAPE, "%s: %s %v differs in shape from p %v", op, [4]string{"p", "g", "m", "v"}[i], t.Shape(), ts[0].Shape())
		}
		ts[i] = t
	}
	if err := a.Adam(ts[0], ts[1], ts[2], ts[3], h); err != nil {
		return in.failErr(op, err)
	}
	return ok(0)
}
