package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// The exp kernels evaluate, eight floats per ymm register and two registers
// per loop iteration (interleaved so that the polynomial's dependency chains
// overlap), the same algorithm as the scalar exp32 in gpu/math32.go:
//
//	t = clamp(x, -104, hi)              hi = ln(MaxFloat32)
//	n = round(t*log2e)                  (VROUNDPS, half to even)
//	r = t - n*c1 - n*c2                 Cody-Waite, |r| <= ln2/2
//	e = 1 + r + r^2*P(r)                Cephes expf degree-6 polynomial
//	e^x = e * 2^(n>>1) * 2^(n-(n>>1))   two exponent-bit scalings, both normal
//
// Splitting 2^n in two keeps n = 128 (x just below hi) and n down to -150
// (subnormal results) exact without a branch: e*2^n1 is exact and the
// second product rounds once. x >= hi (including +Inf) and NaN take x+Inf
// (so +Inf, and NaN stays NaN) through a blend; x < -104 gives 0, as e^x
// rounds to 0 in float32 there.
//
// Constants live in one read-only table of 8-wide rows, used as memory
// operands (loads are cheaper than spilling the 14 constants to registers).

type expConst struct {
	name string
	bits uint32
}

func f32c(name string, v float64) expConst {
	return expConst{name, math.Float32bits(float32(v))}
}

var expConsts = []expConst{
	f32c("hi", 88.72283905206835),
	f32c("lo", -104),
	f32c("log2e", 1.44269504088896341),
	f32c("c1", 0.693359375),
	f32c("c2", -2.12194440e-4),
	f32c("p0", 1.9875691500e-4),
	f32c("p1", 1.3981999507e-3),
	f32c("p2", 8.3334519073e-3),
	f32c("p3", 4.1665795894e-2),
	f32c("p4", 1.6666665459e-1),
	f32c("p5", 5.0000001201e-1),
	f32c("one", 1),
	{"inf", 0x7f800000},
	{"bias", 127},
	{"sign", 0x80000000},
	{"abs", 0x7fffffff},
	// tanh: beyond 9.1 tanh rounds to 1; below 0.625 the odd minimax
	// polynomial of Cephes tanhf, x + x^3 Q(x^2).
	f32c("t91", 9.1),
	f32c("tsmall", 0.625),
	f32c("q0", -5.70498872745e-3),
	f32c("q1", 2.06390887954e-2),
	f32c("q2", -5.37397155531e-2),
	f32c("q3", 1.33314422036e-1),
	f32c("q4", -3.33332819422e-1),
}

func constAddr(name string) string {
	for i, c := range expConsts {
		if c.name == name {
			return fmt.Sprintf("expconst<>+%d(SB)", 32*i)
		}
	}
	panic("asmgen: unknown constant " + name)
}

// stream is one ymm register's worth of work; its instructions are
// collected and interleaved with the other stream's.
type stream struct {
	lines []string
	reg   map[string]int
	off   int // byte offset of this stream's 8 floats
}

func (s *stream) p(format string, args ...any) {
	// {name} is a register of this stream, {c:name} a constant, {off} the
	// stream's memory offset.
	line := fmt.Sprintf(format, args...)
	for {
		i := strings.Index(line, "{")
		if i < 0 {
			break
		}
		j := strings.Index(line[i:], "}") + i
		key := line[i+1 : j]
		var rep string
		switch {
		case strings.HasPrefix(key, "c:"):
			rep = constAddr(key[2:])
		case strings.HasPrefix(key, "x:"): // the 128-bit half of a register
			rep = fmt.Sprintf("X%d", s.reg[key[2:]])
		case key == "off":
			rep = fmt.Sprint(s.off)
		default:
			r, ok := s.reg[key]
			if !ok {
				panic("asmgen: unknown register " + key)
			}
			rep = fmt.Sprintf("Y%d", r)
		}
		line = line[:i] + rep + line[j+1:]
	}
	s.lines = append(s.lines, line)
}

// expCore computes e^{in} into r; it clobbers in, t, p and q.
func (s *stream) expCore() {
	s.p("VMINPS {c:hi}, {in}, {t}") // NaN -> hi; fixed by the blend below
	s.p("VMAXPS {c:lo}, {t}, {t}")
	s.p("VMULPS {c:log2e}, {t}, {p}")
	s.p("VROUNDPS $0, {p}, {p}")
	s.p("VFNMADD231PS {c:c1}, {p}, {t}")
	s.p("VFNMADD231PS {c:c2}, {p}, {t}")
	s.p("VCVTPS2DQ {p}, {p}")
	s.p("VMOVUPS {c:p0}, {r}")
	for _, c := range []string{"p1", "p2", "p3", "p4", "p5"} {
		s.p("VFMADD213PS {c:%s}, {t}, {r}", c)
	}
	s.p("VMULPS {t}, {t}, {q}")
	s.p("VFMADD213PS {t}, {q}, {r}")
	s.p("VADDPS {c:one}, {r}, {r}")
	s.p("VPSRAD $1, {p}, {q}")
	s.p("VPSUBD {q}, {p}, {p}")
	s.p("VPADDD {c:bias}, {q}, {q}")
	s.p("VPSLLD $23, {q}, {q}")
	s.p("VPADDD {c:bias}, {p}, {p}")
	s.p("VPSLLD $23, {p}, {p}")
	s.p("VMULPS {q}, {r}, {r}")
	s.p("VMULPS {p}, {r}, {r}")
	s.p("VCMPPS $0x15, {c:hi}, {in}, {q}") // !(in < hi): too large or NaN
	s.p("VADDPS {c:inf}, {in}, {in}")
	s.p("VBLENDVPS {q}, {in}, {r}, {r}")
}

type expKernel struct {
	name, sig, frame string
	doc              string
	sum              bool             // accumulate the results in float64
	body             func(s *stream)  // loads from (SI), stores to (DI)
	regs             []map[string]int // per stream
	setup            []string
}

func genExp(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("")
	w("// expconst holds the kernels' constants, each repeated 8 times (one ymm).")
	for i, c := range expConsts {
		for k := 0; k < 8; k++ {
			w("DATA expconst<>+%d(SB)/4, $0x%08x", 32*i+4*k, c.bits)
		}
	}
	w("GLOBL expconst<>(SB), RODATA|NOPTR, $%d", 32*len(expConsts))

	regs5 := func(base int) map[string]int {
		return map[string]int{"in": base, "t": base + 1, "p": base + 2, "r": base + 3, "q": base + 4}
	}
	regs6 := func(base int) map[string]int {
		m := regs5(base + 1)
		m["x"] = base
		return m
	}
	regs7 := func(base int) map[string]int {
		m := regs6(base)
		m["a"] = base + 6
		return m
	}
	kernels := []expKernel{
		{
			name: "expAVX2", sig: "func expAVX2(dst, src *float32, n int)", frame: "$0-24",
			doc:  "dst[i] = e^src[i] for i < n; n is a multiple of 8.",
			regs: []map[string]int{regs5(0), regs5(5)},
			body: func(s *stream) {
				s.p("VMOVUPS {off}(SI), {in}")
				s.expCore()
				s.p("VMOVUPS {r}, {off}(DI)")
			},
		},
		{
			name: "expSumAVX2", sig: "func expSumAVX2(dst, src *float32, n int, bias float32) float64", frame: "$0-40",
			doc:   "dst[i] = e^(src[i]+bias) for i < n (a multiple of 8); returns the sum of dst in float64.",
			sum:   true,
			regs:  []map[string]int{regs5(0), regs5(5)},
			setup: []string{"VBROADCASTSS bias+24(FP), Y15", "VXORPD Y12, Y12, Y12", "VXORPD Y13, Y13, Y13"},
			body: func(s *stream) {
				s.p("VADDPS {off}(SI), Y15, {in}")
				s.expCore()
				s.p("VMOVUPS {r}, {off}(DI)")
				s.p("VCVTPS2PD {x:r}, {t}")
				s.p("VEXTRACTF128 $1, {r}, {x:q}")
				s.p("VCVTPS2PD {x:q}, {q}")
				s.p("VADDPD {t}, Y12, Y12")
				s.p("VADDPD {q}, Y13, Y13")
			},
		},
		{
			name: "sigmoidAVX2", sig: "func sigmoidAVX2(dst, src *float32, n int)", frame: "$0-24",
			doc:   "dst[i] = 1/(1+e^-src[i]) for i < n (a multiple of 8), as e/(1+e) or 1/(1+e) with\n// e = e^-|x|, so that neither sign overflows.",
			regs:  []map[string]int{regs6(0), regs6(6)},
			setup: []string{"VMOVUPS " + constAddr("one") + ", Y15"},
			body: func(s *stream) {
				s.p("VMOVUPS {off}(SI), {x}")
				s.p("VORPS {c:sign}, {x}, {in}") // -|x|
				s.expCore()
				s.p("VADDPS Y15, {r}, {t}")
				s.p("VDIVPS {t}, Y15, {t}")         // s = 1/(1+e)
				s.p("VMULPS {t}, {r}, {r}")         // e*s
				s.p("VBLENDVPS {x}, {r}, {t}, {t}") // x < 0 ? e*s : s
				s.p("VMOVUPS {t}, {off}(DI)")
			},
		},
		{
			name: "tanhAVX2", sig: "func tanhAVX2(dst, src *float32, n int)", frame: "$0-24",
			doc:   "dst[i] = tanh src[i] for i < n (a multiple of 8): 1 - 2/(e^{2|x|}+1) with x's sign,\n// or an odd polynomial for |x| < 0.625, where that formula would cancel.",
			regs:  []map[string]int{regs7(0), regs7(7)},
			setup: []string{"VMOVUPS " + constAddr("one") + ", Y14"},
			body: func(s *stream) {
				s.p("VMOVUPS {off}(SI), {x}")
				s.p("VANDPS {c:abs}, {x}, {a}")
				s.p("VMINPS {c:t91}, {a}, {in}")
				s.p("VADDPS {in}, {in}, {in}")
				s.expCore()
				s.p("VADDPS Y14, {r}, {r}")
				s.p("VDIVPS {r}, Y14, {r}")
				s.p("VADDPS {r}, {r}, {r}")
				s.p("VSUBPS {r}, Y14, {r}") // 1 - 2/(e+1)
				s.p("VANDPS {c:sign}, {x}, {q}")
				s.p("VORPS {q}, {r}, {r}")
				s.p("VMULPS {x}, {x}, {t}")
				s.p("VMOVUPS {c:q0}, {p}")
				for _, c := range []string{"q1", "q2", "q3", "q4"} {
					s.p("VFMADD213PS {c:%s}, {t}, {p}", c)
				}
				s.p("VMULPS {t}, {p}, {p}")
				s.p("VFMADD213PS {x}, {x}, {p}")
				s.p("VCMPPS $0x19, {c:tsmall}, {a}, {q}") // !(|x| >= 0.625): small or NaN
				s.p("VBLENDVPS {q}, {p}, {r}, {r}")
				s.p("VMOVUPS {r}, {off}(DI)")
			},
		},
	}
	for _, k := range kernels {
		w("")
		w("// %s", k.sig)
		w("// %s", k.doc)
		w("TEXT ·%s(SB), NOSPLIT, %s", k.name, k.frame)
		in := func(format string, args ...any) { w("\t"+format, args...) }
		in("MOVQ dst+0(FP), DI")
		in("MOVQ src+8(FP), SI")
		in("MOVQ n+16(FP), CX")
		for _, l := range k.setup {
			in("%s", l)
		}
		in("SHRQ $3, CX")
		in("MOVQ CX, BX")
		in("SHRQ $1, BX")
		in("JZ tail")
		w("loop2:")
		s0 := &stream{reg: k.regs[0], off: 0}
		s1 := &stream{reg: k.regs[1], off: 32}
		k.body(s0)
		k.body(s1)
		for i := range s0.lines {
			in("%s", s0.lines[i])
			in("%s", s1.lines[i])
		}
		in("ADDQ $64, SI")
		in("ADDQ $64, DI")
		in("DECQ BX")
		in("JNZ loop2")
		w("tail:")
		in("ANDQ $1, CX")
		in("JZ done")
		st := &stream{reg: k.regs[0], off: 0}
		k.body(st)
		for _, l := range st.lines {
			in("%s", l)
		}
		w("done:")
		if k.sum {
			in("VADDPD Y13, Y12, Y12")
			in("VEXTRACTF128 $1, Y12, X13")
			in("VADDPD X13, X12, X12")
			in("VPERMILPD $1, X12, X13")
			in("VADDSD X13, X12, X12")
			in("VMOVSD X12, ret+32(FP)")
		}
		in("VZEROUPPER")
		in("RET")
	}
}
