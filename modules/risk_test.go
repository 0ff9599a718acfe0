package modules_test

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

// riskData generates patients, preprocesses them on the host with the same
// logic the guest uses, and returns feature rows with labels.
func riskData(t testing.TB, cfg vitals.Config) (x []float32, y []float32, recs []map[string]any) {
	t.Helper()
	gen, err := vitals.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]vitalsproc.Record, len(gen))
	for i := range gen {
		r, err := vitalsproc.FromMap(gen[i].Map())
		if err != nil {
			t.Fatal(err)
		}
		in[i] = r
	}
	out, _, err := vitalsproc.Process(vitalsproc.Config{}, in, &vitalsproc.State{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		m := out[i].ToMap()
		recs = append(recs, m)
		x = vitalsproc.Features(m, x)
		y = append(y, float32(gen[i].Label))
	}
	return x, y, recs
}

func dataset(x, y []float32) sdk.Dataset {
	n := len(y)
	return sdk.Dataset{X: sdk.F32Data("x", []int{n, vitalsproc.NumFeatures}, x), Y: sdk.F32Data("y", []int{n}, y)}
}

func call[Out any](t testing.TB, mod *runtime.Module, entry string, in any) Out {
	t.Helper()
	b, err := sdk.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := mod.Call(context.Background(), entry, b)
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	var out Out
	if err := sdk.Unmarshal(ob, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// forward is a plain-Go reference of the guests' MLP (ReLU hidden, one
// logit).
func forward(t testing.TB, m *sdk.Model, x []float32) float64 {
	h := make([]float64, len(x))
	for i, v := range x {
		h[i] = float64(v)
	}
	for l := 0; l < len(m.Tensors); l += 2 {
		w, _ := m.Tensors[l].F32()
		b, _ := m.Tensors[l+1].F32()
		in, out := int(m.Tensors[l].Shape[0]), int(m.Tensors[l].Shape[1])
		next := make([]float64, out)
		for j := 0; j < out; j++ {
			s := float64(b[j])
			for i := 0; i < in; i++ {
				s += h[i] * float64(w[i*out+j])
			}
			if l+2 < len(m.Tensors) {
				s = math.Max(0, s)
			}
			next[j] = s
		}
		h = next
	}
	return h[0]
}

func randomModel(rng *rand.Rand, sizes ...int) sdk.Model {
	m := sdk.Model{Name: "risk-mlp", Version: 1}
	for i := 0; i+1 < len(sizes); i++ {
		w := make([]float32, sizes[i]*sizes[i+1])
		for j := range w {
			w[j] = float32(rng.NormFloat64() * 0.5)
		}
		b := make([]float32, sizes[i+1])
		for j := range b {
			b[j] = float32(rng.NormFloat64() * 0.1)
		}
		m.Tensors = append(m.Tensors, sdk.F32Data(string(rune('0'+2*i))+".weight", []int{sizes[i], sizes[i+1]}, w),
			sdk.F32Data(string(rune('0'+2*i))+".bias", []int{sizes[i+1]}, b))
	}
	return m
}

func TestRiskTrainLearns(t *testing.T) {
	mod := load(t, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(t, vitals.Config{Seed: 21, Patients: 200})
	vx, vy, _ := riskData(t, vitals.Config{Seed: 22, Patients: 100})
	var pos float64
	for _, v := range vy {
		pos += float64(v)
	}
	p := pos / float64(len(vy))
	base := math.Max(p, 1-p)
	// The loss of the best constant predictor (the prevalence).
	baseLoss := -(p*math.Log(p) + (1-p)*math.Log(1-p))

	out := call[sdk.TrainOutput](t, mod, "train", sdk.TrainInput{
		Settings: sdk.Settings{LR: 0.005, Epochs: 3, BatchSize: 64, Seed: 1},
		Data:     dataset(x, y)})
	if out.NumExamples != uint64(len(y)) || len(out.Model.Tensors) != 4 || out.Model.Tensors[0].Name != "0.weight" {
		t.Fatalf("train output: %d examples, tensors %d", out.NumExamples, len(out.Model.Tensors))
	}
	ev := call[sdk.EvalOutput](t, mod, "evaluate", sdk.EvalInput{Model: out.Model, Data: dataset(vx, vy)})
	t.Logf("train metrics %v; held-out %v; majority baseline accuracy %.3f, loss %.3f", out.Metrics, ev.Metrics, base, baseLoss)
	if ev.Metrics["accuracy"] <= base || ev.Metrics["loss"] > 0.85*baseLoss {
		t.Fatalf("held-out accuracy %.3f (baseline %.3f), loss %.3f (baseline %.3f): the model did not learn", ev.Metrics["accuracy"], base, ev.Metrics["loss"], baseLoss)
	}
	// Evaluate agrees with a plain-Go forward pass.
	var loss float64
	for i := range vy {
		z := forward(t, &out.Model, vx[vitalsproc.NumFeatures*i:vitalsproc.NumFeatures*(i+1)])
		loss += math.Max(z, 0) - z*float64(vy[i]) + math.Log1p(math.Exp(-math.Abs(z)))
	}
	loss /= float64(len(vy))
	if math.Abs(loss-ev.Metrics["loss"]) > 1e-3 {
		t.Fatalf("evaluate loss %.5f, Go reference %.5f", ev.Metrics["loss"], loss)
	}
}

// TestRiskTrainGradient checks the gradient mode (the backward pass through
// host kernels) against central finite differences of the evaluate loss.
func TestRiskTrainGradient(t *testing.T) {
	mod := load(t, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(t, vitals.Config{Seed: 5, Patients: 8, Hours: 24})
	rng := rand.New(rand.NewPCG(9, 9))
	model := randomModel(rng, vitalsproc.NumFeatures, 5, 1)
	g := call[sdk.TrainOutput](t, mod, "train", sdk.TrainInput{Model: model, Settings: sdk.Settings{Mode: "gradient"}, Data: dataset(x, y)})
	if len(g.Model.Tensors) != 4 {
		t.Fatalf("gradient model has %d tensors", len(g.Model.Tensors))
	}
	const eps = 1e-2
	checked := 0
	for ti, td := range model.Tensors {
		w, _ := td.F32()
		gw, _ := g.Model.Tensors[ti].F32()
		for _, j := range []int{0, len(w) / 2, len(w) - 1} {
			lossAt := func(d float32) float64 {
				m := randomModel(rand.New(rand.NewPCG(9, 9)), vitalsproc.NumFeatures, 5, 1)
				v, _ := m.Tensors[ti].F32()
				v[j] += d
				m.Tensors[ti] = sdk.F32Data(td.Name, dims(td), v)
				return call[sdk.EvalOutput](t, mod, "evaluate", sdk.EvalInput{Model: m, Data: dataset(x, y)}).Metrics["loss"]
			}
			num := (lossAt(eps) - lossAt(-eps)) / (2 * eps)
			if math.Abs(num-float64(gw[j])) > 2e-3+0.02*math.Abs(num) {
				t.Errorf("%s[%d]: gradient %.5f, finite difference %.5f", td.Name, j, gw[j], num)
			}
			checked++
		}
	}
	if checked != 12 {
		t.Fatalf("checked %d entries", checked)
	}
}

func dims(td sdk.TensorData) []int {
	d := make([]int, len(td.Shape))
	for i, s := range td.Shape {
		d[i] = int(s)
	}
	return d
}

// TestRiskTrainFedProx checks that the proximal term keeps local weights
// near the global model.
func TestRiskTrainFedProx(t *testing.T) {
	mod := load(t, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(t, vitals.Config{Seed: 31, Patients: 20})
	global := randomModel(rand.New(rand.NewPCG(1, 1)), vitalsproc.NumFeatures, 8, 1)
	dist := func(mu float64) float64 {
		out := call[sdk.TrainOutput](t, mod, "train", sdk.TrainInput{Model: global,
			Settings: sdk.Settings{LR: 0.05, Epochs: 3, BatchSize: 16, Mu: mu, Seed: 2}, Data: dataset(x, y)})
		var d float64
		for i := range global.Tensors {
			a, _ := global.Tensors[i].F32()
			b, _ := out.Model.Tensors[i].F32()
			for j := range a {
				d += float64((a[j] - b[j]) * (a[j] - b[j]))
			}
		}
		return math.Sqrt(d)
	}
	free, prox := dist(0), dist(1)
	t.Logf("distance from global: mu=0 %.4f, mu=1 %.4f", free, prox)
	if !(prox < 0.8*free) {
		t.Fatalf("FedProx mu=1 moved %.4f, plain %.4f: the proximal term had no effect", prox, free)
	}
}

func TestRiskInferMatchesReferenceAndCaches(t *testing.T) {
	mod := load(t, "risk-infer", "risk-infer/fennec.toml")
	_, _, recs := riskData(t, vitals.Config{Seed: 41, Patients: 5, Hours: 10})
	model := randomModel(rand.New(rand.NewPCG(3, 3)), vitalsproc.NumFeatures, 6, 1)
	type resp struct {
		Scores    []float64 `cbor:"scores"`
		Patients  []string  `cbor:"patients"`
		ModelHash string    `cbor:"model_hash"`
		Cached    bool      `cbor:"cached"`
	}
	in := map[string]any{"model": model, "records": recs}
	r1 := call[resp](t, mod, "predict", in)
	if len(r1.Scores) != len(recs) || r1.Patients[0] != recs[0]["patient"] {
		t.Fatalf("%d scores for %d records", len(r1.Scores), len(recs))
	}
	for i, m := range recs {
		want := 1 / (1 + math.Exp(-forward(t, &model, vitalsproc.Features(m, nil))))
		if math.Abs(r1.Scores[i]-want) > 1e-4 {
			t.Fatalf("record %d: score %.6f, reference %.6f", i, r1.Scores[i], want)
		}
	}
	r2 := call[resp](t, mod, "predict", in)
	if r2.ModelHash != r1.ModelHash || !r2.Cached {
		t.Fatalf("second call with the same model: hash %s vs %s, cached=%v", r2.ModelHash, r1.ModelHash, r2.Cached)
	}
	other := randomModel(rand.New(rand.NewPCG(4, 4)), vitalsproc.NumFeatures, 1)
	r3 := call[resp](t, mod, "predict", map[string]any{"model": other, "records": recs[:3]})
	if r3.Cached || r3.ModelHash == r1.ModelHash || len(r3.Scores) != 3 {
		t.Fatalf("new model: cached=%v hash equal=%v", r3.Cached, r3.ModelHash == r1.ModelHash)
	}
	bad := randomModel(rand.New(rand.NewPCG(4, 4)), 6, 1)
	b, _ := sdk.Marshal(map[string]any{"model": bad, "records": recs[:1]})
	if _, err := mod.Call(context.Background(), "predict", b); err == nil {
		t.Fatal("a model with 6 inputs was accepted")
	}
}

// TestRiskTrainKeptNetwork checks the network the guest keeps across calls:
// training model A on a fresh instance, then models of other shapes and an
// evaluation, then A again gives A's first result bit for bit (the kept
// network's weights and buffers carry nothing from one call to the next).
func TestRiskTrainKeptNetwork(t *testing.T) {
	mod := load(t, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(t, vitals.Config{Seed: 41, Patients: 12})
	a := randomModel(rand.New(rand.NewPCG(3, 3)), vitalsproc.NumFeatures, 6, 1)
	b := randomModel(rand.New(rand.NewPCG(4, 4)), vitalsproc.NumFeatures, 9, 1)
	deep := randomModel(rand.New(rand.NewPCG(5, 5)), vitalsproc.NumFeatures, 7, 4, 1)
	s := sdk.Settings{LR: 0.01, Epochs: 2, BatchSize: 5, Seed: 7}
	train := func(m sdk.Model) sdk.TrainOutput {
		return call[sdk.TrainOutput](t, mod, "train", sdk.TrainInput{Model: m, Settings: s, Data: dataset(x, y)})
	}
	first := train(a)
	train(b)
	call[sdk.EvalOutput](t, mod, "evaluate", sdk.EvalInput{Model: deep, Data: dataset(x, y)})
	train(deep)
	train(sdk.Model{}) // a fresh MLP from the seed
	again := train(a)
	if len(again.Model.Tensors) != len(first.Model.Tensors) {
		t.Fatalf("%d tensors, first %d", len(again.Model.Tensors), len(first.Model.Tensors))
	}
	for i := range first.Model.Tensors {
		if !bytes.Equal(first.Model.Tensors[i].Data, again.Model.Tensors[i].Data) {
			t.Fatalf("tensor %s differs after calls with other models", first.Model.Tensors[i].Name)
		}
	}
	if first.Metrics["loss"] != again.Metrics["loss"] {
		t.Fatalf("loss %v, first %v", again.Metrics["loss"], first.Metrics["loss"])
	}
}
