package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/runtime"
)

// testCacheDir holds the built test guest and wazero's compiled code
// between test runs, so that only the first run pays for the builds.
var testCacheDir = filepath.Join(os.TempDir(), "fennec-deploy-test-cache")

var (
	guestOnce sync.Once
	guestBin  []byte
	guestErr  error
)

// guestWasm builds deploy/testdata/guest once per test binary.
func guestWasm(t testing.TB) []byte {
	t.Helper()
	guestOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		p, err := guestbuild.Go(ctx, "testdata/guest", filepath.Join(testCacheDir, "guests"))
		if err != nil {
			guestErr = err
			return
		}
		guestBin, guestErr = os.ReadFile(p)
	})
	if errors.Is(guestErr, guestbuild.ErrNoGo) {
		t.Skip("no Go toolchain to build the test guest: ", guestErr)
	}
	if guestErr != nil {
		t.Fatal(guestErr)
	}
	return guestBin
}

// guestManifest is the test guest's manifest for one version; env sets its
// behaviour (see testdata/guest).
func guestManifest(version string, env ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "name = \"guest\"\nversion = %q\nentrypoints = [\"health\", \"run\"]\ncapabilities = [\"wasi:env\"]\n\n[env]\nVERSION = %q\n", version, version)
	for i := 0; i+1 < len(env); i += 2 {
		fmt.Fprintf(&b, "%s = %q\n", env[i], env[i+1])
	}
	return []byte(b.String())
}

func guestBundle(t testing.TB, k *PrivateKey, version string, env ...string) []byte {
	t.Helper()
	b, err := Pack(guestManifest(version, env...), guestWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	if k != nil {
		if err := b.Sign(k, false); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newEngine(t testing.TB) *runtime.Engine {
	t.Helper()
	eng, err := runtime.New(context.Background(), runtime.Config{CacheDir: filepath.Join(testCacheDir, "wazero")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng
}

type rig struct {
	d      *Deployer
	store  *Store
	audit  string
	events chan Event
	pub    *PrivateKey
	ops    *PrivateKey
	trust  *Trust
}

func newRig(t testing.TB, dir string, mod func(*DeployerConfig)) *rig {
	t.Helper()
	r := &rig{events: make(chan Event, 100), audit: filepath.Join(dir, "audit.log")}
	if k, err := LoadPrivateKey(filepath.Join(dir, "acme.key")); err == nil {
		r.pub = k
		r.ops, _ = LoadPrivateKey(filepath.Join(dir, "ops.key"))
	} else {
		r.pub, r.ops = mustKey(t, "acme", RolePublisher), mustKey(t, "ops", RoleOperator)
		WriteKeyFiles(dir, r.pub)
		WriteKeyFiles(dir, r.ops)
	}
	r.trust = trustOf([]*PrivateKey{r.pub}, []*PrivateKey{r.ops})
	var err error
	if r.store, err = OpenStore(filepath.Join(dir, "store")); err != nil {
		t.Fatal(err)
	}
	al, err := OpenAudit(r.audit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	cfg := DeployerConfig{Engine: newEngine(t), Store: r.store, Trust: r.trust, Audit: al, Device: "dev-1",
		OnEvent: func(e Event) {
			select {
			case r.events <- e:
			default:
			}
		}}
	if mod != nil {
		mod(&cfg)
	}
	if r.d, err = NewDeployer(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.d.Close(context.Background()) })
	return r
}

func callRun(t testing.TB, d *Deployer) (string, error) {
	out, err := d.Call(context.Background(), "run", []byte{0xa0})
	if err != nil {
		return "", err
	}
	var s string
	if err := cbor.Unmarshal(out, &s); err != nil {
		t.Fatalf("output %x: %v", out, err)
	}
	return s, nil
}

func (r *rig) mustInstall(t testing.TB, raw []byte) {
	t.Helper()
	if _, err := r.d.Install(context.Background(), raw, "test"); err != nil {
		t.Fatal(err)
	}
}

func lastAudit(t testing.TB, path string) Record {
	t.Helper()
	recs, err := ReadAudit(path)
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v (%d records)", err, len(recs))
	}
	return recs[len(recs)-1]
}

func TestDeployerHotSwapInFlight(t *testing.T) {
	r := newRig(t, t.TempDir(), nil)
	if _, err := r.d.Call(context.Background(), "run", nil); !errors.Is(err, ErrNoModule) {
		t.Fatalf("call before install: %v", err)
	}
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0", "SLEEP_MS", "300"))
	old := r.d.cur.Load()

	// Calls in flight during the swap must finish on the old version.
	var wg sync.WaitGroup
	results := make([]string, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = callRun(t, r.d)
		}()
	}
	// The four calls are in flight once they hold a reference each (the
	// Deployer holds the fifth).
	testutil.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if n := old.refs.Load(); n != 5 {
			return fmt.Errorf("%d references to 1.0.0, want 5 (4 calls in flight)", n)
		}
		return nil
	})
	r.mustInstall(t, guestBundle(t, r.pub, "1.1.0"))
	if got, err := callRun(t, r.d); err != nil || got != "1.1.0" {
		t.Fatalf("new call after swap: %q, %v", got, err)
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i] != "1.0.0" {
			t.Fatalf("in-flight call %d: %q, %v (want it to finish on 1.0.0)", i, results[i], errs[i])
		}
	}
	select {
	case <-old.drained:
	case <-time.After(5 * time.Second):
		t.Fatal("old version never drained")
	}
	r.d.routines.Wait()
	if _, err := old.mod.Call(context.Background(), "run", nil); !errors.Is(err, runtime.ErrClosed) {
		t.Fatalf("old module not closed after draining: %v", err)
	}
	if rec := lastAudit(t, r.audit); rec.Decision != DecisionAccept || rec.Version != "1.1.0" || rec.Who != "dev-1" || rec.Signers != "publisher:acme" {
		t.Fatalf("audit %+v", rec)
	}
}

func TestDeployerNoErrorsUnderLoad(t *testing.T) {
	r := newRig(t, t.TempDir(), nil)
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var calls int
	var failures []error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, err := callRun(t, r.d)
				mu.Lock()
				calls++
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 1; i <= 3; i++ {
		r.mustInstall(t, guestBundle(t, r.pub, fmt.Sprintf("1.0.%d", i)))
	}
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed during swaps, first: %v", len(failures), calls, failures[0])
	}
	if v, _ := r.d.Current(); v.Version != "1.0.3" {
		t.Fatalf("current %+v", v)
	}
}

func TestDeployerFailedHealthKeepsOld(t *testing.T) {
	for _, mode := range []string{"fail", "trap"} {
		t.Run(mode, func(t *testing.T) {
			r := newRig(t, t.TempDir(), nil)
			r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
			bad := guestBundle(t, r.pub, "1.1.0", "HEALTH", mode)
			_, err := r.d.Install(context.Background(), bad, "test")
			var he *HealthError
			if !errors.As(err, &he) {
				t.Fatalf("install of an unhealthy version: %v", err)
			}
			if got, err := callRun(t, r.d); err != nil || got != "1.0.0" {
				t.Fatalf("after failed health: %q %v", got, err)
			}
			rec := lastAudit(t, r.audit)
			if rec.Decision != DecisionFail || rec.Version != "1.1.0" || !strings.Contains(rec.Reason, "still running guest 1.0.0") {
				t.Fatalf("audit %+v", rec)
			}
			if ok, last := r.d.Healthy(); !ok || !strings.Contains(last, "health check failed") {
				t.Fatalf("healthy=%v last=%q", ok, last)
			}
			// The failed digest is not tried again.
			if _, err := r.d.Install(context.Background(), bad, "test"); err == nil || !strings.Contains(err.Error(), "already failed") {
				t.Fatalf("retry of a failed bundle: %v", err)
			}
			if st := r.store.State(); st.Current.Version != "1.0.0" {
				t.Fatalf("store %+v", st)
			}
		})
	}
}

func TestDeployerCrashLoopRollsBack(t *testing.T) {
	r := newRig(t, t.TempDir(), func(c *DeployerConfig) { c.CrashLoopFailures = 3; c.CrashLoopWindow = time.Minute })
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
	r.mustInstall(t, guestBundle(t, r.pub, "1.1.0", "RUN", "trap"))
	for range 3 {
		if _, err := callRun(t, r.d); !errors.Is(err, runtime.ErrTrap) {
			t.Fatalf("want a trap, got %v", err)
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		var e Event
		select {
		case e = <-r.events:
		case <-deadline:
			t.Fatal("no rollback event")
		}
		if e.Kind == EventRollback {
			if e.Version.Version != "1.1.0" || !strings.Contains(e.Reason, "crash loop") || e.Running.Version != "1.0.0" {
				t.Fatalf("rollback event %+v", e)
			}
			break
		}
	}
	if got, err := callRun(t, r.d); err != nil || got != "1.0.0" {
		t.Fatalf("after rollback: %q %v", got, err)
	}
	rec := lastAudit(t, r.audit)
	if rec.What != "rollback" || rec.Decision != DecisionRollback || rec.Version != "1.0.0" {
		t.Fatalf("audit %+v", rec)
	}
	st := r.store.State()
	if st.Current.Version != "1.0.0" || len(st.Bad) != 1 {
		t.Fatalf("store after rollback %+v", st)
	}
}

// TestDeployerRefusalsAudited sends every kind of bad bundle to a running
// device: each is refused with its reason, the running version keeps
// serving, and each decision is in the audit log.
func TestDeployerRefusalsAudited(t *testing.T) {
	r := newRig(t, t.TempDir(), nil)
	r.mustInstall(t, guestBundle(t, r.pub, "2.0.0"))
	mallory := mustKey(t, "mallory", RolePublisher)

	good := guestBundle(t, r.pub, "2.1.0")
	tampered := append([]byte(nil), good...)
	i := strings.Index(string(tampered), "VERSION = ")
	tampered[i+11] = '9' // "2.1.0" -> "9.1.0" inside the signed manifest
	wrongSig, _ := DecodeBundle(good, Limits{})
	wrongSig.env.Signatures[0].Sig[5] ^= 0x40
	wrongSigRaw, _ := wrongSig.Encode()
	older := guestBundle(t, r.pub, "1.9.0")
	rb, _ := DecodeBundle(guestBundle(t, r.pub, "1.9.1"), Limits{})
	rb.Sign(r.ops, true)
	rollbackRaw, _ := rb.Encode()

	cases := []struct {
		name, reason string
		raw          []byte
	}{
		{"malformed", ReasonMalformed, []byte{0xa1, 0x01}},
		{"unsigned", ReasonUnsigned, guestBundle(t, nil, "2.1.0")},
		{"tampered", ReasonTampered, tampered},
		{"wrongly signed", ReasonBadSignature, wrongSigRaw},
		{"untrusted key", ReasonUntrusted, guestBundle(t, mallory, "2.1.0")},
		{"downgrade", ReasonDowngrade, older},
	}
	before, _ := ReadAudit(r.audit)
	for _, c := range cases {
		_, err := r.d.Install(context.Background(), c.raw, "operator-x")
		if got, _ := IsRefused(err); got != c.reason {
			t.Fatalf("%s: got %v, want refusal %q", c.name, err, c.reason)
		}
		if v, _ := callRun(t, r.d); v != "2.0.0" {
			t.Fatalf("%s: running %q after a refusal", c.name, v)
		}
	}
	recs, _ := ReadAudit(r.audit)
	recs = recs[len(before):]
	if len(recs) != len(cases) {
		t.Fatalf("%d audit records for %d decisions", len(recs), len(cases))
	}
	for i, rec := range recs {
		if rec.Decision != DecisionRefuse || rec.Who != "dev-1" || rec.What != "install requested by operator-x" || rec.Digest == "" ||
			!strings.Contains(rec.Reason, "("+cases[i].reason+")") || rec.Time.IsZero() {
			t.Fatalf("audit record %d: %+v", i, rec)
		}
	}
	// An operator-signed rollback is accepted.
	v, err := r.d.Install(context.Background(), rollbackRaw, "operator-x")
	if err != nil || !v.Rollback {
		t.Fatalf("operator rollback: %+v %v", v, err)
	}
	if got, _ := callRun(t, r.d); got != "1.9.1" {
		t.Fatalf("after rollback: %q", got)
	}
	if rec := lastAudit(t, r.audit); rec.Decision != DecisionAccept || rec.Signers != "publisher:acme,operator:ops" {
		t.Fatalf("audit %+v", rec)
	}
}

func TestDeployerRestartsOffline(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, nil)
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
	r.mustInstall(t, guestBundle(t, r.pub, "1.1.0"))
	r.d.Close(context.Background())

	r2 := newRig(t, dir, nil)
	if err := r2.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := callRun(t, r2.d); err != nil || got != "1.1.0" {
		t.Fatalf("restart: %q %v", got, err)
	}
	r2.d.Close(context.Background())

	// A damaged current bundle: the device starts on the previous one.
	st := r2.store.State()
	os.WriteFile(r2.store.bundlePath(st.Current.Digest), []byte("damaged"), 0o600)
	r3 := newRig(t, dir, nil)
	if err := r3.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := callRun(t, r3.d); err != nil || got != "1.0.0" {
		t.Fatalf("start after damage: %q %v", got, err)
	}
}

// TestDeployerKillDuringSwap kills (SIGKILL) a child process that keeps
// installing new versions through a real Deployer (verify, store, compile,
// health check, commit, swap), at random moments. After each kill a fresh
// Deployer must start from the store and serve either the version that was
// being replaced or the one being installed.
func TestDeployerKillDuringSwap(t *testing.T) {
	if os.Getenv("FENNEC_DEPLOY_HELPER") != "" {
		return
	}
	guestWasm(t) // build before the children need it
	dir := t.TempDir()
	r := newRig(t, dir, nil)
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
	r.d.Close(context.Background())
	last, kills := "1.0.0", 0
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		out := runKilled(t, "deployer", dir, time.Duration(round*37%250)*time.Millisecond)
		begun := ""
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "begin" {
				begun = f[1]
			} else if len(f) == 2 && f[0] == "done" {
				last, begun = f[1], ""
			}
		}
		if begun != "" {
			kills++ // killed inside a swap
		}
		p := newRig(t, dir, nil)
		if err := p.d.Start(context.Background()); err != nil {
			t.Fatalf("round %d: restart after kill: %v", round, err)
		}
		got, err := callRun(t, p.d)
		if err != nil {
			t.Fatalf("round %d: no runnable version after kill: %v", round, err)
		}
		if got != last && got != begun {
			t.Fatalf("round %d: running %q, want the old %q or the new %q", round, got, last, begun)
		}
		last = got
		p.d.Close(context.Background())
	}
	t.Logf("%d of %d kills landed inside a swap", kills, rounds)
}

func helperDeployer(dir string) {
	t := &testing.T{}
	ctx := context.Background()
	p, err := guestbuild.Go(ctx, "testdata/guest", filepath.Join(testCacheDir, "guests"))
	if err != nil {
		panic(err)
	}
	wasm, _ := os.ReadFile(p)
	guestOnce.Do(func() { guestBin = wasm })
	r := newHelperRig(dir)
	if err := r.d.Start(ctx); err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ready\n")
	for {
		v := fmt.Sprintf("1.%d.0", time.Now().UnixNano())
		raw := guestBundle(t, r.pub, v)
		fmt.Printf("begin %s\n", v)
		if _, err := r.d.Install(ctx, raw, "helper"); err != nil {
			panic(err)
		}
		fmt.Printf("done %s\n", v)
	}
}

func newHelperRig(dir string) *rig {
	pub, err := LoadPrivateKey(filepath.Join(dir, "acme.key"))
	if err != nil {
		panic(err)
	}
	store, err := OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		panic(err)
	}
	eng, err := runtime.New(context.Background(), runtime.Config{CacheDir: filepath.Join(testCacheDir, "wazero")})
	if err != nil {
		panic(err)
	}
	d, err := NewDeployer(DeployerConfig{Engine: eng, Store: store, Trust: trustOf([]*PrivateKey{pub}, nil), Device: "helper"})
	if err != nil {
		panic(err)
	}
	return &rig{d: d, store: store, pub: pub}
}
