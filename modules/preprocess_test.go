package modules_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

type ppOut struct {
	Records []map[string]any `cbor:"records"`
	Counts  struct {
		Records uint64            `cbor:"records"`
		Missing map[string]uint64 `cbor:"missing"`
		Dropped map[string]uint64 `cbor:"dropped"`
		Clamped map[string]uint64 `cbor:"clamped"`
	} `cbor:"counts"`
	State any `cbor:"state"`
}

func callPP(t *testing.T, mod *runtime.Module, in map[string]any) ppOut {
	t.Helper()
	b, err := sdk.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := mod.Call(context.Background(), "process", b)
	if err != nil {
		t.Fatal(err)
	}
	var out ppOut
	if err := sdk.Unmarshal(ob, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPreprocessCleansAndNormalises(t *testing.T) {
	mod := load(t, "vitals-preprocess", "vitals-preprocess/fennec.toml")
	recs := []map[string]any{
		{"patient": "a", "t": 0.0, "hr": 70.0, "spo2": 97.0},
		{"patient": "a", "t": 0.5, "hr": 300.0, "spo2": 101.0}, // hr spike dropped, spo2 clamped
		{"patient": "a", "t": 1.0, "hr": 74.0, "spo2": 95.0, "sbp": 120.0, "dbp": 130.0},
		{"patient": 12.0, "t": 1.0, "hr": 90.0},
	}
	out := callPP(t, mod, map[string]any{"records": recs, "window": 3})
	if out.Counts.Records != 4 || out.Counts.Dropped["hr"] != 1 || out.Counts.Clamped["spo2"] != 1 || out.Counts.Dropped["dbp"] != 1 {
		t.Fatalf("counts: %+v", out.Counts)
	}
	if len(out.Records) != 4 {
		t.Fatalf("%d records out", len(out.Records))
	}
	if _, ok := out.Records[1]["hr"]; ok {
		t.Fatal("dropped hr spike present in output")
	}
	clean := out.Records[2]["clean"].(map[string]any)
	if clean["hr"] != 72.0 || clean["spo2"] != 97.0 { // medians of {70,74} and {97,100,95}
		t.Fatalf("clean record 2: %v", clean)
	}
	if out.Records[3]["patient"] != "12" {
		t.Fatalf("numeric patient id: %v", out.Records[3]["patient"])
	}
}

// TestPreprocessChunkedStream feeds a generated stream in chunks, carrying
// the state through CBOR, and checks the result equals one big call.
func TestPreprocessChunkedStream(t *testing.T) {
	mod := load(t, "vitals-preprocess", "vitals-preprocess/fennec.toml")
	gen, err := vitals.Generate(vitals.Config{Seed: 4, Patients: 20, Hours: 12, Artefacts: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]any, len(gen))
	for i := range gen {
		recs[i] = gen[i].Map()
	}
	whole := callPP(t, mod, map[string]any{"records": recs})
	var state any
	var got []map[string]any
	var dropped uint64
	for lo := 0; lo < len(recs); lo += 50 {
		in := map[string]any{"records": recs[lo:min(lo+50, len(recs))]}
		if state != nil {
			in["state"] = state
		}
		o := callPP(t, mod, in)
		state = o.State
		got = append(got, o.Records...)
		for _, v := range o.Counts.Dropped {
			dropped += v
		}
	}
	if len(got) != len(whole.Records) || dropped == 0 {
		t.Fatalf("%d chunked records vs %d, dropped %d", len(got), len(whole.Records), dropped)
	}
	for i := range got {
		for _, f := range vitals.Fields {
			a, aok := got[i][f].(float64)
			b, bok := whole.Records[i][f].(float64)
			if aok != bok || (aok && math.Abs(a-b) > 1e-12) {
				t.Fatalf("record %d %s: chunked %v, whole %v", i, f, got[i][f], whole.Records[i][f])
			}
		}
	}
	// z-scores of a long stream are centred.
	var sum float64
	var n int
	for _, r := range whole.Records {
		if v, ok := r["hr"].(float64); ok {
			sum += v
			n++
		}
	}
	if m := sum / float64(n); math.Abs(m) > 0.3 {
		t.Fatalf("mean hr z-score %.3f", m)
	}
}

func TestPreprocessRejectsBadInput(t *testing.T) {
	mod := load(t, "vitals-preprocess", "vitals-preprocess/fennec.toml")
	for name, in := range map[string]map[string]any{
		"even window":  {"records": []any{}, "window": 4},
		"bad value":    {"records": []any{map[string]any{"hr": "fast"}}},
		"forged state": {"records": []any{}, "state": map[string]any{"stats": map[string]any{"zz": map[string]any{"n": 1}}}},
	} {
		b, _ := sdk.Marshal(in)
		_, err := mod.Call(context.Background(), "process", b)
		if !errors.Is(err, runtime.ErrGuest) {
			t.Errorf("%s: err = %v, want a guest failure", name, err)
		}
	}
	if _, err := mod.Call(context.Background(), "process", []byte{0xff, 0x00}); !errors.Is(err, runtime.ErrGuest) {
		t.Errorf("garbage CBOR: err = %v", err)
	}
}

// FuzzPreprocess sends arbitrary bytes to the Go guest's CBOR decoding and
// validation: every input must succeed or fail cleanly, never trap.
func FuzzPreprocess(f *testing.F) {
	f.Add(mustCBOR(f, map[string]any{"records": []any{map[string]any{"patient": "a", "hr": 70.0}}, "window": 3}))
	f.Add(mustCBOR(f, map[string]any{"records": []any{}, "state": map[string]any{"recent": map[string]any{"a": map[string]any{"hr": []float64{1, 2}}}}}))
	mod := load(f, "vitals-preprocess", "vitals-preprocess/fennec.toml")
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := mod.Call(context.Background(), "process", in)
		if err != nil && !errors.Is(err, runtime.ErrGuest) {
			t.Fatalf("input %x: %v", in, err)
		}
	})
}

// TestFeatureKeysAgree: the host side (the demo, the benchmarks) reads the
// model's features by the keys internal/vitals names; they must be the
// module's, in its order.
func TestFeatureKeysAgree(t *testing.T) {
	if !slices.Equal(vitals.ModelFeatures, vitalsproc.FeatureKeys) {
		t.Fatalf("internal/vitals.ModelFeatures %v, vitalsproc.FeatureKeys %v", vitals.ModelFeatures, vitalsproc.FeatureKeys)
	}
}
