// Package abifuzz is a guest-driven fuzzer of fennec's whole host ABI. From
// a byte string it generates a WebAssembly module whose entrypoint calls a
// sequence of the host's imported functions (every function of every
// built-in group: core, tensor with its compression functions, privacy with
// DP and HE) with chosen arguments: constants of every parameter type,
// pointers into, across the end of and outside the guest's memory, lengths
// that are huge or negative, handles returned by earlier calls (kept in
// locals) and forged from them, memory.grow, bounded and unbounded loops,
// and straight-line repetitions of host calls. Harness runs the module
// through the real runtime (runtime.Engine, a manifest with small quotas and
// a short deadline) and checks what the sandbox promises: no host panic, no
// call past its deadline, host memory within the quotas plus a fixed margin,
// an engine that keeps serving, and the ABI's contracts the guest can see
// (result codes, aliasing, ranges), which the generated guest checks itself.
//
// FuzzABI (abifuzz_test.go) is the native Go fuzz target; scripts/abifuzz.sh
// runs it for a given time. The generator is deterministic: the same bytes
// always give the same module, so a failing input reproduces.
//
// Design choices. The fuzzer drives the host from a real guest rather than
// calling the Go host functions directly, so that what is tested is what a
// module reaches: the runtime's capability checks, wazero's host-call path,
// instance pooling, deadlines and traps. Programs are fixed-size 8-byte
// operations whose every choice is an index modulo a table of well-formed
// and hostile values, so every input is a valid module and a one-byte
// mutation changes one argument. Contracts the host must keep (result codes,
// no aliased out, ranges inside memory) are checked by the generated guest
// itself, which sees the results, and reported as a status the harness
// decodes. The memory check allows the quotas plus a fixed margin for the Go
// collector's headroom rather than a tight bound, which would flag garbage
// the collector has not yet reclaimed.
package abifuzz

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/tetratelabs/wazero/api"
)

// Program is a generated guest and how to call it.
type Program struct {
	Data    []byte // the bytes it was generated from
	Wasm    []byte
	Dataset string // CallOptions.Dataset of the call
	HERound int    // > 0: the hub collects an HE round of this many values
	HEPeer  bool   // another party's update is in the round before the call
	Input   []byte // the entrypoint's input
	Listing []string
}

// String lists the program, one line per operation, for failure reports.
func (p *Program) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset=%q he_round=%d he_peer=%v input=%d bytes\n", p.Dataset, p.HERound, p.HEPeer, len(p.Input))
	for i, l := range p.Listing {
		fmt.Fprintf(&b, "%3d  %s\n", i, l)
	}
	return b.String()
}

// hostFunc is one imported function.
type hostFunc struct {
	module, name string
	params       []api.ValueType
	results      []api.ValueType
}

// funcs are every host function of the built-in groups, in import order:
// a function added to hostfuncs is fuzzed without a change here.
var funcs = func() []hostFunc {
	var fs []hostFunc
	for _, g := range hostfuncs.Builtin() {
		for _, f := range g.Funcs {
			fs = append(fs, hostFunc{g.Module, f.Name, f.Params, f.Results})
		}
	}
	return fs
}()

func funcIndex(module, name string) int {
	for i, f := range funcs {
		if f.module == module && f.name == name {
			return i
		}
	}
	panic("abifuzz: no host function " + module + "." + name)
}

// Datasets the harness's ledger knows: "big" has a budget that does not run
// out, "tiny" one that does, "nobudget" none; "" names no dataset.
var datasets = []string{"big", "tiny", "nobudget", ""}

// Locals of the entrypoint (local 0 is its in_len parameter).
const (
	regBase   = 1               // r0..r7: results of calls, handles
	nRegs     = 8               //
	loopBase  = 9               // loop counters, one per nesting depth
	maxDepth  = 4               //
	tmpBase   = 13              // t0..t8: the arguments of the current call, by position
	nTmps     = 9               // the most parameters a host function takes (tensor.adam)
	resLocal  = tmpBase + nTmps // the current call's result
	numLocals = resLocal
)

// Guest memory layout (the memory has 1 to 4 pages at the start).
const (
	shapeAt = 256   // OpNew writes shapes here
	msgAt   = 1024  // a contract violation's message
	dataAt  = 4096  // OpNew's tensor data, OpStore's default target
	bigAt   = 65536 // HE ciphertexts (page 1)
	opBytes = 8     // every operation is 8 bytes
	maxOps  = 128   //
	maxCode = 96 << 10
)

var (
	i32Table = []int32{0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 63, 64, 255, 256, 4095, 4096,
		65535, 65536, 65532, 131072, 1 << 20, 1 << 24, 0x3fffffff, 0x7ffffffe, math.MaxInt32,
		math.MinInt32, -1, -2, -4096, -16}
	f32Table = []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 2, 3, -3, 100, -100, 1e-3, 1e3,
		1e-10, 1e10, 1e-30, 1e30, math.MaxFloat32, -math.MaxFloat32,
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(1), math.Float32frombits(2), math.Float32frombits(3),
		math.Float32frombits(0x007fffff), math.Float32frombits(0x00800000), 1e-38, 0.1, 127, 128, -0.5, 4}
	f64Table = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 2, 1e-5, 1e-6, 0.1, 0.999999, 1.5, 10,
		1e5, 1e9, 1e-300, 1e300, math.MaxFloat64, 5e-324, 2.2250738585072014e-308, 1e-320,
		math.NaN(), math.Inf(1), math.Inf(-1),
		1.401298464324817e-45, 2.8e-45, 4.203895392974451e-45, 1e-45, 1e-44,
		1.1754942106924411e-38, 1e-38, 1e-40, 3}
	dimTable   = []int32{0, 1, 2, 3, 4, 5, 7, 8, 10, 16, 31, 32, 64, 100, 128, 256, 512, 590, 1000, 1024, 2048, 4096, 16384, 65536, 1 << 20, 1 << 21, 1 << 22, 1 << 30, math.MaxInt32, -1, 1<<20 + 1<<19, 9}
	storeOffs  = []int32{dataAt, 0, shapeAt, 8192, 32768, 65536, 65532, 131072, 196608, 262140, 4100, 16384}
	storeCount = []int32{1, 2, 3, 4, 8, 16, 64, 256, 1024, 4096, 16384, 65536}
	growTable  = []int32{0, 1, 2, 4, 16, 32, 64, 1024, 65535, 65536, -1, 3}
	loopTable  = []int32{2, 3, 10, 100, 1000, 7, 5, math.MaxInt32}
	spinTable  = []int32{1000, 100000, 1_000_000, 10, 100, 1 << 20, 5000, -1}
	heCapTable = []int32{0, 1 << 10, 60000, 65536, 3 * 65536, math.MaxInt32, -1, 1 << 20}
	heLens     = []int{1, 2, 16, 1024, 1500, 4096, 3, 1 << 20}
	inputLens  = []int{0, 1, 4, 64, 4096, 65536, 1 << 20, 16}
)

// noAlias lists, per function, (out, input) parameter pairs for which the
// ABI says an out equal to the input is EINVAL (docs/ABI.md, "Outputs" and
// "Model compression"). unary, axpy and the DP releases may work in place.
var noAlias = map[string][][2]int{
	"matmul":       {{3, 0}, {3, 1}},
	"binary":       {{3, 1}, {3, 2}},
	"unary_grad":   {{4, 1}, {4, 2}},
	"softmax":      {{3, 0}},
	"reduce":       {{4, 1}},
	"argmax":       {{2, 0}},
	"loss":         {{4, 1}, {4, 2}},
	"quant_scales": {{3, 0}},
	"dequantize":   {{3, 1}},
	"matmul_i8":    {{3, 0}, {3, 2}},
	"kl_distill":   {{4, 0}, {4, 1}},
}

// ranges lists, per function, (ptr, len) parameter pairs whose whole range
// must lie inside guest memory for the call to succeed (docs/ABI.md: "EMEM
// range outside memory or negative length").
var ranges = map[string][][2]int{
	"output": {{0, 1}},
	"fail":   {{0, 1}},
	"log":    {{1, 2}},
	"he_add": {{0, 1}},
}

type chunk struct {
	code  []byte
	depth int // loops nested inside
	text  string
}

type gen struct {
	strict bool // calls that keep their result must succeed (seed checks)
	r      []byte
	pos    int
	chunks []chunk
	size   int
}

func (g *gen) b() byte {
	if g.pos >= len(g.r) {
		g.pos++
		return 0
	}
	v := g.r[g.pos]
	g.pos++
	return v
}

// Generate builds the program that data describes. Every input gives a
// valid module: bytes past the end read as zero, every choice is taken
// modulo its table.
//
// Layout: a 4-byte header (dataset, HE round, initial memory pages, input
// length) and then operations of 8 bytes each, an opcode and 7 argument
// bytes (see the op* functions).
func Generate(data []byte) *Program { return generate(data, false) }

// generate is Generate; strict makes every call whose result goes to a
// register check that it succeeded (the seeds' self-check).
func generate(data []byte, strict bool) *Program {
	g := &gen{r: data, strict: strict}
	h0, h1, h2, h3 := g.b(), g.b(), g.b(), g.b()
	p := &Program{Data: data, Dataset: datasets[h0&3]}
	if h0&4 != 0 {
		p.HERound = heLens[int(h1)%len(heLens)]
		p.HEPeer = h0&8 != 0
	}
	pages := uint32(1 + (h0>>4)&3)
	if n := inputLens[int(h2)%len(inputLens)]; n > 0 {
		p.Input = make([]byte, n)
		for i := range p.Input {
			p.Input[i] = h3 + byte(i)
		}
	}
	for op := 0; op < maxOps && g.pos < len(data); op++ {
		var a [opBytes]byte
		for i := range a {
			a[i] = g.b()
		}
		g.op(a)
	}
	var body []byte
	for _, c := range g.chunks {
		body = append(body, c.code...)
		p.Listing = append(p.Listing, c.text)
	}
	body = append(body, wasmtest.I32Const(0)...)
	p.Wasm = encodeModule(pages, body)
	return p
}

// encodeModule returns a module that imports every host function, has a
// memory of pages pages, and exports "run" with body (locals as listed
// above) and "noop".
func encodeModule(pages uint32, body []byte) []byte {
	m := wasmtest.Module{MemoryPages: pages}
	for _, f := range funcs {
		m.Imports = append(m.Imports, wasmtest.Import{Module: f.module, Name: f.name,
			Sig: wasmtest.Sig{Params: types(f.params), Results: types(f.results)}})
	}
	locals := make([]byte, numLocals)
	for i := range locals {
		locals[i] = wasmtest.I32
	}
	entry := wasmtest.Sig{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}
	m.Funcs = []wasmtest.Func{
		{Sig: entry, Locals: locals, Body: body, Export: "run"},
		{Sig: entry, Body: wasmtest.I32Const(0), Export: "noop"},
	}
	return m.Encode()
}

func types(vs []api.ValueType) []byte {
	b := make([]byte, len(vs))
	for i, v := range vs {
		b[i] = v // api.ValueType is the binary encoding
	}
	return b
}

func (g *gen) add(c chunk) {
	if g.size+len(c.code) > maxCode {
		return // keep modules small enough to compile quickly
	}
	g.size += len(c.code)
	g.chunks = append(g.chunks, c)
}

// op decodes one operation. The opcode's low 4 bits choose it; calls of
// host functions have the most weight.
func (g *gen) op(a [opBytes]byte) {
	switch a[0] & 15 {
	case 0, 1, 2, 3, 4, 5:
		g.opCall(a)
	case 6, 7:
		g.opNew(a)
	case 8, 9:
		g.opStore(a)
	case 10:
		g.opRepeat(a)
	case 11:
		g.opLoop(a)
	case 12:
		g.opGrow(a)
	case 13:
		g.opSpin(a)
	case 14:
		g.opHE(a)
	case 15:
		g.opSet(a)
	}
}

// Instruction helpers.
var (
	opIf       = []byte{0x04, 0x40}
	opLoop     = []byte{0x03, 0x40}
	opEnd      = []byte{0x0b}
	opReturn   = []byte{0x0f}
	opDrop     = []byte{0x1a}
	opMemSize  = []byte{0x3f, 0x00}
	opMemGrow  = []byte{0x40, 0x00}
	opMemCopy  = []byte{0xfc, 0x0a, 0x00, 0x00}
	opI32Store = []byte{0x36, 0x02, 0x00}
	opI32Eq    = []byte{0x46}
	opI32LtS   = []byte{0x48}
	opI32GtS   = []byte{0x4a}
	opI32GeS   = []byte{0x4e}
	opI32Add   = []byte{0x6a}
	opI32Sub   = []byte{0x6b}
	opI32And   = []byte{0x71}
	opI32Or    = []byte{0x72}
	opI32Xor   = []byte{0x73}
	opI32Shl   = []byte{0x74}
	opI64GtU   = []byte{0x56}
	opI64Add   = []byte{0x7c}
	opI64Shl   = []byte{0x86}
	opI64ExtU  = []byte{0xad}
	opBrIf0    = []byte{0x0d, 0x00}
)

func localSet(i int) []byte { return append([]byte{0x21}, wasmtest.ULEB(uint64(i))...) }
func localTee(i int) []byte { return append([]byte{0x22}, wasmtest.ULEB(uint64(i))...) }
func i64Const(v int64) []byte {
	return append([]byte{0x42}, wasmtest.SLEB(v)...)
}
func f32Const(v float32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{0x43}, math.Float32bits(v))
}
func f64Const(v float64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{0x44}, math.Float64bits(v))
}

// memEnd pushes the memory's current size in bytes (as an i32; 65536 pages
// wrap to 0, which only makes a pointer more hostile).
func memEnd() []byte {
	return wasmtest.Cat(opMemSize, wasmtest.I32Const(16), opI32Shl)
}

// i32Arg is the expression an argument selector stands for: the top 3 bits
// choose the kind, the low 5 an index.
func i32Arg(sel byte) ([]byte, string) {
	idx := int(sel & 31)
	switch sel >> 5 {
	case 0: // a register: a handle or an earlier result
		r := idx % nRegs
		return wasmtest.LocalGet(regBase + r), fmt.Sprintf("r%d", r)
	case 1: // a small integer: ops, dtypes, flags, axes, ranks
		v := int32(idx) - 8
		return wasmtest.I32Const(v), fmt.Sprint(v)
	case 2: // an interesting constant
		v := i32Table[idx]
		return wasmtest.I32Const(v), fmt.Sprint(v)
	case 3: // a pointer into the first page
		v := int32(idx) * 256
		return wasmtest.I32Const(v), fmt.Sprintf("@%d", v)
	case 4: // a pointer a few bytes before (or at) the end of memory
		d := int32(idx) * 4
		return wasmtest.Cat(memEnd(), wasmtest.I32Const(d), opI32Sub), fmt.Sprintf("@end-%d", d)
	case 5: // a handle forged from a register
		r := idx % nRegs
		var op []byte
		var k int32
		var s string
		switch idx / nRegs {
		case 0:
			op, k, s = opI32Add, 1, "+1"
		case 1:
			op, k, s = opI32Sub, 1, "-1"
		case 2:
			op, k, s = opI32Xor, 1<<15, "^slot"
		default:
			op, k, s = opI32Xor, 0x2f1b, "^gen"
		}
		return wasmtest.Cat(wasmtest.LocalGet(regBase+r), wasmtest.I32Const(k), op), fmt.Sprintf("r%d%s", r, s)
	case 6: // a pointer into the data region or beyond the first page
		v := int32(dataAt + idx*2048)
		return wasmtest.I32Const(v), fmt.Sprintf("@%d", v)
	default: // the input length, or a pointer into the HE region
		if idx == 0 {
			return wasmtest.LocalGet(0), "in_len"
		}
		v := int32(bigAt + (idx-1)*4096)
		return wasmtest.I32Const(v), fmt.Sprintf("@%d", v)
	}
}

// violation returns code that ends the entrypoint with the status that
// says which contract of host function fi (an index into funcs) it saw
// broken; Violation decodes it.
func violation(kind, fi int) []byte {
	return wasmtest.Cat(wasmtest.I32Const(int32(violationBase|kind<<8|fi&0xff)), opReturn)
}

// Contract kinds in a violation status.
const (
	violationBase = 0x77 << 24
	kindCode      = 1    // a result below -12
	kindAlias     = 0x10 // | pair index in noAlias
	kindRange     = 0x20 // | pair index in ranges
	kindFailed    = 2    // an error where a strict program wants success
	kindSelfTest  = 0xff
)

// IsViolation reports whether an entrypoint status is a contract violation
// the generated guest saw.
func IsViolation(status int32) bool { return uint32(status)>>24 == violationBase>>24 }

// DescribeViolation says which contract a violation status stands for.
func DescribeViolation(status int32) string {
	kind, fi := int(status>>8&0xff), int(status&0xff)
	if fi >= len(funcs) {
		return fmt.Sprintf("status %#x", uint32(status))
	}
	f := funcs[fi]
	name := f.module + "." + f.name
	switch {
	case kind == kindCode:
		return name + " returned a code outside -12..-1"
	case kind&0xf0 == kindAlias && kind&0xf < len(noAlias[f.name]):
		pr := noAlias[f.name][kind&0xf]
		return fmt.Sprintf("%s succeeded with out (param %d) equal to input param %d, which the ABI makes EINVAL", name, pr[0], pr[1])
	case kind&0xf0 == kindRange && kind&0xf < len(ranges[f.name]):
		pr := ranges[f.name][kind&0xf]
		return fmt.Sprintf("%s succeeded with a range (params %d, %d) outside guest memory or of negative length, which the ABI makes EMEM", name, pr[0], pr[1])
	case kind == kindFailed:
		return name + " failed in a strict program"
	case kind == kindSelfTest:
		return "self-test"
	}
	return fmt.Sprintf("status %#x", uint32(status))
}

// call emits a call of f with the i32 arguments in t0.. (already set) and
// constants for the float ones, stores the result in resLocal, checks the
// contracts and copies the result to register dest (or drops it, dest < 0).
func (g *gen) call(fi int, floats map[int][]byte, dest int) []byte {
	f := funcs[fi]
	var c []byte
	for k, t := range f.params {
		if t == api.ValueTypeI32 {
			c = wasmtest.Cat(c, wasmtest.LocalGet(tmpBase+k))
		} else {
			c = wasmtest.Cat(c, floats[k])
		}
	}
	c = wasmtest.Cat(c, wasmtest.Call(fi), localSet(resLocal))
	// Every result is a handle, a count, a length or one of the ABI's codes.
	c = wasmtest.Cat(c, wasmtest.LocalGet(resLocal), wasmtest.I32Const(-12), opI32LtS, opIf,
		violation(kindCode, fi), opEnd)
	for j, pr := range noAlias[f.name] {
		out, in := tmpBase+pr[0], tmpBase+pr[1]
		c = wasmtest.Cat(c,
			wasmtest.LocalGet(out), wasmtest.LocalGet(in), opI32Eq,
			wasmtest.LocalGet(out), wasmtest.I32Const(0), opI32GtS, opI32And,
			wasmtest.LocalGet(resLocal), wasmtest.I32Const(0), opI32GeS, opI32And, opIf,
			violation(kindAlias|j, fi), opEnd)
	}
	for j, pr := range ranges[f.name] {
		ptr, n := tmpBase+pr[0], tmpBase+pr[1]
		c = wasmtest.Cat(c,
			wasmtest.LocalGet(n), wasmtest.I32Const(0), opI32LtS,
			wasmtest.LocalGet(ptr), opI64ExtU, wasmtest.LocalGet(n), opI64ExtU, opI64Add,
			opMemSize, opI64ExtU, i64Const(16), opI64Shl, opI64GtU, opI32Or,
			wasmtest.LocalGet(resLocal), wasmtest.I32Const(0), opI32GeS, opI32And, opIf,
			violation(kindRange|j, fi), opEnd)
	}
	if dest >= 0 && g.strict {
		c = wasmtest.Cat(c, wasmtest.LocalGet(resLocal), wasmtest.I32Const(0), opI32LtS, opIf,
			violation(kindFailed, fi), opEnd)
	}
	if dest >= 0 {
		c = wasmtest.Cat(c, wasmtest.LocalGet(resLocal), localSet(regBase+dest))
	}
	return c
}

// opCall: [op, func, dest, sel0..sel4] calls any host function. dest's top
// bit drops the result; each selector is an i32Arg, or an index into the
// f32/f64 tables for float parameters.
func (g *gen) opCall(a [opBytes]byte) {
	fi := int(a[1]) % len(funcs)
	f := funcs[fi]
	dest := int(a[2]) % nRegs
	if a[2]&0x80 != 0 {
		dest = -1
	}
	var c []byte
	floats := map[int][]byte{}
	var args []string
	for k, t := range f.params {
		sel := a[3+k%5]
		switch t {
		case api.ValueTypeI32:
			e, s := i32Arg(sel)
			c = wasmtest.Cat(c, e, localSet(tmpBase+k))
			args = append(args, s)
		case api.ValueTypeF32:
			v := f32Table[int(sel)%len(f32Table)]
			floats[k] = f32Const(v)
			args = append(args, fmt.Sprintf("%g(f32)", v))
		case api.ValueTypeF64:
			v := f64Table[int(sel)%len(f64Table)]
			floats[k] = f64Const(v)
			args = append(args, fmt.Sprintf("%g", v))
		default: // i64: none in ABI v1; pass a constant
			floats[k] = i64Const(int64(i32Table[int(sel)%len(i32Table)]))
			args = append(args, "i64")
		}
	}
	c = wasmtest.Cat(c, g.call(fi, floats, dest))
	to := "_"
	if dest >= 0 {
		to = fmt.Sprintf("r%d", dest)
	}
	g.add(chunk{code: c, text: fmt.Sprintf("%s = %s.%s(%s)", to, f.module, f.name, strings.Join(args, ", "))})
}

// opNew: [op, dest, dtype, rank, dim0..dim3] creates a tensor with
// tensor.new: dtype's low 2 bits pick f32, i8, i32, f32; its top bit copies
// the data from dataAt (len = the byte size) instead of zero-filling.
func (g *gen) opNew(a [opBytes]byte) {
	dest := int(a[1]) % nRegs
	dt := [4]int32{1, 2, 3, 1}[a[2]&3]
	withData := a[2]&0x80 != 0
	rank := int(a[3]) % 5
	var c []byte
	elems := int64(1)
	dims := make([]string, rank)
	for i := 0; i < rank; i++ {
		d := dimTable[int(a[4+i])%len(dimTable)]
		elems *= int64(d)
		dims[i] = fmt.Sprint(d)
		c = wasmtest.Cat(c, wasmtest.I32Const(int32(shapeAt+4*i)), wasmtest.I32Const(d), opI32Store)
	}
	var ptr, n int32
	if withData {
		size := int64(4)
		if dt == 2 {
			size = 1
		}
		ptr, n = dataAt, int32(elems*size) // wraps for huge shapes: more hostility
	}
	for k, v := range []int32{dt, shapeAt, int32(rank), ptr, n} {
		c = wasmtest.Cat(c, wasmtest.I32Const(v), localSet(tmpBase+k))
	}
	c = wasmtest.Cat(c, g.call(funcIndex(hostfuncs.ModuleTensor, "new"), nil, dest))
	g.add(chunk{code: c, text: fmt.Sprintf("r%d = new(dtype %d, [%s], data %d+%d)", dest, dt, strings.Join(dims, " "), ptr, n)})
}

// opStore: [op, offset, count, kind, b0..b3] fills count 4-byte words at
// offset with one pattern: kind 0 the raw bytes b0..b3, 1 f32Table[b0],
// 2 the integer b0-8 (class indices, dims). The first word is stored, then
// doubled with memory.copy.
func (g *gen) opStore(a [opBytes]byte) {
	off := storeOffs[int(a[1])%len(storeOffs)]
	count := storeCount[int(a[2])%len(storeCount)]
	var pat uint32
	var desc string
	switch a[3] % 3 {
	case 0:
		pat = binary.LittleEndian.Uint32(a[4:])
		desc = fmt.Sprintf("0x%08x", pat)
	case 1:
		v := f32Table[int(a[4])%len(f32Table)]
		pat = math.Float32bits(v)
		desc = fmt.Sprintf("%g(f32)", v)
	default:
		v := int32(a[4]) - 8
		pat = uint32(v)
		desc = fmt.Sprint(v)
	}
	c := wasmtest.Cat(wasmtest.I32Const(off), wasmtest.I32Const(int32(pat)), opI32Store)
	total := count * 4
	for n := int32(4); n < total; n *= 2 {
		l := min(n, total-n)
		c = wasmtest.Cat(c, wasmtest.I32Const(off+n), wasmtest.I32Const(off), wasmtest.I32Const(l), opMemCopy)
	}
	g.add(chunk{code: c, text: fmt.Sprintf("store %d x %s at @%d", count, desc, off)})
}

// last merges the last k chunks into one (k at least 1, at most all).
func (g *gen) last(k int) (chunk, bool) {
	if len(g.chunks) == 0 {
		return chunk{}, false
	}
	k = min(k, len(g.chunks))
	tail := g.chunks[len(g.chunks)-k:]
	var m chunk
	var texts []string
	for _, c := range tail {
		m.code = append(m.code, c.code...)
		m.depth = max(m.depth, c.depth)
		texts = append(texts, c.text)
	}
	m.text = strings.Join(texts, "; ")
	g.chunks = g.chunks[:len(g.chunks)-k]
	for _, c := range tail {
		g.size -= len(c.code)
	}
	return m, true
}

// opRepeat: [op, times, k] repeats the last k (1-4) operations 2-33 times
// in straight-line code: back-to-back host calls with no loop in between.
func (g *gen) opRepeat(a [opBytes]byte) {
	times := 2 + int(a[1])%32
	m, ok := g.last(1 + int(a[2])%4)
	if !ok {
		return
	}
	r := chunk{depth: m.depth, text: fmt.Sprintf("%d times { %s }", times, m.text)}
	for i := 0; i < times && g.size+len(r.code)+len(m.code) <= maxCode; i++ {
		r.code = append(r.code, m.code...)
	}
	g.add(r)
}

// loop wraps body in a counted loop using the counter of its depth.
func loop(body chunk, n int32) (chunk, bool) {
	if body.depth >= maxDepth {
		return body, false
	}
	ctr := loopBase + body.depth
	c := wasmtest.Cat(wasmtest.I32Const(n), localSet(ctr), opLoop, body.code,
		wasmtest.LocalGet(ctr), wasmtest.I32Const(1), opI32Sub, localTee(ctr), opBrIf0, opEnd)
	return chunk{code: c, depth: body.depth + 1}, true
}

// opLoop: [op, iterations, k] runs the last k (1-4) operations in a loop
// (each iteration passes wazero's termination check).
func (g *gen) opLoop(a [opBytes]byte) {
	n := loopTable[int(a[1])%len(loopTable)]
	m, ok := g.last(1 + int(a[2])%4)
	if !ok {
		return
	}
	l, ok := loop(m, n)
	if !ok {
		g.add(m)
		return
	}
	l.text = fmt.Sprintf("loop %d { %s }", n, m.text)
	g.add(l)
}

// opGrow: [op, delta, dest] grows memory (delta -1 asks for 4 GiB).
func (g *gen) opGrow(a [opBytes]byte) {
	d := growTable[int(a[1])%len(growTable)]
	dest := int(a[2]) % nRegs
	g.add(chunk{code: wasmtest.Cat(wasmtest.I32Const(d), opMemGrow, localSet(regBase+dest)),
		text: fmt.Sprintf("r%d = memory.grow(%d)", dest, d)})
}

// opSpin: [op, iterations] spins without host calls (-1: about 4e9 times,
// past any deadline).
func (g *gen) opSpin(a [opBytes]byte) {
	n := spinTable[int(a[1])%len(spinTable)]
	l, _ := loop(chunk{}, n)
	l.text = fmt.Sprintf("spin %d", uint32(n))
	g.add(l)
}

// opHE: [op, src, cap, dest] encrypts register src with he_encrypt into
// bigAt (capacity from heCapTable) and hands the result to he_add.
func (g *gen) opHE(a [opBytes]byte) {
	src := int(a[1]) % nRegs
	cp := heCapTable[int(a[2])%len(heCapTable)]
	dest := int(a[3]) % nRegs
	enc, add := funcIndex(hostfuncs.ModulePrivacy, "he_encrypt"), funcIndex(hostfuncs.ModulePrivacy, "he_add")
	c := wasmtest.Cat(wasmtest.LocalGet(regBase+src), localSet(tmpBase), wasmtest.I32Const(bigAt), localSet(tmpBase+1),
		wasmtest.I32Const(cp), localSet(tmpBase+2), g.call(enc, nil, dest),
		wasmtest.I32Const(bigAt), localSet(tmpBase), wasmtest.LocalGet(regBase+dest), localSet(tmpBase+1), g.call(add, nil, -1))
	g.add(chunk{code: c, text: fmt.Sprintf("r%d = he_encrypt(r%d, @%d, %d); he_add(@%d, r%d)", dest, src, bigAt, cp, bigAt, dest)})
}

// opSet: [op, reg, sel] sets a register to an argument expression.
func (g *gen) opSet(a [opBytes]byte) {
	r := int(a[1]) % nRegs
	e, s := i32Arg(a[2])
	g.add(chunk{code: wasmtest.Cat(e, localSet(regBase+r)), text: fmt.Sprintf("r%d = %s", r, s)})
}
