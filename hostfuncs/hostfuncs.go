// Package hostfuncs implements fennec's host ABI v1: the functions that guest
// modules import. docs/ABI.md is the specification; this package is its only
// implementation.
//
// Host functions are registered once per wazero runtime as GoModuleFunction
// values (wazero's fast path: no reflection, no allocation per call). They
// find the calling guest's state, an *Instance, in the context of the call:
// the runtime attaches it with Instance.Attach before calling an entrypoint.
// Everything a guest passes is untrusted: pointers and lengths are checked
// against its memory, handles against its own table, shapes against
// overflow and the instance's quota. Failures return a negative code and set
// a message that the guest can fetch with last_error; nothing a guest passes
// can make the host panic or touch another instance's data.
package hostfuncs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// ABIVersion is the major version of the host ABI this package implements.
const ABIVersion = 1

// Import module names of the built-in groups.
const (
	ModuleCore   = "fennec"
	ModuleTensor = "fennec_tensor"
)

// Capability names of the built-in groups. The core group needs none.
const (
	CapTensor  = "tensor"
	CapPrivacy = "privacy"
)

// Code is an ABI result code. Negative values are errors.
type Code int32

// Error codes (docs/ABI.md). Values never change within ABI v1.
const (
	OK        Code = 0
	EINVAL    Code = -1
	EMEM      Code = -2
	EHANDLE   Code = -3
	ESHAPE    Code = -4
	EDTYPE    Code = -5
	EQUOTA    Code = -6
	EDENIED   Code = -7
	ENOMEM    Code = -8
	EINTERNAL Code = -9
	ESTATE    Code = -10
	EBUDGET   Code = -11
	ETOOBIG   Code = -12
)

var codeNames = map[Code]string{
	OK: "OK", EINVAL: "EINVAL", EMEM: "EMEM", EHANDLE: "EHANDLE", ESHAPE: "ESHAPE",
	EDTYPE: "EDTYPE", EQUOTA: "EQUOTA", EDENIED: "EDENIED", ENOMEM: "ENOMEM",
	EINTERNAL: "EINTERNAL", ESTATE: "ESTATE", EBUDGET: "EBUDGET", ETOOBIG: "ETOOBIG",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("Code(%d)", int32(c))
}

// Func is one host function of a group.
type Func struct {
	Name    string
	Params  []api.ValueType
	Results []api.ValueType
	Fn      api.GoModuleFunc
}

// Group is one import module: its functions and the capability that a
// module's manifest must hold (and the operator must allow) to import it.
// Every group is defined here (Builtin): a host function reaches the
// calling instance's handles, quotas, deadline and last_error only through
// this package, so services above it plug in through Services instead.
type Group struct {
	Module     string
	Capability string // "" means always granted
	Doc        string
	Funcs      []Func
}

// Lookup finds the function name in the group, or nil.
func (g *Group) Lookup(name string) *Func {
	for i := range g.Funcs {
		if g.Funcs[i].Name == name {
			return &g.Funcs[i]
		}
	}
	return nil
}

// Builtin returns the groups of ABI v1 that this package implements.
func Builtin() []Group {
	return []Group{coreGroup(), tensorGroup(), privacyGroup(), wasiNNGroup(), nnGroup()}
}

// Register instantiates each group as a host module in r.
func Register(ctx context.Context, r wazero.Runtime, groups []Group) error {
	for _, g := range groups {
		b := r.NewHostModuleBuilder(g.Module)
		for _, f := range g.Funcs {
			b = b.NewFunctionBuilder().WithGoModuleFunction(f.Fn, f.Params, f.Results).Export(f.Name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("hostfuncs: register %s: %w", g.Module, err)
		}
	}
	return nil
}

// InstanceConfig sets one guest instance's limits. Zero values are replaced
// by the defaults below; negative ones are an error.
type InstanceConfig struct {
	Module         string       // the module's name, for logs and messages
	Logger         *slog.Logger // guest logs go here with the module's name (slog.Default() when nil)
	Backend        gpu.Backend  // tensor backend
	MaxTensorBytes int64        // quota of live tensor bytes
	MaxHandles     int          // quota of live handles (at most 65535)
	MaxOutputBytes int          // largest output of one call
	// Services are the optional groups' services; nil means none.
	Services *Services
	// Cooperative marks an instance of a module compiled without wazero's
	// termination checks, whose only stopping points are host calls. Every
	// instance, cooperative or not, traps at its next host call (or block
	// of a long one) once its call's deadline has passed (CallInfo.Deadline,
	// Expire); the flag is informational.
	Cooperative bool
	// Output rate-limits the instance's log output (fennec.log, and its
	// stdout and stderr through GuestOutput); zero fields take defaults.
	Output OutputLimits
	// NN is what the instance may do with models (wasi_ephemeral_nn,
	// fennec_nn); zero fields take defaults.
	NN NNConfig
}

// Defaults for InstanceConfig.
const (
	DefaultMaxTensorBytes = 64 << 20
	DefaultMaxHandles     = 1024
	DefaultMaxOutputBytes = 64 << 20
	maxMessage            = 4 << 10
)

// Instance is the host-side state of one guest instance: its tensor handles,
// quota, the current call's input and output, and its last error. It is
// used by one goroutine at a time (the one running a call on the instance).
type Instance struct {
	cfg      InstanceConfig
	log      *slog.Logger
	tab      handleTable
	bytes    int64
	lastErr  string
	inCall   bool
	callInfo CallInfo
	input    []byte
	output   []byte
	failMsg  string
	// stop holds the call's sequence number shifted left by one, with bit 0
	// set once the call's deadline has passed. A timer armed by Begin sets
	// the bit only for its own call (compare and swap on the sequence), so
	// a timer that fires late cannot expire the next call.
	stop    atomic.Uint64
	timer   *time.Timer
	closed  bool
	scratch [gpu.MaxRank]int
	out     *outputLimiter
	// packs is the quota charged for backend caches derived from a
	// tensor (gpu.Quantizer.Int8PackBytes), by tensor; release and Close
	// return it.
	packs map[gpu.Tensor]int64
	// held is host scratch of the current host call counted against the
	// tensor quota (hold/unhold, quota.go).
	held int64
	// nn holds the instance's model graphs and execution contexts
	// (nnstate.go), created on first use.
	nn *nnState
	// dpsgd is the current call's DP-SGD run (dp_sgd_begin), ended with
	// the call.
	dpsgd *dpsgdRun
}

var saltCounter atomic.Uint32

// NewInstance returns the state for a new guest instance. A negative
// quota or output limit is an error naming the field.
func NewInstance(cfg InstanceConfig) (*Instance, error) {
	var err error
	if err = errors.Join(
		config.Default("hostfuncs: InstanceConfig.MaxTensorBytes", &cfg.MaxTensorBytes, DefaultMaxTensorBytes),
		config.Default("hostfuncs: InstanceConfig.MaxHandles", &cfg.MaxHandles, DefaultMaxHandles),
		config.Default("hostfuncs: InstanceConfig.MaxOutputBytes", &cfg.MaxOutputBytes, DefaultMaxOutputBytes),
		config.Default("hostfuncs: InstanceConfig.NN.MaxGraphs", &cfg.NN.MaxGraphs, DefaultMaxNNGraphs),
		config.Default("hostfuncs: InstanceConfig.NN.MaxContexts", &cfg.NN.MaxContexts, DefaultMaxNNContexts),
	); err != nil {
		return nil, err
	}
	cfg.MaxHandles = min(cfg.MaxHandles, maxSlots)
	switch cfg.NN.ABI {
	case "":
		cfg.NN.ABI = NNABIWasmtime
	case NNABIWasmtime, NNABIWasmEdge:
	default:
		return nil, fmt.Errorf("hostfuncs: InstanceConfig.NN.ABI %q is not %q or %q", cfg.NN.ABI, NNABIWasmtime, NNABIWasmEdge)
	}
	if cfg.Output, err = cfg.Output.withDefaults(); err != nil {
		return nil, err
	}
	cfg.Logger = config.Logger(cfg.Logger)
	in := &Instance{cfg: cfg, log: cfg.Logger.With("module", cfg.Module), out: newOutputLimiter(cfg.Output, nil)}
	// Consecutive instances get distinct salts, so a handle of one instance
	// never validates in another (for 32768 instances at a time).
	in.tab.salt = uint16(saltCounter.Add(1)*0x5bd1) & tagMask
	return in, nil
}

type ctxKey struct{}

// Attach returns ctx carrying the instance, for calls into the guest.
func (in *Instance) Attach(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, in)
}

// FromContext returns the instance attached to ctx, or nil.
func FromContext(ctx context.Context) *Instance {
	in, _ := ctx.Value(ctxKey{}).(*Instance)
	return in
}

// Begin starts an entrypoint call with its input. A non-zero
// info.Deadline arms a timer that expires the call at that time.
func (in *Instance) Begin(input []byte, info CallInfo) {
	in.inCall, in.callInfo, in.input, in.output, in.failMsg = true, info, input, nil, ""
	in.SetDeadline(info.Deadline)
}

// SetDeadline starts a new deadline period: it clears the flag set by
// Expire or an earlier deadline and, unless d is zero, arms a timer that
// sets it at d. Begin calls it with the call's deadline; the runtime calls
// it directly around guest code that runs outside an entrypoint call (the
// module's _initialize). End and Close disarm the timer.
func (in *Instance) SetDeadline(d time.Time) {
	in.disarm()
	seq := in.stop.Load()>>1 + 1
	in.stop.Store(seq << 1)
	if !d.IsZero() {
		in.timer = time.AfterFunc(time.Until(d), func() { in.stop.CompareAndSwap(seq<<1, seq<<1|1) })
	}
}

// ClearDeadline disarms the timer of SetDeadline and clears the flag.
func (in *Instance) ClearDeadline() { in.SetDeadline(time.Time{}) }

func (in *Instance) disarm() {
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
}

// Call returns the current call's information; ok is false outside a call.
func (in *Instance) Call() (info CallInfo, ok bool) { return in.callInfo, in.inCall }

// Services returns the instance's services (never nil).
func (in *Instance) Services() *Services {
	if in.cfg.Services == nil {
		return &Services{}
	}
	return in.cfg.Services
}

// Module returns the module's name.
func (in *Instance) Module() string { return in.cfg.Module }

// End finishes the call and returns its output and the guest's failure
// message, if it set one.
func (in *Instance) End() (output []byte, failMsg string) {
	output, failMsg = in.output, in.failMsg
	in.endDPSGD()
	in.disarm()
	in.out.flush(in.log)
	in.inCall, in.callInfo, in.input, in.output, in.failMsg = false, CallInfo{}, nil, nil, ""
	return output, failMsg
}

// Expire marks the current call's deadline as passed (the caller gave up,
// or the runtime's own timer fired): the guest's next host call traps, and
// so does a long host call at its next block of work. It is safe to call
// from any goroutine.
func (in *Instance) Expire() {
	for {
		s := in.stop.Load()
		if s&1 != 0 || in.stop.CompareAndSwap(s, s|1) {
			return
		}
	}
}

// ResetDeadline clears the flag set by Expire or by the deadline's timer.
// Begin already starts every call with the flag clear.
func (in *Instance) ResetDeadline() {
	for {
		s := in.stop.Load()
		if s&1 == 0 || in.stop.CompareAndSwap(s, s&^1) {
			return
		}
	}
}

// Expired reports whether the current call's deadline has passed.
func (in *Instance) Expired() bool { return in.stop.Load()&1 != 0 }

// Stats reports live handles and tensor bytes.
func (in *Instance) Stats() (handles int, bytes int64) { return in.tab.live, in.bytes }

// Worn reports whether the instance has used up so much of its handle space
// (over 2^30 tensor allocations: handle values are never reissued) that it
// should be closed and replaced after the current call.
func (in *Instance) Worn() bool { return in.tab.worn() }

// LastError returns the message of the last failed host call.
func (in *Instance) LastError() string { return in.lastErr }

// Close frees every tensor the instance holds. It is idempotent.
func (in *Instance) Close() {
	if in.closed {
		return
	}
	in.closed = true
	in.endDPSGD()
	in.disarm()
	in.out.flush(in.log)
	in.closeNN()
	in.tab.each(func(t gpu.Tensor) { in.cfg.Backend.Free(t) })
	in.tab = handleTable{salt: in.tab.salt}
	in.bytes = 0
	in.packs = nil
}

// ErrDeadline is the trap raised in an instance whose call ran past its
// deadline, at its next host call or between blocks of a long one. It is
// wazero's own deadline exit, so the runtime treats both alike (the call
// fails with its deadline error and the instance is discarded).
var ErrDeadline = sys.NewExitError(sys.ExitCodeDeadlineExceeded)

// hostFn is the body of a host function that needs its calling instance:
// it runs with the instance found and its call's deadline checked, and
// returns the value of the function's result (stack[0]).
type hostFn func(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64

// host adapts a body to wazero's GoModuleFunc: the one prologue (find the
// instance, trap once its deadline has passed) and the one place a result
// is written. See docs/RATIONALE.md on the cost of the indirect call.
func host(f hostFn) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		in := enter(ctx)
		if in == nil {
			stack[0] = noInstance
			return
		}
		stack[0] = f(ctx, in, mod, stack)
	}
}

// enter returns the calling instance. A host function called without an
// attached instance (a runtime bug, not a guest's doing) gets nil and answers
// EINTERNAL. Once the call's deadline has passed, the guest traps here: one
// atomic load, so back-to-back host calls in straight-line guest code (where
// wazero's loop-header checks never run) stop at the deadline too.
func enter(ctx context.Context) *Instance {
	in, _ := ctx.Value(ctxKey{}).(*Instance)
	if in != nil && in.stop.Load()&1 != 0 {
		panic(ErrDeadline)
	}
	return in
}

// checkpoint traps the guest when its call's deadline has passed. Host
// functions whose work is not bounded by a small constant call it between
// bounded blocks of that work (see blockWork), after leaving every tensor
// the guest can see in a consistent state: a fresh result is in the handle
// table (freed with the instance, which the runtime discards after the
// trap), and privacy releases write nothing until all their work is done.
func (in *Instance) checkpoint() {
	if in.stop.Load()&1 != 0 {
		panic(ErrDeadline)
	}
}

// fail records a message and returns the code as a stack value.
func (in *Instance) fail(c Code, format string, args ...any) uint64 {
	in.lastErr = fmt.Sprintf("%s: %s", c, fmt.Sprintf(format, args...))
	return uint64(uint32(int32(c)))
}

// failErr maps a backend or shape error to a code.
func (in *Instance) failErr(op string, err error) uint64 {
	c := EINTERNAL
	switch {
	case errors.Is(err, gpu.ErrShape):
		c = ESHAPE
	case errors.Is(err, gpu.ErrDType):
		c = EDTYPE
	case errors.Is(err, gpu.ErrOutOfMemory):
		c = ENOMEM
	case errors.Is(err, gpu.ErrUnsupported):
		c = EINVAL
	case errors.Is(err, errInvalid):
		c = EINVAL
	case errors.Is(err, errQuota):
		c = EQUOTA
	}
	return in.fail(c, "%s: %v", op, err)
}

var errInvalid = errors.New("invalid argument")

func ok(v int32) uint64 { return uint64(uint32(v)) }

var noInstance = ok(int32(EINTERNAL))

// mem returns the guest's bytes [ptr, ptr+n) or false when the range is not
// inside its memory. n is a signed guest length; negative is refused.
func mem(mod api.Module, ptr uint32, n int32) ([]byte, bool) {
	if n < 0 {
		return nil, false
	}
	m := mod.Memory()
	if m == nil {
		return nil, false
	}
	return m.Read(ptr, uint32(n))
}

var (
	i32  = api.ValueTypeI32
	f32  = api.ValueTypeF32
	i32s = func(n int) []api.ValueType {
		v := make([]api.ValueType, n)
		for i := range v {
			v[i] = i32
		}
		return v
	}
)
