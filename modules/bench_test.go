package modules_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/sdk"
)

func benchCall(b *testing.B, mod interface {
	Call(context.Context, string, []byte) ([]byte, error)
}, entry string, in []byte) {
	b.Helper()
	ctx := context.Background()
	if _, err := mod.Call(ctx, entry, in); err != nil { // warm an instance
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := mod.Call(ctx, entry, in); err != nil {
			b.Fatal(err)
		}
	}
}

func preprocessInput(n int) ([]byte, []map[string]any) {
	gen, err := vitals.Generate(vitals.Config{Seed: 1, Patients: 10, Hours: 100})
	if err != nil {
		panic(err)
	}
	gen = gen[:n]
	recs := make([]map[string]any, n)
	for i := range gen {
		recs[i] = gen[i].Map()
	}
	b, _ := sdk.Marshal(map[string]any{"records": recs})
	return b, recs
}

// BenchmarkPreprocessGuest is one process call on 1000 records.
func BenchmarkPreprocessGuest(b *testing.B) {
	mod := load(b, "vitals-preprocess", "vitals-preprocess/fennec.toml")
	in, _ := preprocessInput(1000)
	benchCall(b, mod, "process", in)
}

// BenchmarkPreprocessNative is the guest's work natively: the same typed
// decode, vitalsproc and encode, the reference for the guest.
func BenchmarkPreprocessNative(b *testing.B) {
	in, _ := preprocessInput(1000)
	for b.Loop() {
		var req vitalsproc.Request
		if err := sdk.Unmarshal(in, &req); err != nil {
			b.Fatal(err)
		}
		st := &vitalsproc.State{}
		out, cnt, _ := vitalsproc.Process(vitalsproc.Config{}, req.Records, st)
		if _, err := sdk.Marshal(&vitalsproc.Response{Records: out, Counts: cnt, State: st}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreprocessNativeMaps is the map-based path the module used
// before sdk/cbor (generic decode into map[string]any, FromMap, ToMap,
// generic encode), with the SDK's codec.
func BenchmarkPreprocessNativeMaps(b *testing.B) {
	in, _ := preprocessInput(1000)
	for b.Loop() {
		var req struct {
			Records []map[string]any `cbor:"records"`
		}
		if err := sdk.Unmarshal(in, &req); err != nil {
			b.Fatal(err)
		}
		recs := make([]vitalsproc.Record, len(req.Records))
		for i, m := range req.Records {
			recs[i], _ = vitalsproc.FromMap(m)
		}
		st := &vitalsproc.State{}
		out, cnt, _ := vitalsproc.Process(vitalsproc.Config{}, recs, st)
		res := make([]map[string]any, len(out))
		for i := range out {
			res[i] = out[i].ToMap()
		}
		if _, err := sdk.Marshal(map[string]any{"records": res, "counts": cnt.ToMap(), "state": st}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRiskInferCached scores 100 records with a cached 14-16-1 model.
func BenchmarkRiskInferCached(b *testing.B) {
	mod := load(b, "risk-infer", "risk-infer/fennec.toml")
	_, _, recs := riskData(b, vitals.Config{Seed: 2, Patients: 3, Hours: 24})
	in, _ := sdk.Marshal(map[string]any{"model": randomModel(rand.New(rand.NewPCG(1, 1)), vitalsproc.NumFeatures, 16, 1), "records": recs[:100]})
	benchCall(b, mod, "predict", in)
}

// BenchmarkRiskTrainEpoch is one train call: 1 epoch, batch 32, over about
// 2000 examples (14-16-1 MLP, Adam).
func BenchmarkRiskTrainEpoch(b *testing.B) {
	mod := load(b, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(b, vitals.Config{Seed: 3, Patients: 25})
	in, _ := sdk.Marshal(sdk.TrainInput{Settings: sdk.Settings{LR: 0.01, Epochs: 1, BatchSize: 32}, Data: dataset(x, y)})
	b.ReportMetric(float64(len(y)), "examples")
	benchCall(b, mod, "train", in)
}

// BenchmarkRiskTrainWDBC is one WDBC device's round in bench/flower's
// experiment (its largest shard): a 30-16-1 model in, 81 rows x 30
// features, 2 epochs, batch 32, Adam lr 0.01. At this size the call is
// almost all fixed cost (the guest's CBOR, its ~480 host calls, its
// allocations), not arithmetic: BENCHMARKS.md "Where an agent's round goes".
func BenchmarkRiskTrainWDBC(b *testing.B) {
	mod := load(b, "risk-train", "risk-train/fennec.toml")
	r := rand.New(rand.NewPCG(1, 2))
	const n, f, hidden = 81, 30, 16
	x, y := make([]float32, n*f), make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for i := range y {
		y[i] = float32(i % 2)
	}
	w := make([]float32, f*hidden)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.1)
	}
	m := sdk.Model{Name: "risk-mlp", Tensors: []sdk.TensorData{
		sdk.F32Data("0.weight", []int{f, hidden}, w), sdk.F32Data("0.bias", []int{hidden}, make([]float32, hidden)),
		sdk.F32Data("2.weight", []int{hidden, 1}, make([]float32, hidden)), sdk.F32Data("2.bias", []int{1}, make([]float32, 1))}}
	in, err := sdk.Marshal(sdk.TrainInput{Model: m, Settings: sdk.Settings{LR: 0.01, Epochs: 2, BatchSize: 32},
		Data: sdk.Dataset{X: sdk.F32Data("x", []int{n, f}, x), Y: sdk.F32Data("y", []int{n}, y)}})
	if err != nil {
		b.Fatal(err)
	}
	benchCall(b, mod, "train", in)
}

// BenchmarkCZScore is the C module on 1000 values.
func BenchmarkCZScore(b *testing.B) {
	mod := loadC(b)
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(i%97) * 1.5
	}
	in, _ := sdk.Marshal(map[string]any{"values": v})
	benchCall(b, mod, "zscore", in)
}
