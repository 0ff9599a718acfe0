package dpsgd

import (
	"errors"
	"testing"
)

// TestShareGrant: a grant's divisor is bounded, it covers one run of one
// step (a second Begin or Seal is refused, as is a Seal before Begin), and
// Sealed returns a copy.
func TestShareGrant(t *testing.T) {
	for _, d := range []int{0, -1, MaxShareDivisor + 1} {
		if _, err := NewShare(d); err == nil {
			t.Fatalf("divisor %d accepted", d)
		}
	}
	s, err := NewShare(7)
	if err != nil || s.Divisor() != 7 {
		t.Fatalf("NewShare(7) = %v, %v", s, err)
	}
	if _, ok := s.Sealed(); ok {
		t.Fatal("sealed before any step")
	}
	if err := s.Seal(Sealed{Sum: []float32{1}}); !errors.Is(err, ErrShareUsed) {
		t.Fatalf("seal before begin: %v", err)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(); !errors.Is(err, ErrShareUsed) {
		t.Fatalf("second begin: %v", err)
	}
	sum := []float32{1, 2, 3}
	if err := s.Seal(Sealed{Sum: sum, Z: 1.5, Layers: []int{2, 1}}); err != nil {
		t.Fatal(err)
	}
	sum[0] = 99
	if err := s.Seal(Sealed{Sum: sum}); !errors.Is(err, ErrShareUsed) {
		t.Fatalf("second seal: %v", err)
	}
	v, ok := s.Sealed()
	if !ok || v.Sum[0] != 1 || v.Z != 1.5 {
		t.Fatalf("sealed %+v, %v", v, ok)
	}
	v.Sum[1] = 99
	if w, _ := s.Sealed(); w.Sum[1] != 2 {
		t.Fatal("Sealed returned the grant's own slice")
	}
}
