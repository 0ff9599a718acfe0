// Package wasmtest assembles small WebAssembly binaries in tests, so that
// hostile guests (infinite loops, runaway recursion, raw calls of host
// functions with forged pointers and handles) are built from readable Go
// source with no external tool. It encodes only what those tests need: a
// type, import, function, memory, export and code section.
package wasmtest

import "encoding/binary"

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
	F32 byte = 0x7d
	F64 byte = 0x7c
)

// Common opcodes.
const (
	OpUnreachable byte = 0x00
	OpLoop        byte = 0x03
	OpBr          byte = 0x0c
	OpEnd         byte = 0x0b
	OpCall        byte = 0x10
	OpDrop        byte = 0x1a
	OpLocalGet    byte = 0x20
	OpI32Const    byte = 0x41
	OpI32Add      byte = 0x6a
	OpBlockVoid   byte = 0x40
)

// Sig is a function signature.
type Sig struct{ Params, Results []byte }

// Import is an imported function.
type Import struct {
	Module, Name string
	Sig          Sig
}

// Func is a defined function; Body is the instruction bytes without the
// locals prefix or final end (both added). Export, when set, exports it.
type Func struct {
	Sig    Sig
	Locals []byte // one local of each listed type
	Body   []byte
	Export string
}

// Module describes a module to encode.
type Module struct {
	Imports []Import
	Funcs   []Func
	// MemoryPages > 0 defines and exports a memory named "memory" with that
	// minimum size; MaxPages > 0 also sets a maximum.
	MemoryPages, MaxPages uint32
}

// ULEB encodes v as unsigned LEB128.
func ULEB(v uint64) []byte {
	var b []byte
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

// SLEB encodes v as signed LEB128.
func SLEB(v int64) []byte {
	var b []byte
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

// I32Const returns the instruction bytes of i32.const v.
func I32Const(v int32) []byte { return append([]byte{OpI32Const}, SLEB(int64(v))...) }

// Call returns the instruction bytes of call idx (imports first, then funcs).
func Call(idx int) []byte { return append([]byte{OpCall}, ULEB(uint64(idx))...) }

// LocalGet returns the bytes of local.get idx.
func LocalGet(idx int) []byte { return append([]byte{OpLocalGet}, ULEB(uint64(idx))...) }

// Cat concatenates instruction fragments.
func Cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func name(s string) []byte { return append(ULEB(uint64(len(s))), s...) }

func vec(n int, body []byte) []byte { return append(ULEB(uint64(n)), body...) }

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, ULEB(uint64(len(body)))...), body...)
}

// Encode returns the binary module.
func (m Module) Encode() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var sigs []Sig
	sigIndex := func(s Sig) int {
		for i, t := range sigs {
			if string(t.Params) == string(s.Params) && string(t.Results) == string(s.Results) {
				return i
			}
		}
		sigs = append(sigs, s)
		return len(sigs) - 1
	}
	var imp []byte
	for _, im := range m.Imports {
		imp = append(imp, name(im.Module)...)
		imp = append(imp, name(im.Name)...)
		imp = append(imp, 0x00)
		imp = append(imp, ULEB(uint64(sigIndex(im.Sig)))...)
	}
	var fn []byte
	for _, f := range m.Funcs {
		fn = append(fn, ULEB(uint64(sigIndex(f.Sig)))...)
	}
	var types []byte
	for _, s := range sigs {
		types = append(types, 0x60)
		types = append(types, vec(len(s.Params), s.Params)...)
		types = append(types, vec(len(s.Results), s.Results)...)
	}
	out = append(out, section(1, vec(len(sigs), types))...)
	if len(m.Imports) > 0 {
		out = append(out, section(2, vec(len(m.Imports), imp))...)
	}
	if len(m.Funcs) > 0 {
		out = append(out, section(3, vec(len(m.Funcs), fn))...)
	}
	if m.MemoryPages > 0 {
		var mem []byte
		if m.MaxPages > 0 {
			mem = append([]byte{0x01}, ULEB(uint64(m.MemoryPages))...)
			mem = append(mem, ULEB(uint64(m.MaxPages))...)
		} else {
			mem = append([]byte{0x00}, ULEB(uint64(m.MemoryPages))...)
		}
		out = append(out, section(5, vec(1, mem))...)
	}
	var exp []byte
	nexp := 0
	if m.MemoryPages > 0 {
		exp = append(exp, name("memory")...)
		exp = append(exp, 0x02, 0x00)
		nexp++
	}
	for i, f := range m.Funcs {
		if f.Export == "" {
			continue
		}
		exp = append(exp, name(f.Export)...)
		exp = append(exp, 0x00)
		exp = append(exp, ULEB(uint64(len(m.Imports)+i))...)
		nexp++
	}
	if nexp > 0 {
		out = append(out, section(7, vec(nexp, exp))...)
	}
	if len(m.Funcs) > 0 {
		var code []byte
		for _, f := range m.Funcs {
			var body []byte
			body = append(body, ULEB(uint64(len(f.Locals)))...)
			for _, l := range f.Locals {
				body = append(body, 0x01, l)
			}
			body = append(body, f.Body...)
			body = append(body, OpEnd)
			code = append(code, ULEB(uint64(len(body)))...)
			code = append(code, body...)
		}
		out = append(out, section(10, vec(len(m.Funcs), code))...)
	}
	return out
}

// Forwarder returns a module that imports each given function and exports,
// for each, a function of the same signature named "call_<module>_<name>"
// that forwards its parameters to the import and returns its results. Tests
// use it to call host functions with arbitrary (hostile) arguments. It also
// defines and exports a memory of pages pages and an entrypoint "noop"
// (i32)->i32 returning 0.
func Forwarder(pages uint32, imports ...Import) []byte {
	m := Module{Imports: imports, MemoryPages: pages}
	for i, im := range imports {
		var body []byte
		for p := range im.Sig.Params {
			body = append(body, LocalGet(p)...)
		}
		body = append(body, Call(i)...)
		m.Funcs = append(m.Funcs, Func{Sig: im.Sig, Body: body, Export: "call_" + im.Module + "_" + im.Name})
	}
	m.Funcs = append(m.Funcs, Func{Sig: Sig{Params: []byte{I32}, Results: []byte{I32}}, Body: I32Const(0), Export: "noop"})
	return m.Encode()
}

// LE32 encodes int32 values little endian, for shapes written to memory.
func LE32(vs ...int32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}
