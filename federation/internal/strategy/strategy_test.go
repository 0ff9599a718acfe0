package strategy

import (
	"math"
	"math/rand/v2"
	"testing"
)

func u(vals []float32, n uint64) Update { return Update{Vec: vals, NumExamples: n} }

func rep(x float32, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = x
	}
	return v
}

func near(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol*(1+math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

// Vectors from Flower's test suite (adap/flower, src/py/flwr/server/strategy).
// Flower's tests pass parameters as per-layer arrays; a strategy here works
// on the concatenation of layers, which gives the same result for these
// coordinate-wise and distance-based rules since Flower's Krum distance is
// computed on the concatenated vector too.
func TestFlowerVectors(t *testing.T) {
	prev := rep(0.1, 4)
	cases := []struct {
		name   string // Flower file :: test
		agg    Aggregator
		global []float32
		ups    []Update
		want   []float32
		tol    float64
	}{
		{
			// aggregate_test.py::test_aggregate: layers [[1,2,3],[4,5,6]] and
			// [7,8,9,10], identical on both clients, weights 1 and 2.
			"aggregate_test.py::test_aggregate", FedAvg{}, make([]float32, 10),
			[]Update{u([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1), u([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 2)},
			[]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0,
		},
		{
			"fedmedian_test.py::test_aggregate_fit", Median{}, prev,
			[]Update{u(rep(0.2, 4), 5), u(rep(1.0, 4), 5), u(rep(0.5, 4), 5)},
			rep(0.5, 4), 0,
		},
		{
			"krum_test.py::test_aggregate_fit (num_malicious_clients=1)", Krum{F: 1}, prev,
			[]Update{u(rep(0.2, 4), 5), u(rep(0.7, 4), 5), u(rep(1.0, 4), 5)},
			rep(0.7, 4), 0,
		},
		{
			"multikrum_test.py::test_aggregate_fit (num_malicious_clients=1, num_clients_to_keep=2)", Krum{F: 1, M: 2}, prev,
			[]Update{u(rep(0.2, 4), 5), u(rep(0.5, 4), 5), u(rep(1.0, 4), 5)},
			rep(0.35, 4), 1e-7,
		},
		{
			// bulyan_test.py::test_aggregate_fit (num_malicious_clients=0,
			// to_keep=0): with f=0 Bulyan keeps all six and averages them.
			// Flower asserts float32 equality with the float64 mean cast to
			// float32; summation order differs here, so 1 ulp is allowed.
			"bulyan_test.py::test_aggregate_fit", Bulyan{F: 0}, prev,
			[]Update{u(rep(0.2, 4), 5), u(rep(0.5, 4), 5), u(rep(0.7, 4), 5), u(rep(12.0, 4), 5), u(rep(0.1, 4), 5), u(rep(0.1, 4), 5)},
			rep(float32((0.2+0.5+0.7+12.0+0.1+0.1)/6), 4), 2e-7,
		},
		{
			// fedadagrad_test.py::test_aggregate_fit: eta=0.1, tau=0.5; avg
			// 0.6, delta 0.5, v 0.25 -> 0.1 + 0.1*0.5/(0.5+0.5) = 0.15.
			"fedadagrad_test.py::test_aggregate_fit", &FedOpt{Kind: Adagrad, Eta: 0.1, Tau: 0.5}, prev,
			[]Update{u(rep(0.2, 4), 5), u(rep(1.0, 4), 5)},
			rep(0.15, 4), 1e-7,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.agg.Aggregate(1, c.global, c.ups)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, c.want, c.tol) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// Derived vectors: computed by hand from Flower's algorithms (not copied
// from its test suite, which has no case for these).
func TestDerivedVectors(t *testing.T) {
	prev := rep(0.1, 2)
	cases := []struct {
		name string
		agg  Aggregator
		ups  []Update
		want []float32
	}{
		// Flower _trim_mean, proportiontocut 0.2 of 5 -> cut 1 each side.
		{"trimmed mean beta 0.2", TrimmedMean{Beta: 0.2},
			[]Update{u([]float32{1, 10}, 1), u([]float32{2, 20}, 1), u([]float32{3, 30}, 1), u([]float32{100, -50}, 1), u([]float32{-100, 40}, 1)},
			[]float32{2, 20}},
		// np.median of an even count averages the two middle values.
		{"median even", Median{}, []Update{u([]float32{1, 4}, 1), u([]float32{3, 2}, 1), u([]float32{2, 8}, 1), u([]float32{10, 0}, 1)},
			[]float32{2.5, 3}},
		// FedAdam, one round from zero state: delta 0.5 -> m 0.05,
		// v 0.0025 -> w = 0.1 + 0.1*0.05/(0.05+1e-9).
		{"fedadam one round", &FedOpt{Kind: Adam}, []Update{u(rep(0.6, 2), 3)},
			rep(float32(0.1+0.1*0.05/(0.05+1e-9)), 2)},
		// FedYogi from zero state: v = 0 - 0.01*0.25*sign(0-0.25) = 0.0025, m 0.05.
		{"fedyogi one round", &FedOpt{Kind: Yogi}, []Update{u(rep(0.6, 2), 3)},
			rep(float32(0.1+0.01*0.05/(0.05+1e-3)), 2)},
		// FedSGD: weighted gradient (1*1 + 3*2)/4 = 1.75, lr 0.1.
		{"fedsgd", &FedSGD{LR: 0.1}, []Update{u(rep(1, 2), 1), u(rep(2, 2), 3)}, rep(0.1-0.175, 2)},
	}
	for _, c := range cases {
		got, err := c.agg.Aggregate(1, prev, c.ups)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !near(got, c.want, 1e-6) {
			t.Fatalf("%s: got %v want %v", c.name, got, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	g := rep(0, 3)
	for _, name := range Names {
		a, err := New(Config{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Aggregate(1, g, nil); err == nil {
			t.Errorf("%s: no updates accepted", name)
		}
		if _, err := a.Aggregate(1, g, []Update{u(rep(1, 2), 1)}); err == nil {
			t.Errorf("%s: short update accepted", name)
		}
	}
	if _, err := (Bulyan{F: 1}).Aggregate(1, g, []Update{u(g, 1), u(g, 1), u(g, 1)}); err == nil {
		t.Error("bulyan with n < 4f+3 accepted")
	}
	if _, err := (FedAvg{}).Aggregate(1, g, []Update{u(rep(1, 3), 0)}); err == nil {
		t.Error("zero examples accepted")
	}
	if _, err := (FedAvg{}).Aggregate(1, g, []Update{u([]float32{float32(math.Inf(1)), 0, 0}, 1)}); err == nil {
		t.Error("infinite result accepted")
	}
	if _, err := New(Config{Name: "nope"}); err == nil {
		t.Error("unknown name accepted")
	}
}

// Robust rules keep the honest mean within tolerance under 20% of devices
// sending scaled (x100) or sign-flipped updates; FedAvg does not.
func TestByzantine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, d = 20, 64
	global := make([]float32, d)
	honest := make([]float32, d)
	for i := range honest {
		honest[i] = float32(r.NormFloat64())
	}
	mk := func(attack func(v []float32)) []Update {
		ups := make([]Update, n)
		for k := range ups {
			v := make([]float32, d)
			for i := range v {
				v[i] = honest[i] + 0.05*float32(r.NormFloat64())
			}
			if k < n/5 {
				attack(v)
			}
			ups[k] = u(v, 10)
		}
		return ups
	}
	attacks := map[string]func([]float32){
		"scale100": func(v []float32) {
			for i := range v {
				v[i] *= 100
			}
		},
		"signflip": func(v []float32) {
			for i := range v {
				v[i] = -v[i]
			}
		},
	}
	dist := func(v []float32) float64 {
		var s float64
		for i := range v {
			e := float64(v[i] - honest[i])
			s += e * e
		}
		return math.Sqrt(s / d)
	}
	for an, at := range attacks {
		ups := mk(at)
		for _, a := range []Aggregator{Median{}, TrimmedMean{Beta: 0.25}, Krum{F: 4}, Krum{F: 4, M: 12}, Bulyan{F: 4}} {
			got, err := a.Aggregate(1, global, ups)
			if err != nil {
				t.Fatal(err)
			}
			if e := dist(got); e > 0.1 {
				t.Errorf("%s under %s: rms error %.3f", a.Name(), an, e)
			}
		}
		got, _ := FedAvg{}.Aggregate(1, global, ups)
		if e := dist(got); e < 0.3 {
			t.Errorf("fedavg under %s unexpectedly robust: %.3f", an, e)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	a := &FedOpt{Kind: Adam}
	g := rep(0, 4)
	if _, err := a.Aggregate(1, g, []Update{u(rep(1, 4), 1)}); err != nil {
		t.Fatal(err)
	}
	b := &FedOpt{Kind: Adam}
	if err := b.Restore(a.State()); err != nil {
		t.Fatal(err)
	}
	x, _ := a.Aggregate(2, g, []Update{u(rep(2, 4), 1)})
	y, _ := b.Aggregate(2, g, []Update{u(rep(2, 4), 1)})
	if !near(x, y, 0) {
		t.Fatalf("restored optimizer diverges: %v vs %v", x, y)
	}
	if err := b.Restore([]byte{1, 2}); err == nil {
		t.Fatal("truncated state accepted")
	}
}

func FuzzRestore(f *testing.F) {
	f.Add((&FedOpt{}).State())
	f.Add(encodeVecs([]float32{1, 2}, []float32{3, 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := &FedOpt{}
		_ = o.Restore(b)
		s := &FedSGD{}
		_ = s.Restore(b)
	})
}

// BenchmarkAggregate compares FedAvg over 100 updates of 1M f32 with a
// plain memory-bound loop (out[i] += u[k][i]) over the same data.
func BenchmarkAggregate(b *testing.B) {
	const n, d = 100, 1 << 20
	ups := make([]Update, n)
	for k := range ups {
		v := make([]float32, d)
		for i := range v {
			v[i] = float32(k + i%7)
		}
		ups[k] = u(v, uint64(k+1))
	}
	g := make([]float32, d)
	b.Run("fedavg", func(b *testing.B) {
		b.SetBytes(n * d * 4)
		for b.Loop() {
			if _, err := (FedAvg{}).Aggregate(1, g, ups); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plainloop", func(b *testing.B) {
		b.SetBytes(n * d * 4)
		for b.Loop() {
			out := make([]float32, d)
			for k := range ups {
				v := ups[k].Vec
				for i := range out {
					out[i] += v[i]
				}
			}
		}
	})
}

func FuzzAggregateOutput(f *testing.F) {
	f.Add([]byte{0xa1, 0x65, 'm', 'o', 'd', 'e', 'l', 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if o, err := DecodeAggregateOutput(b); err == nil {
			_ = o.Model.Flatten()
		}
	})
}
