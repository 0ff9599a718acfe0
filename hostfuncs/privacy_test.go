package hostfuncs_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/tetratelabs/wazero/api"
)

func fd(v float64) uint64 { return api.EncodeF64(v) }

// openLedger opens a ledger in dir with the given dataset budgets.
func openLedger(t testing.TB, path string, budgets map[string]budget.Budget) *budget.Ledger {
	t.Helper()
	l, err := budget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for acct, b := range budgets {
		if err := l.SetBudget(acct, b); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// privacyEnv is an instance of module "m" with the given privacy services,
// inside an entrypoint call on dataset "d" (unless dataset is "-").
func privacyEnv(t testing.TB, ps *hostfuncs.PrivacyServices, dataset string) *env {
	t.Helper()
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "m", Services: &hostfuncs.Services{Privacy: ps}})
	if dataset != "-" {
		e.host.Begin(nil, hostfuncs.CallInfo{Dataset: dataset})
	}
	return e
}

func seeded(b byte) *dp.Source {
	var seed [32]byte
	seed[0] = b
	return dp.NewSourceFromSeed(seed)
}

func status(t testing.TB, l *budget.Ledger, acct string) budget.Status {
	t.Helper()
	s, err := l.Remaining(acct)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) f64s(off uint32, n int) []float64 {
	b := e.get(off, uint32(8*n))
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// TestPrivacyHostileArguments calls every privacy function with invalid
// parameters, forged handles and out-of-range pointers. Each must answer
// its code with a message, never trap, and never charge the budget.
func TestPrivacyHostileArguments(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: 10, Delta: 1e-5},
	})
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, Noise: seeded(1)}, "d")
	h := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	v := e.newF32([]int32{3}, 1, 2, 3)
	e.put(shapeAt, wasmtest.LE32(2))
	ih := e.call("fennec_tensor_new", 3, shapeAt, 1, 0, 0) // i32 [2]
	if ih <= 0 {
		t.Fatal(e.host.LastError())
	}
	const far = 0xFFFFFFF0
	const edge = 2*65536 - 8
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		fn   string
		args []uint64
		want hostfuncs.Code
	}{
		{"clip forged handle", "dp_clip", []uint64{u(h + 1), fd(1), 0}, hostfuncs.EHANDLE},
		{"clip zero handle", "dp_clip", []uint64{0, fd(1), 0}, hostfuncs.EHANDLE},
		{"clip i32 tensor", "dp_clip", []uint64{u(ih), fd(1), 0}, hostfuncs.EDTYPE},
		{"clip zero", "dp_clip", []uint64{u(h), fd(0), 0}, hostfuncs.EINVAL},
		{"clip negative", "dp_clip", []uint64{u(h), fd(-1), 0}, hostfuncs.EINVAL},
		{"clip NaN", "dp_clip", []uint64{u(h), fd(nan), 0}, hostfuncs.EINVAL},
		{"clip Inf", "dp_clip", []uint64{u(h), fd(inf), 0}, hostfuncs.EINVAL},
		{"clip far norm_ptr", "dp_clip", []uint64{u(h), fd(1), far}, hostfuncs.EMEM},
		{"clip norm_ptr straddling", "dp_clip", []uint64{u(h), fd(1), edge + 4}, hostfuncs.EMEM},
		{"gaussian forged", "dp_gaussian", []uint64{99, fd(1), fd(1), fd(1), 0}, hostfuncs.EHANDLE},
		{"gaussian i32", "dp_gaussian", []uint64{u(ih), fd(1), fd(1), fd(1), 0}, hostfuncs.EDTYPE},
		{"gaussian zero sensitivity", "dp_gaussian", []uint64{u(h), fd(0), fd(1), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian NaN sensitivity", "dp_gaussian", []uint64{u(h), fd(nan), fd(1), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian Inf sensitivity", "dp_gaussian", []uint64{u(h), fd(inf), fd(1), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian zero multiplier", "dp_gaussian", []uint64{u(h), fd(1), fd(0), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian negative multiplier", "dp_gaussian", []uint64{u(h), fd(1), fd(-2), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian NaN multiplier", "dp_gaussian", []uint64{u(h), fd(1), fd(nan), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian sigma overflows", "dp_gaussian", []uint64{u(h), fd(1e200), fd(1e200), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian zero rate", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(0), 0}, hostfuncs.EINVAL},
		{"gaussian rate above 1", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(1.5), 0}, hostfuncs.EINVAL},
		{"gaussian NaN rate", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(nan), 0}, hostfuncs.EINVAL},
		{"gaussian untrusted subsampling", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(0.01), 0}, hostfuncs.EDENIED},
		{"gaussian forged out", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(1), 77}, hostfuncs.EHANDLE},
		{"gaussian out wrong shape", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(1), u(v)}, hostfuncs.ESHAPE},
		{"gaussian out i32", "dp_gaussian", []uint64{u(h), fd(1), fd(1), fd(1), u(ih)}, hostfuncs.ESHAPE},
		{"gaussian_eps zero epsilon", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(0), fd(1e-5), 0}, hostfuncs.EINVAL},
		{"gaussian_eps Inf epsilon", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(inf), fd(1e-5), 0}, hostfuncs.EINVAL},
		{"gaussian_eps zero delta", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(1), fd(0), 0}, hostfuncs.EINVAL},
		{"gaussian_eps delta 1", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(1), fd(1), 0}, hostfuncs.EINVAL},
		{"gaussian_eps NaN delta", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(1), fd(nan), 0}, hostfuncs.EINVAL},
		{"gaussian_eps negative sensitivity", "dp_gaussian_eps", []uint64{u(h), fd(-1), fd(1), fd(1e-5), 0}, hostfuncs.EINVAL},
		{"gaussian_eps forged", "dp_gaussian_eps", []uint64{u(-5), fd(1), fd(1), fd(1e-5), 0}, hostfuncs.EHANDLE},
		{"gaussian_eps out wrong shape", "dp_gaussian_eps", []uint64{u(h), fd(1), fd(1), fd(1e-5), u(v)}, hostfuncs.ESHAPE},
		{"laplace zero epsilon", "dp_laplace", []uint64{u(h), fd(1), fd(0), 0}, hostfuncs.EINVAL},
		{"laplace NaN epsilon", "dp_laplace", []uint64{u(h), fd(1), fd(nan), 0}, hostfuncs.EINVAL},
		{"laplace zero sensitivity", "dp_laplace", []uint64{u(h), fd(0), fd(1), 0}, hostfuncs.EINVAL},
		{"laplace scale overflows", "dp_laplace", []uint64{u(h), fd(1e200), fd(1e-200), 0}, hostfuncs.EINVAL},
		{"laplace forged", "dp_laplace", []uint64{u(h ^ 0x40), fd(1), fd(1), 0}, hostfuncs.EHANDLE},
		{"laplace out wrong shape", "dp_laplace", []uint64{u(h), fd(1), fd(1), u(v)}, hostfuncs.ESHAPE},
		{"remaining far", "dp_remaining", []uint64{far}, hostfuncs.EMEM},
		{"remaining straddling", "dp_remaining", []uint64{edge}, hostfuncs.EMEM},
		{"he_encrypt without setup", "he_encrypt", []uint64{u(h), outAt, 1 << 12}, hostfuncs.ESTATE},
		{"he_add without hub", "he_add", []uint64{dataAt, 16}, hostfuncs.ESTATE},
		{"he_decrypt without hub", "he_decrypt_aggregate", []uint64{0}, hostfuncs.ESTATE},
	}
	before := status(t, l, budget.DatasetAccount("d"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			if got := e.call("fennec_privacy_"+c.fn, c.args...); got != int32(c.want) {
				t.Fatalf("%s%v = %d (%s), want %s", c.fn, c.args, got, e.host.LastError(), c.want)
			}
			if msg := e.host.LastError(); !strings.HasPrefix(msg, c.want.String()+": privacy."+c.fn+":") {
				t.Fatalf("message %q does not name the code and function", msg)
			}
		})
	}
	e.t = t
	if after := status(t, l, budget.DatasetAccount("d")); after != before {
		t.Fatalf("refused calls charged the budget: %+v -> %+v", before, after)
	}
	if got := e.read(h); got[0] != 1 || got[3] != 4 {
		t.Fatalf("tensor changed by refused calls: %v", got)
	}
	if n, _ := e.host.Stats(); n != 3 {
		t.Fatalf("%d live handles after refused calls, want 3", n)
	}
}

// TestPrivacyCallState: releases need an entrypoint call with a dataset, a
// ledger, and a budget for the dataset; clipping needs none of them.
func TestPrivacyCallState(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: 10, Delta: 1e-5},
	})
	ps := &hostfuncs.PrivacyServices{Ledger: l}
	release := func(e *env) int32 {
		h := e.newF32([]int32{2}, 3, 4)
		return e.call("fennec_privacy_dp_gaussian", u(h), fd(1), fd(1), fd(1), 0)
	}
	for _, c := range []struct {
		name    string
		ps      *hostfuncs.PrivacyServices
		dataset string
		want    hostfuncs.Code
		msg     string
	}{
		{"outside a call", ps, "-", hostfuncs.ESTATE, "no entrypoint call"},
		{"call without dataset", ps, "", hostfuncs.ESTATE, "names no dataset"},
		{"no privacy services", nil, "d", hostfuncs.EDENIED, "no privacy budget ledger"},
		{"no ledger", &hostfuncs.PrivacyServices{}, "d", hostfuncs.EDENIED, "no privacy budget ledger"},
		{"dataset without budget", ps, "other", hostfuncs.EDENIED, `dataset "other" has no privacy budget`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := privacyEnv(t, c.ps, c.dataset)
			if got := release(e); got != int32(c.want) {
				t.Fatalf("dp_gaussian = %d (%s), want %s", got, e.host.LastError(), c.want)
			}
			if !strings.Contains(e.host.LastError(), c.msg) {
				t.Fatalf("message %q lacks %q", e.host.LastError(), c.msg)
			}
			if got := e.call("fennec_privacy_dp_remaining", outAt); got != int32(c.want) {
				t.Fatalf("dp_remaining = %d (%s), want %s", got, e.host.LastError(), c.want)
			}
			// Clipping is no release: it works anywhere.
			h := e.newF32([]int32{2}, 3, 4)
			if got := e.call("fennec_privacy_dp_clip", u(h), fd(1), outAt); got != 0 {
				t.Fatalf("dp_clip = %d (%s)", got, e.host.LastError())
			}
			if n := e.f64s(outAt, 1)[0]; n != 5 {
				t.Fatalf("norm before clipping = %v, want 5", n)
			}
			if got := e.read(h); math.Abs(float64(got[0])-0.6) > 1e-6 || math.Abs(float64(got[1])-0.8) > 1e-6 {
				t.Fatalf("clipped = %v", got)
			}
		})
	}
	if s := status(t, l, budget.DatasetAccount("d")); s.Releases != 0 {
		t.Fatalf("%d releases charged", s.Releases)
	}
}

func TestClipNonFinite(t *testing.T) {
	e := privacyEnv(t, nil, "-")
	h := e.newF32([]int32{3}, 1, float32(math.Inf(1)), 2)
	if got := e.call("fennec_privacy_dp_clip", u(h), fd(1), outAt); got != 0 {
		t.Fatalf("dp_clip = %d (%s)", got, e.host.LastError())
	}
	if n := e.f64s(outAt, 1)[0]; !math.IsInf(n, 1) {
		t.Fatalf("norm = %v, want +Inf", n)
	}
	if got := e.read(h); got[0] != 0 || got[1] != 0 || got[2] != 0 {
		t.Fatalf("non-finite tensor not zeroed: %v", got)
	}
	// A small tensor is left alone; norm_ptr 0 skips the norm.
	s := e.newF32([]int32{2}, 0.3, 0.4)
	if got := e.call("fennec_privacy_dp_clip", u(s), fd(1), 0); got != 0 {
		t.Fatalf("dp_clip = %d", got)
	}
	if got := e.read(s); got[0] != 0.3 || got[1] != 0.4 {
		t.Fatalf("tensor within the clip changed: %v", got)
	}
}

// TestBudgetEnforcement spends a dataset's budget release by release: the
// release that would overspend is refused with EBUDGET and changes
// nothing (ledger, tensors, handles), and the spending survives reopening
// the ledger.
func TestBudgetEnforcement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	ds := budget.DatasetAccount("d")
	l, err := budget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetBudget(ds, budget.Budget{Epsilon: 3, Delta: 1e-5}); err != nil {
		t.Fatal(err)
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, Noise: seeded(2)}, "d")
	x := e.newF32([]int32{4}, 0.1, 0.2, 0.3, 0.4)
	out := e.newF32([]int32{4}, 7, 7, 7, 7)
	for i := range 3 {
		if got := e.call("fennec_privacy_dp_gaussian_eps", u(x), fd(1), fd(1), fd(2e-6), u(out)); got != out {
			t.Fatalf("release %d = %d (%s)", i, got, e.host.LastError())
		}
		if e.call("fennec_privacy_dp_remaining", outAt) != 0 {
			t.Fatal(e.host.LastError())
		}
		rem := e.f64s(outAt, 2)
		if want := 3 - float64(i+1); math.Abs(rem[0]-want) > 1e-9 || math.Abs(rem[1]-(1e-5-float64(i+1)*2e-6)) > 1e-15 {
			t.Fatalf("after release %d remaining = %v, want epsilon %v", i, rem, want)
		}
	}
	noisy := e.read(out)
	if noisy[0] == 7 || noisy[0] == 0.1 {
		t.Fatalf("out was not written with a noisy release: %v", noisy)
	}
	before := status(t, l, ds)
	nh, nb := e.host.Stats()
	for _, o := range []int32{out, 0, x} {
		if got := e.call("fennec_privacy_dp_gaussian_eps", u(x), fd(1), fd(0.5), fd(1e-6), u(o)); got != int32(hostfuncs.EBUDGET) {
			t.Fatalf("overspending release (out %d) = %d (%s), want EBUDGET", o, got, e.host.LastError())
		}
		msg := e.host.LastError()
		for _, want := range []string{"EBUDGET", ds, "privacy budget exceeded", "refused"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("last_error %q lacks %q", msg, want)
			}
		}
	}
	if got := e.call("fennec_privacy_dp_laplace", u(x), fd(1), fd(0.01), 0); got != int32(hostfuncs.EBUDGET) {
		t.Fatalf("laplace after the budget is spent = %d (%s)", got, e.host.LastError())
	}
	if after := status(t, l, ds); after != before {
		t.Fatalf("refused releases changed the ledger: %+v -> %+v", before, after)
	}
	if h, b := e.host.Stats(); h != nh || b != nb {
		t.Fatalf("refused releases changed handles/bytes: %d/%d -> %d/%d", nh, nb, h, b)
	}
	if got := e.read(out); got[0] != noisy[0] || got[3] != noisy[3] {
		t.Fatalf("refused release wrote out: %v -> %v", noisy, got)
	}
	if got := e.read(x); got[0] != 0.1 || got[3] != 0.4 {
		t.Fatalf("refused release changed the input: %v", got)
	}

	// Reopen: the spending is on disk.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLedger(t, path, nil)
	if s := status(t, l2, ds); s.Releases != 3 || math.Abs(s.SpentEpsilon-3) > 1e-9 {
		t.Fatalf("after reopening: %+v, want 3 releases, epsilon 3 spent", s)
	}
	e2 := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l2}, "d")
	x2 := e2.newF32([]int32{1}, 1)
	if got := e2.call("fennec_privacy_dp_gaussian_eps", u(x2), fd(1), fd(0.1), fd(1e-7), 0); got != int32(hostfuncs.EBUDGET) {
		t.Fatalf("release after reopening = %d (%s), want EBUDGET", got, e2.host.LastError())
	}
}

// TestModuleAccount: a module account on the dataset is charged with the
// dataset account, all or nothing; exhausting it stops that module only.
func TestModuleAccount(t *testing.T) {
	ds, ma := budget.DatasetAccount("d"), budget.ModuleAccount("m", "d")
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		ds: {Epsilon: 10, Delta: 1e-5},
		ma: {Epsilon: 1, Delta: 1e-5},
	})
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l}, "d")
	x := e.newF32([]int32{2}, 1, 1)
	if got := e.call("fennec_privacy_dp_laplace", u(x), fd(1), fd(0.75), 0); got <= 0 {
		t.Fatalf("first release: %d %s", got, e.host.LastError())
	}
	if e.call("fennec_privacy_dp_remaining", outAt) != 0 {
		t.Fatal(e.host.LastError())
	}
	if rem := e.f64s(outAt, 2); math.Abs(rem[0]-0.25) > 1e-12 {
		t.Fatalf("remaining epsilon %v, want the module account's 0.25", rem[0])
	}
	if got := e.call("fennec_privacy_dp_laplace", u(x), fd(1), fd(0.5), 0); got != int32(hostfuncs.EBUDGET) {
		t.Fatalf("release over the module budget = %d (%s)", got, e.host.LastError())
	}
	if !strings.Contains(e.host.LastError(), ma) {
		t.Fatalf("message %q does not name %s", e.host.LastError(), ma)
	}
	if s := status(t, l, ds); s.Releases != 1 || math.Abs(s.SpentEpsilon-0.75) > 1e-12 {
		t.Fatalf("dataset account after a refused release: %+v", s)
	}
	// Another module on the same dataset, without an account of its own,
	// is limited by the dataset account only.
	other := newEnv(t, hostfuncs.InstanceConfig{Module: "other", Services: &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{Ledger: l}}})
	other.host.Begin(nil, hostfuncs.CallInfo{Dataset: "d"})
	y := other.newF32([]int32{2}, 1, 1)
	if got := other.call("fennec_privacy_dp_laplace", u(y), fd(1), fd(0.5), 0); got <= 0 {
		t.Fatalf("other module: %d %s", got, other.host.LastError())
	}
	if s := status(t, l, ds); s.Releases != 2 {
		t.Fatalf("dataset account: %+v", s)
	}
}

// TestGaussianChargesRDP: dp_gaussian composes in RDP, so repeated
// releases fit where basic composition of their one-shot epsilons would
// not; the trusted-sampling list lets a module claim subsampling.
func TestGaussianChargesRDP(t *testing.T) {
	ds := budget.DatasetAccount("d")
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{ds: {Epsilon: 3, Delta: 1e-5}})
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, SamplingModules: []string{"m"}}, "d")
	x := e.newF32([]int32{8})
	n := 0
	for ; n < 1000; n++ {
		got := e.call("fennec_privacy_dp_gaussian", u(x), fd(1), fd(1.1), fd(0.1), u(x))
		if got == int32(hostfuncs.EBUDGET) {
			break
		}
		if got != x {
			t.Fatalf("release %d: %d %s", n, got, e.host.LastError())
		}
	}
	// The ledger's own accountant decides the count; check it against an
	// independent accountant: n releases fit in epsilon 3, n+1 do not.
	acc, _ := dp.NewAccountant(nil)
	if err := acc.ComposeSubsampledGaussian(0.1, 1.1, n); err != nil {
		t.Fatal(err)
	}
	eps, _, _ := acc.Epsilon(1e-5)
	acc.ComposeSubsampledGaussian(0.1, 1.1, 1)
	eps1, _, _ := acc.Epsilon(1e-5)
	if n < 2 || eps > 3 || eps1 <= 3 {
		t.Fatalf("%d releases allowed: epsilon %v after them, %v after one more", n, eps, eps1)
	}
	if s := status(t, l, ds); s.Releases != int64(n) {
		t.Fatalf("ledger shows %d releases, %d were made", s.Releases, n)
	}
}

// meanVar returns the sample mean and variance.
func meanVar(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x)-1)
}

// TestNoiseStatistics checks the noise of each mechanism on a zero tensor
// of 20,000 elements: the sample mean within 6 standard errors of 0 and
// the sample variance within 6 of its standard errors of the target
// (Gaussian: sd(s^2) = sigma^2 sqrt(2/n); Laplace: 2b^2 sqrt(5/n)). With
// a seeded source the test is deterministic; the default secure source is
// checked with the same bounds (failure probability about 1e-8).
func TestNoiseStatistics(t *testing.T) {
	const n = 20000
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: 1e9, Delta: 0.5},
	})
	sigmaEps, err := dp.GaussianSigma(1, 1e-5, 2)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		fn       string
		args     []uint64 // after the handle, before out
		variance float64
		sdRel    float64 // standard error of the sample variance, relative
	}{
		{"gaussian", "dp_gaussian", []uint64{fd(2), fd(1.5), fd(1)}, 9, math.Sqrt(2.0 / n)},
		{"gaussian_eps", "dp_gaussian_eps", []uint64{fd(2), fd(1), fd(1e-5)}, sigmaEps * sigmaEps, math.Sqrt(2.0 / n)},
		{"laplace", "dp_laplace", []uint64{fd(1), fd(0.5)}, 2 * 2 * 2, math.Sqrt(5.0 / n)},
	}
	for _, src := range []struct {
		name string
		s    *dp.Source
	}{{"seeded", seeded(3)}, {"secure", nil}} {
		for _, c := range cases {
			t.Run(src.name+"/"+c.name, func(t *testing.T) {
				e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l, Noise: src.s}, "d")
				e.put(shapeAt, wasmtest.LE32(n))
				x := e.call("fennec_tensor_new", 1, shapeAt, 1, 0, 0)
				args := append(append([]uint64{u(x)}, c.args...), 0)
				h := e.call("fennec_privacy_"+c.fn, args...)
				if h <= 0 {
					t.Fatalf("%s = %d %s", c.fn, h, e.host.LastError())
				}
				if h == x {
					t.Fatal("out 0 returned the input handle")
				}
				got := readLarge(t, e, h, n)
				mean, variance := meanVar(got)
				if se := math.Sqrt(c.variance / n); math.Abs(mean) > 6*se {
					t.Errorf("mean %v, want 0 +- %v", mean, 6*se)
				}
				if rel := variance/c.variance - 1; math.Abs(rel) > 6*c.sdRel {
					t.Errorf("variance %v, want %v +- %.1f%%", variance, c.variance, 600*c.sdRel)
				}
				if zero := readLarge(t, e, x, n); zero[0] != 0 || zero[n-1] != 0 {
					t.Fatal("the input changed")
				}
			})
		}
	}
}

// readLarge reads an f32 tensor of n elements through the ABI into a
// region of guest memory large enough for it.
func readLarge(t *testing.T, e *env, h int32, n int) []float32 {
	t.Helper()
	need := uint32(4 * n)
	if size := e.mod.Memory().Size(); size < outAt+need {
		if _, ok := e.mod.Memory().Grow((outAt + need - size + 65535) / 65536); !ok {
			t.Fatalf("cannot grow memory for %d bytes", need)
		}
	}
	if got := e.call("fennec_tensor_read", u(h), outAt, u(int32(need))); got != int32(need) {
		t.Fatalf("read = %d %s", got, e.host.LastError())
	}
	return floats(e.get(outAt, need))
}

// TestReleaseClipsAgain: the host clips the input to the sensitivity
// before adding noise, whatever the guest did (L2 for Gaussian, L1 for
// Laplace), and a non-finite input is released as noise around 0.
func TestReleaseClipsAgain(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{
		budget.DatasetAccount("d"): {Epsilon: 1e9, Delta: 0.5},
	})
	e := privacyEnv(t, &hostfuncs.PrivacyServices{Ledger: l}, "d")
	x := e.newF32([]int32{2}, 3, 4)
	// Large epsilon: noise of scale 1e-3, so the output shows the clipping.
	// (Epsilon far above 1000 is pointless: the noise lattice clamps
	// values beyond 4096 Laplace scales.)
	g := e.call("fennec_privacy_dp_gaussian_eps", u(x), fd(1), fd(1e5), fd(0.4), 0)
	if got := e.read(g); math.Abs(float64(got[0])-0.6) > 0.02 || math.Abs(float64(got[1])-0.8) > 0.02 {
		t.Fatalf("gaussian of [3 4] at sensitivity 1 = %v, want about [0.6 0.8]", got)
	}
	lp := e.call("fennec_privacy_dp_laplace", u(x), fd(1), fd(1000), 0)
	if got := e.read(lp); math.Abs(float64(got[0])-3.0/7) > 0.02 || math.Abs(float64(got[1])-4.0/7) > 0.02 {
		t.Fatalf("laplace of [3 4] at L1 sensitivity 1 = %v, want about [0.4286 0.5714]", got)
	}
	bad := e.newF32([]int32{2}, float32(math.NaN()), 1)
	if got := e.read(e.call("fennec_privacy_dp_laplace", u(bad), fd(1), fd(1000), 0)); math.Abs(float64(got[0])) > 0.02 || math.Abs(float64(got[1])) > 0.02 {
		t.Fatalf("NaN input released as %v, want zeros plus tiny noise", got)
	}
	// In place: out == h.
	if got := e.call("fennec_privacy_dp_laplace", u(x), fd(1), fd(1000), u(x)); got != x {
		t.Fatalf("in-place release = %d %s", got, e.host.LastError())
	}
	if got := e.read(x); math.Abs(float64(got[0])-3.0/7) > 0.02 {
		t.Fatalf("in place: %v", got)
	}
}

// heFixture is a threshold-HE federation of n devices (Test10, insecure
// fast parameters) set up in process.
type heFixture struct {
	setup   he.Setup
	agg     *he.Aggregator
	parties []*he.Party
}

func newHEFixture(t testing.TB, n int) *heFixture {
	t.Helper()
	crs := make([]byte, 32)
	rand.Read(crs)
	s := he.Setup{Params: he.Test10, Parties: n, CRS: crs, MinAggregate: 2, AllowInsecure: true}
	agg, err := he.NewAggregator(s)
	if err != nil {
		t.Fatal(err)
	}
	f := &heFixture{setup: s, agg: agg}
	for i := range n {
		p, err := he.NewParty(s, uint32(i+1))
		if err != nil {
			t.Fatal(err)
		}
		m, err := p.KeyGenShare()
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.AddKeyShare(m); err != nil {
			t.Fatal(err)
		}
		f.parties = append(f.parties, p)
	}
	pk, err := agg.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.parties {
		if err := p.SetPublicKey(pk); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// localDecryptors asks in-process parties for their decryption shares;
// drop leaves some out, like devices that went offline.
type localDecryptors struct {
	parties []*he.Party
	drop    map[uint32]bool
}

func (d *localDecryptors) Active(context.Context) ([]uint32, error) {
	ids := make([]uint32, len(d.parties))
	for i := range ids {
		ids[i] = uint32(i + 1)
	}
	return ids, nil
}

func (d *localDecryptors) Shares(_ context.Context, req []byte, active []uint32) ([][]byte, error) {
	var out [][]byte
	for _, id := range active {
		if d.drop[id] {
			continue
		}
		sh, err := d.parties[id-1].DecryptShare(req)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, nil
}

// TestHEThroughABI: three devices encrypt tensors with he_encrypt, a hub
// adds the messages with he_add and decrypts the sum with
// he_decrypt_aggregate; single updates, repeated and malformed messages
// are refused.
func TestHEThroughABI(t *testing.T) {
	const parties, n = 3, 1500 // two ciphertexts of 1,024 slots
	f := newHEFixture(t, parties)
	hub, err := hostfuncs.NewHEAggregation(f.agg, f.setup, &localDecryptors{parties: f.parties})
	if err != nil {
		t.Fatal(err)
	}
	he1 := privacyEnv(t, &hostfuncs.PrivacyServices{HEHub: hub}, "-")
	if got := he1.call("fennec_privacy_he_decrypt_aggregate", 0); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("decrypt before a round = %d (%s)", got, he1.host.LastError())
	}
	he1.put(dataAt, []byte{0xa0})
	if got := he1.call("fennec_privacy_he_add", dataAt, 1); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("add before a round = %d (%s)", got, he1.host.LastError())
	}
	if err := hub.StartRound(n); err != nil {
		t.Fatal(err)
	}

	want := make([]float64, n)
	var msgs [][]byte
	for i, p := range f.parties {
		dev, err := hostfuncs.NewHEDevice(p, f.setup)
		if err != nil {
			t.Fatal(err)
		}
		e := privacyEnv(t, &hostfuncs.PrivacyServices{HE: dev}, "-")
		vals := make([]float32, n)
		for j := range vals {
			vals[j] = float32(math.Sin(float64(j*(i+1)))) * 10
			want[j] += float64(vals[j])
		}
		e.put(shapeAt, wasmtest.LE32(n))
		e.put(dataAt, f32bytes(vals...))
		h := e.call("fennec_tensor_new", 1, shapeAt, 1, dataAt, u(4*n))
		if h <= 0 {
			t.Fatal(e.host.LastError())
		}
		size := e.call("fennec_privacy_he_encrypt", u(h), 0, 0)
		if size <= 0 {
			t.Fatalf("he_encrypt length query = %d %s", size, e.host.LastError())
		}
		const msgAt = 16384
		if need := msgAt + uint32(size); need > e.mod.Memory().Size() {
			e.mod.Memory().Grow((need - e.mod.Memory().Size() + 65535) / 65536)
		}
		e.put(msgAt, make([]byte, size))
		if got := e.call("fennec_privacy_he_encrypt", u(h), msgAt, u(size-1)); got != size {
			t.Fatalf("he_encrypt with a short buffer = %d, want %d", got, size)
		}
		if b := e.get(msgAt, uint32(size)); strings.Trim(string(b), "\x00") != "" {
			t.Fatal("he_encrypt wrote into a short buffer")
		}
		if got := e.call("fennec_privacy_he_encrypt", u(h), msgAt, u(size)); got != size {
			t.Fatalf("he_encrypt = %d (%s), want %d", got, e.host.LastError(), size)
		}
		msgs = append(msgs, e.get(msgAt, uint32(size)))
		// Out of range values are refused before encryption.
		e.put(dataAt, f32bytes(5000))
		big := e.call("fennec_tensor_new", 1, shapeAt, 0, dataAt, 4)
		if got := e.call("fennec_privacy_he_encrypt", u(big), msgAt, u(size)); got != int32(hostfuncs.EINVAL) {
			t.Fatalf("he_encrypt of 5000 with %d parties = %d (%s), want EINVAL", parties, got, e.host.LastError())
		}
		if got := e.call("fennec_privacy_he_encrypt", u(h), far32, 64); got != int32(hostfuncs.EMEM) {
			t.Fatalf("he_encrypt far buffer = %d", got)
		}
		if got := e.call("fennec_privacy_he_encrypt", u(h), msgAt, u(-1)); got != int32(hostfuncs.EMEM) {
			t.Fatalf("he_encrypt negative cap = %d", got)
		}
	}

	hubEnv := privacyEnv(t, &hostfuncs.PrivacyServices{HEHub: hub}, "-")
	const msgAt = 16384
	add := func(msg []byte) int32 {
		if need := msgAt + uint32(len(msg)); need > hubEnv.mod.Memory().Size() {
			hubEnv.mod.Memory().Grow((need - hubEnv.mod.Memory().Size() + 65535) / 65536)
		}
		hubEnv.put(msgAt, msg)
		return hubEnv.call("fennec_privacy_he_add", msgAt, u(int32(len(msg))))
	}
	if got := add(msgs[0]); got != 1 {
		t.Fatalf("he_add = %d (%s)", got, hubEnv.host.LastError())
	}
	if got := hubEnv.call("fennec_privacy_he_decrypt_aggregate", 0); got != int32(hostfuncs.EDENIED) {
		t.Fatalf("decrypting a single update = %d (%s), want EDENIED", got, hubEnv.host.LastError())
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{
		{"repeated", msgs[0]},
		{"garbage", []byte("not a ciphertext message")},
		{"truncated", msgs[1][:len(msgs[1])/2]},
		{"bit flip in the header", append([]byte{msgs[1][0] ^ 0x10}, msgs[1][1:]...)},
	} {
		if got := add(c.msg); got != int32(hostfuncs.EINVAL) {
			t.Fatalf("he_add %s = %d (%s), want EINVAL", c.name, got, hubEnv.host.LastError())
		}
	}
	if got := hubEnv.call("fennec_privacy_he_add", far32, 16); got != int32(hostfuncs.EMEM) {
		t.Fatalf("he_add far = %d", got)
	}
	if got := hubEnv.call("fennec_privacy_he_add", msgAt, u(-3)); got != int32(hostfuncs.EMEM) {
		t.Fatalf("he_add negative length = %d", got)
	}
	if got := hubEnv.call("fennec_privacy_he_add", msgAt, 0); got != int32(hostfuncs.EINVAL) {
		t.Fatalf("he_add empty = %d", got)
	}
	for i, m := range msgs[1:] {
		if got := add(m); got != int32(i+2) {
			t.Fatalf("he_add %d = %d (%s)", i+2, got, hubEnv.host.LastError())
		}
	}
	wrong := hubEnv.newF32([]int32{4})
	if got := hubEnv.call("fennec_privacy_he_decrypt_aggregate", u(wrong)); got != int32(hostfuncs.ESHAPE) {
		t.Fatalf("decrypt into a wrong-shaped out = %d (%s)", got, hubEnv.host.LastError())
	}
	sumH := hubEnv.call("fennec_privacy_he_decrypt_aggregate", 0)
	if sumH <= 0 {
		t.Fatalf("he_decrypt_aggregate = %d (%s)", sumH, hubEnv.host.LastError())
	}
	got := readLarge(t, hubEnv, sumH, n)
	var maxErr float64
	for j := range want {
		maxErr = math.Max(maxErr, math.Abs(float64(got[j])-want[j]))
	}
	if maxErr > 1e-3 {
		t.Fatalf("decrypted sum is off by up to %v", maxErr)
	}
	if got := hubEnv.call("fennec_privacy_he_decrypt_aggregate", 0); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("second decryption of the round = %d (%s), want ESTATE", got, hubEnv.host.LastError())
	}
}

const far32 = 0xFFFFFFF0

// TestHEDecryptionFailure: when a device does not answer, decryption fails
// with EINTERNAL, a freshly allocated result is released, and the round is
// closed.
func TestHEDecryptionFailure(t *testing.T) {
	f := newHEFixture(t, 3)
	hub, err := hostfuncs.NewHEAggregation(f.agg, f.setup, &localDecryptors{parties: f.parties, drop: map[uint32]bool{3: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.StartRound(4); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.parties[:2] {
		m, err := p.Encrypt([]float32{1, 2, 3, 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{HEHub: hub}, "-")
	nh, nb := e.host.Stats()
	if got := e.call("fennec_privacy_he_decrypt_aggregate", 0); got != int32(hostfuncs.EINTERNAL) {
		t.Fatalf("decrypt with a device missing = %d (%s), want EINTERNAL", got, e.host.LastError())
	}
	if !strings.Contains(e.host.LastError(), "decryption shares incomplete") {
		t.Fatalf("message %q", e.host.LastError())
	}
	if h, b := e.host.Stats(); h != nh || b != nb {
		t.Fatal("the fresh result leaked")
	}
	if r := hub.Round(); r.Open {
		t.Fatal("round still open after a failed decryption")
	}
	if _, err := hub.Decrypt(context.Background()); !errors.Is(err, he.ErrPhase) {
		t.Fatalf("Decrypt after failure: %v", err)
	}
}

// TestHEEncryptRefusals: before the key setup, and for tensors that are
// empty or not f32.
func TestHEEncryptRefusals(t *testing.T) {
	f := newHEFixture(t, 2)
	fresh, err := he.NewParty(f.setup, 1) // no public key yet
	if err != nil {
		t.Fatal(err)
	}
	early, err := hostfuncs.NewHEDevice(fresh, f.setup)
	if err != nil {
		t.Fatal(err)
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{HE: early}, "-")
	h := e.newF32([]int32{2}, 1, 2)
	if got := e.call("fennec_privacy_he_encrypt", u(h), outAt, 1024); got != int32(hostfuncs.ESTATE) {
		t.Fatalf("encrypt before the key setup = %d (%s)", got, e.host.LastError())
	}
	dev, err := hostfuncs.NewHEDevice(f.parties[0], f.setup)
	if err != nil {
		t.Fatal(err)
	}
	e = privacyEnv(t, &hostfuncs.PrivacyServices{HE: dev}, "-")
	e.put(shapeAt, wasmtest.LE32(0))
	empty := e.call("fennec_tensor_new", 1, shapeAt, 1, 0, 0)
	ih := e.call("fennec_tensor_new", 3, shapeAt, 0, 0, 0)
	for _, c := range []struct {
		h    int32
		want hostfuncs.Code
	}{{empty, hostfuncs.ESHAPE}, {ih, hostfuncs.EDTYPE}, {12345, hostfuncs.EHANDLE}} {
		if got := e.call("fennec_privacy_he_encrypt", u(c.h), outAt, 1024); got != int32(c.want) {
			t.Fatalf("he_encrypt(%d) = %d (%s), want %s", c.h, got, e.host.LastError(), c.want)
		}
	}
	inf := e.newF32([]int32{2}, 1, float32(math.Inf(-1)))
	size := e.call("fennec_privacy_he_encrypt", u(inf), 0, 0) // the size query does not look at the values
	if size <= 0 || uint32(outAt+size) > e.mod.Memory().Size() {
		t.Fatalf("he_encrypt size query = %d (%s)", size, e.host.LastError())
	}
	if got := e.call("fennec_privacy_he_encrypt", u(inf), outAt, u(size)); got != int32(hostfuncs.EINVAL) {
		t.Fatalf("he_encrypt of -Inf = %d (%s)", got, e.host.LastError())
	}
}

func TestHEAdaptersRefuseBadSetup(t *testing.T) {
	if _, err := hostfuncs.NewHEDevice(nil, he.Setup{}); err == nil {
		t.Fatal("nil party accepted")
	}
	f := newHEFixture(t, 2)
	if _, err := hostfuncs.NewHEDevice(f.parties[0], he.Setup{Params: he.Test10, Parties: 2}); err == nil {
		t.Fatal("invalid setup accepted")
	}
	if _, err := hostfuncs.NewHEAggregation(f.agg, f.setup, nil); err == nil {
		t.Fatal("nil decryptors accepted")
	}
}

// FuzzHEAdd feeds arbitrary bytes to he_add: the host must answer EINVAL
// (or count a valid message), never trap.
func FuzzHEAdd(f *testing.F) {
	fx := newHEFixture(f, 2)
	hub, err := hostfuncs.NewHEAggregation(fx.agg, fx.setup, &localDecryptors{parties: fx.parties})
	if err != nil {
		f.Fatal(err)
	}
	if err := hub.StartRound(8); err != nil {
		f.Fatal(err)
	}
	valid, err := fx.parties[0].Encrypt(make([]float32, 8))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid[:64])
	f.Add([]byte{0xa3, 0x01, 0x01, 0x02, 0x08, 0x03, 0x81, 0x40})
	f.Add([]byte("\xff\xff"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) == 0 || len(msg) > 60000 {
			return
		}
		e := privacyEnv(t, &hostfuncs.PrivacyServices{HEHub: hub}, "-")
		e.put(dataAt, msg)
		got := e.call("fennec_privacy_he_add", dataAt, u(int32(len(msg))))
		if got < 0 && got != int32(hostfuncs.EINVAL) {
			t.Fatalf("he_add = %d (%s)", got, e.host.LastError())
		}
	})
}

// An HESlot answers ESTATE, naming the missing party, until a party is
// set, forwards to it while set, and refuses again after Set(nil).
func TestHESlot(t *testing.T) {
	f := newHEFixture(t, 2)
	dev, err := hostfuncs.NewHEDevice(f.parties[0], f.setup)
	if err != nil {
		t.Fatal(err)
	}
	slot := &hostfuncs.HESlot{}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{HE: slot}, "-")
	h := e.newF32([]int32{2}, 1, 2)
	refused := func(when string) {
		t.Helper()
		if got := e.call("fennec_privacy_he_encrypt", u(h), outAt, 1024); got != int32(hostfuncs.ESTATE) ||
			!strings.Contains(e.host.LastError(), "no homomorphic-encryption party") {
			t.Fatalf("he_encrypt %s = %d (%s), want ESTATE naming the missing party", when, got, e.host.LastError())
		}
	}
	refused("before Set")
	slot.Set(dev)
	size := e.call("fennec_privacy_he_encrypt", u(h), 0, 0)
	if size <= 0 || uint32(outAt+size) > e.mod.Memory().Size() {
		t.Fatalf("he_encrypt size query = %d (%s)", size, e.host.LastError())
	}
	if got := e.call("fennec_privacy_he_encrypt", u(h), outAt, u(size)); got != size {
		t.Fatalf("he_encrypt = %d (%s), want %d", got, e.host.LastError(), size)
	}
	slot.Set(nil)
	refused("after Set(nil)")
}
