package hostfuncs

import (
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// TestHandleSlotsRetire drives the slot logic directly: a slot is used for
// exactly maxGen generations with distinct handles and then retired; a
// table whose slots are half retired is worn, and one whose slots are all
// retired refuses new handles instead of reissuing old ones.
func TestHandleSlotsRetire(t *testing.T) {
	var ht handleTable
	ht.salt = 0x1234 & tagMask
	var x gpu.Tensor = &struct{ gpu.Tensor }{}
	seen := map[int32]bool{}
	for range maxGen {
		h := ht.put(x)
		if h>>tagBits != 1 || seen[h] {
			t.Fatalf("handle %d: slot %d, seen before %v", h, h>>tagBits, seen[h])
		}
		seen[h] = true
		ht.remove(h)
	}
	if ht.retired != 1 || len(ht.free) != 0 {
		t.Fatalf("after %d generations: retired %d, free %v", maxGen, ht.retired, ht.free)
	}
	if h := ht.put(x); h>>tagBits != 2 {
		t.Fatalf("next handle %d uses slot %d, want a fresh slot 2", h, h>>tagBits)
	}
	for h := range seen {
		if ht.get(h) != nil {
			t.Fatalf("retired handle %d resolves", h)
		}
	}
	// Every slot but the live one at its last generation.
	for i := range ht.slots {
		ht.slots[i].gen = maxGen - 1
	}
	for len(ht.slots) <= maxSlots {
		ht.slots = append(ht.slots, slot{gen: maxGen - 1})
	}
	ht.free = ht.free[:0]
	for i := 3; i <= maxSlots; i++ {
		ht.free = append(ht.free, uint32(i))
	}
	for i := 0; !ht.worn(); i++ {
		if i > maxSlots {
			t.Fatal("never worn")
		}
		ht.remove(ht.put(x))
	}
	if ht.retired != maxSlots/2 {
		t.Fatalf("worn at %d retired slots", ht.retired)
	}
	for len(ht.free) > 0 {
		ht.remove(ht.put(x))
	}
	if h := ht.put(x); h != 0 {
		t.Fatalf("exhausted table issued handle %d", h)
	}
}
