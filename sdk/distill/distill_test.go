package distill_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/distill"
)

func TestConfigAndDataErrors(t *testing.T) {
	x := make([]float32, 12)
	teacher := make([]float32, 6)
	for _, c := range []struct {
		cfg   distill.Config
		d     distill.Data
		field string
	}{
		{distill.Config{Temperature: -1}, distill.Data{}, "Config.Temperature"},
		{distill.Config{Temperature: float32(math.Inf(1))}, distill.Data{}, "Config.Temperature"},
		{distill.Config{Alpha: 1.5}, distill.Data{}, "Config.Alpha"},
		{distill.Config{Alpha: float32(math.NaN())}, distill.Data{}, "Config.Alpha"},
		{distill.Config{Epochs: -1}, distill.Data{}, "Config.Epochs"},
		{distill.Config{BatchSize: -3}, distill.Data{}, "Config.BatchSize"},
		{distill.Config{LR: -0.1}, distill.Data{}, "Config.LR"},
		{distill.Config{}, distill.Data{X: x, Features: 0, Teacher: teacher, Classes: 2}, "Data.Features"},
		{distill.Config{}, distill.Data{X: x, Features: 5, Teacher: teacher, Classes: 2}, "Data.X"},
		{distill.Config{}, distill.Data{X: x, Features: 4, Teacher: teacher[:5], Classes: 2}, "Data.Teacher"},
		{distill.Config{}, distill.Data{X: x, Features: 4, Teacher: teacher, Classes: 2, Labels: []int32{0}}, "Data.Labels"},
		{distill.Config{}, distill.Data{X: x, Features: 4, Teacher: teacher, Classes: 2, Labels: []int32{0, 2, 1}}, "Data.Labels[1]"},
	} {
		_, err := distill.Train(nil, c.d, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Train(%+v, %+v) = %v, want an error naming %s", c.cfg, c.d, err, c.field)
		}
	}
}

// Off wasm every wrapper reports sdk.ErrNotWasm instead of crashing.
func TestNotWasm(t *testing.T) {
	if _, _, err := distill.KLDistill(nil, nil, 1, false, nil); !errors.Is(err, sdk.ErrNotWasm) {
		t.Errorf("KLDistill off wasm: %v", err)
	}
	if _, _, err := distill.Quantize(nil, 1); !errors.Is(err, sdk.ErrNotWasm) {
		t.Errorf("Quantize off wasm: %v", err)
	}
	if _, err := distill.MatMulI8(nil, nil, nil, nil); !errors.Is(err, sdk.ErrNotWasm) {
		t.Errorf("MatMulI8 off wasm: %v", err)
	}
}

var (
	guestOnce sync.Once
	guestMod  *runtime.Module
	guestErr  error
)

const manifest = `
name = "distillguest"
version = "1.0.0"
entrypoints = ["distill", "quant", "kl"]
capabilities = ["tensor"]
`

// guest builds testdata/distillguest with the Go toolchain (cached by
// source hash) and compiles it once per test binary.
func guest(t *testing.T) *runtime.Module {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs a wasm guest; skipped with -short")
	}
	guestOnce.Do(func() {
		ctx := context.Background()
		var path string
		path, guestErr = guestbuild.Go(ctx, "testdata/distillguest", filepath.Join(os.TempDir(), "fennec-test-guests"))
		if guestErr != nil {
			return
		}
		var wasm []byte
		if wasm, guestErr = os.ReadFile(path); guestErr != nil {
			return
		}
		var eng *runtime.Engine
		eng, guestErr = runtime.New(ctx, runtime.Config{
			CacheDir: filepath.Join(os.TempDir(), "fennec-test-cache"),
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if guestErr != nil {
			return
		}
		man, err := runtime.ParseManifest([]byte(manifest), "distillguest.toml")
		if err != nil {
			guestErr = err
			return
		}
		guestMod, guestErr = eng.Compile(ctx, wasm, man)
	})
	if errors.Is(guestErr, guestbuild.ErrNoGo) {
		t.Skipf("no Go toolchain to build the test guest: %v", guestErr)
	}
	if guestErr != nil {
		t.Fatalf("test guest: %v", guestErr)
	}
	return guestMod
}

func call[In, Out any](t *testing.T, entry string, in In) Out {
	t.Helper()
	b, err := sdk.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	res, err := guest(t).Call(context.Background(), entry, b)
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	var out Out
	if err := sdk.Unmarshal(res, &out); err != nil {
		t.Fatalf("%s output: %v", entry, err)
	}
	return out
}

// The guest's request and response structures (testdata/distillguest).
type distillIn struct {
	X        []float32 `cbor:"x"`
	Features int       `cbor:"features"`
	Teacher  []float32 `cbor:"teacher"`
	Classes  int       `cbor:"classes"`
	Labels   []int32   `cbor:"labels"`
	Hidden   int       `cbor:"hidden"`
	T        float32   `cbor:"t"`
	Alpha    float32   `cbor:"alpha"`
	Epochs   int       `cbor:"epochs"`
	Batch    int       `cbor:"batch"`
	LR       float32   `cbor:"lr"`
	Seed     uint64    `cbor:"seed"`
}

type distillOut struct {
	Loss    []float64 `cbor:"loss"`
	KL      []float64 `cbor:"kl"`
	CE      []float64 `cbor:"ce"`
	Steps   int       `cbor:"steps"`
	PredF32 []int32   `cbor:"pred_f32"`
	PredI8  []int32   `cbor:"pred_i8"`
	Teacher []float32 `cbor:"teacher_logits"`
	BytesI8 int       `cbor:"bytes_i8"`
}

// teacherData draws n points and labels them with a fixed random tanh MLP
// (the teacher), whose logits are the soft targets.
func teacherData(n, f, h, k int, seed uint64) (x, logits []float32, labels []int32) {
	r := rand.New(rand.NewPCG(seed, 9))
	w1 := make([]float64, f*h)
	w2 := make([]float64, h*k)
	for i := range w1 {
		w1[i] = r.NormFloat64() / math.Sqrt(float64(f))
	}
	for i := range w2 {
		w2[i] = 2 * r.NormFloat64() / math.Sqrt(float64(h))
	}
	x = make([]float32, n*f)
	logits = make([]float32, n*k)
	labels = make([]int32, n)
	hid := make([]float64, h)
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			x[i*f+j] = float32(r.NormFloat64())
		}
		for a := 0; a < h; a++ {
			var s float64
			for j := 0; j < f; j++ {
				s += float64(x[i*f+j]) * w1[j*h+a]
			}
			hid[a] = math.Tanh(s)
		}
		best := 0
		for c := 0; c < k; c++ {
			var s float64
			for a := 0; a < h; a++ {
				s += hid[a] * w2[a*k+c]
			}
			logits[i*k+c] = float32(s)
			if logits[i*k+c] > logits[i*k+best] {
				best = c
			}
		}
		labels[i] = int32(best)
	}
	return x, logits, labels
}

func agreement(a, b []int32) float64 {
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}

// TestDistillEndToEnd trains a 6-16-4 student from a tanh teacher's logits
// and labels inside a guest, through the runtime, then quantizes it to
// int8: the loss falls, the student agrees with the teacher, and the int8
// copy with the f32 student.
func TestDistillEndToEnd(t *testing.T) {
	const n, f, h, k = 400, 6, 12, 4
	x, logits, labels := teacherData(n, f, h, k, 1)
	in := distillIn{X: x, Features: f, Teacher: logits, Classes: k, Labels: labels, Hidden: 16,
		T: 2, Alpha: 0.7, Epochs: 30, Batch: 32, LR: 0.05, Seed: 3}
	out := call[distillIn, distillOut](t, "distill", in)
	if len(out.Loss) != in.Epochs || out.Steps != in.Epochs*((n+in.Batch-1)/in.Batch) {
		t.Fatalf("%d epochs, %d steps", len(out.Loss), out.Steps)
	}
	first, last := out.Loss[0], out.Loss[len(out.Loss)-1]
	t.Logf("loss %.4f -> %.4f (KL %.4f -> %.4f, CE %.4f -> %.4f)", first, last, out.KL[0], out.KL[len(out.KL)-1], out.CE[0], out.CE[len(out.CE)-1])
	if !(last < 0.5*first) || math.IsNaN(last) {
		t.Errorf("loss did not fall: %v", out.Loss)
	}
	for i, e := range out.Loss {
		if want := 0.7*out.KL[i] + 0.3*out.CE[i]; math.Abs(e-want) > 1e-6*(1+want) {
			t.Fatalf("epoch %d loss %v is not 0.7 KL + 0.3 CE = %v", i, e, want)
		}
	}
	agreeF32 := agreement(out.PredF32, labels)
	agreeI8 := agreement(out.PredI8, out.PredF32)
	t.Logf("student agrees with the teacher on %.1f%%; int8 student with f32 on %.1f%%", 100*agreeF32, 100*agreeI8)
	if agreeF32 < 0.85 {
		t.Errorf("student agrees with the teacher on only %.1f%% of the points", 100*agreeF32)
	}
	if agreeI8 < 0.95 {
		t.Errorf("int8 student agrees with the f32 student on only %.1f%%", 100*agreeI8)
	}
	if len(out.Teacher) != n*k {
		t.Fatalf("TeacherLogits returned %d values", len(out.Teacher))
	}
	for i := 0; i < n; i++ {
		best := 0
		for c := 1; c < k; c++ {
			if out.Teacher[i*k+c] > out.Teacher[i*k+best] {
				best = c
			}
		}
		if int32(best) != out.PredF32[i] {
			t.Fatalf("row %d: TeacherLogits arg max %d, Predict %d", i, best, out.PredF32[i])
		}
	}
	f32Bytes := 4 * (f*16 + 16 + 16*k + k)
	if want := f*16 + 8*16 + 16*k + 8*k; out.BytesI8 != want || !(float64(f32Bytes)/float64(out.BytesI8) > 2) {
		t.Errorf("int8 bytes %d (want %d; f32 %d)", out.BytesI8, want, f32Bytes)
	}

	// Soft targets only (no labels): alpha is forced to 1, CE stays 0.
	in.Labels, in.Epochs = nil, 3
	soft := call[distillIn, distillOut](t, "distill", in)
	for i := range soft.Loss {
		if soft.CE[i] != 0 || soft.Loss[i] != soft.KL[i] {
			t.Fatalf("soft-only epoch %d: loss %v, KL %v, CE %v", i, soft.Loss[i], soft.KL[i], soft.CE[i])
		}
	}
}

type quantIn struct {
	W []float32 `cbor:"w"`
	K int       `cbor:"k"`
	N int       `cbor:"n"`
	X []float32 `cbor:"x"`
}

type quantOut struct {
	Q        []byte    `cbor:"q"`
	Scales   []float32 `cbor:"scales"`
	Deq      []float32 `cbor:"deq"`
	Y        []float32 `cbor:"y"`
	PerTenQ  []byte    `cbor:"per_tensor_q"`
	PerTenS  []float32 `cbor:"per_tensor_scale"`
	ErrAxis  string    `cbor:"err_axis"`
	IsInval  bool      `cbor:"is_invalid"`
	ErrDType string    `cbor:"err_dtype"`
}

// TestQuantWrappers checks the guest wrappers bit for bit against the gpu
// package's library functions and CPU backend.
func TestQuantWrappers(t *testing.T) {
	const m, k, n = 5, 33, 7
	r := rand.New(rand.NewPCG(4, 4))
	w, x := make([]float32, k*n), make([]float32, m*k)
	for i := range w {
		w[i] = float32(r.NormFloat64() * float64(1+i%n)) // channels of different ranges
	}
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	out := call[quantIn, quantOut](t, "quant", quantIn{W: w, K: k, N: n, X: x})

	scales, err := gpu.ChannelScales(w, []int{k, n}, 1)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]int8, k*n)
	if err := gpu.Quantize(q, w, []int{k, n}, 1, scales); err != nil {
		t.Fatal(err)
	}
	deq := make([]float32, k*n)
	if err := gpu.Dequantize(deq, q, []int{k, n}, 1, scales); err != nil {
		t.Fatal(err)
	}
	for i := range scales {
		if out.Scales[i] != scales[i] {
			t.Fatalf("scales %v, want %v", out.Scales, scales)
		}
	}
	for i := range q {
		if int8(out.Q[i]) != q[i] || out.Deq[i] != deq[i] {
			t.Fatalf("[%d]: q %d deq %v, want %d %v", i, int8(out.Q[i]), out.Deq[i], q[i], deq[i])
		}
	}
	// int8 matmul: the same result as the CPU backend's MatMulInt8
	be := gpu.NewCPU()
	mk := func(dt gpu.DType, shape []int, b []byte) gpu.Tensor {
		tt, err := be.New(dt, shape)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Write(tt, b); err != nil {
			t.Fatal(err)
		}
		return tt
	}
	xt := mk(gpu.F32, []int{m, k}, gpu.F32ToBytes(x))
	wt := mk(gpu.I8, []int{k, n}, out.Q)
	st := mk(gpu.F32, []int{n}, gpu.F32ToBytes(scales))
	yt, _ := be.New(gpu.F32, []int{m, n})
	if err := be.(gpu.Quantizer).MatMulInt8(yt, xt, wt, st); err != nil {
		t.Fatal(err)
	}
	yb := make([]byte, yt.Bytes())
	_ = be.Read(yt, yb)
	want := gpu.BytesToF32(yb)
	for i := range want {
		if out.Y[i] != want[i] {
			t.Fatalf("matmul_i8 [%d] = %v, want %v", i, out.Y[i], want[i])
		}
	}
	// per tensor
	ps, _ := gpu.ChannelScales(w, []int{k, n}, -1)
	pq := make([]int8, k*n)
	_ = gpu.Quantize(pq, w, []int{k, n}, -1, ps)
	if len(out.PerTenS) != 1 || out.PerTenS[0] != ps[0] {
		t.Fatalf("per-tensor scale %v, want %v", out.PerTenS, ps)
	}
	for i := range pq {
		if int8(out.PerTenQ[i]) != pq[i] {
			t.Fatalf("per-tensor q[%d] = %d, want %d", i, int8(out.PerTenQ[i]), pq[i])
		}
	}
	if !out.IsInval || !strings.Contains(out.ErrAxis, "EINVAL") {
		t.Errorf("bad axis: %q (invalid %v)", out.ErrAxis, out.IsInval)
	}
	if !strings.Contains(out.ErrDType, "EDTYPE") {
		t.Errorf("quantizing i8: %q", out.ErrDType)
	}
}

type klIn struct {
	Student []float32 `cbor:"student"`
	Teacher []float32 `cbor:"teacher"`
	Batch   int       `cbor:"batch"`
	Classes int       `cbor:"classes"`
	T       float32   `cbor:"t"`
}

type klOut struct {
	Loss     float32   `cbor:"loss"`
	LossOnly float32   `cbor:"loss_only"`
	Grad     []float32 `cbor:"grad"`
	ErrT     string    `cbor:"err_t"`
}

func TestKLWrapper(t *testing.T) {
	const b, c = 3, 5
	r := rand.New(rand.NewPCG(5, 5))
	s, te := make([]float32, b*c), make([]float32, b*c)
	for i := range s {
		s[i], te[i] = float32(r.NormFloat64()*2), float32(r.NormFloat64()*2)
	}
	out := call[klIn, klOut](t, "kl", klIn{Student: s, Teacher: te, Batch: b, Classes: c, T: 3})
	grad := make([]float32, b*c)
	loss, err := gpu.KLDistill(grad, s, te, b, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if out.Loss != loss || out.LossOnly != loss || !(loss > 0) {
		t.Fatalf("loss %v / loss only %v, want %v", out.Loss, out.LossOnly, loss)
	}
	for i := range grad {
		if out.Grad[i] != grad[i] {
			t.Fatalf("grad %v, want %v", out.Grad, grad)
		}
	}
	if !strings.Contains(out.ErrT, "EINVAL") || !strings.Contains(out.ErrT, "temperature") {
		t.Errorf("T = 0: %q", out.ErrT)
	}
}
