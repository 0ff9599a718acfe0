package sim

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/internal/vitals"
)

func TestVitalsFedAvg(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var seen int
	s, err := Run(ctx, Config{Devices: 4, Rounds: 5, Skew: 1, Reference: true, Seed: 1,
		OnRound: func(p Progress) { seen++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acc %.3f ref %.3f bytes %d in %v", s.Accuracy, s.ReferenceAccuracy, s.BytesMoved, s.Duration)
	if s.Rounds != 5 || seen != 5 {
		t.Fatalf("rounds %d, callbacks %d", s.Rounds, seen)
	}
	if s.Accuracy < 0.8 || s.ReferenceAccuracy < 0.8 {
		t.Fatalf("accuracy %.3f (reference %.3f) too low", s.Accuracy, s.ReferenceAccuracy)
	}
	if s.BytesMoved == 0 {
		t.Fatal("no bytes counted")
	}
}

func TestWDBC(t *testing.T) {
	dir := DataDir()
	if dir == "" {
		t.Skip("../shared/data absent: WDBC test needs wdbc.csv")
	}
	d, err := LoadCSV(filepath.Join(dir, "wdbc.csv"), 0.25, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Run(ctx, Config{Devices: 10, Rounds: 20, Skew: 1, Data: d, Linear: true, Reference: true, Seed: 2,
		Settings: settings(0.05, 2, 16)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wdbc acc %.3f best %.3f ref %.3f rounds-to-0.96 %d", s.Accuracy, s.BestAccuracy, s.ReferenceAccuracy, s.RoundsTo(0.96))
	if s.BestAccuracy < 0.96 {
		t.Fatalf("WDBC best accuracy %.3f < 0.96", s.BestAccuracy)
	}
}

func TestStrategiesConverge(t *testing.T) {
	for _, name := range []string{"fedavg", "fedprox", "fedsgd", "fedadam", "fedyogi", "fedadagrad", "median", "trimmedmean", "krum", "multikrum", "bulyan"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sc := strategy.Config{Name: name, F: 1, Mu: 0.01, LR: 1, Eta: 0.05}
			if name == "fedyogi" {
				sc.Eta = 0.03
			}
			s, err := Run(ctx, Config{Devices: 8, Rounds: 8, Strategy: sc, Seed: 3, Linear: true})
			if err != nil {
				t.Fatal(err)
			}
			if s.Accuracy < 0.8 {
				t.Fatalf("%s: accuracy %.3f after %d rounds", name, s.Accuracy, s.Rounds)
			}
		})
	}
}

// TestVitalsData: the simulator's vitals come from internal/vitals, hold
// whole patients out, carry both labels in both splits and are
// standardised.
func TestVitalsData(t *testing.T) {
	for _, n := range []int{40, 800, 4000} {
		d := Vitals(n, 1)
		rows := len(d.TrainY) + len(d.TestY)
		if d.Features != len(vitals.Fields) || d.FeatureNames[0] != "hr" || rows != n {
			t.Fatalf("n=%d: %d features %v, %d rows", n, d.Features, d.FeatureNames, rows)
		}
		for _, x := range append(d.TrainX, d.TestX...) {
			if x != x {
				t.Fatalf("n=%d: NaN feature", n)
			}
		}
		if n < 4000 {
			continue
		}
		pos := func(y []int32) float64 {
			s := 0
			for _, v := range y {
				s += int(v)
			}
			return float64(s) / float64(len(y))
		}
		if p, q := pos(d.TrainY), pos(d.TestY); p < 0.02 || p > 0.3 || q < 0.02 || q > 0.3 {
			t.Fatalf("positive rate train %.3f test %.3f", p, q)
		}
		var mean float64
		for i := 0; i < len(d.TrainY); i++ {
			mean += float64(d.TrainX[i*7])
		}
		if mean /= float64(len(d.TrainY)); mean > 1e-3 || mean < -1e-3 {
			t.Fatalf("hr not standardised: mean %v", mean)
		}
	}
	a, b := Vitals(500, 3), Vitals(500, 3)
	if a.TrainX[0] != b.TrainX[0] || len(a.TestY) != len(b.TestY) {
		t.Fatal("not deterministic")
	}
}

// TestModelShapeConfig: the default model's shape comes from Hidden and
// Linear; a negative width or a hidden width with Linear is an error
// naming the field, before anything starts.
func TestModelShapeConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = runs
	}{
		{"default", Config{}, ""},
		{"linear", Config{Linear: true}, ""},
		{"negative hidden", Config{Hidden: -1}, "sim config: Hidden must not be negative"},
		{"linear with hidden", Config{Linear: true, Hidden: 8}, "sim config: Linear has no hidden layer, but Hidden is 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tc.cfg.Devices, tc.cfg.Rounds, tc.cfg.Seed = 2, 1, 1
			tc.cfg.Data = Vitals(200, 1)
			s, err := Run(ctx, tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				params := (len(vitals.Fields)+1)*16 + 17*2
				if tc.cfg.Linear {
					params = (len(vitals.Fields) + 1) * 2
				}
				if s.Params != params {
					t.Fatalf("%d parameters, want %d", s.Params, params)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
