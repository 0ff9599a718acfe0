package hostfuncs

import "github.com/fennec-edge/fennec/gpu"

// A handle is a positive int32: a 16-bit slot index (1..65535) shifted left
// by 15, or'ed with a 15-bit tag. The tag mixes the instance's salt and the
// slot's generation, so a handle from another instance, a freed handle whose
// slot was reused, and an arbitrary forged number are all rejected.
//
// A slot's tags repeat after 2^15 generations (the generation's factor in
// the tag is odd, so its period is exactly 2^15). A slot is therefore
// retired, never to be used again, when its generation would reach maxGen:
// no handle value is ever issued twice by one instance, and a freed handle
// stays invalid for the instance's whole life. The cost is that the handle
// space (65535 slots x 2^15 generations = 2^31 handles, all an int32 can
// name) runs out after about 2^31 allocations; Worn tells the runtime to
// replace the instance long before that.
const (
	tagBits  = 15
	tagMask  = 1<<tagBits - 1
	maxSlots = 1<<16 - 1
	maxGen   = 1 << tagBits
)

type slot struct {
	t   gpu.Tensor
	gen uint16
}

type handleTable struct {
	salt  uint16
	slots []slot // slots[0] is never used
	free  []uint32
	live  int
	// retired counts slots whose generations are used up.
	retired int
}

func (ht *handleTable) tag(idx uint32, gen uint16) uint32 {
	return uint32(ht.salt+gen*0x2f1b+uint16(idx)*0x61) & tagMask
}

// put stores t and returns its handle, or 0 when the table is full.
func (ht *handleTable) put(t gpu.Tensor) int32 {
	if len(ht.slots) == 0 {
		ht.slots = append(ht.slots, slot{})
	}
	var idx uint32
	if n := len(ht.free); n > 0 {
		idx = ht.free[n-1]
		ht.free = ht.free[:n-1]
	} else {
		if len(ht.slots) > maxSlots {
			return 0
		}
		idx = uint32(len(ht.slots))
		ht.slots = append(ht.slots, slot{})
	}
	s := &ht.slots[idx]
	s.t = t
	ht.live++
	return int32(idx<<tagBits | ht.tag(idx, s.gen))
}

// get returns the tensor of handle h, or nil when h is not a live handle of
// this table.
func (ht *handleTable) get(h int32) gpu.Tensor {
	if h <= 0 {
		return nil
	}
	idx := uint32(h) >> tagBits
	if idx == 0 || idx >= uint32(len(ht.slots)) {
		return nil
	}
	s := &ht.slots[idx]
	if s.t == nil || uint32(h)&tagMask != ht.tag(idx, s.gen) {
		return nil
	}
	return s.t
}

// remove frees the slot of a live handle h and returns its tensor.
func (ht *handleTable) remove(h int32) gpu.Tensor {
	t := ht.get(h)
	if t == nil {
		return nil
	}
	idx := uint32(h) >> tagBits
	s := &ht.slots[idx]
	s.t = nil
	s.gen++
	if s.gen < maxGen {
		ht.free = append(ht.free, idx)
	} else {
		ht.retired++ // its next tag would repeat the first one
	}
	ht.live--
	return t
}

// worn reports whether half of the slots are retired: the instance has
// made over 2^30 allocations and should be replaced before the handle
// space runs out (the other half still holds 2^30 handles, more than any
// one call can allocate).
func (ht *handleTable) worn() bool { return ht.retired >= maxSlots/2 }

func (ht *handleTable) each(f func(gpu.Tensor)) {
	for _, s := range ht.slots {
		if s.t != nil {
			f(s.t)
		}
	}
}
