package benchsuite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/runtime"
)

// Host-ABI and runtime benchmarks: `fennec bench abi`. They run the probe
// guest (runtime/testdata/probe), built from the source tree.

func init() {
	bench.Register(bench.Case{Group: "abi", Name: "host-call", Doc: "guest->host call: tensor.rank (instance lookup + handle checks) vs abi_version (bare import), ns per call", Run: benchHostCall})
	bench.Register(bench.Case{Group: "abi", Name: "matmul512", Doc: "512x512 matmul through host functions (copies included) vs the same matmul in Go inside the guest", Run: benchMatmulABI})
	bench.Register(bench.Case{Group: "abi", Name: "start", Doc: "module start from the compilation cache (new engine, compile, first call), and a call on a warm pooled instance", Run: benchStart})
	bench.Register(bench.Case{Group: "abi", Name: "deadline-tax", Doc: "tight guest loop: strict preemption (termination checks) vs host-calls preemption, ns per iteration", Run: benchDeadlineTax})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func probeModule(ctx context.Context, cacheDir, preemption string) (*runtime.Engine, *runtime.Module, error) {
	wasm, man, err := guests.Load(ctx, "probe")
	if err != nil {
		return nil, nil, err
	}
	if preemption != "" {
		man.Limits.Preemption = preemption
	}
	eng, err := NewEngine(ctx, quietLog(), runtime.Config{Logger: quietLog(), CacheDir: cacheDir, AllowHostCallPreemption: true})
	if err != nil {
		return nil, nil, err
	}
	mod, err := eng.Compile(ctx, wasm, man)
	if err != nil {
		eng.Close(ctx)
		return nil, nil, err
	}
	return eng, mod, nil
}

// loopCost measures ns per iteration of a guest loop entrypoint whose
// iteration count is its input length.
func loopCost(ctx context.Context, o bench.Options, mod *runtime.Module, entry string, iters int) (float64, error) {
	in := make([]byte, iters)
	if _, err := mod.Call(ctx, entry, in); err != nil { // warm up
		return 0, err
	}
	var callErr error
	ns := bench.Time(o, 5, func(n int) {
		for i := 0; i < n && callErr == nil; i++ {
			_, callErr = mod.Call(ctx, entry, in)
		}
	})
	return ns / float64(iters), callErr
}

func benchHostCall(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	eng, mod, err := probeModule(ctx, "", "")
	if err != nil {
		return nil, err
	}
	defer eng.Close(ctx)
	iters := 1 << 20
	if o.Quick {
		iters = 1 << 14
	}
	noop, err := loopCost(ctx, o, mod, "noop_loop", iters)
	if err != nil {
		return nil, err
	}
	rank, err := loopCost(ctx, o, mod, "rank_loop", iters)
	if err != nil {
		return nil, err
	}
	return []bench.Result{{
		Group: "abi", Name: "host-call tensor.rank", Value: rank, Unit: "ns/call",
		Ref: "bare import", RefValue: noop, Ratio: noop / rank, Target: "cost <= 1.5x bare (ratio >= 0.67)",
		Note: fmt.Sprintf("Go wasip1 guest; bare import %.1f ns; 0 allocs/call (TestCallAllocations)", noop),
	}}, nil
}

func benchMatmulABI(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	n := 512
	if o.Quick {
		n = 128
	}
	in := make([]byte, n)
	flops := 2.0 * float64(n) * float64(n) * float64(n)
	// timeEntry runs entry in a fresh engine with the given preemption mode.
	timeEntry := func(entry, mode string, samples int) (float64, string, error) {
		eng, mod, err := probeModule(ctx, "", mode)
		if err != nil {
			return 0, "", err
		}
		defer eng.Close(ctx)
		if _, err := mod.Call(ctx, entry, in); err != nil {
			return 0, "", err
		}
		var callErr error
		ns := bench.Time(bench.Options{Quick: o.Quick, MinTime: time.Nanosecond}, samples, func(k int) {
			for i := 0; i < k && callErr == nil; i++ {
				_, callErr = mod.Call(ctx, entry, in)
			}
		})
		return ns, eng.Backend().Name(), callErr
	}
	host, backend, err := timeEntry("matmul_host", runtime.PreemptStrict, 15)
	if err != nil {
		return nil, err
	}
	// The in-guest references: the loop-ordered (i-k-j) Go matmul without
	// termination checks, the fastest a guest loop runs, and the textbook
	// i-j-k loop in the default strict mode, as most modules would run it.
	best, _, err := timeEntry("matmul_go", runtime.PreemptHostCalls, 3)
	if err != nil {
		return nil, err
	}
	naive, _, err := timeEntry("matmul_go_naive", runtime.PreemptStrict, 1)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("matmul %d via host", n)
	return []bench.Result{
		{Group: "abi", Name: name, Value: flops / host, Unit: "GFLOP/s",
			Ref: "GFLOP/s in-guest Go, i-k-j, no termination checks", RefValue: flops / best, Ratio: best / host,
			Target: ">= 30x (#2), >= 300x (#3)",
			Note:   fmt.Sprintf("%.2f ms via host incl. copies (%s backend), %.0f ms in guest", host/1e6, backend, best/1e6)},
		{Group: "abi", Name: name, Value: flops / host, Unit: "GFLOP/s",
			Ref: "GFLOP/s in-guest Go, textbook i-j-k, strict", RefValue: flops / naive, Ratio: naive / host,
			Target: ">= 30x (#2), >= 300x (#3)",
			Note:   fmt.Sprintf("%.0f ms in guest", naive/1e6)},
	}, nil
}

func benchStart(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	cacheDir, err := os.MkdirTemp("", "fennec-bench-cache-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cacheDir)
	// Fill the on-disk cache once.
	eng, mod, err := probeModule(ctx, cacheDir, "")
	if err != nil {
		return nil, err
	}
	if _, err := mod.Call(ctx, "echo", nil); err != nil {
		eng.Close(ctx)
		return nil, err
	}
	// Warm call on a pooled instance.
	in := []byte{0xa0}
	var callErr error
	warm := bench.Time(o, 7, func(n int) {
		for i := 0; i < n && callErr == nil; i++ {
			_, callErr = mod.Call(ctx, "echo", in)
		}
	})
	eng.Close(ctx)
	if callErr != nil {
		return nil, callErr
	}
	wasm, man, err := guests.Load(ctx, "probe")
	if err != nil {
		return nil, err
	}
	samples := 7
	if o.Quick {
		samples = 2
	}
	// A cold process: a new engine, then the module from the disk cache.
	// A running host: the engine exists; a module is (re)loaded from the
	// cache, as an agent does when a deployment arrives.
	var cold, hot, inst []float64
	running, err := runtime.New(ctx, runtime.Config{Logger: quietLog(), CacheDir: cacheDir})
	if err != nil {
		return nil, err
	}
	defer running.Close(ctx)
	for i := 0; i < samples; i++ {
		t0 := time.Now()
		e, err := runtime.New(ctx, runtime.Config{Logger: quietLog(), CacheDir: cacheDir})
		if err != nil {
			return nil, err
		}
		m, err := e.Compile(ctx, wasm, man)
		if err == nil {
			_, err = m.Call(ctx, "echo", in)
		}
		cold = append(cold, float64(time.Since(t0).Nanoseconds()))
		e.Close(ctx)
		if err != nil {
			return nil, err
		}
		t0 = time.Now()
		m, err = running.Compile(ctx, wasm, man)
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		_, err = m.Call(ctx, "echo", in)
		hot = append(hot, float64(time.Since(t0).Nanoseconds()))
		inst = append(inst, float64(time.Since(t1).Nanoseconds()))
		m.Close(ctx)
		if err != nil {
			return nil, err
		}
	}
	results := []bench.Result{}
	// A small module (the C guest, when clang is here) for comparison: the
	// start of a large Go guest is dominated by wazero decoding and
	// validating its 2-3 MB of code, which happens even on a cache hit.
	if cw, cman, err := guests.Load(ctx, "c-zscore"); err == nil {
		var cs []float64
		for i := 0; i < samples; i++ {
			t0 := time.Now()
			m, err := running.Compile(ctx, cw, cman)
			if err != nil {
				return nil, err
			}
			// An empty input is a valid call that fails in the guest; the
			// instance is created either way.
			m.Call(ctx, cman.Entrypoints[0], nil)
			cs = append(cs, float64(time.Since(t0).Nanoseconds()))
			m.Close(ctx)
		}
		results = append(results, bench.Result{Group: "abi", Name: "start from cache, C module", Value: bench.Median(cs) / 1e6, Unit: "ms", Target: "<= 30 ms",
			Note: fmt.Sprintf("modules/c-zscore, %d KiB: compile from the disk cache + instantiate + first call", len(cw)>>10)})
	}
	return append(results, []bench.Result{
		{Group: "abi", Name: "start from cache, running host", Value: bench.Median(hot) / 1e6, Unit: "ms", Target: "<= 30 ms",
			Note: fmt.Sprintf("compile from the disk cache + instantiate + first call; instantiate+call alone %.1f ms; %d KiB Go module", bench.Median(inst)/1e6, len(wasm)>>10)},
		{Group: "abi", Name: "start from cache, new process", Value: bench.Median(cold) / 1e6, Unit: "ms",
			Note: "as above plus a new engine (wazero runtime, WASI, host modules)"},
		{Group: "abi", Name: "warm call", Value: warm / 1e6, Unit: "ms", Target: "<= 1 ms", Note: "echo on a pooled instance"},
	}...), nil
}

func benchDeadlineTax(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	iters := 1 << 24
	if o.Quick {
		iters = 1 << 16
	}
	var res [2]float64
	for i, mode := range []string{runtime.PreemptStrict, runtime.PreemptHostCalls} {
		eng, mod, err := probeModule(ctx, "", mode)
		if err != nil {
			return nil, err
		}
		res[i], err = loopCost(ctx, o, mod, "count_loop", iters)
		eng.Close(ctx)
		if err != nil {
			return nil, err
		}
	}
	return []bench.Result{{
		Group: "abi", Name: "tight loop, strict", Value: res[0], Unit: "ns/iter",
		Ref: "ns/iter host-calls", RefValue: res[1], Ratio: res[1] / res[0],
		Note: fmt.Sprintf("termination checks cost %.1fx; strict stops any loop; host-calls needs operator consent", res[0]/res[1]),
	}}, nil
}
