package hostfuncs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tetratelabs/wazero/api"
)

func coreGroup() Group {
	return Group{
		Module: ModuleCore,
		Doc:    "core: ABI version, errors, call input and output, logging",
		Funcs: []Func{
			{"abi_version", nil, i32s(1), abiVersion},
			{"last_error", i32s(2), i32s(1), host(lastError)},
			{"input", i32s(2), i32s(1), host(input)},
			{"output", i32s(2), i32s(1), host(output)},
			{"fail", i32s(2), i32s(1), host(failFn)},
			{"log", i32s(3), i32s(1), host(logFn)},
		},
	}
}

func abiVersion(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = ok(ABIVersion)
}

// last_error(buf_ptr, buf_cap) -> full length
func lastError(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	ptr, capacity := uint32(stack[0]), int32(stack[1])
	if capacity < 0 {
		return in.fail(EMEM, "last_error: negative buffer capacity %d", capacity)
	}
	msg := in.lastErr
	n := min(int32(len(msg)), capacity)
	if n > 0 {
		buf, c, okm := in.span(mod, "last_error", "buffer", ptr, n)
		if !okm {
			return c
		}
		copy(buf, msg)
	}
	return ok(int32(len(msg)))
}

// input(buf_ptr, buf_cap) -> length
func input(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	ptr, capacity := uint32(stack[0]), int32(stack[1])
	if !in.inCall {
		return in.fail(ESTATE, "input: no entrypoint call in progress")
	}
	if capacity == 0 {
		return ok(int32(len(in.input))) // a size query
	}
	if capacity < int32(len(in.input)) {
		return in.fail(EINVAL, "input: buffer capacity %d is smaller than the input (%d bytes)", capacity, len(in.input))
	}
	buf, c, okm := in.span(mod, "input", "buffer", ptr, int32(len(in.input)))
	if !okm {
		return c
	}
	copy(buf, in.input)
	return ok(int32(len(in.input)))
}

// output(ptr, len) -> 0
func output(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	ptr, n := uint32(stack[0]), int32(stack[1])
	if !in.inCall {
		return in.fail(ESTATE, "output: no entrypoint call in progress")
	}
	if int64(n) > int64(in.cfg.MaxOutputBytes) {
		return in.fail(ETOOBIG, "output: %d bytes exceeds the limit of %d", n, in.cfg.MaxOutputBytes)
	}
	buf, c, okm := in.span(mod, "output", "range", ptr, n)
	if !okm {
		return c
	}
	in.output = append(in.output[:0], buf...)
	return ok(0)
}

// fail(ptr, len) -> 0
func failFn(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	ptr, n := uint32(stack[0]), int32(stack[1])
	buf, c, okm := in.span(mod, "fail", "range", ptr, n)
	if !okm {
		return c
	}
	in.failMsg = truncated(buf, maxMessage)
	return ok(0)
}

// log(level, ptr, len) -> 0
func logFn(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), int32(stack[2])
	buf, c, okm := in.span(mod, "log", "range", ptr, n)
	if !okm {
		return c
	}
	in.out.emit(in.log, slog.Level(level), buf, len(buf), "source", "guest")
	return ok(0)
}

// span returns the guest's bytes [ptr, ptr+n), the argument what of op.
// Every (pointer, length) pair of the core group goes through it, so each
// is checked whole before any part of it is used: a negative length or a
// range that does not lie inside guest memory is EMEM, even where only a
// prefix of it will be kept (fail, log).
func (in *Instance) span(mod api.Module, op, what string, ptr uint32, n int32) ([]byte, uint64, bool) {
	if n < 0 {
		return nil, in.fail(EMEM, "%s: %s length %d is negative", op, what, n), false
	}
	buf, okm := mem(mod, ptr, n)
	if !okm {
		return nil, in.fail(EMEM, "%s: %s [%d, +%d) is outside guest memory", op, what, ptr, n), false
	}
	return buf, 0, true
}

// truncated returns b as a string of at most max bytes of its text, marked
// when it was cut.
func truncated(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	return fmt.Sprintf("%s [truncated: %d of %d bytes kept]", b[:max], max, len(b))
}
