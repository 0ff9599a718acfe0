package vitals

import (
	"fmt"
	"math"
	"testing"
)

func TestScores(t *testing.T) {
	cases := []struct {
		name         string
		scores       []float64
		y            []int32
		auroc, auprc float64
		thr, target  float64 // ThresholdFor(target) == thr
		sens, spec   float64 // AtThreshold(thr)
	}{
		{name: "perfect", scores: []float64{0.9, 0.8, 0.2, 0.1}, y: []int32{1, 1, 0, 0},
			auroc: 1, auprc: 1, target: 1, thr: 0.8, sens: 1, spec: 1},
		{name: "inverted", scores: []float64{0.1, 0.2, 0.8, 0.9}, y: []int32{1, 1, 0, 0},
			auroc: 0, auprc: (1.0/3 + 2.0/4) / 2, target: 0.5, thr: 0.2, sens: 0.5, spec: 0},
		{name: "all tied", scores: []float64{0.5, 0.5, 0.5, 0.5}, y: []int32{1, 0, 0, 0},
			auroc: 0.5, auprc: 0.25, target: 1, thr: 0.5, sens: 1, spec: 0},
		// ranks: + (0.9), - (0.7), + (0.6), - (0.3), - (0.1): 5 of 6 pairs ordered.
		{name: "mixed", scores: []float64{0.9, 0.7, 0.6, 0.3, 0.1}, y: []int32{1, 0, 1, 0, 0},
			auroc: 5.0 / 6, auprc: (1 + 2.0/3) / 2, target: 0.5, thr: 0.9, sens: 0.5, spec: 1},
		// a NEWS2-like integer score with ties across classes: 0 0 | 3 3 | 5
		{name: "integer ties", scores: []float64{0, 0, 3, 3, 5}, y: []int32{0, 0, 1, 0, 1},
			auroc: (1 + 1 + 0.5 + 1 + 1 + 1) / 6, auprc: (1 + 2.0/3) / 2, target: 1, thr: 3, sens: 1, spec: 2.0 / 3},
		{name: "one class", scores: []float64{0.3, 0.4}, y: []int32{0, 0}, auroc: 0, auprc: 0, target: 0.5, thr: 0, sens: 0, spec: 0},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := AUROC(c.scores, c.y); !near(got, c.auroc) {
				t.Errorf("auroc %v, want %v", got, c.auroc)
			}
			if got := AUPRC(c.scores, c.y); !near(got, c.auprc) {
				t.Errorf("auprc %v, want %v", got, c.auprc)
			}
			thr := ThresholdFor(c.scores, c.y, c.target)
			if !near(thr, c.thr) {
				t.Errorf("ThresholdFor(%v) = %v, want %v", c.target, thr, c.thr)
			}
			if s, p := AtThreshold(c.scores, c.y, thr); !near(s, c.sens) || !near(p, c.spec) {
				t.Errorf("at %v: sensitivity %v specificity %v, want %v %v", thr, s, p, c.sens, c.spec)
			}
		})
	}
}

// Scores and labels of different lengths pair up to the shorter: no
// index beyond either.
func TestScoresUnequalLengths(t *testing.T) {
	scores, y := []float64{0.9, 0.1, 0.5}, []int32{1, 0}
	if got := AUROC(scores, y); got != 1 {
		t.Errorf("AUROC %v", got)
	}
	if got := AUPRC(scores[:1], y); got != 1 {
		t.Errorf("AUPRC %v", got)
	}
	if s, p := AtThreshold(scores, y[:1], 0.5); s != 1 || p != 0 {
		t.Errorf("AtThreshold %v %v", s, p)
	}
	if got := ThresholdFor(nil, y, 1); got != 0 {
		t.Errorf("ThresholdFor %v", got)
	}
	if got := PositiveRate(nil); got != 0 {
		t.Errorf("PositiveRate %v", got)
	}
}

func TestValidationRows(t *testing.T) {
	var recs []Record
	for p := range 11 {
		for range 2 {
			recs = append(recs, Record{Patient: fmt.Sprint("p", p)})
		}
	}
	held := ValidationRows(recs)
	for j, h := range held {
		if want := (j/2)%5 == 4; h != want {
			t.Fatalf("reading %d (patient %d): held %v, want %v", j, j/2, h, want)
		}
	}
	// A patient's readings are counted once however the ids are named.
	if h := ValidationRows([]Record{{Patient: ""}, {Patient: ""}}); h[0] || h[1] {
		t.Fatalf("%v", h)
	}
}
