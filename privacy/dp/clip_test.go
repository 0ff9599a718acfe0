package dp

import (
	"math"
	"testing"
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
