// Package instrument rewrites a WebAssembly binary so that wazero's
// termination checks, which it compiles only at loop headers, also run in
// guests that recurse without looping.
//
// Each check is a call out of compiled code into Go: that is where wazero
// notices that a module was closed at its deadline, and where the Go
// scheduler and garbage collector can stop the goroutine. A call tree with no
// loop never reaches one, so it can neither be stopped nor let a collection
// start (the whole process then waits on it).
//
// Budget appends one mutable i32 global, the budget, and starts every
// function body with
//
//	global.get $b; i32.const COST; i32.sub; global.set $b
//	global.get $b; i32.const 0; i32.lt_s
//	if
//	  i32.const REFILL; global.set $b
//	  loop end          ;; wazero compiles a termination check here
//	end
//
// where COST is the body's size in bytes. Without loops every instruction of
// a body runs at most once per entry of the body, so between two checks the
// guest runs at most REFILL plus one body's size of instruction bytes,
// whatever the shape of its call tree. Loops keep wazero's own checks.
//
// Appending a global shifts no index, so the name section and every other
// section stay valid as they are. The caller must validate the original
// binary: code that names the global index one past the module's last is
// invalid before the rewrite and valid after it.
package instrument

import (
	"errors"
	"fmt"
)

// DefaultRefill is the instruction bytes a guest may run between two
// termination checks outside loops: at ~1 ns per byte, well under a
// millisecond, which bounds how long a deadline or a garbage collection
// waits for a looping-free call tree. See docs/RATIONALE.md.
const DefaultRefill = 1 << 18

// ErrMalformed is wrapped by every error about a binary that cannot be read.
var ErrMalformed = errors.New("malformed WebAssembly binary")

const (
	secCustom = 0
	secImport = 2
	secGlobal = 6
	secCode   = 10

	opIf       = 0x04
	opLoop     = 0x03
	opEnd      = 0x0b
	opGlobGet  = 0x23
	opGlobSet  = 0x24
	opI32Const = 0x41
	opI32LtS   = 0x48
	opI32Sub   = 0x6b
	blockVoid  = 0x40
	typeI32    = 0x7f
	mutable    = 0x01
)

// sectionRank orders the non-custom sections as the binary format requires
// (the data count section, 12, sits between element and code).
func sectionRank(id byte) int {
	switch {
	case id == 12:
		return 95
	case id >= 1 && id <= 9:
		return int(id) * 10
	case id == 10 || id == 11:
		return int(id) * 10
	}
	return -1
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errf("unexpected end")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) uleb32() (uint32, error) {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, r.errf("u32 overflows")
			}
			return uint32(v), nil
		}
	}
	return 0, r.errf("u32 is longer than 5 bytes")
}

func (r *reader) sleb32() (int32, error) {
	var v int64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift+7 < 64 && c&0x40 != 0 {
				v -= 1 << (shift + 7)
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, r.errf("i32 overflows")
			}
			return int32(v), nil
		}
	}
	return 0, r.errf("i32 is longer than 5 bytes")
}

func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return nil, r.errf("%d bytes declared, %d left", n, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}

// Check reads the binary's section structure: the header, each section's
// size and order, and that no section declares more entries than it has
// bytes (every entry takes at least one). wazero's decoder allocates for the
// count it is given before reading the entries: a 30-byte module claiming
// 2^32 exports keeps it busy for most of a minute.
func Check(wasm []byte) error {
	_, err := parse(wasm)
	return err
}

func parse(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: no \\0asm header", ErrMalformed)
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: version %x is not 1", ErrMalformed, wasm[4:8])
	}
	r := &reader{b: wasm, off: 8}
	var secs []section
	last := 0
	for r.off < len(wasm) {
		at := r.off
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		n, err := r.uleb32()
		if err != nil {
			return nil, err
		}
		p, err := r.bytes(n)
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			rank := sectionRank(id)
			if rank < 0 {
				return nil, fmt.Errorf("%w: at byte %d: unknown section id %d", ErrMalformed, at, id)
			}
			if rank <= last {
				return nil, fmt.Errorf("%w: at byte %d: section %d out of order", ErrMalformed, at, id)
			}
			last = rank
			if id != 8 && id != 12 { // start and data count are not vectors
				pr := &reader{b: p}
				count, err := pr.uleb32()
				if err != nil {
					return nil, fmt.Errorf("%w: section %d at byte %d: entry count: %v", ErrMalformed, id, at, err)
				}
				if uint64(count) > uint64(len(p)-pr.off) {
					return nil, fmt.Errorf("%w: section %d at byte %d declares %d entries in %d bytes", ErrMalformed, id, at, count, len(p)-pr.off)
				}
			}
		}
		secs = append(secs, section{id, p})
	}
	return secs, nil
}

type section struct {
	id      byte
	payload []byte
}

// Budget returns wasm with the call budget described in the package
// documentation; refill <= 0 means DefaultRefill. A module without code is
// returned unchanged.
func Budget(wasm []byte, refill int32) ([]byte, error) {
	if refill <= 0 {
		refill = DefaultRefill
	}
	secs, err := parse(wasm)
	if err != nil {
		return nil, err
	}

	codeAt, globalAt := -1, -1
	var importedGlobals, definedGlobals uint32
	for i, s := range secs {
		switch s.id {
		case secImport:
			n, err := countImportedGlobals(s.payload)
			if err != nil {
				return nil, err
			}
			importedGlobals = n
		case secGlobal:
			globalAt = i
			sr := &reader{b: s.payload}
			n, err := sr.uleb32()
			if err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
			definedGlobals = n
		case secCode:
			codeAt = i
		}
	}
	if codeAt < 0 {
		return wasm, nil
	}
	total := uint64(importedGlobals) + uint64(definedGlobals)
	if total >= 1<<32-1 {
		return nil, fmt.Errorf("%w: too many globals", ErrMalformed)
	}
	g := uint32(total) // the budget's index

	// The budget global: (global (mut i32) (i32.const refill)).
	decl := []byte{typeI32, mutable, opI32Const}
	decl = sleb(decl, int64(refill))
	decl = append(decl, opEnd)
	if globalAt >= 0 {
		sr := &reader{b: secs[globalAt].payload}
		sr.uleb32() // read above
		p := uleb(nil, uint64(definedGlobals)+1)
		p = append(p, secs[globalAt].payload[sr.off:]...)
		secs[globalAt].payload = append(p, decl...)
	} else {
		// Insert before the first section that must follow the globals.
		at := len(secs)
		for i, s := range secs {
			if s.id != secCustom && sectionRank(s.id) > sectionRank(secGlobal) {
				at = i
				break
			}
		}
		secs = append(secs[:at], append([]section{{secGlobal, append([]byte{1}, decl...)}}, secs[at:]...)...)
		if at <= codeAt {
			codeAt++
		}
	}

	code, err := budgetCode(secs[codeAt].payload, g, refill)
	if err != nil {
		return nil, err
	}
	secs[codeAt].payload = code

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = uleb(out, uint64(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out, nil
}

func countImportedGlobals(p []byte) (uint32, error) {
	globals, _, err := scanImports(p)
	return globals, err
}

// scanImports counts an import section's globals and reports whether it
// imports a memory.
func scanImports(p []byte) (globals uint32, memory bool, err error) {
	r := &reader{b: p}
	n, err := r.uleb32()
	if err != nil {
		return 0, false, fmt.Errorf("import section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		for range 2 { // module and field names
			l, err := r.uleb32()
			if err != nil {
				return 0, false, fmt.Errorf("import %d: %w", i, err)
			}
			if _, err := r.bytes(l); err != nil {
				return 0, false, fmt.Errorf("import %d: %w", i, err)
			}
		}
		kind, err := r.byte()
		if err != nil {
			return 0, false, fmt.Errorf("import %d: %w", i, err)
		}
		switch kind {
		case 0: // func: type index
			_, err = r.uleb32()
		case 1: // table: reference type, limits
			if _, err = r.byte(); err == nil {
				err = limits(r)
			}
		case 2: // memory: limits
			memory = true
			err = limits(r)
		case 3: // global: value type, mutability
			globals++
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
		default:
			err = r.errf("unknown import kind %d", kind)
		}
		if err != nil {
			return 0, false, fmt.Errorf("import %d: %w", i, err)
		}
	}
	return globals, memory, nil
}

func limits(r *reader) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if flag > 3 {
		return r.errf("limits flag %#x", flag)
	}
	if _, err := r.uleb32(); err != nil {
		return err
	}
	if flag&1 != 0 {
		_, err = r.uleb32()
	}
	return err
}

// budgetCode rewrites the code section's bodies.
func budgetCode(p []byte, g uint32, refill int32) ([]byte, error) {
	r := &reader{b: p}
	n, err := r.uleb32()
	if err != nil {
		return nil, fmt.Errorf("code section: %w", err)
	}
	out := uleb(make([]byte, 0, len(p)+int(n)*24+8), uint64(n))
	for i := uint32(0); i < n; i++ {
		size, err := r.uleb32()
		if err != nil {
			return nil, fmt.Errorf("code section: body %d: %w", i, err)
		}
		body, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("code section: body %d: %w", i, err)
		}
		br := &reader{b: body}
		groups, err := br.uleb32()
		if err != nil {
			return nil, fmt.Errorf("code section: body %d: locals: %w", i, err)
		}
		for j := uint32(0); j < groups; j++ {
			if _, err := br.uleb32(); err != nil {
				return nil, fmt.Errorf("code section: body %d: locals: %w", i, err)
			}
			if _, err := br.byte(); err != nil {
				return nil, fmt.Errorf("code section: body %d: locals: %w", i, err)
			}
		}
		pro := prologue(g, int32(min(size, uint32(refill))), refill)
		out = uleb(out, uint64(len(body)+len(pro)))
		out = append(out, body[:br.off]...)
		out = append(out, pro...)
		out = append(out, body[br.off:]...)
	}
	if r.off != len(p) {
		return nil, fmt.Errorf("%w: code section has %d bytes after its %d bodies", ErrMalformed, len(p)-r.off, n)
	}
	return out, nil
}

func prologue(g uint32, cost, refill int32) []byte {
	b := make([]byte, 0, 40)
	b = append(b, opGlobGet)
	b = uleb(b, uint64(g))
	b = append(b, opI32Const)
	b = sleb(b, int64(cost))
	b = append(b, opI32Sub, opGlobSet)
	b = uleb(b, uint64(g))
	b = append(b, opGlobGet)
	b = uleb(b, uint64(g))
	b = append(b, opI32Const, 0, opI32LtS, opIf, blockVoid, opI32Const)
	b = sleb(b, int64(refill))
	b = append(b, opGlobSet)
	b = uleb(b, uint64(g))
	b = append(b, opLoop, blockVoid, opEnd, opEnd)
	return b
}
