package strategy

import (
	"math"
	"testing"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

func allFinite(v []float32) bool {
	for _, x := range v {
		if x-x != 0 {
			return false
		}
	}
	return true
}

// One non-finite update is one more outlier to the robust rules: it is
// never selected (Krum), and it is trimmed or left out of the middle
// (median, trimmed mean, Bulyan) instead of landing anywhere in the sort.
func TestNonFiniteIsAnOutlier(t *testing.T) {
	nan := float32(math.NaN())
	g := make([]float32, 2)
	honest := func(x float32) Update { return Update{Vec: []float32{x, x}, NumExamples: 1} }
	bad := Update{Device: "mallory", Vec: []float32{nan, nan}, NumExamples: 1}
	for _, tc := range []struct {
		agg Aggregator
		ups []Update
	}{
		{Krum{F: 1}, []Update{bad, honest(1), honest(1.1), honest(0.9), honest(1.05)}},
		{Krum{F: 1, M: 3}, []Update{bad, honest(1), honest(1.1), honest(0.9), honest(1.05)}},
		{Median{}, []Update{honest(1), bad, honest(2), honest(3)}},
		{TrimmedMean{Beta: 0.25}, []Update{honest(1), bad, honest(2), honest(3)}},
		{Bulyan{F: 1}, []Update{bad, honest(1), honest(1.1), honest(0.9), honest(1.05), honest(0.95), honest(1.02)}},
	} {
		out, err := tc.agg.Aggregate(1, g, tc.ups)
		if err != nil {
			t.Errorf("%s: %v", tc.agg.Name(), err)
			continue
		}
		if !allFinite(out) || out[0] < 0.9 || out[0] > 3 {
			t.Errorf("%s with one NaN update: %v", tc.agg.Name(), out)
		}
	}
	// Krum never returns a non-finite choice, even when it has only such.
	if out, err := (Krum{}).Aggregate(1, g, []Update{bad, bad, bad}); err == nil {
		t.Errorf("krum returned %v from NaN updates", out)
	}
}

// Finite values near the f32 limit average to a finite value.
func TestWeightedMeanNoOverflow(t *testing.T) {
	big := float32(3e38)
	ups := []Update{{Vec: []float32{big, -big, 1}, NumExamples: 3}, {Vec: []float32{big, -big, 2}, NumExamples: 1 << 40}}
	out, err := FedAvg{}.Aggregate(1, make([]float32, 3), ups)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != big || out[1] != -big {
		t.Fatalf("fedavg of +-3e38: %v", out)
	}
	// Krum's distances between +3e38 and -3e38 do not overflow either.
	kups := []Update{{Vec: []float32{big}}, {Vec: []float32{-big}}, {Vec: []float32{0}}, {Vec: []float32{1}}, {Vec: []float32{2}}}
	out, err = Krum{F: 1}.Aggregate(1, make([]float32, 1), kups)
	if err != nil || out[0] > 2 || out[0] < 0 {
		t.Fatalf("krum with +-3e38 outliers: %v %v", out, err)
	}
}

func TestBoundExamples(t *testing.T) {
	ups := []ModelUpdate{{Device: "a", NumExamples: 10}, {Device: "b", NumExamples: 12}, {Device: "m", NumExamples: 1 << 62}}
	got := BoundExamples(ups, 4)
	if len(got) != 1 || got["m"] != 1<<62 || ups[2].NumExamples != 48 || ups[0].NumExamples != 10 {
		t.Fatalf("bound: %v %+v", got, ups)
	}
	// A liar among two: the lower middle count is the honest one.
	ups = []ModelUpdate{{Device: "a", NumExamples: 10}, {Device: "m", NumExamples: math.MaxUint64}}
	BoundExamples(ups, 4)
	if ups[1].NumExamples != 40 {
		t.Fatalf("bound of two: %+v", ups)
	}
}

func TestMinUpdates(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want int
	}{
		{Config{Name: "fedavg"}, 1}, {Config{Name: "fedadam"}, 1}, {Config{Name: "median"}, 3},
		{Config{Name: "trimmedmean"}, 5}, {Config{Name: "trimmedmean", TrimBeta: 0.1}, 10}, {Config{Name: "trimmedmean", TrimBeta: 0.3}, 4},
		{Config{Name: "krum", F: 1}, 5}, {Config{Name: "multikrum", F: 2}, 7}, {Config{Name: "bulyan", F: 1}, 7},
	} {
		a, err := New(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := MinUpdates(FromAggregator(a))
		if n != tc.want {
			t.Errorf("%+v: MinUpdates %d, want %d", tc.c, n, tc.want)
		}
		if r, ok := a.(Robust); ok {
			// At MinUpdates the rule trims / selects; at one fewer it may not.
			if tm, ok := a.(TrimmedMean); ok && int(tm.beta()*float64(r.MinUpdates()-1)) >= 1 {
				t.Errorf("%+v: MinUpdates is not the smallest n", tc.c)
			}
		}
	}
}

func TestFiniteModel(t *testing.T) {
	m := model.Model{Tensors: []model.Tensor{model.F32Tensor("w", []uint64{3}, []float32{1, float32(math.Inf(-1)), 2})}}
	if err := Finite(&m); err == nil {
		t.Fatal("-Inf passed")
	}
	m.Tensors[0] = model.F32Tensor("w", []uint64{2}, []float32{1, 2})
	if err := Finite(&m); err != nil {
		t.Fatal(err)
	}
}
