package bench

import (
	"fmt"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{nil, 0.5, 0},
		{xs, 0, 1},
		{xs, 0.5, 3},
		{xs, 0.99, 5},
		{xs, 1, 5},
		{xs, -1, 1}, // out of range: clamped to the ends
		{xs, 2, 5},
	} {
		if got := Percentile(tc.xs, tc.q); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
	if xs[0] != 5 {
		t.Fatal("Percentile sorted its argument")
	}
}

func ExamplePercentile() {
	lat := []float64{1.2, 0.9, 1.0, 4.8, 1.1}
	fmt.Println(Percentile(lat, 0.5), Percentile(lat, 0.99))
	// Output: 1.1 4.8
}
