package hostfuncs_test

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
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
