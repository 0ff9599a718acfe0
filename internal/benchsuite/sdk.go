package benchsuite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/cbor"
)

// SDK benchmarks: `fennec bench sdk` measures the per-call cost of each
// example guest module on a realistic input, through the runtime package as
// an application embeds it (one engine, one warm pooled instance).
//
// The guests come from one of two places:
//   - $FENNEC_BENCH_WASM, a directory holding prebuilt vitals-preprocess.wasm,
//     risk-infer.wasm, risk-train.wasm and c-zscore.wasm (what an operator's
//     device without a Go toolchain uses);
//   - otherwise they are built from the source tree (found upward from the
//     working directory, or at $FENNEC_SRC) with internal/guestbuild, which
//     needs `go` (and clang for the C module) on PATH.
//
// A module that can be had neither way is reported as a result with the note
// "skipped: needs prebuilt modules ..." instead of a figure.

func init() {
	bench.Register(bench.Case{Group: "sdk", Name: "vitals-preprocess", Doc: "Go guest: process 1000 vital-sign records (clean, moving median, z-scores), ns per call", Run: benchSDKPreprocess})
	bench.Register(bench.Case{Group: "sdk", Name: "risk-infer", Doc: "Go guest: score 100 preprocessed records with a cached 14-16-1 MLP, ns per call", Run: benchSDKRiskInfer})
	bench.Register(bench.Case{Group: "sdk", Name: "risk-train", Doc: "Go guest: one local training epoch (batch 32, Adam, about 2000 examples), ns per call", Run: benchSDKRiskTrain})
	bench.Register(bench.Case{Group: "sdk", Name: "c-zscore", Doc: "C guest: z-scores of 1000 values with host tensor ops, ns per call", Run: benchSDKCZScore})
}

// sdkGuest describes one example module.
type sdkGuest struct {
	name string // module name and prebuilt file stem
	src  string // source, relative to the repository root
	c    bool   // a C guest (guestbuild.C) rather than Go
}

var (
	guestPreprocess = sdkGuest{"vitals-preprocess", "modules/vitals-preprocess", false}
	guestRiskInfer  = sdkGuest{"risk-infer", "modules/risk-infer", false}
	guestRiskTrain  = sdkGuest{"risk-train", "modules/risk-train", false}
	guestCZScore    = sdkGuest{"c-zscore", "modules/c-zscore/zscore.c", true}
)

// errSkip marks a guest that cannot be had here; its message is the note.
var errSkip = errors.New("skipped: needs prebuilt modules")

// sdkRepoRoot finds the fennec source tree: $FENNEC_SRC, or the nearest
// directory above the working directory whose go.mod declares the module.
func sdkRepoRoot() (string, error) {
	if d := os.Getenv("FENNEC_SRC"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "module github.com/fennec-edge/fennec" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no fennec source tree above the working directory (set FENNEC_SRC)")
		}
		dir = parent
	}
}

// sdkWasm returns the guest's wasm bytes and where they came from.
func sdkWasm(ctx context.Context, g sdkGuest) ([]byte, string, error) {
	if dir := os.Getenv("FENNEC_BENCH_WASM"); dir != "" {
		p := filepath.Join(dir, g.name+".wasm")
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", errSkip, err)
		}
		return b, "prebuilt " + p, nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return nil, "", fmt.Errorf("%w (no Go toolchain on PATH to build %s; set FENNEC_BENCH_WASM to a directory of prebuilt .wasm files)", errSkip, g.src)
	}
	root, err := sdkRepoRoot()
	if err != nil {
		return nil, "", fmt.Errorf("%w (%v; or set FENNEC_BENCH_WASM)", errSkip, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "fennec", "guestbuild")
	var p string
	if g.c {
		if err := guestbuild.CAvailable(ctx); err != nil {
			return nil, "", fmt.Errorf("%w (%v)", errSkip, err)
		}
		p, err = guestbuild.C(ctx, filepath.Join(root, g.src), out)
	} else {
		p, err = guestbuild.Go(ctx, filepath.Join(root, g.src), out)
	}
	if err != nil {
		return nil, "", fmt.Errorf("build %s: %w", g.src, err)
	}
	b, err := os.ReadFile(p)
	return b, "built from " + g.src, err
}

// sdkModule is a compiled guest on its own engine.
type sdkModule struct {
	eng  *runtime.Engine
	mod  *runtime.Module
	size int
	from string
}

func (m *sdkModule) close(ctx context.Context) {
	m.mod.Close(ctx)
	m.eng.Close(ctx)
}

// sdkLoad compiles g with its manifest (from the source tree, or the
// manifest next to a prebuilt file as <name>.toml, or built-in defaults).
func sdkLoad(ctx context.Context, g sdkGuest) (*sdkModule, error) {
	bin, from, err := sdkWasm(ctx, g)
	if err != nil {
		return nil, err
	}
	man, err := sdkManifest(g)
	if err != nil {
		return nil, err
	}
	eng, err := runtime.New(ctx, runtime.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	mod, err := eng.Compile(ctx, bin, man)
	if err != nil {
		eng.Close(ctx)
		return nil, fmt.Errorf("compile %s: %w", g.name, err)
	}
	return &sdkModule{eng: eng, mod: mod, size: len(bin), from: from}, nil
}

// sdkManifests are the example modules' manifests (as in modules/*/fennec.toml).
var sdkManifests = map[string]string{
	"vitals-preprocess": "entrypoints = [\"process\"]\ncapabilities = []\n[limits]\nmemory_pages = 1024\ncall_timeout = \"5s\"\n",
	"risk-infer":        "entrypoints = [\"predict\"]\ncapabilities = [\"tensor\"]\n[limits]\nmemory_pages = 1024\ncall_timeout = \"5s\"\n",
	"risk-train":        "entrypoints = [\"train\", \"evaluate\"]\ncapabilities = [\"tensor\", \"privacy\"]\n[limits]\nmemory_pages = 2048\ncall_timeout = \"30s\"\n",
	"c-zscore":          "entrypoints = [\"zscore\"]\ncapabilities = [\"tensor\"]\n[limits]\nmemory_pages = 256\ncall_timeout = \"2s\"\n",
}

func sdkManifest(g sdkGuest) (runtime.Manifest, error) {
	if dir := os.Getenv("FENNEC_BENCH_WASM"); dir != "" {
		if p := filepath.Join(dir, g.name+".toml"); fileExists(p) {
			return runtime.ReadManifest(p)
		}
	}
	src := fmt.Sprintf("name = %q\nversion = \"1.0.0\"\n%s", g.name, sdkManifests[g.name])
	return runtime.ParseManifest([]byte(src), g.name+" (built-in bench manifest)")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sdkTime measures one entrypoint call on a warm instance.
func sdkTime(ctx context.Context, o bench.Options, m *sdkModule, entry string, in []byte) (float64, error) {
	if _, err := m.mod.Call(ctx, entry, in); err != nil { // warm an instance
		return 0, err
	}
	var callErr error
	samples := 5
	if o.Quick {
		samples = 3
	}
	ns := bench.Time(o, samples, func(n int) {
		for range n {
			if _, err := m.mod.Call(ctx, entry, in); err != nil && callErr == nil {
				callErr = err
			}
		}
	})
	return ns, callErr
}

// sdkResult runs fn on the loaded guest, or reports why it was skipped.
func sdkResult(ctx context.Context, g sdkGuest, what string, fn func(m *sdkModule) (float64, string, error)) ([]bench.Result, error) {
	r := bench.Result{Group: "sdk", Name: g.name, Unit: "ns/op"}
	m, err := sdkLoad(ctx, g)
	if errors.Is(err, errSkip) {
		r.Note = err.Error()
		return []bench.Result{r}, nil
	}
	if err != nil {
		return nil, err
	}
	defer m.close(ctx)
	ns, note, err := fn(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.name, err)
	}
	r.Value = ns
	r.Note = fmt.Sprintf("%s; %s; %d-byte module %s", what, note, m.size, m.from)
	return []bench.Result{r}, nil
}

// sdkRecords are n generated vital-sign records as `fennec run` presents
// CSV rows, with their labels.
func sdkRecords(seed uint64, patients int, hours float64, n int) ([]map[string]any, []float32) {
	gen, err := vitals.Generate(vitals.Config{Seed: seed, Patients: patients, Hours: hours})
	if err != nil {
		panic(err) // the harness's own constants
	}
	if n > 0 && n < len(gen) {
		gen = gen[:n]
	}
	recs := make([]map[string]any, len(gen))
	labels := make([]float32, len(gen))
	for i := range gen {
		recs[i] = gen[i].Map()
		labels[i] = float32(gen[i].Label)
	}
	return recs, labels
}

// sdkPreprocessed runs records through the preprocess guest (so that the
// risk modules get the inputs they see in a pipeline) and returns the
// output records and their model features in vitals.ModelFeatures order.
func sdkPreprocessed(ctx context.Context, recs []map[string]any) ([]any, []float32, error) {
	m, err := sdkLoad(ctx, guestPreprocess)
	if err != nil {
		return nil, nil, err
	}
	defer m.close(ctx)
	in, err := sdk.Marshal(map[string]any{"records": recs})
	if err != nil {
		return nil, nil, err
	}
	ob, err := m.mod.Call(ctx, "process", in)
	if err != nil {
		return nil, nil, err
	}
	var out struct {
		Records []any `cbor:"records"`
	}
	if err := cbor.Unmarshal(ob, &out); err != nil {
		return nil, nil, err
	}
	feats := make([]float32, 0, len(out.Records)*len(vitals.ModelFeatures))
	for _, r := range out.Records {
		rm, _ := r.(map[string]any)
		for _, f := range vitals.ModelFeatures {
			z, _ := rm[f].(float64)
			if math.IsNaN(z) || math.IsInf(z, 0) {
				z = 0
			}
			feats = append(feats, float32(z))
		}
	}
	return out.Records, feats, nil
}

func benchSDKPreprocess(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	recs, _ := sdkRecords(1, 10, 100, 1000)
	in, err := sdk.Marshal(map[string]any{"records": recs})
	if err != nil {
		return nil, err
	}
	return sdkResult(ctx, guestPreprocess, "1000 records", func(m *sdkModule) (float64, string, error) {
		ns, err := sdkTime(ctx, o, m, "process", in)
		return ns, fmt.Sprintf("%d-byte input", len(in)), err
	})
}

// sdkModel is a random 14-16-1 MLP (federation.MLP's initialiser) in the
// SDK's Model structure.
func sdkModel(seed uint64) sdk.Model {
	fm := federation.MLP{In: len(vitals.ModelFeatures), Hidden: 16, Out: 1}.Init(seed)
	m := sdk.Model{Name: "risk-mlp", Version: 1}
	for _, t := range fm.Tensors {
		w, _ := t.Float32s()
		shape := make([]int, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int(d)
		}
		m.Tensors = append(m.Tensors, sdk.F32Data(t.Name, shape, w))
	}
	return m
}

func benchSDKRiskInfer(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	return sdkResult(ctx, guestRiskInfer, "100 records, cached 14-16-1 model", func(m *sdkModule) (float64, string, error) {
		recs, _ := sdkRecords(2, 3, 24, 0)
		pre, _, err := sdkPreprocessed(ctx, recs)
		if err != nil {
			return 0, "", err
		}
		model := sdkModel(1)
		in, err := sdk.Marshal(map[string]any{"model": &model, "records": pre[:min(100, len(pre))]})
		if err != nil {
			return 0, "", err
		}
		ns, err := sdkTime(ctx, o, m, "predict", in)
		return ns, fmt.Sprintf("%d-byte input", len(in)), err
	})
}

func benchSDKRiskTrain(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	return sdkResult(ctx, guestRiskTrain, "1 epoch, batch 32, Adam", func(m *sdkModule) (float64, string, error) {
		recs, labels := sdkRecords(3, 25, 0, 0)
		_, x, err := sdkPreprocessed(ctx, recs)
		if err != nil {
			return 0, "", err
		}
		n := len(labels)
		in, err := sdk.Marshal(&sdk.TrainInput{Settings: sdk.Settings{LR: 0.01, Epochs: 1, BatchSize: 32},
			Data: sdk.Dataset{X: sdk.F32Data("x", []int{n, len(vitals.ModelFeatures)}, x), Y: sdk.F32Data("y", []int{n}, labels)}})
		if err != nil {
			return 0, "", err
		}
		ns, err := sdkTime(ctx, o, m, "train", in)
		return ns, fmt.Sprintf("%d examples, %d-byte input", n, len(in)), err
	})
}

func benchSDKCZScore(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(i%97) * 1.5
	}
	in, err := sdk.Marshal(map[string]any{"values": v})
	if err != nil {
		return nil, err
	}
	return sdkResult(ctx, guestCZScore, "1000 values", func(m *sdkModule) (float64, string, error) {
		ns, err := sdkTime(ctx, o, m, "zscore", in)
		return ns, fmt.Sprintf("%d-byte input", len(in)), err
	})
}
