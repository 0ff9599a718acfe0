package sim

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/runtime"
)

// riskModule builds modules/risk-train and compiles it once.
func riskModule(t testing.TB) (*runtime.Module, func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the risk-train Wasm module; skipped with -short")
	}
	ctx := context.Background()
	root, _ := filepath.Abs("../../..")
	src := filepath.Join(root, "modules", "risk-train")
	wasmPath, err := guestbuild.Go(ctx, src, filepath.Join(os.TempDir(), "fennec-guestbuild-cache"))
	if err != nil {
		t.Skipf("cannot build %s: %v", src, err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	man, err := runtime.ReadManifest(filepath.Join(src, "fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.New(ctx, runtime.Config{CacheDir: filepath.Join(os.TempDir(), "fennec-test-wazero-cache"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := eng.Compile(ctx, wasm, man)
	if err != nil {
		eng.Close(ctx)
		t.Fatal(err)
	}
	return mod, func() { mod.Close(ctx); eng.Close(ctx) }
}

// The production path: every device trains with the Wasm module's `train`
// entrypoint through the runtime; the hub evaluates with its `evaluate`.
func TestWasmRiskTrain(t *testing.T) {
	mod, done := riskModule(t)
	defer done()
	init := MLP{In: len(vitals.Fields), Hidden: 16, Out: 1}.Init(1)
	w := &train.Wasm{Mod: mod}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s, err := Run(ctx, Config{Devices: 4, Rounds: 4, Skew: 1, Data: Vitals(2000, 4), F32Labels: true,
		Initial: &init, NewTrainer: func(int) (train.Trainer, error) { return w, nil }, Evaluator: w,
		Reference: true, ReferenceTrainer: w, Settings: settings(0.01, 2, 32), Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wasm: acc %.3f ref %.3f, %d calls, %d instantiations", s.Accuracy, s.ReferenceAccuracy, mod.Stats().Calls, mod.Stats().Instantiations)
	if s.Accuracy < 0.75 {
		t.Fatalf("accuracy %.3f", s.Accuracy)
	}
	if st := mod.Stats(); st.Idle != 0 || st.Calls < 16 {
		t.Fatalf("module stats %+v: want >= 16 calls and no idle instance", st)
	}
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.ParseUint(f[1], 10, 64)
	return p * uint64(os.Getpagesize())
}

// TestIdleDeviceMemory measures what an idle simulated device holds after
// it trained through the Wasm module (its instance drained): the growth of
// the Go heap and of the process RSS per device.
func TestIdleDeviceMemory(t *testing.T) {
	mod, done := riskModule(t)
	defer done()
	const n = 64
	init := MLP{In: len(vitals.Fields), Hidden: 16, Out: 1}.Init(1)
	d := Vitals(n*40, 5)
	measure := func() (uint64, uint64) {
		goruntime.GC()
		debug.FreeOSMemory()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		return ms.HeapInuse, rss()
	}
	h0, r0 := measure()
	w := &train.Wasm{Mod: mod}
	var h1, r1 uint64
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{Devices: n, Rounds: 2, Data: d, F32Labels: true, Initial: &init,
		NewTrainer: func(int) (train.Trainer, error) { return w, nil }, Evaluator: w, Settings: settings(0.01, 1, 32),
		OnRound: func(p Progress) {
			if p.Index == 2 {
				h1, r1 = measure() // every device has trained and is idle
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	perHeap := (float64(h1) - float64(h0)) / n
	perRSS := (float64(r1) - float64(r0)) / n
	t.Logf("idle device: Go heap %+.0f B, RSS %+.0f B per device (%d devices, module idle instances %d)", perHeap, perRSS, n, mod.Stats().Idle)
	if mod.Stats().Idle != 0 {
		t.Fatal("instances kept between rounds")
	}
	if perHeap > 1<<20 {
		t.Fatalf("idle device holds %.0f bytes of heap > 1 MiB", perHeap)
	}
}
