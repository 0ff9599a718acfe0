package hostfuncs

import (
	"context"
	"log/slog"

	"github.com/tetratelabs/wazero/api"
)

func coreGroup() Group {
	return Group{
		Module: ModuleCore,
		Doc:    "core: ABI version, errors, call input and output, logging",
		Funcs: []Func{
			{"abi_version", nil, i32s(1), abiVersion},
			{"last_error", i32s(2), i32s(1), lastError},
			{"input", i32s(2), i32s(1), input},
			{"output", i32s(2), i32s(1), output},
			{"fail", i32s(2), i32s(1), failFn},
			{"log", i32s(3), i32s(1), logFn},
		},
	}
}

func abiVersion(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = ok(ABIVersion)
}

// last_error(buf_ptr, buf_cap) -> full length
func lastError(ctx context.Context, mod api.Module, stack []uint64) {
	in := enter(ctx)
	if in == nil {
		stack[0] = noInstance
		return
	}
	ptr, capacity := uint32(stack[0]), int32(stack[1])
	if capacity < 0 {
		stack[0] = in.fail(EMEM, "last_error: negative buffer capacity %d", capacity)
		return
	}
	msg := in.lastErr
	n := min(int32(len(msg)), capacity)
	if n > 0 {
		buf, okm := mem(mod, ptr, n)
		if !okm {
			stack[0] = in.fail(EMEM, "last_error: buffer [%d, +%d) is outside guest memory", ptr, n)
			return
		}
		copy(buf, msg)
	}
	stack[0] = ok(int32(len(msg)))
}

// input(buf_ptr, buf_cap) -> length
func input(ctx context.Context, mod api.Module, stack []uint64) {
	in := enter(ctx)
	if in == nil {
		stack[0] = noInstance
		return
	}
	ptr, capacity := uint32(stack[0]), int32(stack[1])
	if !in.inCall {
		stack[0] = in.fail(ESTATE, "input: no entrypoint call in progress")
		return
	}
	if capacity == 0 {
		stack[0] = ok(int32(len(in.input))) // a size query
		return
	}
	if capacity < int32(len(in.input)) {
		stack[0] = in.fail(EINVAL, "input: buffer capacity %d is smaller than the input (%d bytes)", capacity, len(in.input))
		return
	}
	buf, okm := mem(mod, ptr, int32(len(in.input)))
	if !okm {
		stack[0] = in.fail(EMEM, "input: buffer [%d, +%d) is outside guest memory", ptr, len(in.input))
		return
	}
	copy(buf, in.input)
	stack[0] = ok(int32(len(in.input)))
}

// output(ptr, len) -> 0
func output(ctx context.Context, mod api.Module, stack []uint64) {
	in := enter(ctx)
	if in == nil {
		stack[0] = noInstance
		return
	}
	ptr, n := uint32(stack[0]), int32(stack[1])
	if !in.inCall {
		stack[0] = in.fail(ESTATE, "output: no entrypoint call in progress")
		return
	}
	if int64(n) > int64(in.cfg.MaxOutputBytes) {
		stack[0] = in.fail(ETOOBIG, "output: %d bytes exceeds the limit of %d", n, in.cfg.MaxOutputBytes)
		return
	}
	buf, okm := mem(mod, ptr, n)
	if !okm {
		stack[0] = in.fail(EMEM, "output: range [%d, +%d) is outside guest memory", ptr, n)
		return
	}
	in.output = append(in.output[:0], buf...)
	stack[0] = ok(0)
}

// fail(ptr, len) -> 0
func failFn(ctx context.Context, mod api.Module, stack []uint64) {
	in := enter(ctx)
	if in == nil {
		stack[0] = noInstance
		return
	}
	ptr, n := uint32(stack[0]), int32(stack[1])
	buf, okm := mem(mod, ptr, min(n, maxMessage))
	if !okm {
		stack[0] = in.fail(EMEM, "fail: range [%d, +%d) is outside guest memory", ptr, n)
		return
	}
	in.failMsg = string(buf)
	stack[0] = ok(0)
}

// log(level, ptr, len) -> 0
func logFn(ctx context.Context, mod api.Module, stack []uint64) {
	in := enter(ctx)
	if in == nil {
		stack[0] = noInstance
		return
	}
	level, ptr, n := int32(stack[0]), uint32(stack[1]), int32(stack[2])
	buf, okm := mem(mod, ptr, min(n, maxMessage))
	if !okm {
		stack[0] = in.fail(EMEM, "log: range [%d, +%d) is outside guest memory", ptr, n)
		return
	}
	in.log.Log(ctx, slog.Level(level), string(buf), "source", "guest")
	stack[0] = ok(0)
}
