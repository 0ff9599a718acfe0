package hostfuncs_test

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/tetratelabs/wazero/sys"
)

// callBounded calls a host function like env.call, but from a goroutine,
// and fails the test if the call has not returned within a generous bound:
// the host loops it guards against never return.
func (e *env) callBounded(name string, args ...uint64) int32 {
	e.t.Helper()
	fn := e.mod.ExportedFunction("call_" + name)
	if fn == nil {
		e.t.Fatalf("no host function %s", name)
	}
	type result struct {
		res []uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := fn.Call(e.ctx, args...)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			e.t.Fatalf("%s trapped: %v", name, r.err)
		}
		return int32(r.res[0])
	case <-time.After(10 * time.Second):
		e.t.Fatalf("%s did not return: a host loop driven by guest data never ends", name)
		return 0
	}
}

// TestDPSubnormalClip: one subnormal element just above the clip bound
// made every clip loop spin forever (scaling a subnormal by 1-2^-20 and
// rounding to nearest gives it back unchanged). Each mechanism must return,
// and dp_clip must leave the norm at most the bound.
func TestDPSubnormalClip(t *testing.T) {
	s := float32(1000 * math.Pow(2, -149))
	c := float64(s) * (1 - 1e-9)
	l, err := budget.Open(filepath.Join(t.TempDir(), "ledger.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.SetBudget(budget.DatasetAccount("d"), budget.Budget{Epsilon: 100, Delta: 1e-3}); err != nil {
		t.Fatal(err)
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, Noise: seeded(3)}, "d")
	x := e.newF32([]int32{1}, s)
	if got := e.callBounded("fennec_privacy_dp_clip", u(x), fd(c), outAt); got != 0 {
		t.Fatalf("dp_clip = %d (%s)", got, e.host.LastError())
	}
	if n := dp.L2Norm(e.read(x)); n > c {
		t.Fatalf("norm after dp_clip %v > clip %v", n, c)
	}
	for _, call := range []struct {
		name string
		args []uint64
	}{
		{"fennec_privacy_dp_gaussian", []uint64{fd(c), fd(1), fd(1)}},
		{"fennec_privacy_dp_gaussian_eps", []uint64{fd(c), fd(1), fd(1e-5)}},
		{"fennec_privacy_dp_laplace", []uint64{fd(c), fd(1)}},
	} {
		h := e.newF32([]int32{2}, s, -s)
		args := append([]uint64{u(h)}, call.args...)
		if got := e.callBounded(call.name, append(args, 0)...); got <= 0 {
			t.Fatalf("%s = %d (%s)", call.name, got, e.host.LastError())
		}
	}
}

// TestDegenerateShapesAreCheap: a zero-element tensor of shape
// [46340, 46340, 0] costs no quota, and loops over its outer dimensions
// spun for seconds per call (quant_scales per channel, quantize and
// dequantize with per-channel scales). Work must be bounded by the elements
// of the operands and results, so 50 rounds of every such call are quick.
func TestDegenerateShapesAreCheap(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	a := e.newF32([]int32{46340, 46340, 0})
	big := e.newF32([]int32{math.MaxInt32, 0})
	sc := e.newF32([]int32{46340})
	q := e.call("fennec_tensor_quantize", u(a), u(sc), 1, 0)
	if q <= 0 {
		t.Fatalf("quantize: %d %s", q, e.host.LastError())
	}
	calls := []struct {
		name string
		args []uint64
	}{
		{"fennec_tensor_quant_scales", []uint64{u(a), 1, 1, u(sc)}},
		{"fennec_tensor_quant_scales", []uint64{u(big), 1, 1, 0}},
		{"fennec_tensor_quantize", []uint64{u(a), u(sc), 1, u(q)}},
		{"fennec_tensor_dequantize", []uint64{u(q), u(sc), 1, u(a)}},
		{"fennec_tensor_reduce", []uint64{1, u(big), 0, 0, 0}},
		{"fennec_tensor_softmax", []uint64{u(big), 1, 0, 0}},
		{"fennec_tensor_unary", []uint64{1, u(a), fa(2), u(a)}},
		{"fennec_tensor_binary", []uint64{1, u(a), u(a), 0}},
	}
	start := time.Now()
	for round := 0; round < 50 && time.Since(start) < 10*time.Second; round++ {
		for _, c := range calls {
			got := e.callBounded(c.name, c.args...)
			if got < 0 {
				t.Fatalf("%s = %d (%s)", c.name, got, e.host.LastError())
			}
			if got > 0 && got != int32(c.args[len(c.args)-1]) {
				e.call("fennec_tensor_free", u(got))
			}
		}
	}
	if d := time.Since(start); d >= 10*time.Second {
		t.Fatalf("50 rounds of calls on zero-element tensors did not finish within %v", d)
	}
}

// isDeadline reports whether err is the deadline trap.
func isDeadline(err error) bool {
	var exit *sys.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded
}

// TestLongMatMulIsInterrupted: one product of 2048^3 multiply-adds (0.1-1 s
// on a CPU) is computed in row blocks with a deadline check between
// them, so a deadline that passes during the call traps it (the code as
// found returned the finished product) within about a block.
func TestLongMatMulIsInterrupted(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	a := e.newF32([]int32{2048, 2048})
	b := e.newF32([]int32{2048, 2048})
	// One block is 64 rows (2^28 multiply-adds / 2048^2 per row); time one
	// to bound how late the interrupted product may stop on this machine.
	rows := e.newF32([]int32{64, 2048})
	blockStart := time.Now()
	if h := e.call("fennec_tensor_matmul", u(rows), u(b), 0, 0); h <= 0 {
		t.Fatal(e.host.LastError())
	} else {
		e.call("fennec_tensor_free", u(h))
	}
	block := time.Since(blockStart)
	// The deadline falls a quarter of the way into the product (8 of its
	// 32 blocks), whatever this CPU's speed: a fixed 150 ms outlasted the
	// whole product (84-122 ms) on an AVX-512 machine.
	deadline := max(8*block, 10*time.Millisecond)
	fn := e.mod.ExportedFunction("call_fennec_tensor_matmul")
	start := time.Now()
	stop := time.AfterFunc(deadline, e.host.Expire)
	defer stop.Stop()
	_, err := fn.Call(e.ctx, u(a), u(b), 0, 0)
	took := time.Since(start)
	if !isDeadline(err) {
		t.Fatalf("matmul past its deadline: err %v after %v, want the deadline trap", err, took)
	}
	// The product is 32 blocks; stopping within about a block of the
	// deadline shows it was cut short, not finished late.
	if limit := deadline + 2*block + 50*time.Millisecond; took > limit {
		t.Fatalf("matmul stopped %v after the call began: deadline %v, one block %v", took, deadline, block)
	}
}

// TestCallDeadlineTrapsHostCalls: a call's deadline (CallInfo.Deadline)
// traps the guest at its next host call in every mode (the instance here
// is not cooperative), a new call starts clear, and the timer of a call
// that ended does not expire the next one.
func TestCallDeadlineTrapsHostCalls(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	h := e.newF32([]int32{2})
	fn := e.mod.ExportedFunction("call_fennec_tensor_rank")
	start := time.Now()
	e.host.Begin(nil, hostfuncs.CallInfo{Deadline: start.Add(30 * time.Millisecond)})
	var err error
	for time.Since(start) < 5*time.Second {
		if _, err = fn.Call(e.ctx, u(h)); err != nil {
			break
		}
	}
	if !isDeadline(err) {
		t.Fatalf("host calls past the deadline: %v", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("trapped after %v, before the deadline", d)
	}
	e.host.End()
	e.host.Begin(nil, hostfuncs.CallInfo{Deadline: time.Now().Add(20 * time.Millisecond)})
	e.host.End()
	e.host.Begin(nil, hostfuncs.CallInfo{})
	time.Sleep(40 * time.Millisecond) // past the ended call's deadline
	if got := e.call("fennec_tensor_rank", u(h)); got != 1 {
		t.Fatalf("rank in a new call = %d (%s)", got, e.host.LastError())
	}
	if e.host.Expired() {
		t.Fatal("an ended call's timer expired the next call")
	}
	e.host.End()
}

// TestFreedHandleNeverComesBack: a slot's tag has 15 bits of generation,
// so 2^15 new/free cycles on one slot used to reissue the very first
// handle value, making a freed handle valid again (a use-after-free the
// guest can aim). A freed handle must stay invalid.
func TestFreedHandleNeverComesBack(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	e.put(shapeAt, wasmtest.LE32(1))
	newFn := e.mod.ExportedFunction("call_fennec_tensor_new")
	freeFn := e.mod.ExportedFunction("call_fennec_tensor_free")
	first := e.newF32([]int32{1})
	if e.call("fennec_tensor_free", u(first)) != 0 {
		t.Fatal(e.host.LastError())
	}
	for i := range 1<<15 + 8 {
		res, err := newFn.Call(e.ctx, 1, shapeAt, 1, 0, 0)
		if err != nil || int32(res[0]) <= 0 {
			t.Fatalf("new %d: %v %v (%s)", i, res, err, e.host.LastError())
		}
		h := int32(res[0])
		if h == first {
			t.Fatalf("cycle %d reissued the freed handle %d", i, first)
		}
		if res, err = freeFn.Call(e.ctx, u(h)); err != nil || res[0] != 0 {
			t.Fatalf("free %d: %v %v", i, res, err)
		}
	}
	if got := e.call("fennec_tensor_dtype", u(first)); got != int32(hostfuncs.EHANDLE) {
		t.Fatalf("dtype of the freed handle = %d, want EHANDLE", got)
	}
}

// TestOutAliasing checks the aliasing rules of docs/ABI.md: softmax with
// out equal to its input (accepted before) and quantize with out equal to
// an f32 input (ESHAPE before) are EINVAL, like every other operation but
// unary and the dp_* releases.
func TestOutAliasing(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	a := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	one := e.newF32([]int32{1}, 0.5)
	sq := e.newF32([]int32{1, 1}, 0.5)
	q := e.call("fennec_tensor_quantize", u(one), u(one), 0, 0)
	if q <= 0 {
		t.Fatal(e.host.LastError())
	}
	for _, c := range []struct {
		name string
		args []uint64
	}{
		{"fennec_tensor_softmax", []uint64{u(a), 1, 0, u(a)}},
		{"fennec_tensor_softmax", []uint64{u(a), 0, 1, u(a)}},
		{"fennec_tensor_quantize", []uint64{u(one), u(one), 0, u(one)}},
		{"fennec_tensor_quantize", []uint64{u(sq), u(one), 0, u(one)}},
		{"fennec_tensor_dequantize", []uint64{u(q), u(one), 0, u(one)}},
		{"fennec_tensor_quant_scales", []uint64{u(one), 0, 0, u(one)}},
		{"fennec_tensor_matmul", []uint64{u(a), u(a), 0, u(a)}},
		{"fennec_tensor_binary", []uint64{1, u(a), u(a), u(a)}},
		{"fennec_tensor_unary_grad", []uint64{7, u(a), u(a), fa(1), u(a)}},
		{"fennec_tensor_reduce", []uint64{1, u(one), 0, 1, u(one)}},
	} {
		if got := e.call(c.name, c.args...); got != int32(hostfuncs.EINVAL) {
			t.Errorf("%s%v with out aliasing an input = %d (%s), want EINVAL", c.name, c.args, got, e.host.LastError())
		}
	}
	if got := e.read(a); got[0] != 1 || got[3] != 4 {
		t.Fatalf("a refused call changed its input: %v", got)
	}
	// unary may work in place.
	if got := e.call("fennec_tensor_unary", 1, u(a), fa(2), u(a)); got != a {
		t.Fatalf("unary in place = %d (%s)", got, e.host.LastError())
	}
}
