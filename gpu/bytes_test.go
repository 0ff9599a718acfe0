package gpu

import (
	"math"
	"testing"
)

// TestPortableBytes checks the big-endian-host fallback against the fast
// path, which this (little-endian) machine uses.
func TestPortableBytes(t *testing.T) {
	v := []float32{0, 1.5, -2, float32(math.Inf(1)), math.SmallestNonzeroFloat32}
	fast := F32ToBytes(v)
	slow := make([]byte, len(fast))
	getF32Portable(slow, v)
	if string(fast) != string(slow) {
		t.Fatalf("portable encoding %x, fast %x", slow, fast)
	}
	back := make([]float32, len(v))
	putF32Portable(back, fast)
	for i := range v {
		if math.Float32bits(back[i]) != math.Float32bits(v[i]) {
			t.Errorf("[%d] = %v, want %v", i, back[i], v[i])
		}
	}
}

func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88.7; x += 0.001 {
		got := float64(exp32(x))
		want := math.Exp(float64(x))
		if e := math.Abs(got-want) / want; e > worst {
			worst = e
		}
	}
	// 2 ulp of float32
	if worst > 2.4e-7 {
		t.Errorf("exp32 worst relative error %g", worst)
	}
}
