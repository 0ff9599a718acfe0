// Package runtime runs sandboxed WebAssembly modules for fennec: an Engine
// compiles modules (with an on-disk compilation cache), checks their imports
// against the capabilities their manifest requests and the operator allows,
// and keeps a pool of warm instances per module so that a call does not pay
// for instantiation. Each instance has a memory cap, a per-call deadline, a
// tensor quota, and its stdout/stderr in slog under the module's name.
//
//	eng, err := runtime.New(ctx, runtime.Config{})
//	defer eng.Close(ctx)
//	man, err := runtime.ReadManifest("fennec.toml")
//	mod, err := eng.Compile(ctx, wasm, man)
//	out, err := mod.Call(ctx, "process", input)
package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/runtime/internal/instrument"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Config configures an Engine. The zero value is a working configuration.
type Config struct {
	// CacheDir holds compiled machine code between runs. Empty means
	// "$XDG_CACHE_HOME/fennec/wazero" (or the platform's equivalent); if no
	// cache directory can be had, compilation is cached in memory only.
	CacheDir string
	// NoDiskCache keeps compiled code in memory only.
	NoDiskCache bool
	// Backend computes tensor operations; nil means the CPU backend.
	Backend gpu.Backend
	// Logger receives engine events and guest output; nil means slog.Default().
	Logger *slog.Logger
	// Limits caps what any manifest may ask for, and sets the defaults.
	Limits HostLimits
	// Allow lists the capabilities the operator lets modules have. Nil
	// allows the host-function groups (hostfuncs.Builtin) and
	// "wasi:env"; "wasi:data" is allowed when DataDir is set. A module that
	// requests a capability outside this list fails to compile.
	Allow []string
	// AllowHostCallPreemption lets manifests choose limits.preemption =
	// "host-calls" (see Limits.Preemption).
	AllowHostCallPreemption bool
	// DataDir is mounted read-only at /data for modules granted "wasi:data".
	DataDir string
	// Services are what the optional host-function groups use (a privacy
	// budget ledger, HE keys); nil means none is configured.
	Services *hostfuncs.Services
}

// HostLimits are the engine's caps and defaults. Zero fields take the
// values of DefaultHostLimits (a default left zero never exceeds its cap).
// A manifest that asks for more than a cap fails to compile. Operators set
// them with a host configuration file (ReadHostConfig).
type HostLimits struct {
	MaxMemoryPages   uint32
	MaxCallTimeout   time.Duration
	MaxTensorBytes   int64
	MaxTensorHandles int
	MaxInstances     int
	MaxOutputBytes   int

	DefaultMemoryPages   uint32
	DefaultCallTimeout   time.Duration
	DefaultTensorBytes   int64
	DefaultTensorHandles int
	DefaultInstances     int
}

// DefaultHostLimits returns the limits used for zero fields. The caps suit
// a small edge device (2 cores, 1-2 GB of memory): what one module can hold
// at once, its instances times their memory and tensors, stays within
// about 2 GiB, and no call holds a core for more than a minute; see
// docs/RATIONALE.md.
func DefaultHostLimits() HostLimits {
	procs := goruntime.GOMAXPROCS(0)
	return HostLimits{
		MaxMemoryPages:   4096, // 256 MiB
		MaxCallTimeout:   time.Minute,
		MaxTensorBytes:   256 << 20,
		MaxTensorHandles: 8192,
		MaxInstances:     max(4, 2*procs),
		MaxOutputBytes:   hostfuncs.DefaultMaxOutputBytes,

		DefaultMemoryPages:   1024, // 64 MiB
		DefaultCallTimeout:   5 * time.Second,
		DefaultTensorBytes:   hostfuncs.DefaultMaxTensorBytes,
		DefaultTensorHandles: hostfuncs.DefaultMaxHandles,
		DefaultInstances:     procs,
	}
}

func (l HostLimits) withDefaults() HostLimits {
	d := DefaultHostLimits()
	pick := func(v, def int64) int64 {
		if v > 0 {
			return v
		}
		return def
	}
	l.MaxMemoryPages = uint32(pick(int64(l.MaxMemoryPages), int64(d.MaxMemoryPages)))
	l.MaxCallTimeout = time.Duration(pick(int64(l.MaxCallTimeout), int64(d.MaxCallTimeout)))
	l.MaxTensorBytes = pick(l.MaxTensorBytes, d.MaxTensorBytes)
	l.MaxTensorHandles = int(pick(int64(l.MaxTensorHandles), int64(d.MaxTensorHandles)))
	l.MaxInstances = int(pick(int64(l.MaxInstances), int64(d.MaxInstances)))
	l.MaxOutputBytes = int(pick(int64(l.MaxOutputBytes), int64(d.MaxOutputBytes)))
	// A default left unset never exceeds the cap the operator lowered.
	l.DefaultMemoryPages = uint32(pick(int64(l.DefaultMemoryPages), min(int64(d.DefaultMemoryPages), int64(l.MaxMemoryPages))))
	l.DefaultCallTimeout = time.Duration(pick(int64(l.DefaultCallTimeout), min(int64(d.DefaultCallTimeout), int64(l.MaxCallTimeout))))
	l.DefaultTensorBytes = pick(l.DefaultTensorBytes, min(d.DefaultTensorBytes, l.MaxTensorBytes))
	l.DefaultTensorHandles = int(pick(int64(l.DefaultTensorHandles), min(int64(d.DefaultTensorHandles), int64(l.MaxTensorHandles))))
	l.DefaultInstances = int(pick(int64(l.DefaultInstances), min(int64(d.DefaultInstances), int64(l.MaxInstances))))
	return l
}

// Engine compiles and runs modules. It is safe for concurrent use.
type Engine struct {
	cfg      Config
	limits   HostLimits
	log      *slog.Logger
	backend  gpu.Backend
	cache    wazero.CompilationCache
	cacheDir string
	groups   []hostfuncs.Group
	allow    []string

	validateOnce sync.Once
	validator    wazero.Runtime // an interpreter: validates binaries before instrumenting them
	valid        sync.Map       // [32]byte sha256 -> struct{}: binaries validated by this engine

	mu       sync.Mutex
	runtimes map[rtKey]wazero.Runtime
	modules  map[*Module]struct{}
	compiled map[compiledKey]*sharedCompiled
	// compiling serialises the compiles of one binary (compileLock).
	compiling map[[sha256.Size]byte]*compileLock
	closed    bool
}

// compileLock is held while one binary is being compiled. wazero (v1.12)
// publishes a module read back from its file cache in the engine's memory
// before it has generated the module's entry preambles, so a second
// goroutine compiling and instantiating the same binary at that moment
// found it and panicked in NewFunction (index out of range on the
// preambles: the dashboard's concurrent rollout test, CI of 2026-12-04).
// Runtimes that share a compilation cache share wazero's engine, so the
// lock is per binary, across memory limits.
type compileLock struct {
	mu      sync.Mutex
	waiters int
}

// lockCompile takes the compile lock of binary sum and returns its release.
func (e *Engine) lockCompile(sum [sha256.Size]byte) func() {
	e.mu.Lock()
	l := e.compiling[sum]
	if l == nil {
		l = &compileLock{}
		e.compiling[sum] = l
	}
	l.waiters++
	e.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		e.mu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(e.compiling, sum)
		}
		e.mu.Unlock()
	}
}

// A module compiled twice in one engine (a restart, a rollback, a second
// manifest for the same code) shares one wazero CompiledModule: wazero's
// caches skip code generation, but not decoding and validating the binary,
// which dominates the start of a large module.
type compiledKey struct {
	sum [sha256.Size]byte
	rt  rtKey
}

type sharedCompiled struct {
	cm   wazero.CompiledModule
	refs int
}

// rtKey selects a wazero runtime: memory limits and termination checks are
// runtime-wide settings in wazero, so modules with different settings are
// compiled in different runtimes that share one compilation cache.
type rtKey struct {
	pages  uint32
	strict bool
}

// New returns an Engine.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if field, msg := cfg.Limits.check(); field != "" {
		return nil, fmt.Errorf("runtime: Config.Limits: %s: %s", field, msg)
	}
	e := &Engine{
		cfg:       cfg,
		limits:    cfg.Limits.withDefaults(),
		log:       cfg.Logger,
		backend:   cfg.Backend,
		runtimes:  map[rtKey]wazero.Runtime{},
		modules:   map[*Module]struct{}{},
		compiled:  map[compiledKey]*sharedCompiled{},
		compiling: map[[sha256.Size]byte]*compileLock{},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.backend == nil {
		e.backend = gpu.NewCPU()
	}
	e.groups = hostfuncs.Builtin()
	if cfg.Allow != nil {
		e.allow = slices.Clone(cfg.Allow)
	} else {
		e.allow = []string{CapWASIEnv, CapWASIDirs}
		for _, g := range e.groups {
			if g.Capability == "" {
				continue
			}
			// The model groups are denied unless the operator configured
			// models (Services.NN) or lists them in Allow.
			if (g.Capability == hostfuncs.CapWASINN || g.Capability == hostfuncs.CapNN) && (cfg.Services == nil || cfg.Services.NN == nil) {
				continue
			}
			e.allow = append(e.allow, g.Capability)
		}
		if cfg.DataDir != "" {
			e.allow = append(e.allow, CapWASIData)
		}
	}
	if slices.Contains(e.allow, CapWASIData) && cfg.DataDir != "" {
		if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("runtime: data directory %q is not a readable directory", cfg.DataDir)
		}
	}
	if !cfg.NoDiskCache {
		dir := cfg.CacheDir
		if dir == "" {
			if base, err := os.UserCacheDir(); err == nil {
				dir = filepath.Join(base, "fennec", "wazero")
			}
		}
		if dir != "" {
			if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
				e.cache, e.cacheDir = c, dir
			} else {
				e.log.Warn("compilation cache unavailable; compiling in memory", "dir", dir, "err", err)
			}
		}
	}
	if e.cache == nil {
		e.cache = wazero.NewCompilationCache()
	}
	return e, nil
}

// Backend returns the tensor backend in use.
func (e *Engine) Backend() gpu.Backend { return e.backend }

// CacheDir returns the on-disk compilation cache directory, or "".
func (e *Engine) CacheDir() string { return e.cacheDir }

func (e *Engine) runtime(ctx context.Context, k rtKey) (wazero.Runtime, error) {
	if r, ok := e.runtimes[k]; ok {
		return r, nil
	}
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(k.pages).
		WithCloseOnContextDone(k.strict).
		WithCoreFeatures(api.CoreFeaturesV2)
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateWASI(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("runtime: WASI: %w", err)
	}
	if err := hostfuncs.Register(ctx, r, e.groups); err != nil {
		r.Close(ctx)
		return nil, err
	}
	e.runtimes[k] = r
	return r, nil
}

// LoadFile reads a module and its manifest and compiles it. An empty
// manifestPath looks for NAME.toml beside NAME.wasm, then fennec.toml in the
// same directory.
func (e *Engine) LoadFile(ctx context.Context, wasmPath, manifestPath string) (*Module, error) {
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}
	if manifestPath == "" {
		manifestPath, err = FindManifest(wasmPath)
		if err != nil {
			return nil, err
		}
	}
	man, err := ReadManifest(manifestPath)
	if err != nil {
		return nil, err
	}
	mod, err := e.Compile(ctx, wasm, man)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wasmPath, err)
	}
	return mod, nil
}

// FindManifest returns the manifest path conventionally beside wasmPath.
func FindManifest(wasmPath string) (string, error) {
	dir := filepath.Dir(wasmPath)
	cands := []string{
		strings.TrimSuffix(wasmPath, filepath.Ext(wasmPath)) + ".toml",
		filepath.Join(dir, "fennec.toml"),
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no manifest for %s: looked for %s; pass --manifest", wasmPath, strings.Join(cands, " and "))
}

var wasmMagic = []byte{0, 'a', 's', 'm'}

// Compile validates and compiles a module with its manifest.
func (e *Engine) Compile(ctx context.Context, wasm []byte, man Manifest) (*Module, error) {
	if man.Name == "" || (len(man.Entrypoints) == 0 && !man.Command) {
		return nil, fmt.Errorf("%w: manifest has no name or no entrypoints (use ParseManifest)", ErrManifest)
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return nil, fmt.Errorf("module %s: %w: not a WebAssembly binary (%d bytes, no \\0asm header)", man.Name, ErrInvalidModule, len(wasm))
	}
	lim, err := e.moduleLimits(man)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", man.Name, err)
	}
	if man.Command && lim.preemption == PreemptHostCalls {
		return nil, fmt.Errorf("module %s: %w: a command module runs with strict preemption; limits.preemption = %q is for reactors", man.Name, ErrInvalidModule, PreemptHostCalls)
	}
	if lim.preemption == PreemptHostCalls && !e.cfg.AllowHostCallPreemption {
		return nil, fmt.Errorf("module %s: %w: limits.preemption = %q is not allowed by this host", man.Name, ErrCapability, PreemptHostCalls)
	}
	for _, c := range man.Capabilities {
		if !slices.Contains(e.allow, c) {
			return nil, fmt.Errorf("module %s: %w: the manifest requests %q, which this host does not allow (allowed: %s)", man.Name, ErrCapability, c, strings.Join(e.allow, ", "))
		}
	}

	key := compiledKey{sum: sha256.Sum256(wasm), rt: rtKey{pages: lim.pages, strict: lim.preemption != PreemptHostCalls}}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	r, err := e.runtime(ctx, key.rt)
	shared := e.compiled[key]
	if shared != nil {
		shared.refs++ // held while checking, so a concurrent Close keeps it
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if shared == nil {
		unlock := e.lockCompile(key.sum)
		e.mu.Lock()
		if shared = e.compiled[key]; shared != nil { // compiled while we waited
			shared.refs++
		}
		e.mu.Unlock()
		if shared == nil {
			shared, err = e.compileShared(ctx, r, wasm, key, man)
		}
		unlock()
		if err != nil {
			return nil, err
		}
	}
	if err := e.checkModule(shared.cm, man); err != nil {
		e.release(ctx, key)
		return nil, fmt.Errorf("module %s: %w", man.Name, err)
	}
	m := newModule(e, r, shared.cm, man, lim)
	m.key = key
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.release(ctx, key)
		return nil, ErrClosed
	}
	e.modules[m] = struct{}{}
	e.mu.Unlock()
	return m, nil
}

// prepare checks a binary's structure, joins its data segments
// (instrument.MergeData: a Go guest's tens of thousands of tiny segments
// would otherwise stay decoded in wazero's heap for as long as the module is
// compiled, and be copied one by one into each instance) and, for strict
// preemption, adds the call budget that makes wazero's termination checks
// reach guests that recurse without looping (runtime/internal/instrument).
// The original is validated first: the budget is a global one past the
// module's own, which code invalid before the rewrite could name after it.
func (e *Engine) prepare(ctx context.Context, wasm []byte, strict bool) ([]byte, error) {
	if err := instrument.Check(wasm); err != nil {
		return nil, err
	}
	if strict {
		if err := e.validate(ctx, wasm); err != nil {
			return nil, err
		}
	}
	wasm, err := instrument.MergeData(wasm, instrument.DefaultDataGap)
	if err != nil || !strict {
		return wasm, err
	}
	return instrument.Budget(wasm, 0)
}

// validate checks wasm with wazero's interpreter, once per binary: the
// result is kept in memory and, with an on-disk compilation cache, as a
// marker file named by the binary's SHA-256 beside the cached machine code
// (whoever can write that directory can already replace the machine code).
// Validating a 2.8 MB Go guest takes about 200 ms, several times its start
// from the cache.
func (e *Engine) validate(ctx context.Context, wasm []byte) error {
	sum := sha256.Sum256(wasm)
	if _, ok := e.valid.Load(sum); ok {
		return nil
	}
	var marker string
	if e.cacheDir != "" {
		marker = filepath.Join(e.cacheDir, "validated", hex.EncodeToString(sum[:]))
		if _, err := os.Stat(marker); err == nil {
			e.valid.Store(sum, struct{}{})
			return nil
		}
	}
	e.validateOnce.Do(func() {
		e.validator = wazero.NewRuntimeWithConfig(context.Background(),
			wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
	})
	cm, err := e.validator.CompileModule(ctx, wasm)
	if err != nil {
		return err
	}
	cm.Close(ctx)
	e.valid.Store(sum, struct{}{})
	if marker != "" {
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err == nil {
			err = atomicfile.WriteFile(marker, nil, 0o600)
		}
		if err != nil {
			e.log.Debug("validation marker not written", "err", err)
		}
	}
	return nil
}

// release drops a reference to a shared compiled module, closing it with
// the last one.
func (e *Engine) release(ctx context.Context, key compiledKey) {
	e.mu.Lock()
	shared := e.compiled[key]
	if shared == nil {
		e.mu.Unlock()
		return
	}
	shared.refs--
	last := shared.refs == 0
	if last {
		delete(e.compiled, key)
	}
	e.mu.Unlock()
	if last {
		shared.cm.Close(ctx)
	}
}

type effectiveLimits struct {
	pages       uint32
	timeout     time.Duration
	tensorBytes int64
	handles     int
	instances   int
	preemption  string
}

// moduleLimits applies the host's defaults to the manifest's limits and
// refuses any above the host's ceilings.
func (e *Engine) moduleLimits(man Manifest) (effectiveLimits, error) {
	l, h := man.Limits, e.limits
	for _, c := range []struct {
		field, ceiling string
		v, max         int64
		show           func(int64) string
	}{
		{"limits.memory_pages", "max_memory_pages", int64(l.MemoryPages), int64(h.MaxMemoryPages), func(v int64) string { return fmt.Sprintf("%d (%d MiB)", v, v/16) }},
		{"limits.call_timeout", "max_call_timeout", int64(l.CallTimeout.Duration), int64(h.MaxCallTimeout), func(v int64) string { return time.Duration(v).String() }},
		{"limits.tensor_bytes", "max_tensor_bytes", l.TensorBytes, h.MaxTensorBytes, nil},
		{"limits.tensor_handles", "max_tensor_handles", int64(l.TensorHandles), int64(h.MaxTensorHandles), nil},
		{"limits.instances", "max_instances", int64(l.Instances), int64(h.MaxInstances), nil},
	} {
		if c.v > c.max {
			show := c.show
			if show == nil {
				show = func(v int64) string { return fmt.Sprint(v) }
			}
			return effectiveLimits{}, fmt.Errorf("%w: %s = %s is above this host's ceiling of %s (%s in the host configuration)",
				ErrLimit, c.field, show(c.v), show(c.max), c.ceiling)
		}
	}
	pick := func(v, def, cap int64) int64 {
		if v <= 0 {
			v = def
		}
		return min(v, cap)
	}
	p := l.Preemption
	if p == "" {
		p = PreemptStrict
	}
	return effectiveLimits{
		pages:       uint32(pick(int64(l.MemoryPages), int64(h.DefaultMemoryPages), int64(h.MaxMemoryPages))),
		timeout:     time.Duration(pick(int64(l.CallTimeout.Duration), int64(h.DefaultCallTimeout), int64(h.MaxCallTimeout))),
		tensorBytes: pick(l.TensorBytes, h.DefaultTensorBytes, h.MaxTensorBytes),
		handles:     int(pick(int64(l.TensorHandles), int64(h.DefaultTensorHandles), int64(h.MaxTensorHandles))),
		instances:   int(pick(int64(l.Instances), int64(h.DefaultInstances), int64(h.MaxInstances))),
		preemption:  p,
	}, nil
}

// checkModule enforces the shape of a fennec module and its capabilities.
func (e *Engine) checkModule(c wazero.CompiledModule, man Manifest) error {
	var ungranted, unknown []string
	var missingCaps []string
	for _, f := range c.ImportedFunctions() {
		modName, name, _ := f.Import()
		if modName == wasi_snapshot_preview1.ModuleName {
			continue
		}
		var g *hostfuncs.Group
		for i := range e.groups {
			if e.groups[i].Module == modName {
				g = &e.groups[i]
			}
		}
		if g == nil {
			unknown = append(unknown, modName+"."+name)
			continue
		}
		hf := g.Lookup(name)
		if hf == nil {
			unknown = append(unknown, modName+"."+name)
			continue
		}
		if !slices.Equal(hf.Params, f.ParamTypes()) || !slices.Equal(hf.Results, f.ResultTypes()) {
			return fmt.Errorf("%w: import %s.%s has type %s, the host provides %s", ErrInvalidModule, modName, name,
				sig(f.ParamTypes(), f.ResultTypes()), sig(hf.Params, hf.Results))
		}
		if g.Capability != "" && !slices.Contains(man.Capabilities, g.Capability) {
			ungranted = append(ungranted, modName+"."+name)
			if !slices.Contains(missingCaps, g.Capability) {
				missingCaps = append(missingCaps, g.Capability)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: imports functions this host does not provide (ABI v%d): %s", ErrInvalidModule, hostfuncs.ABIVersion, strings.Join(unknown, ", "))
	}
	if len(ungranted) > 0 {
		sort.Strings(ungranted)
		return fmt.Errorf("%w: imports %s without the capability %s in its manifest", ErrCapability, strings.Join(ungranted, ", "), quoteList(missingCaps))
	}
	if len(c.ImportedMemories()) > 0 {
		return fmt.Errorf("%w: imports a memory; a fennec module defines and exports its own", ErrInvalidModule)
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: does not export its memory as \"memory\"", ErrInvalidModule)
	}
	exports := c.ExportedFunctions()
	if man.Command {
		f, ok := exports["_start"]
		if !ok {
			return fmt.Errorf("%w: the manifest says command = true, but the module does not export _start", ErrInvalidModule)
		}
		if len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0 {
			return fmt.Errorf("%w: _start has type %s, want () -> ()", ErrInvalidModule, sig(f.ParamTypes(), f.ResultTypes()))
		}
		return nil
	}
	if _, ok := exports["_start"]; ok {
		if _, ok := exports["_initialize"]; !ok {
			return fmt.Errorf("%w: is a WASI command (exports _start); build it as a reactor (Go: -buildmode=c-shared, clang: -mexec-model=reactor), or set command = true in its manifest and run it with Module.Run (fennec run)", ErrInvalidModule)
		}
	}
	for _, name := range man.Entrypoints {
		f, ok := exports[name]
		if !ok {
			return fmt.Errorf("%w: entrypoint %q in the manifest is not exported by the module", ErrInvalidModule, name)
		}
		if !slices.Equal(f.ParamTypes(), []api.ValueType{api.ValueTypeI32}) || !slices.Equal(f.ResultTypes(), []api.ValueType{api.ValueTypeI32}) {
			return fmt.Errorf("%w: entrypoint %q has type %s, want (i32) -> i32", ErrInvalidModule, name, sig(f.ParamTypes(), f.ResultTypes()))
		}
	}
	return nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func sig(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}

// Close closes every module and runtime. Calls in flight are allowed to
// finish.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	mods := make([]*Module, 0, len(e.modules))
	for m := range e.modules {
		mods = append(mods, m)
	}
	e.mu.Unlock()
	for _, m := range mods {
		m.Close(ctx)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runtimes {
		r.Close(ctx)
	}
	e.validateOnce.Do(func() {})
	if e.validator != nil {
		e.validator.Close(ctx)
	}
	return e.cache.Close(ctx)
}

func (e *Engine) forget(m *Module) {
	e.mu.Lock()
	delete(e.modules, m)
	e.mu.Unlock()
}

// compileShared prepares and compiles wasm under its compile lock and
// records it as key's shared compiled module (one reference).
func (e *Engine) compileShared(ctx context.Context, r wazero.Runtime, wasm []byte, key compiledKey, man Manifest) (*sharedCompiled, error) {
	code, err := e.prepare(ctx, wasm, key.rt.strict)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w: %v", man.Name, ErrInvalidModule, err)
	}
	cm, err := r.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w: %v", man.Name, ErrInvalidModule, err)
	}
	if !releaseBodies(cm) {
		e.log.Debug("function bodies kept: this wazero's compiled module is not the one releaseBodies knows", "module", man.Name)
	}
	// Under the compile lock no other goroutine records key.
	shared := &sharedCompiled{cm: cm, refs: 1}
	e.mu.Lock()
	e.compiled[key] = shared
	e.mu.Unlock()
	return shared, nil
}
