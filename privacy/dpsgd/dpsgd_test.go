package dpsgd_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
)

type (
	Net       = dpsgd.Net
	Layer     = dpsgd.Layer
	Workspace = dpsgd.Workspace
)

var (
	NewGroups = dpsgd.NewGroups
	ClipSum   = dpsgd.ClipSum
	Sample    = dpsgd.Sample
)

func randNet(rng *rand.Rand, sizes ...int) Net {
	var n Net
	for i := 0; i+1 < len(sizes); i++ {
		l := Layer{In: sizes[i], Out: sizes[i+1], W: make([]float32, sizes[i]*sizes[i+1]), B: make([]float32, sizes[i+1])}
		for j := range l.W {
			l.W[j] = float32(rng.NormFloat64() * 0.7)
		}
		for j := range l.B {
			l.B[j] = float32(rng.NormFloat64() * 0.1)
		}
		n = append(n, l)
	}
	return n
}

// refLoss is the plain-Go reference: the summed BCE loss of rows under
// net, in float64, written for clarity (no shared code with ClipSum).
func refLoss(net Net, x, y []float32, rows []int) float64 {
	f := net[0].In
	var total float64
	for _, r := range rows {
		a := make([]float64, f)
		for k := range a {
			a[k] = float64(x[r*f+k])
		}
		for l, ly := range net {
			z := make([]float64, ly.Out)
			for j := range z {
				z[j] = float64(ly.B[j])
				for k := 0; k < ly.In; k++ {
					z[j] += a[k] * float64(ly.W[k*ly.Out+j])
				}
				if l+1 < len(net) && z[j] < 0 {
					z[j] = 0
				}
			}
			a = z
		}
		p := 1 / (1 + math.Exp(-a[0]))
		t := float64(y[r])
		total += -(t*math.Log(p) + (1-t)*math.Log(1-p))
	}
	return total
}

// refGrad is the reference gradient of refLoss by central differences.
func refGrad(net Net, x, y []float32, rows []int) []float64 {
	var g []float64
	const h = 1e-3
	for _, ly := range net {
		for _, vals := range [][]float32{ly.W, ly.B} {
			for i := range vals {
				old := vals[i]
				vals[i] = old + h
				up := refLoss(net, x, y, rows)
				vals[i] = old - h
				down := refLoss(net, x, y, rows)
				vals[i] = old
				g = append(g, (up-down)/(2*h))
			}
		}
	}
	return g
}

func TestClipSumMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sizes  []int
		groups []int32
		units  []int
		clip   float64
	}{
		{"logistic, one row per unit", []int{3, 1}, []int32{0, 1, 2, 3}, []int{0, 1, 2, 3}, 100},
		{"mlp, patients of several readings, no clipping", []int{4, 5, 1}, []int32{0, 0, 1, 1, 1, 2}, []int{0, 1, 2}, 1e6},
		{"mlp, clipped patients", []int{4, 5, 1}, []int32{0, 0, 1, 1, 1, 2}, []int{0, 2}, 0.05},
		{"deep mlp, unsorted ids", []int{2, 3, 4, 1}, []int32{2, 0, 1, 0, 2, 1, 1}, []int{1, 2}, 0.3},
		{"unit sampled twice counts twice", []int{2, 1}, []int32{0, 1}, []int{1, 1}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			net := randNet(rng, tc.sizes...)
			n, f := len(tc.groups), tc.sizes[0]
			x, y := make([]float32, n*f), make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range y {
				y[i] = float32(rng.IntN(2))
			}
			units := 0
			for _, g := range tc.groups {
				units = max(units, int(g)+1)
			}
			g, err := NewGroups(tc.groups, units)
			if err != nil {
				t.Fatal(err)
			}
			sum := make([]float32, net.Params())
			st, err := ClipSum(net, x, y, g, tc.units, tc.clip, sum, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, net.Params())
			clipped := 0
			for _, u := range tc.units {
				var rows []int
				for r, id := range tc.groups {
					if int(id) == u {
						rows = append(rows, r)
					}
				}
				gu := refGrad(net, x, y, rows)
				var norm float64
				for _, v := range gu {
					norm += v * v
				}
				norm = math.Sqrt(norm)
				s := 1.0
				if norm > tc.clip {
					s, clipped = tc.clip/norm, clipped+1
				}
				for i, v := range gu {
					want[i] += s * v
				}
			}
			for i := range want {
				if d := math.Abs(float64(sum[i]) - want[i]); d > 2e-3*(1+math.Abs(want[i])) {
					t.Fatalf("sum[%d] = %v, reference %v", i, sum[i], want[i])
				}
			}
			if st.Clipped != clipped || st.Units != len(tc.units) {
				t.Errorf("stats %+v, want %d units and %d clipped", st, len(tc.units), clipped)
			}
		})
	}
}

func TestClipSumBoundsEachUnit(t *testing.T) {
	// Whatever the data, one unit moves the sum by at most clip in L2.
	rng := rand.New(rand.NewPCG(3, 4))
	net := randNet(rng, 5, 8, 1)
	ids := []int32{0, 0, 0, 1, 1, 2}
	g, _ := NewGroups(ids, 3)
	x, y := make([]float32, 6*5), []float32{1, 1, 0, 0, 1, 0}
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 50)
	}
	for _, u := range []int{0, 1, 2} {
		sum := make([]float32, net.Params())
		if _, err := ClipSum(net, x, y, g, []int{u}, 0.25, sum, nil); err != nil {
			t.Fatal(err)
		}
		if n := dp.L2Norm(sum); n > 0.25*(1+1e-6) {
			t.Errorf("unit %d contributes norm %v > clip 0.25", u, n)
		}
	}
}

func TestBadInput(t *testing.T) {
	net := randNet(rand.New(rand.NewPCG(1, 1)), 2, 1)
	g, _ := NewGroups([]int32{0, 1}, 2)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"id out of range", func() error { _, err := NewGroups([]int32{0, 5}, 2); return err }, "outside"},
		{"negative id", func() error { _, err := NewGroups([]int32{-1}, 1); return err }, "outside"},
		{"unit without rows", func() error { _, err := NewGroups([]int32{0, 2, 2}, 3); return err }, "no rows"},
		{"too many units", func() error { _, err := NewGroups([]int32{0}, 2); return err }, "units"},
		{"unit outside", func() error {
			_, err := ClipSum(net, make([]float32, 4), make([]float32, 2), g, []int{2}, 1, make([]float32, 3), nil)
			return err
		}, "unit 2"},
		{"short x", func() error {
			_, err := ClipSum(net, make([]float32, 3), make([]float32, 2), g, nil, 1, make([]float32, 3), nil)
			return err
		}, "x has"},
		{"bad clip", func() error {
			_, err := ClipSum(net, make([]float32, 4), make([]float32, 2), g, nil, math.Inf(1), make([]float32, 3), nil)
			return err
		}, "clip"},
		{"two logits", func() error { return randNet(rand.New(rand.NewPCG(1, 1)), 2, 2).Validate() }, "one logit"},
		{"chain", func() error {
			n := randNet(rand.New(rand.NewPCG(1, 1)), 2, 3, 1)
			n[1] = Layer{In: 2, Out: 1, W: make([]float32, 2), B: make([]float32, 1)}
			return n.Validate()
		}, "takes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSampleRate(t *testing.T) {
	// The observed Poisson rate matches q within 5 standard deviations.
	src := dp.NewSourceFromSeed([32]byte{7})
	const units, steps, q = 200, 500, 0.1
	var got int
	var buf []int
	for range steps {
		buf = Sample(src, units, q, buf)
		got += len(buf)
	}
	n := float64(units * steps)
	if sd := math.Sqrt(n * q * (1 - q)); math.Abs(float64(got)-n*q) > 5*sd {
		t.Fatalf("sampled %d of %v unit-steps, want about %v", got, n, n*q)
	}
}

// BenchmarkClipSum is one DP-SGD step of the demo's shape: 8 patients of
// 90 readings through the 14-16-1 risk MLP.
func BenchmarkClipSum(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	net := randNet(rng, 14, 16, 1)
	const patients, readings = 30, 90
	ids := make([]int32, patients*readings)
	for i := range ids {
		ids[i] = int32(i / readings)
	}
	g, _ := NewGroups(ids, patients)
	x, y := make([]float32, len(ids)*14), make([]float32, len(ids))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	units := []int{0, 3, 7, 11, 15, 19, 23, 27}
	sum := make([]float32, net.Params())
	var ws *Workspace
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ClipSum(net, x, y, g, units, 1, sum, &ws); err != nil {
			b.Fatal(err)
		}
	}
}

// Two patients, one of two readings and one of one, through a logistic
// regression at zero weights: each patient's gradient is the sum over its
// readings of (sigmoid(0) - y) * [x, 1], clipped to norm 1 as a whole.
func ExampleClipSum() {
	net := dpsgd.Net{{In: 2, Out: 1, W: []float32{0, 0}, B: []float32{0}}}
	x := []float32{1, 0, 1, 0, 0, 2}
	y := []float32{1, 1, 0}
	g, _ := dpsgd.NewGroups([]int32{0, 0, 1}, 2)
	sum := make([]float32, net.Params())
	st, _ := dpsgd.ClipSum(net, x, y, g, []int{0, 1}, 1, sum, nil)
	fmt.Printf("%.4f, %d of %d patients clipped\n", sum, st.Clipped, st.Units)
	// Output: [-0.7071 0.8944 -0.2599], 2 of 2 patients clipped
}
