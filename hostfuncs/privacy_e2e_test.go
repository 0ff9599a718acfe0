package hostfuncs_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/runtime"
)

var (
	guestOnce sync.Once
	guestWasm []byte
	guestErr  error
)

// privacyGuest builds testdata/privacyguest (a Go guest using sdk/privacy)
// once per test binary; guestbuild caches it across runs by source hash.
func privacyGuest(t testing.TB) []byte {
	t.Helper()
	guestOnce.Do(func() {
		var path string
		path, guestErr = guestbuild.Go(context.Background(), "testdata/privacyguest", filepath.Join(os.TempDir(), "fennec-test-guests"))
		if guestErr == nil {
			guestWasm, guestErr = os.ReadFile(path)
		}
	})
	if errors.Is(guestErr, guestbuild.ErrNoGo) {
		t.Skipf("no Go toolchain to build the test guest: %v", guestErr)
	}
	if guestErr != nil {
		t.Fatalf("building testdata/privacyguest: %v", guestErr)
	}
	return guestWasm
}

const privacyManifest = `
name = "privacyguest"
version = "1.0.0"
entrypoints = ["release", "encrypt", "aggregate"]
capabilities = ["tensor", "privacy"]
`

// privacyModule compiles the guest in an engine with the given services.
func privacyModule(t testing.TB, ps *hostfuncs.PrivacyServices) *runtime.Module {
	t.Helper()
	wasm := privacyGuest(t)
	eng, err := runtime.New(context.Background(), runtime.Config{
		CacheDir: filepath.Join(os.TempDir(), "fennec-test-cache"),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Services: &hostfuncs.Services{Privacy: ps},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	man, err := runtime.ParseManifest([]byte(privacyManifest), "privacyguest.toml")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := eng.Compile(context.Background(), wasm, man)
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func le32s(vs ...float32) []byte { return f32bytes(vs...) }

// TestPrivacyGuestEndToEnd: a Go guest clips and noises a tensor with
// sdk/privacy through the runtime, on the dataset the caller names, until
// the dataset's budget runs out and the guest sees sdk.ErrBudget.
func TestPrivacyGuestEndToEnd(t *testing.T) {
	const z = 2.0
	ds := budget.DatasetAccount("wdbc")
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.json"), map[string]budget.Budget{ds: {Epsilon: 3, Delta: 1e-5}})
	mod := privacyModule(t, &hostfuncs.PrivacyServices{Ledger: l})
	in := binary.LittleEndian.AppendUint64(nil, math.Float64bits(z))
	in = append(in, le32s(3, 4, 0, 0)...)
	ctx := context.Background()

	// Without a dataset the host refuses; the guest's call fails with the
	// host's message.
	_, err := mod.Call(ctx, "release", in)
	if !errors.Is(err, runtime.ErrGuest) || !strings.Contains(err.Error(), "ESTATE") || !strings.Contains(err.Error(), "names no dataset") {
		t.Fatalf("release without a dataset: %v", err)
	}

	var releases int
	lastEps := math.Inf(1)
	for {
		out, err := mod.CallWith(ctx, "release", in, runtime.CallOptions{Dataset: "wdbc"})
		if err != nil {
			t.Fatalf("release %d: %v", releases, err)
		}
		if out[0] == 'B' {
			msg := string(out[1:])
			for _, want := range []string{"EBUDGET", ds, "privacy budget exceeded"} {
				if !strings.Contains(msg, want) {
					t.Fatalf("budget error %q lacks %q", msg, want)
				}
			}
			break
		}
		if out[0] != 'K' || len(out) != 1+24+16 {
			t.Fatalf("release %d: output %q", releases, out)
		}
		releases++
		f := func(i int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(out[1+8*i:])) }
		if norm := f(0); norm != 5 {
			t.Fatalf("norm before clipping %v, want 5", norm)
		}
		if eps := f(1); !(eps < lastEps) || eps < 0 {
			t.Fatalf("remaining epsilon %v after %v", eps, lastEps)
		} else {
			lastEps = eps
		}
		noisy := floats(out[25:])
		if noisy[0] == 0.6 && noisy[1] == 0.8 || noisy[2] == 0 {
			t.Fatalf("release %d is not noisy: %v", releases, noisy)
		}
		if releases > 100 {
			t.Fatal("the budget never ran out")
		}
	}
	// The ledger agrees with an independent accountant: n releases at
	// noise multiplier z fit in epsilon 3, n+1 do not.
	acc, _ := dp.NewAccountant(nil)
	acc.ComposeSubsampledGaussian(1, z, releases)
	eps, _, _ := acc.Epsilon(1e-5)
	acc.ComposeSubsampledGaussian(1, z, 1)
	eps1, _, _ := acc.Epsilon(1e-5)
	if releases < 1 || eps > 3 || eps1 <= 3 {
		t.Fatalf("%d releases: epsilon %v, %v with one more", releases, eps, eps1)
	}
	if s := status(t, l, ds); s.Releases != int64(releases) {
		t.Fatalf("ledger: %d releases, guest made %d", s.Releases, releases)
	}
	// Still refused on the next call (and the instance pool did not leak
	// tensors: the guest frees what it allocates).
	out, err := mod.CallWith(ctx, "release", in, runtime.CallOptions{Dataset: "wdbc"})
	if err != nil || out[0] != 'B' {
		t.Fatalf("after the budget ran out: %q, %v", out, err)
	}
}

// TestPrivacyGuestHE: a device guest encrypts with sdk/privacy.Encrypt, a
// hub guest adds updates and decrypts the aggregate, through the runtime;
// the hub's attempt to decrypt a single update is refused.
func TestPrivacyGuestHE(t *testing.T) {
	f := newHEFixture(t, 2)
	dev, err := hostfuncs.NewHEDevice(f.parties[0], f.setup)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := hostfuncs.NewHEAggregation(f.agg, f.setup, &localDecryptors{parties: f.parties})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	device := privacyModule(t, &hostfuncs.PrivacyServices{HE: dev})
	hubMod := privacyModule(t, &hostfuncs.PrivacyServices{HEHub: hub})

	v1 := []float32{1.5, -2, 3.25, 100, 0, -0.5, 7, 8}
	v2 := []float32{0.5, 2, -1.25, -50, 1, 0.5, -7, 8}
	msg1, err := device.Call(ctx, "encrypt", le32s(v1...))
	if err != nil {
		t.Fatal(err)
	}
	msg2, err := f.parties[1].Encrypt(v2) // the other device, outside Wasm
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.StartRound(len(v1)); err != nil {
		t.Fatal(err)
	}
	frame := func(msgs ...[]byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(v1)))
		for _, m := range msgs {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(m)))
			b = append(b, m...)
		}
		return b
	}
	out, err := hubMod.Call(ctx, "aggregate", frame(msg1))
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 'D' || !strings.Contains(string(out), "only aggregates of 2 or more") {
		t.Fatalf("decrypting one update: %q", out)
	}
	out, err = hubMod.Call(ctx, "aggregate", frame(msg2))
	if err != nil {
		t.Fatal(err)
	}
	sum := floats(out)
	if len(sum) != len(v1) {
		t.Fatalf("sum of %d values", len(sum))
	}
	for i := range sum {
		if want := v1[i] + v2[i]; math.Abs(float64(sum[i]-want)) > 1e-3 {
			t.Fatalf("sum[%d] = %v, want %v", i, sum[i], want)
		}
	}
}
