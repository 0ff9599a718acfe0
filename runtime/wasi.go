package runtime

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// WASI bounds. A guest sizes the work of a WASI call with its arguments;
// these bound it per call, whatever the guest asks.
const (
	// wasiMaxIovecs is Linux's IOV_MAX: fd_read, fd_pread, fd_write and
	// fd_pwrite with more iovecs fail with EINVAL, as readv(2) does.
	wasiMaxIovecs = 1024
	// wasiMaxIOBytes is the most bytes one of those calls moves. Longer
	// vectors are cut to the iovecs that fit (at least one): a short read
	// or write, which callers of read/write handle.
	wasiMaxIOBytes = 1 << 20
	// wasiRandChunk is how many random bytes random_get produces between
	// two looks at the call's deadline.
	wasiRandChunk = 64 << 10
	errnoInval    = 28 // WASI errno EINVAL
)

// callGate is an instance's view of the call it is running, for the WASI
// functions whose work or waiting the guest sizes (poll_oneoff sleeps,
// random_get fills). wazero's WASI implementations do not look at the
// call's context, so they reach it here: each instance's sleep and random
// source are closures over its gate. When the call's context is done, they
// stop the guest with the same exit wazero uses at a deadline.
//
// The gate also knows whether the instance is running guest code: freeing
// its linear memory waits for the end of the call (see afterCall).
type callGate struct {
	ctx atomic.Pointer[context.Context]

	mu      sync.Mutex
	inCall  bool
	pending []func()
}

// enter makes ctx the context of the instance's current call.
func (g *callGate) enter(ctx context.Context) {
	g.mu.Lock()
	g.inCall = true
	g.mu.Unlock()
	g.ctx.Store(&ctx)
}

// leave ends the current call and runs what waited for its end.
func (g *callGate) leave() {
	g.ctx.Store(nil)
	g.mu.Lock()
	g.inCall = false
	p := g.pending
	g.pending = nil
	g.mu.Unlock()
	for _, f := range p {
		f()
	}
}

// afterCall runs f now, or at the end of the current call if there is one.
func (g *callGate) afterCall(f func()) {
	g.mu.Lock()
	if g.inCall {
		g.pending = append(g.pending, f)
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	f()
}

func (g *callGate) current() context.Context {
	if p := g.ctx.Load(); p != nil {
		return *p
	}
	return nil
}

// stopIfDone exits the guest when its call's context is done.
func (g *callGate) stopIfDone() {
	if ctx := g.current(); ctx != nil && ctx.Err() != nil {
		panic(exitFor(ctx))
	}
}

// exitFor is the guest exit for a done call context: a deadline, or the
// caller's cancellation.
func exitFor(ctx context.Context) *sys.ExitError {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return sys.NewExitError(sys.ExitCodeDeadlineExceeded)
	}
	return sys.NewExitError(sys.ExitCodeContextCanceled)
}

// sleep is the instance's nanosleep (poll_oneoff's clock subscriptions):
// it waits at most until the call's context is done, then exits the guest.
// Outside a call (never, for a reactor) it does not sleep at all.
func (g *callGate) sleep(ns int64) {
	ctx := g.current()
	if ctx == nil {
		return
	}
	if ns > 0 {
		t := time.NewTimer(time.Duration(ns))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	g.stopIfDone()
}

// gatedRand is the instance's random source: crypto/rand, a chunk at a
// time with a look at the deadline before each.
type gatedRand struct{ g *callGate }

func (r gatedRand) Read(p []byte) (int, error) {
	r.g.stopIfDone()
	if len(p) > wasiRandChunk {
		p = p[:wasiRandChunk]
	}
	return crand.Read(p)
}

// withGate configures a module's WASI sleep and randomness to honour the
// instance's current call.
func withGate(cfg wazero.ModuleConfig, g *callGate) wazero.ModuleConfig {
	return cfg.WithNanosleep(g.sleep).
		WithOsyield(func() { g.stopIfDone() }).
		WithRandSource(gatedRand{g})
}

// gateKey carries an instance's gate in the contexts of its calls, for the
// wrapped WASI functions.
type gateKey struct{}

func gateFrom(ctx context.Context) *callGate {
	g, _ := ctx.Value(gateKey{}).(*callGate)
	return g
}

// instantiateWASI instantiates wazero's wasi_snapshot_preview1 in r with
// the vectored I/O functions wrapped: at most wasiMaxIovecs iovecs and
// wasiMaxIOBytes bytes a call, and a stop at the call's deadline.
func instantiateWASI(ctx context.Context, r wazero.Runtime) error {
	// wazero's own implementations, taken from a module that is compiled
	// but never instantiated.
	scratch := r.NewHostModuleBuilder("fennec-wasi-originals")
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(scratch)
	orig, err := scratch.Compile(ctx)
	if err != nil {
		return err
	}
	defer orig.Close(ctx)

	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	for _, name := range []string{"fd_read", "fd_pread", "fd_write", "fd_pwrite"} {
		def := orig.ExportedFunctions()[name]
		if def == nil {
			return fmt.Errorf("wazero's WASI has no %s", name)
		}
		fn, ok := def.GoFunction().(api.GoModuleFunction)
		if !ok {
			return fmt.Errorf("wazero's WASI %s is not a Go module function", name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(boundedIO(fn), def.ParamTypes(), def.ResultTypes()).
			WithParameterNames(def.ParamNames()...).
			WithResultNames(def.ResultNames()...).
			Export(name)
	}
	_, err = b.Instantiate(ctx)
	return err
}

// boundedIO wraps a WASI function (fd, iovs, iovs_len, ...) -> errno.
func boundedIO(fn api.GoModuleFunction) api.GoModuleFunction {
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		if g := gateFrom(ctx); g != nil {
			g.stopIfDone()
		}
		iovs, n := uint32(stack[1]), uint32(stack[2])
		if n > wasiMaxIovecs {
			stack[0] = errnoInval
			return
		}
		if buf, ok := mem(mod).Read(iovs, n*8); ok {
			var total uint64
			for i := uint32(0); i < n; i++ {
				total += uint64(binary.LittleEndian.Uint32(buf[8*i+4:]))
				if total > wasiMaxIOBytes && i > 0 {
					stack[2] = uint64(i) // a short read or write
					break
				}
			}
		} // else wazero answers EFAULT
		fn.Call(ctx, mod, stack)
	})
}

func mem(mod api.Module) api.Memory {
	if m := mod.Memory(); m != nil {
		return m
	}
	return emptyMemory{}
}

// emptyMemory reads nothing, for a guest without memory (which wazero's
// functions answer with EFAULT).
type emptyMemory struct{ api.Memory }

func (emptyMemory) Read(uint32, uint32) ([]byte, bool) { return nil, false }
