package instrument

import (
	"cmp"
	"fmt"
	"slices"
)

const (
	secMemory    = 5
	secData      = 11
	secDataCount = 12
)

// DefaultDataGap is the largest run of zero bytes MergeData writes to join
// two data segments. wazero keeps each decoded segment as a 64-byte struct
// and two small allocations (about 90 bytes of heap), so joining across a
// gap smaller than that costs less memory than the segment it saves.
const DefaultDataGap = 64

// MergeData returns wasm with its active data segments joined where the
// zero bytes between two of them are at most maxGap: Go's linker writes a
// wasip1 guest's data as tens of thousands of segments of a few bytes each
// (38,000 for a 3.4 MB guest), which wazero keeps decoded for as long as the
// module stays compiled and copies one by one into every instance.
//
// The memory the segments initialize is zero when they are applied, so
// writing the gaps' zeros changes nothing, provided that:
//   - the module defines its own memory (an imported one may already hold
//     data in the gaps);
//   - every segment is active, in memory 0, at an i32.const offset, and no
//     two overlap (they may then be applied in any order; out of bounds,
//     the joined segment fails where the later of the two would have);
//   - there is no data count section: without one no instruction can name
//     a segment (memory.init and data.drop require it), so renumbering them
//     is unobservable.
//
// Anything else returns wasm unchanged, as does a module with nothing to
// join. Segment names in a name section (the extended-name proposal's
// subsection 9, which wazero does not read) are not renumbered.
func MergeData(wasm []byte, maxGap uint32) ([]byte, error) {
	// Only a binary whose section structure cannot be read is an error; a
	// section that cannot be read is left for wazero to report.
	secs, err := parse(wasm)
	if err != nil {
		return nil, err
	}
	dataAt, ownMemory := -1, false
	for i, s := range secs {
		switch s.id {
		case secImport:
			_, imp, err := scanImports(s.payload)
			if err != nil || imp {
				return wasm, nil // malformed is wazero's to report
			}
		case secMemory:
			ownMemory = true
		case secDataCount:
			return wasm, nil
		case secData:
			dataAt = i
		}
	}
	if dataAt < 0 || !ownMemory {
		return wasm, nil
	}
	segs, ok, err := activeSegments(secs[dataAt].payload)
	if err != nil || !ok || len(segs) < 2 {
		return wasm, nil
	}
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.off, b.off) })
	for i := 1; i < len(segs); i++ {
		if segs[i-1].end() > uint64(segs[i].off) {
			return wasm, nil // overlapping: the order would matter
		}
	}
	var merged [][]segment
	for i, s := range segs {
		if i > 0 {
			prev := segs[i-1]
			if uint64(s.off)-prev.end() <= uint64(maxGap) {
				merged[len(merged)-1] = append(merged[len(merged)-1], s)
				continue
			}
		}
		merged = append(merged, []segment{s})
	}
	if len(merged) == len(segs) {
		return wasm, nil
	}
	p := uleb(make([]byte, 0, len(secs[dataAt].payload)), uint64(len(merged)))
	for _, run := range merged {
		first, last := run[0], run[len(run)-1]
		size := last.end() - uint64(first.off)
		p = append(p, 0, opI32Const)
		p = sleb(p, int64(int32(first.off)))
		p = append(p, opEnd)
		p = uleb(p, size)
		at := len(p)
		p = append(p, make([]byte, size)...)
		for _, s := range run {
			copy(p[at+int(s.off-first.off):], s.init)
		}
	}
	secs[dataAt].payload = p

	out := make([]byte, 0, len(wasm)+len(p))
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = uleb(out, uint64(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out, nil
}

type segment struct {
	off  uint32
	init []byte
}

func (s segment) end() uint64 { return uint64(s.off) + uint64(len(s.init)) }

// activeSegments reads a data section; ok is false when a segment is not
// active in memory 0 at an i32.const offset.
func activeSegments(p []byte) (segs []segment, ok bool, err error) {
	r := &reader{b: p}
	n, err := r.uleb32()
	if err != nil {
		return nil, false, fmt.Errorf("data section: %w", err)
	}
	segs = make([]segment, 0, n)
	for range n {
		kind, err := r.uleb32()
		if err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		}
		switch kind {
		case 0:
		case 2:
			mem, err := r.uleb32()
			if err != nil {
				return nil, false, fmt.Errorf("data section: %w", err)
			}
			if mem != 0 {
				return nil, false, nil
			}
		default:
			return nil, false, nil // passive, or not a segment wazero would read
		}
		op, err := r.byte()
		if err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		}
		if op != opI32Const {
			return nil, false, nil // global.get or an extended constant
		}
		off, err := r.sleb32()
		if err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		}
		if end, err := r.byte(); err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		} else if end != opEnd {
			return nil, false, nil
		}
		size, err := r.uleb32()
		if err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		}
		init, err := r.bytes(size)
		if err != nil {
			return nil, false, fmt.Errorf("data section: %w", err)
		}
		segs = append(segs, segment{off: uint32(off), init: init})
	}
	if r.off != len(p) {
		return nil, false, r.errf("data section: %d bytes after the last segment", len(p)-r.off)
	}
	return segs, true, nil
}
