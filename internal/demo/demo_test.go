package demo

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDemoSummary(t *testing.T) {
	cases := []struct {
		name                string
		first, last         float64
		auroc, news2        float64
		wantLearn, wantBeat string
	}{
		{"learns and beats", 0.27, 0.15, 0.80, 0.70, "loss fell", "model beats NEWS2"},
		{"loss rises", 0.22, 0.25, 0.80, 0.70, "loss did not fall", "model beats NEWS2"},
		{"tie is no win", 0.27, 0.15, 0.70, 0.70, "loss fell", "does not beat NEWS2"},
		{"loses", 0.27, 0.27, 0.65, 0.70, "did not fall", "does not beat NEWS2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := Result{Loss: c.last, AUROC: c.auroc, PerRound: []Round{{Loss: c.first}, {Loss: c.last}},
				NEWS2: &Baseline{AUROC: c.news2}, Model: &Baseline{}}
			s := summary(&res)
			if !strings.Contains(s, c.wantLearn) || !strings.Contains(s, c.wantBeat) {
				t.Fatalf("%q: want %q and %q", s, c.wantLearn, c.wantBeat)
			}
		})
	}
}

func TestDemoLR(t *testing.T) {
	for _, c := range []struct {
		csv, dpsgd bool
		want       float64
	}{{false, false, 0.002}, {true, false, 0.01}, {false, true, 0.02}, {true, true, 0.1}} {
		if got := DefaultLR(c.csv, c.dpsgd); got != c.want {
			t.Errorf("DefaultLR(csv=%v, dpsgd=%v) = %v, want %v", c.csv, c.dpsgd, got, c.want)
		}
	}
	if SharedNoiseLR(false) != 0.4 || SharedNoiseLR(true) != 5 {
		t.Error("SharedNoiseLR: want 0.4 on the vitals, 5 on a CSV")
	}
	if DefaultHidden(false) != 16 || DefaultHidden(true) != 0 {
		t.Error("DefaultHidden: want 16, and 0 in dpsgd")
	}
}

// risk-infer's output is not trusted: more, fewer or non-numeric scores
// than records are an error, not an index past the tick.
func TestTickScores(t *testing.T) {
	for _, tc := range []struct {
		pred map[any]any
		n    int
		want string
	}{
		{map[any]any{"scores": []any{0.1, 0.9}}, 2, ""},
		{map[any]any{"scores": []any{0.1, 0.9, 0.5}}, 2, "3 scores for 2 records"},
		{map[any]any{"scores": []any{0.1}}, 2, "1 scores for 2 records"},
		{map[any]any{}, 1, "0 scores for 1 records"},
		{map[any]any{"scores": "x"}, 1, "0 scores for 1 records"},
		{map[any]any{"scores": []any{"high"}}, 1, "score 0 is string"},
	} {
		got, err := tickScores(tc.pred, tc.n)
		switch {
		case tc.want == "" && (err != nil || len(got) != tc.n):
			t.Errorf("%v: %v %v", tc.pred, got, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want %q", tc.pred, err, tc.want)
		}
	}
}

// The zero Options are the documented defaults; bad options are named.
func TestOptionsFill(t *testing.T) {
	var o Options
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	want := Options{Devices: 8, Rounds: 15, Patients: 30, Epochs: 2, Strategy: "fedavg", Mode: "plain",
		Fraction: 1, Epsilon: 3, Delta: 1e-5, LR: 0.002, Hidden: 16}
	if o.NewEngine != nil || !reflect.DeepEqual(o, want) {
		t.Errorf("zero options filled to %+v, want %+v", o, want)
	}
	lin := Options{Linear: true, Hidden: 8}
	if err := lin.fill(); err != nil || lin.Hidden != 0 {
		t.Errorf("Linear: hidden %d, %v", lin.Hidden, err)
	}
	sgd := Options{Mode: "dpsgd"}
	if err := sgd.fill(); err != nil || sgd.Hidden != 0 || sgd.LR != 0.02 {
		t.Errorf("dpsgd defaults: hidden %d, lr %v, %v", sgd.Hidden, sgd.LR, err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{LR: -1}, "--lr must not be negative"},
		{Options{Devices: -1}, "--devices, --rounds and --patients must be at least 1"},
		{Options{Hidden: -2}, "--hidden must not be negative"},
		{Options{Mode: "nope"}, `--mode "nope"`},
		{Options{Strategy: "nope"}, `--strategy "nope"`},
	} {
		err := c.o.fill()
		var de *Error
		if !errors.As(err, &de) || de.Kind != Usage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want a usage error saying %q", c.o, err, c.want)
		}
	}
}
