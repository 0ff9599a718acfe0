package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/runtime"
)

var (
	nnGuestOnce sync.Once
	nnGuestBin  []byte
	nnGuestErr  error
)

// nnGuestWasm builds deploy/testdata/nnguest once per test binary.
func nnGuestWasm(t testing.TB) []byte {
	t.Helper()
	nnGuestOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		p, err := guestbuild.Go(ctx, "testdata/nnguest", filepath.Join(testCacheDir, "guests"))
		if err != nil {
			nnGuestErr = err
			return
		}
		nnGuestBin, nnGuestErr = os.ReadFile(p)
	})
	if errors.Is(nnGuestErr, guestbuild.ErrNoGo) {
		t.Skip("no Go toolchain to build the test guest: ", nnGuestErr)
	}
	if nnGuestErr != nil {
		t.Fatal(nnGuestErr)
	}
	return nnGuestBin
}

// The test models (hostfuncs' testdata): add answers 11, mul 10; cast has
// other inputs, so the guest's health check fails on it.
func testModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hostfuncs", "testdata", "nn", name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// modelBundle packs nnguest at version with model as "m" (its digest
// pinned by PackModels), signed by k.
func modelBundle(t testing.TB, k *PrivateKey, version string, model []byte, env ...string) []byte {
	t.Helper()
	var man strings.Builder
	fmt.Fprintf(&man, "# the model travels in the bundle\nname = \"nnguest\"\nversion = %q\nentrypoints = [\"health\", \"run\"]\ncapabilities = [\"tensor\", \"nn\", \"wasi:env\"]\n\n[nn]\nmodels = [\"m\"]\n\n[env]\nV = %q\n", version, version)
	for i := 0; i+1 < len(env); i += 2 {
		fmt.Fprintf(&man, "%s = %q\n", env[i], env[i+1])
	}
	b, err := PackModels([]byte(man.String()), nnGuestWasm(t), map[string][]byte{"m": model})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(k, false); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// withModels gives a Deployer an engine whose instances load models from
// a model set of its own, and that set.
func withModels(t testing.TB) (func(*DeployerConfig), **hostfuncs.ModelSet) {
	var set *hostfuncs.ModelSet
	return func(c *DeployerConfig) {
		set = hostfuncs.NewModelSet(nil, onnx.Options{})
		eng, err := runtime.New(context.Background(), runtime.Config{CacheDir: filepath.Join(testCacheDir, "wazero"),
			Services: &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: set}}})
		if err != nil {
			t.Fatal(err)
		}
		s := set
		t.Cleanup(func() { eng.Close(context.Background()); s.Close() })
		c.Engine, c.Models = eng, set
	}, &set
}

func callModel(t testing.TB, d *Deployer) float32 {
	t.Helper()
	out, err := d.Call(context.Background(), "run", []byte{0xa0})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var v float32
	if err := cbor.Unmarshal(out, &v); err != nil {
		t.Fatalf("output %x: %v", out, err)
	}
	return v
}

// TestDeployerModels: a module's model ships in its signed bundle, pinned
// by digest; v1 (add) runs, v2 (mul) takes over while a v1 call in flight
// finishes on add; a v3 whose model fails the health check, one whose model
// was swapped after packing and one whose model was truncated are refused
// with 2.0.0 still answering; a rollback brings add back from the store; a
// restart runs the stored version's model. Every decision is audited with
// the models' digests.
func TestDeployerModels(t *testing.T) {
	mod, setp := withModels(t)
	dir := t.TempDir()
	r := newRig(t, dir, mod)
	set := *setp
	add, mul, cast := testModel(t, "add"), testModel(t, "mul"), testModel(t, "cast_i64")

	v1 := modelBundle(t, r.pub, "1.0.0", add, "SLEEP_MS", "0")
	r.mustInstall(t, v1)
	if got := callModel(t, r.d); got != 11 {
		t.Fatalf("v1 answered %v, want add's 11", got)
	}
	if rec := lastAudit(t, r.audit); rec.Decision != DecisionAccept || rec.Models != "m@"+sha(add) {
		t.Fatalf("v1 audit %+v", rec)
	}
	// A v1 call in flight across the swap finishes on add; v1.1 is v1 with
	// slow runs (same model: registered once).
	r.mustInstall(t, modelBundle(t, r.pub, "1.1.0", add, "SLEEP_MS", "400"))
	if set.Registered("m", sha(add)) == nil {
		t.Fatal("add is not registered")
	}
	slow := make(chan float32, 1)
	go func() { slow <- callModel(t, r.d) }()
	// The call holds v1.1 (its reference on top of the current one's)
	// before v2 is installed: a condition, not a sleep.
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if a := r.d.cur.Load(); a == nil || a.refs.Load() < 2 {
			return errors.New("the slow call has not started on 1.1.0")
		}
		return nil
	})
	r.mustInstall(t, modelBundle(t, r.pub, "2.0.0", mul))
	if got := callModel(t, r.d); got != 10 {
		t.Fatalf("v2 answered %v, want mul's 10", got)
	}
	if got := <-slow; got != 11 {
		t.Fatalf("the call in flight across the swap answered %v, want add's 11", got)
	}
	// Once v1.1's calls are done it is retired and add is released.
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if set.Registered("m", sha(add)) != nil {
			return errors.New("add is still registered after 1.1.0 was retired")
		}
		return nil
	})

	// Broken v3s: each refused or failed, 2.0.0 keeps answering.
	if _, err := r.d.Install(context.Background(), modelBundle(t, r.pub, "3.0.0", cast), "test"); !errors.As(err, new(*HealthError)) {
		t.Fatalf("v3 with a model that fails the health check: %v", err)
	}
	if rec := lastAudit(t, r.audit); rec.Decision != DecisionFail || rec.Version != "3.0.0" || !strings.Contains(rec.Reason, "health check failed") || rec.Models != "m@"+sha(cast) {
		t.Fatalf("failed health audit %+v", rec)
	}
	if set.Registered("m", sha(cast)) != nil {
		t.Fatal("the failed version's model stays registered")
	}
	for _, tc := range []struct {
		name  string
		model func([]byte) []byte
		msg   string
	}{
		{"swapped model", func([]byte) []byte { return add }, "has SHA-256 " + sha(add)},
		{"truncated model", func(b []byte) []byte { return b[:len(b)/2] }, "changed or truncated"},
	} {
		b, err := DecodeBundle(modelBundle(t, r.pub, "3.1.0", mul), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		b.env.Models["m"] = tc.model(b.env.Models["m"])
		raw, _ := b.Encode()
		_, err = r.d.Install(context.Background(), raw, "test")
		var ref *Refused
		if !errors.As(err, &ref) || ref.Reason != ReasonTampered || !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("%s: %v, want a tampered refusal saying %q", tc.name, err, tc.msg)
		}
		if rec := lastAudit(t, r.audit); rec.Decision != DecisionRefuse || !strings.Contains(rec.Reason, tc.msg) {
			t.Fatalf("%s: audit %+v", tc.name, rec)
		}
	}
	// A model the manifest does not pin is malformed.
	b, _ := DecodeBundle(modelBundle(t, r.pub, "3.2.0", mul), Limits{})
	b.env.Models["extra"] = add
	raw, _ := b.Encode()
	if _, err := r.d.Install(context.Background(), raw, "test"); err == nil || !strings.Contains(err.Error(), `model "extra" is in the bundle but the manifest does not pin it`) {
		t.Fatalf("unpinned model: %v", err)
	}
	if got := callModel(t, r.d); got != 10 {
		t.Fatalf("after the refusals 2.0.0 answered %v, want 10", got)
	}

	// Rollback: 1.1.0 comes back from the store with its model.
	if err := r.d.Rollback(context.Background(), "operator asked"); err != nil {
		t.Fatal(err)
	}
	if got := callModel(t, r.d); got != 11 {
		t.Fatalf("after the rollback: %v, want add's 11", got)
	}
	if rec := lastAudit(t, r.audit); rec.Decision != DecisionRollback || rec.Version != "1.1.0" {
		t.Fatalf("rollback audit %+v", rec)
	}
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if set.Registered("m", sha(mul)) != nil {
			return errors.New("mul is still registered after 2.0.0 was rolled back")
		}
		return nil
	})

	// A restarted device runs the stored version and its stored model.
	r.d.Close(context.Background())
	mod2, setp2 := withModels(t)
	r2 := newRig(t, dir, mod2)
	if err := r2.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := callModel(t, r2.d); got != 11 || (*setp2).Registered("m", sha(add)) == nil {
		t.Fatalf("after a restart: %v", got)
	}
}

// TestRolloutModels: models roll out to a group like modules: a canary
// moves half the group to a new model, promotion moves the rest, a version
// whose model fails its health check leaves every device on the good one,
// and a tampered model is refused everywhere; against deploy's server and a
// federation hub.
func TestRolloutModels(t *testing.T) { servers(t, testRolloutModels) }

func testRolloutModels(t *testing.T, on string) {
	devs := map[string]string{"cam-1": "cams", "cam-2": "cams", "cam-3": "cams", "cam-4": "cams"}
	f := newFleetOn(t, on, devs)
	f.rigMod = func(c *DeployerConfig) { mod, _ := withModels(t); mod(c) }
	for id, g := range devs {
		f.startDevice(id, g)
	}
	add, mul, cast := testModel(t, "add"), testModel(t, "mul"), testModel(t, "cast_i64")
	answers := func() map[string]float32 {
		m := map[string]float32{}
		for id, d := range f.devices {
			m[id] = callModel(t, d.rig.d)
		}
		return m
	}
	allOn := func(version string) func(GroupState) bool {
		return func(g GroupState) bool {
			n := 0
			for _, d := range g.Devices {
				if d.Version == version && d.State == StateRunning && d.Healthy {
					n++
				}
			}
			return n == len(devs)
		}
	}
	f.deploy(modelBundle(t, f.pub, "1.0.0", add), "cams", 100)
	f.waitGroup("cams", "1.0.0 (add) everywhere", allOn("1.0.0"))
	for id, v := range answers() {
		if v != 11 {
			t.Fatalf("%s answers %v on 1.0.0", id, v)
		}
	}
	v2 := modelBundle(t, f.pub, "2.0.0", mul)
	c := f.deploy(v2, "cams", 50)
	f.waitGroup("cams", "the 50% canary of 2.0.0 (mul)", func(g GroupState) bool {
		n := 0
		for _, d := range g.Devices {
			if c.InCanary(d.Device) && d.Version == "2.0.0" && d.State == StateRunning || !c.InCanary(d.Device) && d.Version == "1.0.0" && d.State == StateNotCanary {
				n++
			}
		}
		return n == len(devs)
	})
	for id, v := range answers() {
		if want := map[bool]float32{true: 10, false: 11}[c.InCanary(id)]; v != want {
			t.Fatalf("canary: %s answers %v, want %v", id, v, want)
		}
	}
	f.deploy(v2, "cams", 100)
	f.waitGroup("cams", "2.0.0 everywhere", allOn("2.0.0"))
	bad := f.deploy(modelBundle(t, f.pub, "3.0.0", cast), "cams", 100)
	f.waitGroup("cams", "3.0.0's model failing its health check everywhere", func(g GroupState) bool {
		n := 0
		for _, d := range g.Devices {
			if d.Version == "2.0.0" && d.State == StateFailed && d.Rollout == bad.ID && strings.Contains(d.Reason, "health check failed") {
				n++
			}
		}
		return n == len(devs)
	})
	tb, _ := DecodeBundle(modelBundle(t, f.pub, "3.1.0", mul), Limits{})
	tb.env.Models["m"] = tb.env.Models["m"][:10]
	traw, _ := tb.Encode()
	f.deploy(traw, "cams", 100)
	f.waitGroup("cams", "the truncated model refused everywhere", func(g GroupState) bool {
		n := 0
		for _, d := range g.Devices {
			if d.Version == "2.0.0" && d.State == StateRefused && strings.Contains(d.Reason, "(tampered)") {
				n++
			}
		}
		return n == len(devs)
	})
	for id, v := range answers() {
		if v != 10 {
			t.Fatalf("%s answers %v after the refusals, want 2.0.0's 10", id, v)
		}
	}
	recs, err := ReadAudit(f.devices["cam-1"].rig.audit)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, r := range recs {
		decisions = append(decisions, r.Version+":"+r.Decision)
	}
	got := strings.Join(decisions, " ")
	if !strings.HasPrefix(got, "1.0.0:accept") || !strings.HasSuffix(got, "3.0.0:fail 3.1.0:refuse") {
		t.Fatalf("cam-1 audit decisions %q", got)
	}
}

// TestPinModels: pins are added as a table, a stale pin is replaced in
// place, other text and comments are kept, and an ungranted model is an
// error.
func TestPinModels(t *testing.T) {
	base := "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\ncapabilities = [\"nn\"]\n[nn]\nmodels = [\"a\", \"b\"]\n"
	a, b := []byte("model a"), []byte("model b")
	got, err := PinModels([]byte(base), map[string][]byte{"a": a})
	if want := base + "\n[nn.sha256]\na = \"" + sha(a) + "\"\n"; err != nil || string(got) != want {
		t.Fatalf("new table: %v\n%s\nwant\n%s", err, got, want)
	}
	stale := base + "[nn.sha256] # pins\n\"a\" = \"" + strings.Repeat("0", 64) + "\"\n\n[limits]\nmemory_pages = 4\n"
	got, err = PinModels([]byte(stale), map[string][]byte{"a": a, "b": b})
	want := base + "[nn.sha256] # pins\nb = \"" + sha(b) + "\"\na = \"" + sha(a) + "\"\n\n[limits]\nmemory_pages = 4\n"
	if err != nil || string(got) != want {
		t.Fatalf("stale pin: %v\n%s\nwant\n%s", err, got, want)
	}
	if _, err := PinModels([]byte(base), map[string][]byte{"c": a}); err == nil || !strings.Contains(err.Error(), `model "c" is not granted`) {
		t.Fatalf("ungranted: %v", err)
	}
	if _, err := PackModels([]byte(base), []byte("\x00asm\x01\x00\x00\x00"), map[string][]byte{"a": nil}); err == nil || !strings.Contains(err.Error(), `model "a" is empty`) {
		t.Fatalf("empty model: %v", err)
	}
	// More models than a bundle may carry: refused when packing, not
	// written as a bundle every device would refuse to decode.
	many := map[string][]byte{}
	grants := []string{}
	for i := range 17 {
		n := fmt.Sprintf("m%d", i)
		many[n], grants = []byte("model "+n), append(grants, `"`+n+`"`)
	}
	manyMan := "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\ncapabilities = [\"nn\"]\n[nn]\nmodels = [" + strings.Join(grants, ", ") + "]\n"
	if _, err := PackModels([]byte(manyMan), []byte("\x00asm\x01\x00\x00\x00"), many); err == nil || !strings.Contains(err.Error(), "17 models in one bundle exceed the limit of 16") {
		t.Fatalf("17 models: %v", err)
	}
	delete(many, "m16")
	b16, err := PackModels([]byte(manyMan), []byte("\x00asm\x01\x00\x00\x00"), many)
	if err != nil {
		t.Fatalf("16 models: %v", err)
	}
	raw, err := b16.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := DecodeBundle(raw, Limits{}); err != nil || len(d.Models()) != 16 {
		t.Fatalf("a bundle of 16 models does not decode: %v", err)
	}
}
