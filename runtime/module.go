package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Module is a compiled module with its pool of warm instances. Calls may
// run concurrently, each on its own instance.
type Module struct {
	eng      *Engine
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	key      compiledKey // in the engine's table of shared compiled modules
	man      Manifest
	lim      effectiveLimits
	log      *slog.Logger

	slots chan struct{} // one token per instance that may exist at once

	mu       sync.Mutex
	idle     []*instance
	closed   bool
	inflight sync.WaitGroup

	stats moduleStats
}

type moduleStats struct {
	calls, failures, traps, deadlines, instantiations, abandoned atomic.Int64
}

// Stats are a module's counters.
type Stats struct {
	Calls          int64 // calls made
	Failures       int64 // calls that failed for any reason
	Traps          int64 // instances lost to a trap
	Deadlines      int64 // calls stopped at their deadline
	Instantiations int64 // instances created
	Abandoned      int64 // host-calls-preempted instances left running past their deadline
	Idle           int   // warm instances waiting in the pool
}

type instance struct {
	gate    *callGate // the call it runs, for WASI sleeps and randomness
	stderr  *lineLogger
	mod     api.Module
	host    *hostfuncs.Instance
	ctx     context.Context // carries host
	entries map[string]api.Function
}

func newModule(e *Engine, r wazero.Runtime, c wazero.CompiledModule, man Manifest, lim effectiveLimits) *Module {
	m := &Module{
		eng: e, rt: r, compiled: c, man: man, lim: lim,
		log:   e.log.With("module", man.Name, "version", man.Version),
		slots: make(chan struct{}, lim.instances),
	}
	return m
}

// Manifest returns the module's manifest.
func (m *Module) Manifest() Manifest { return m.man }

// Name returns the module's name.
func (m *Module) Name() string { return m.man.Name }

// Stats returns the module's counters.
func (m *Module) Stats() Stats {
	m.mu.Lock()
	idle := len(m.idle)
	m.mu.Unlock()
	return Stats{
		Calls: m.stats.calls.Load(), Failures: m.stats.failures.Load(), Traps: m.stats.traps.Load(),
		Deadlines: m.stats.deadlines.Load(), Instantiations: m.stats.instantiations.Load(),
		Abandoned: m.stats.abandoned.Load(), Idle: idle,
	}
}

// Warm instantiates up to n instances ahead of calls (bounded by the
// module's instance limit), so the first calls do not pay for it.
func (m *Module) Warm(ctx context.Context, n int) error {
	var got []*instance
	defer func() {
		for _, in := range got {
			m.put(in)
			<-m.slots
		}
	}()
	for i := 0; i < n; i++ {
		select {
		case m.slots <- struct{}{}:
		default:
			return nil
		}
		in, err := m.instantiate(ctx)
		if err != nil {
			<-m.slots
			return err
		}
		got = append(got, in)
	}
	return nil
}

// Drain closes the idle instances, releasing their memory. The next call
// instantiates again. Federated devices drain between rounds.
func (m *Module) Drain() {
	m.mu.Lock()
	idle := m.idle
	m.idle = nil
	m.mu.Unlock()
	for _, in := range idle {
		in.close(context.Background())
	}
}

// Close waits for calls in flight, then releases the module. Calls after
// Close fail with ErrClosed.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.inflight.Wait()
	m.Drain()
	m.eng.forget(m)
	m.eng.release(ctx, m.key)
	return nil
}

// newHost returns the host state of a new instance of m.
func (m *Module) newHost() (*hostfuncs.Instance, error) {
	return hostfuncs.NewInstance(hostfuncs.InstanceConfig{
		Module:         m.man.Name,
		Logger:         m.log,
		Backend:        m.eng.backend,
		MaxTensorBytes: m.lim.tensorBytes,
		MaxHandles:     m.lim.handles,
		MaxOutputBytes: m.eng.limits.MaxOutputBytes,
		Services:       m.eng.cfg.Services,
		Cooperative:    m.lim.preemption == PreemptHostCalls,
		NN:             hostfuncs.NNConfig{ABI: m.man.NN.ABI, Models: m.man.NN.Models, SHA256: m.man.NN.SHA256},
	})
}

// moduleConfig is the WASI configuration every instance of m gets: its
// name as argv[0], the manifest's environment (wasi:env), the data
// directory at /data (wasi:data), clocks, and sleeps and randomness that
// honour the gate's call. fs, when not nil, takes the mounts instead of a
// fresh configuration.
func (m *Module) moduleConfig(gate *callGate, fs wazero.FSConfig) wazero.ModuleConfig {
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(m.man.Name).
		WithSysWalltime().
		WithSysNanotime()
	cfg = withGate(cfg, gate)
	if m.granted(CapWASIEnv) {
		keys := make([]string, 0, len(m.man.Env))
		for k := range m.man.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cfg = cfg.WithEnv(k, m.man.Env[k])
		}
	}
	if m.granted(CapWASIData) && m.eng.cfg.DataDir != "" {
		if fs == nil {
			fs = wazero.NewFSConfig()
		}
		fs = fs.WithReadOnlyDirMount(m.eng.cfg.DataDir, "/data")
	}
	if fs != nil {
		cfg = cfg.WithFSConfig(fs)
	}
	return cfg
}

func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	if m.man.Command {
		return nil, fmt.Errorf("module %s: %w: a command module runs with Module.Run, not Call", m.man.Name, ErrInvalidModule)
	}
	host, err := m.newHost()
	if err != nil {
		return nil, err
	}
	stderr := newLineLogger(host, slog.LevelWarn, "stderr")
	gate := &callGate{}
	cfg := m.moduleConfig(gate, nil).
		WithStartFunctions("_initialize").
		WithStdout(newLineLogger(host, slog.LevelInfo, "stdout")).
		WithStderr(stderr)
	// The instance outlives this call (it goes to the pool), so the
	// caller's cancellation does not abort its initialisation; the
	// initialisation is guest code too, so it is bounded like a call.
	// (In a host-calls module the deadline reaches the guest at its host
	// calls, WASI sleeps and randomness: its runtime does not close modules
	// on it.)
	base := context.WithValue(host.Attach(context.Background()), gateKey{}, gate)
	ictx, cancel := context.WithTimeout(context.WithoutCancel(context.WithValue(host.Attach(ctx), gateKey{}, gate)), m.lim.timeout)
	defer cancel()
	host.SetDeadline(time.Now().Add(m.lim.timeout)) // host calls of _initialize stop too
	defer host.ClearDeadline()
	// Each instance's memory reserves its cap once and commits what the
	// guest grows into (memory_linux.go).
	ictx = experimental.WithMemoryAllocator(ictx, newMemoryAllocator(gate))
	gate.enter(ictx)
	start := time.Now()
	mod, err := m.rt.InstantiateModule(ictx, m.compiled, cfg)
	gate.leave()
	if err != nil {
		host.Close()
		return nil, fmt.Errorf("module %s: instantiate: %w: %s", m.man.Name, ErrTrap, describe(err))
	}
	m.stats.instantiations.Add(1)
	m.log.Debug("instantiated", "took", time.Since(start))
	in := &instance{gate: gate, stderr: stderr, mod: mod, host: host, ctx: base, entries: map[string]api.Function{}}
	for _, name := range m.man.Entrypoints {
		in.entries[name] = mod.ExportedFunction(name)
	}
	return in, nil
}

func (m *Module) granted(c string) bool {
	for _, x := range m.man.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

func (in *instance) close(ctx context.Context) {
	in.mod.Close(ctx)
	in.host.Close()
}

// get takes an idle instance or makes one. The caller holds a slot.
func (m *Module) get(ctx context.Context) (*instance, error) {
	m.mu.Lock()
	if n := len(m.idle); n > 0 {
		in := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return in, nil
	}
	m.mu.Unlock()
	return m.instantiate(ctx)
}

func (m *Module) put(in *instance) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		in.close(context.Background())
		return
	}
	m.idle = append(m.idle, in)
	m.mu.Unlock()
}

// CallOptions are per-call settings that the host, not the guest, decides.
type CallOptions struct {
	// Dataset names the data the call works on: privacy releases made
	// during the call are charged to its budget.
	Dataset string
	// DPSGDShare (hostfuncs.CallInfo.DPSGDShare): the call's grant of a
	// reduced DP-SGD noise share, which only the device's trusted side
	// makes (a federation mode client). Nil: the full noise.
	DPSGDShare *dpsgd.Share
}

// Call runs entrypoint entry with input on a pooled instance and returns
// the output the guest set. It waits for a free instance when all are busy
// (bounded by ctx). A trap or deadline discards the instance; the next call
// gets a fresh one.
func (m *Module) Call(ctx context.Context, entry string, input []byte) ([]byte, error) {
	return m.CallWith(ctx, entry, input, CallOptions{})
}

// CallWith is Call with per-call options.
func (m *Module) CallWith(ctx context.Context, entry string, input []byte, opts CallOptions) ([]byte, error) {
	if !m.hasEntry(entry) {
		return nil, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrNoEntrypoint, Msg: "the manifest lists " + strings.Join(m.man.Entrypoints, ", ")}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrClosed}
	}
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()

	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrDeadline, Msg: "no instance became free: " + ctx.Err().Error()}
	}
	m.stats.calls.Add(1)
	in, err := m.get(ctx)
	if err != nil {
		<-m.slots
		m.stats.failures.Add(1)
		return nil, err
	}
	out, after, err := m.run(ctx, in, entry, input, hostfuncs.CallInfo{Dataset: opts.Dataset, DPSGDShare: opts.DPSGDShare})
	switch after {
	case keep:
		if in.host.Worn() { // its handle space is half used up: replace it
			in.close(context.Background())
			break
		}
		m.put(in)
	case discard:
		in.close(context.Background())
	case abandon:
		// The runaway's goroutine closes its instance when it ends.
	}
	<-m.slots
	if err != nil {
		m.stats.failures.Add(1)
		return nil, err
	}
	return out, nil
}

func (m *Module) hasEntry(entry string) bool {
	for _, e := range m.man.Entrypoints {
		if e == entry {
			return true
		}
	}
	return false
}

var errAbandoned = errors.New("abandoned")

// What becomes of an instance after a call.
type disposition int

const (
	keep    disposition = iota // back to the pool
	discard                    // closed now (it trapped or overran)
	abandon                    // still running a runaway guest that closes it when done
)

// run calls the entrypoint and says what to do with the instance.
func (m *Module) run(ctx context.Context, in *instance, entry string, input []byte, info hostfuncs.CallInfo) ([]byte, disposition, error) {
	fn := in.entries[entry]
	start := time.Now()
	info.Deadline = start.Add(m.lim.timeout) // host calls check it in every mode
	in.host.Begin(input, info)
	var (
		res []uint64
		err error
	)
	if m.lim.preemption == PreemptHostCalls {
		res, err = m.runCooperative(ctx, in, fn, len(input))
		if errors.Is(err, errAbandoned) {
			m.stats.deadlines.Add(1)
			m.stats.abandoned.Add(1)
			m.log.Error("guest ignored its deadline and was abandoned; it keeps a CPU busy until it reaches a host call", "entry", entry, "timeout", m.lim.timeout)
			return nil, abandon, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrDeadline,
				Msg: fmt.Sprintf("no host call within %v of the deadline; instance abandoned (limits.preemption = %q)", m.lim.timeout, PreemptHostCalls)}
		}
	} else {
		cctx, cancel := context.WithTimeout(in.ctx, m.lim.timeout)
		stop := context.AfterFunc(ctx, func() { cancel(); in.host.Expire() }) // the caller's cancellation stops the guest too
		in.gate.enter(cctx)
		res, err = fn.Call(cctx, uint64(uint32(len(input))))
		in.gate.leave()
		stop()
		cancel()
	}
	out, failMsg := in.host.End()
	if err != nil {
		return nil, discard, m.callErr(ctx, entry, err, in.stderr.tail(), time.Since(start))
	}
	if status := int32(res[0]); status != 0 {
		if failMsg == "" {
			failMsg = fmt.Sprintf("entrypoint returned %d", status)
		}
		return nil, keep, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrGuest, Status: status, Msg: failMsg}
	}
	return out, keep, nil
}

// runCooperative runs a call of a module compiled without termination
// checks. The deadline sets a flag that traps the guest at its next host
// call; if it makes none within a grace period, the call is abandoned: the
// caller gets ErrDeadline at once and the goroutine closes the instance
// whenever the guest finally returns.
func (m *Module) runCooperative(ctx context.Context, in *instance, fn api.Function, n int) ([]uint64, error) {
	in.host.ResetDeadline()
	type result struct {
		res []uint64
		err error
	}
	done := make(chan result, 1)
	var abandoned atomic.Bool
	// The call's context is done at the deadline: it stops WASI sleeps and
	// randomness (the runtime does not close the module on it).
	cctx, expire := context.WithCancelCause(in.ctx)
	defer expire(context.Canceled)
	in.gate.enter(cctx)
	go func() {
		res, err := fn.Call(cctx, uint64(uint32(n)))
		if abandoned.Load() {
			in.gate.leave()
			in.host.End()
			in.close(context.Background())
			return
		}
		done <- result{res, err}
	}()
	timer := time.NewTimer(m.lim.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		in.gate.leave()
		return r.res, r.err
	case <-timer.C:
		expire(context.DeadlineExceeded)
	case <-ctx.Done():
		expire(ctx.Err())
	}
	in.host.Expire()
	grace := time.NewTimer(max(100*time.Millisecond, m.lim.timeout/10))
	defer grace.Stop()
	select {
	case r := <-done:
		in.gate.leave()
		return r.res, r.err
	case <-grace.C:
		abandoned.Store(true)
		// The goroutine may have finished between the timer and the store.
		select {
		case r := <-done:
			in.gate.leave()
			return r.res, r.err
		default:
		}
		return nil, errAbandoned // the gate stays shut for the runaway
	}
}

func (m *Module) callErr(ctx context.Context, entry string, err error, stderr string, elapsed time.Duration) error {
	ce := m.classify(ctx, entry, err, elapsed)
	if ce.Kind == ErrTrap && stderr != "" {
		ce.Msg += " (guest stderr: " + stderr + ")"
	}
	return ce
}

// classify turns a failed call's error into a CallError; elapsed is how
// long the call really ran, which a deadline's message reports.
func (m *Module) classify(ctx context.Context, entry string, err error, elapsed time.Duration) *CallError {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			m.stats.deadlines.Add(1)
			msg := fmt.Sprintf("deadline %v, stopped after %v (limits.call_timeout)", m.lim.timeout, elapsed.Round(time.Millisecond))
			if ctx.Err() != nil {
				msg = "caller's context: " + ctx.Err().Error()
			}
			return &CallError{Module: m.man.Name, Entry: entry, Kind: ErrDeadline, Msg: msg}
		case sys.ExitCodeContextCanceled:
			m.stats.deadlines.Add(1)
			return &CallError{Module: m.man.Name, Entry: entry, Kind: ErrDeadline, Msg: "canceled by the caller"}
		default:
			m.stats.traps.Add(1)
			return &CallError{Module: m.man.Name, Entry: entry, Kind: ErrTrap, Msg: fmt.Sprintf("guest exited with code %d", exit.ExitCode())}
		}
	}
	m.stats.traps.Add(1)
	return &CallError{Module: m.man.Name, Entry: entry, Kind: ErrTrap, Msg: describe(err)}
}

// describe shortens a wazero error to its first line (the trap reason),
// dropping the guest stack trace that follows.
func describe(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimPrefix(s, "wasm error: ")
}

// lineLogger turns guest output into one slog record per line, through
// the instance's rate limit (hostfuncs.Instance.GuestOutput, shared with
// fennec.log), and keeps the last lines so that a trap's error can quote
// what the guest said. A line longer than maxLine keeps its first maxLine
// bytes; the rest is counted, not buffered, and the record is marked as
// truncated.
type lineLogger struct {
	mu     sync.Mutex
	host   *hostfuncs.Instance
	level  slog.Level
	stream string
	buf    bytes.Buffer
	over   int    // bytes of the current line beyond maxLine
	reason string // the last line that explains a failure
	last   string // the last line
	quiet  bool   // keep the tail only; the guest's stream goes elsewhere
}

// tail returns what best explains a trap among the lines the guest wrote
// since the last call of tail: its last "panic:" or "fatal error:" line (Go
// guests print a stack trace after it), else its last line.
func (w *lineLogger) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	reason, last := w.reason, w.last
	if w.buf.Len() > 0 {
		last = w.buf.String()
	}
	w.reason, w.last = "", ""
	if reason != "" {
		return reason
	}
	return last
}

func newLineLogger(host *hostfuncs.Instance, level slog.Level, stream string) *lineLogger {
	return &lineLogger{host: host, level: level, stream: stream}
}

const maxLine = hostfuncs.DefaultMaxLogLine

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		room := max(0, maxLine-w.buf.Len())
		w.buf.Write(part[:min(len(part), room)])
		w.over += len(part) - min(len(part), room)
		if i < 0 {
			break
		}
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineLogger) flush() {
	line := w.buf.Bytes()
	if !w.quiet {
		w.host.GuestOutput(w.level, w.stream, line, len(line)+w.over)
	}
	s := string(line)
	w.buf.Reset()
	w.over = 0
	if strings.TrimSpace(s) == "" {
		return
	}
	w.last = s
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		w.reason = s
	}
}
