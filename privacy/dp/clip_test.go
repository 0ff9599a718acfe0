package dp

import (
	"math"
	"testing"
	"time"
)

func TestClipL2(t *testing.T) {
	cases := []struct {
		x    []float32
		c    float64
		norm float64
	}{
		{[]float32{3, 4}, 1, 5},
		{[]float32{3, 4}, 10, 5},
		{[]float32{}, 1, 0},
		{[]float32{1e30, 1e30, 1e30}, 2, math.Sqrt(3) * 1e30},
	}
	for _, c := range cases {
		orig := append([]float32(nil), c.x...)
		n, err := ClipL2(c.x, c.c)
		if err != nil {
			t.Fatal(err)
		}
		if relErr(n, c.norm) > 1e-6 {
			t.Errorf("%v: norm %v, want %v", orig, n, c.norm)
		}
		if after := L2Norm(c.x); after > c.c {
			t.Errorf("%v: clipped norm %v > %v", orig, after, c.c)
		}
		if c.norm <= c.c {
			for i := range orig {
				if orig[i] != c.x[i] {
					t.Errorf("%v changed though within the bound", orig)
				}
			}
		}
	}
	x := []float32{1, float32(math.NaN())}
	if n, _ := ClipL2(x, 1); !math.IsInf(n, 1) || x[0] != 0 || x[1] != 0 {
		t.Errorf("NaN vector: norm %v, x %v", n, x)
	}
	if _, err := ClipL2(x, 0); err == nil {
		t.Error("clip 0 accepted")
	}
}

func TestClipL2Parts(t *testing.T) {
	parts := [][]float32{{3}, {4}}
	n, err := ClipL2Parts(parts, 1)
	if err != nil || n != 5 {
		t.Fatalf("norm %v %v", n, err)
	}
	if s := math.Hypot(float64(parts[0][0]), float64(parts[1][0])); s > 1 || s < 0.999 {
		t.Errorf("joint norm after clipping %v", s)
	}
}

func TestQuantileClipperConverges(t *testing.T) {
	q, err := NewQuantileClipper(0.1, 0.5, 0.2, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 100 clients with norms 1..100: the median is about 50.
	for round := 0; round < 300; round++ {
		below := 0
		for norm := 1; norm <= 100; norm++ {
			if float64(norm) <= q.Clip {
				below++
			}
		}
		if _, err := q.Update(nil, below, 100); err != nil {
			t.Fatal(err)
		}
	}
	if q.Clip < 45 || q.Clip > 56 {
		t.Errorf("clip %v, want about 50", q.Clip)
	}
	if _, err := q.Update(nil, 5, 3); err == nil {
		t.Error("5 of 3 accepted")
	}
	noisy, _ := NewQuantileClipper(1, 0.5, 0.2, 1)
	if _, err := noisy.Update(nil, 1, 2); err == nil {
		t.Error("noisy update without a source accepted")
	}
	if _, err := noisy.Update(testSource(), 1, 2); err != nil {
		t.Error(err)
	}
}

func TestAdaptiveNoiseMultiplier(t *testing.T) {
	// Andrew et al. 2021 use z = 1, sigma_b = m/20 for m clients; with
	// zb = 5: z_delta = (1 - 1/100)^(-1/2).
	z, err := AdaptiveNoiseMultiplier(1, 5)
	if err != nil || relErr(z, 1/math.Sqrt(0.99)) > 1e-15 {
		t.Errorf("z %v %v", z, err)
	}
	if _, err := AdaptiveNoiseMultiplier(1, 0.5); err == nil {
		t.Error("too little count noise accepted")
	}
}

// finishes fails the test when f does not return within a generous bound:
// the clip loops it guards against never return at all.
func finishes(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return (a clip loop that depends on float32 progress)", what)
	}
}

// TestClipSubnormal attacks the clip loops with one subnormal element just
// above the bound: scaling it by any factor close to 1 and rounding to
// nearest gives the same subnormal back, so a loop that shrinks until the
// norm is below the bound never ends, and one pass with a margin leaves
// the norm above the bound.
func TestClipSubnormal(t *testing.T) {
	s := float32(1000 * math.Pow(2, -149)) // a subnormal: 1000 units of the smallest
	c := float64(s) * (1 - 1e-9)
	for _, tc := range []struct {
		name string
		clip func(x []float32) (float64, error)
		norm func(x []float32) float64
	}{
		{"ClipL2", func(x []float32) (float64, error) { return ClipL2(x, c) }, L2Norm},
		{"ClipL2Parts", func(x []float32) (float64, error) { return ClipL2Parts([][]float32{x[:1], x[1:]}, c) }, L2Norm},
		{"ClipL1", func(x []float32) (float64, error) { return ClipL1(x, c) }, L1Norm},
	} {
		for _, x := range [][]float32{{s}, {s, 0}, {-s, s}, {s, s, s, s}} {
			var err error
			finishes(t, tc.name, func() { _, err = tc.clip(x) })
			if err != nil {
				t.Fatal(err)
			}
			if n := tc.norm(x); n > c {
				t.Errorf("%s: norm after clipping %v > clip %v", tc.name, n, c)
			}
		}
	}
}

func TestClipL1(t *testing.T) {
	x := []float32{3, -4, 1}
	n, err := ClipL1(x, 4)
	if err != nil || n != 8 {
		t.Fatalf("norm %v %v", n, err)
	}
	if got := L1Norm(x); got > 4 || got < 3.9999 {
		t.Errorf("L1 norm after clipping %v, x %v", got, x)
	}
	if x[0] <= 0 || x[1] >= 0 {
		t.Errorf("clipping changed signs: %v", x)
	}
	y := []float32{1, float32(math.Inf(-1))}
	if n, _ := ClipL1(y, 1); !math.IsInf(n, 1) || y[0] != 0 || y[1] != 0 {
		t.Errorf("Inf vector: norm %v, x %v", n, y)
	}
	if _, err := ClipL1(y, math.NaN()); err == nil {
		t.Error("clip NaN accepted")
	}
}
