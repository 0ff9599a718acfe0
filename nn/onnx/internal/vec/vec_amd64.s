//go:build amd64 && !purego

#include "textflag.h"

// All kernels: n is a positive multiple of 8; pointers may alias when dst
// and a source are the same slice (each element is read before it is
// written).

// func axpyAVX2(dst, x *float32, n int, a float32)
// dst[i] += a * x[i]
TEXT ·axpyAVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0
	SHRQ $3, CX
axpyloop:
	VMOVUPS (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ axpyloop
	VZEROUPPER
	RET

// func affineAVX2(dst, x *float32, n int, a, b float32)
// dst[i] = x[i]*a + b
TEXT ·affineAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0
	VBROADCASTSS b+28(FP), Y2
	SHRQ $3, CX
affloop:
	VMOVUPS (SI), Y1
	VFMADD213PS Y2, Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ affloop
	VZEROUPPER
	RET

// func clampAVX2(dst, x *float32, n int, lo, hi float32)
// dst[i] = min(max(x[i], lo), hi), a NaN in x stays NaN
TEXT ·clampAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS lo+24(FP), Y0
	VBROADCASTSS hi+28(FP), Y2
	SHRQ $3, CX
clamploop:
	VMOVUPS (SI), Y1
	VMAXPS Y1, Y0, Y3
	VMINPS Y3, Y2, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ clamploop
	VZEROUPPER
	RET

// func mulAVX2(dst, x, y *float32, n int)
// dst[i] = x[i] * y[i]
TEXT ·mulAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
mulloop:
	VMOVUPS (SI), Y1
	VMULPS (DX), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ mulloop
	VZEROUPPER
	RET

// func addAVX2(dst, x, y *float32, n int)
// dst[i] = x[i] + y[i]
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
addloop:
	VMOVUPS (SI), Y1
	VADDPS (DX), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ addloop
	VZEROUPPER
	RET

// func hardSwishAVX2(dst, x *float32, n int)
// dst[i] = x[i] * min(max(x[i]*(1/6) + 0.5, 0), 1): one FMA, no division
// (VDIVPS, with the constants moved in through legacy-SSE MOVs, made this
// kernel 40x slower than an affine one on this VM; which of the two was
// the cost was not measured).
TEXT ·hardSwishAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x3e2aaaab, AX // 1/6
	VMOVD AX, X0
	VBROADCASTSS X0, Y0
	MOVL $0x3f000000, AX // 0.5
	VMOVD AX, X4
	VBROADCASTSS X4, Y4
	MOVL $0x3f800000, AX // 1.0
	VMOVD AX, X5
	VBROADCASTSS X5, Y5
	VXORPS Y6, Y6, Y6
	SHRQ $3, CX
hswloop:
	VMOVUPS (SI), Y1
	VMOVAPS Y4, Y2
	VFMADD231PS Y0, Y1, Y2 // x/6 + 0.5
	VMAXPS Y2, Y6, Y2
	VMINPS Y2, Y5, Y2
	VMULPS Y2, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ hswloop
	VZEROUPPER
	RET

// func leakyAVX2(dst, x *float32, n int, a float32)
// dst[i] = max(x[i], a*x[i]), which is LeakyRelu for 0 <= a <= 1
TEXT ·leakyAVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0
	SHRQ $3, CX
leakyloop:
	VMOVUPS (SI), Y1
	VMULPS Y1, Y0, Y2
	VMAXPS Y1, Y2, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ leakyloop
	VZEROUPPER
	RET

// func leakyMaxAVX2(dst, x *float32, n int, b, a, c float32)
// dst[i] = max(max(y, a*y), c) with y = x[i] + b: a bias, LeakyRelu and a
// Max with a constant in one pass (embedding_model's epilogue), the same
// operations and NaN rules as Affine, leakyAVX2 and Clamp one after another.
TEXT ·leakyMaxAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS b+24(FP), Y4
	VBROADCASTSS a+28(FP), Y0
	VBROADCASTSS c+32(FP), Y5
	SHRQ $3, CX
lmaxloop:
	VMOVUPS (SI), Y1
	VADDPS Y4, Y1, Y1
	VMULPS Y1, Y0, Y2
	VMAXPS Y1, Y2, Y1
	VMAXPS Y1, Y5, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ lmaxloop
	VZEROUPPER
	RET

// func dotAVX2(x, y *float32, n int) float32
// sum of x[i]*y[i], four accumulators
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DX
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT dot8
dot32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DX
	SUBQ $32, CX
	CMPQ CX, $32
	JGE dot32
dot8:
	CMPQ CX, $0
	JE dotsum
	VMOVUPS (SI), Y4
	VFMADD231PS (DX), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP dot8
dotsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	MOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func mulAddAVX2(dst, x, y *float32, n int)
// dst[i] += x[i] * y[i]
TEXT ·mulAddAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
maddloop:
	VMOVUPS (SI), Y1
	VMOVUPS (DI), Y2
	VFMADD231PS (DX), Y1, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ maddloop
	VZEROUPPER
	RET

// func maxAVX2(dst, x, y *float32, n int)
// dst[i] = max(x[i], y[i]), NaN if either is NaN
TEXT ·maxAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
maxloop:
	VMOVUPS (SI), Y1
	VMOVUPS (DX), Y2
	VMAXPS Y1, Y2, Y3       // NaN in x (src2) gives x
	VCMPPS $3, Y2, Y2, Y4   // y unordered (NaN)
	VBLENDVPS Y4, Y2, Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ maxloop
	VZEROUPPER
	RET

// func sumAVX2(x *float32, n int) float32
// sum of x[i], four accumulators
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT sum8
sum32:
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE sum32
sum8:
	CMPQ CX, $0
	JE sumdone
	VADDPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP sum8
sumdone:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	MOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func dot4AVX2(x, y *float32, ldy, n int, out *float32)
// out[j] = sum of x[i]*y[j*ldy+i] for j < 4, i < n: four dot products
// sharing the loads of x
TEXT ·dot4AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DX
	MOVQ ldy+16(FP), R11
	SHLQ $2, R11
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DI
	LEAQ (DX)(R11*1), R8
	LEAQ (R8)(R11*1), R9
	LEAQ (R9)(R11*1), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ $3, CX
dot4loop:
	VMOVUPS (SI), Y4
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS (R8), Y4, Y1
	VFMADD231PS (R9), Y4, Y2
	VFMADD231PS (R10), Y4, Y3
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ dot4loop
	// reduce: hadd pairs then lanes
	VHADDPS Y1, Y0, Y0      // [a01 a23 b01 b23 | a45 a67 b45 b67]
	VHADDPS Y3, Y2, Y2      // same for c, d
	VHADDPS Y2, Y0, Y0      // [a b c d | a' b' c' d']
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVUPS X0, (DI)
	VZEROUPPER
	RET

// func gather2AVX2(dst, src *float32, n int)
// dst[i] = src[2*i] for i < n (reads src[0 : 2n])
TEXT ·gather2AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
g2loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VSHUFPS $0x88, Y1, Y0, Y2 // [s0 s2 s8 s10 | s4 s6 s12 s14]
	VPERMPD $0xD8, Y2, Y2     // [s0 s2 s4 s6 s8 s10 s12 s14]
	VMOVUPS Y2, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNZ g2loop
	VZEROUPPER
	RET

// func tapsAVX2(dst, src *float32, offs *int, wts *float32, ntaps, n int)
// dst[i] = sum_t wts[t] * src[offs[t]+i] for i < n (n a multiple of 8,
// ntaps >= 1): a depthwise convolution's taps summed in registers, 64
// outputs at a time (eight accumulators hide the FMA latency), then 32,
// 16, then 8.
TEXT ·tapsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), R8
	MOVQ wts+24(FP), R9
	MOVQ ntaps+32(FP), R10
	MOVQ n+40(FP), CX
taps64:
	CMPQ CX, $64
	JLT taps32
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ BX, BX
taps64t:
	MOVQ (R8)(BX*8), AX
	LEAQ (SI)(AX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y8, Y1
	VFMADD231PS 64(DX), Y8, Y2
	VFMADD231PS 96(DX), Y8, Y3
	VFMADD231PS 128(DX), Y8, Y4
	VFMADD231PS 160(DX), Y8, Y5
	VFMADD231PS 192(DX), Y8, Y6
	VFMADD231PS 224(DX), Y8, Y7
	INCQ BX
	CMPQ BX, R10
	JLT taps64t
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	ADDQ $256, SI
	SUBQ $64, CX
	JMP taps64
taps32:
	// 32 outputs: four accumulators (a row of a short plane, often
	// 64 + 32 + a few, spent most of its time in the one-accumulator loop)
	CMPQ CX, $32
	JLT taps16
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ BX, BX
taps32t:
	MOVQ (R8)(BX*8), AX
	LEAQ (SI)(AX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y8, Y1
	VFMADD231PS 64(DX), Y8, Y2
	VFMADD231PS 96(DX), Y8, Y3
	INCQ BX
	CMPQ BX, R10
	JLT taps32t
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $32, CX
	JMP taps32
taps16:
	// 16 outputs on two accumulators (a stride-2 stage's 16-wide rows)
	CMPQ CX, $16
	JLT taps8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ BX, BX
taps16t:
	MOVQ (R8)(BX*8), AX
	LEAQ (SI)(AX*4), DX
	VBROADCASTSS (R9)(BX*4), Y8
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y8, Y1
	INCQ BX
	CMPQ BX, R10
	JLT taps16t
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, DI
	ADDQ $64, SI
	SUBQ $16, CX
	JMP taps16
taps8:
	CMPQ CX, $8
	JLT tapsdone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ BX, BX
taps8t:
	MOVQ (R8)(BX*8), AX
	VBROADCASTSS (R9)(BX*4), Y8
	VFMADD231PS (SI)(AX*4), Y8, Y0
	INCQ BX
	CMPQ BX, R10
	JLT taps8t
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JMP taps8
tapsdone:
	VZEROUPPER
	RET

// func dot4x2AVX2(x0, x1, y *float32, ldx, ldy, n int, out *float32)
// out[r*4+j] = sum_i xr[i] * y[j*ldy+i] for r < 2, j < 4, i < n (n a
// multiple of 8), x1 = x0 + ldx: Dot4 for two rows at once, eight
// independent accumulators (Dot4's four chains wait on the FMA latency)
// and six loads per eight multiply-adds.
TEXT ·dot4x2AVX2(SB), NOSPLIT, $0-56
	MOVQ x0+0(FP), SI
	MOVQ x1+8(FP), BX
	MOVQ y+16(FP), DX
	MOVQ ldy+32(FP), R11
	SHLQ $2, R11
	MOVQ n+40(FP), CX
	MOVQ out+48(FP), DI
	LEAQ (DX)(R11*1), R8
	LEAQ (R8)(R11*1), R9
	LEAQ (R9)(R11*1), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $3, CX
dot42loop:
	VMOVUPS (SI), Y8
	VMOVUPS (BX), Y9
	VMOVUPS (DX), Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y4
	VMOVUPS (R8), Y11
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y11, Y9, Y5
	VMOVUPS (R9), Y12
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y12, Y9, Y6
	VMOVUPS (R10), Y13
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y13, Y9, Y7
	ADDQ $32, SI
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ dot42loop
	VHADDPS Y1, Y0, Y0
	VHADDPS Y3, Y2, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVUPS X0, (DI)
	VHADDPS Y5, Y4, Y4
	VHADDPS Y7, Y6, Y6
	VHADDPS Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VMOVUPS X4, 16(DI)
	VZEROUPPER
	RET

// func transpose8AVX2(dst, src *float32, lds, ldd int)
// dst[c*ldd+r] = src[r*lds+c] for r, c < 8: one 8x8 block.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), AX
	SHLQ $2, AX
	MOVQ ldd+24(FP), BX
	SHLQ $2, BX
	VMOVUPS (SI), Y0
	ADDQ AX, SI
	VMOVUPS (SI), Y1
	ADDQ AX, SI
	VMOVUPS (SI), Y2
	ADDQ AX, SI
	VMOVUPS (SI), Y3
	ADDQ AX, SI
	VMOVUPS (SI), Y4
	ADDQ AX, SI
	VMOVUPS (SI), Y5
	ADDQ AX, SI
	VMOVUPS (SI), Y6
	ADDQ AX, SI
	VMOVUPS (SI), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, (DI)
	ADDQ BX, DI
	VMOVUPS Y9, (DI)
	ADDQ BX, DI
	VMOVUPS Y10, (DI)
	ADDQ BX, DI
	VMOVUPS Y11, (DI)
	ADDQ BX, DI
	VMOVUPS Y12, (DI)
	ADDQ BX, DI
	VMOVUPS Y13, (DI)
	ADDQ BX, DI
	VMOVUPS Y14, (DI)
	ADDQ BX, DI
	VMOVUPS Y15, (DI)
	VZEROUPPER
	RET

// func geluPolyAVX2(tp, e, x *float32, n int)
// z = |x|/sqrt2, t = 1/(1 + p z): tp = t P(t), e = -z*z
TEXT ·geluPolyAVX2(SB), NOSPLIT, $0-32
	MOVQ tp+0(FP), DI
	MOVQ e+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	MOVL $0x3f3504f3, AX // 1/sqrt2
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x7fffffff, AX // |.|
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	MOVL $0x3ea7ba05, AX // p
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	MOVL $0x3f87dc22, AX // a5
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	MOVL $0xbfba00e3, AX // a4
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x3fb5f0e3, AX // a3
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0xbe91a98e, AX // a2
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x3e827906, AX // a1
	VMOVD AX, X7
	VPBROADCASTD X7, Y7
	SHRQ $3, CX
gpolyloop:
	VMULPS (SI), Y8, Y0
	VANDPS Y9, Y0, Y0       // z
	VXORPS Y1, Y1, Y1
	VFNMADD231PS Y0, Y0, Y1 // -z*z
	VMOVUPS Y11, Y2
	VFMADD231PS Y10, Y0, Y2 // 1 + p z
	VDIVPS Y2, Y11, Y3      // t
	VMOVUPS Y12, Y4
	VFMADD213PS Y13, Y3, Y4 // a5 t + a4
	VFMADD213PS Y14, Y3, Y4
	VFMADD213PS Y15, Y3, Y4
	VFMADD213PS Y7, Y3, Y4
	VMULPS Y3, Y4, Y4
	VMOVUPS Y4, (DI)
	VMOVUPS Y1, (DX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ gpolyloop
	VZEROUPPER
	RET

// func geluCombineAVX2(dst, x, tp, e *float32, n int)
// q = tp*e; dst = 0.5 x (x < 0 ? q : 2-q), by x's sign bit
TEXT ·geluCombineAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ tp+16(FP), BX
	MOVQ e+24(FP), DX
	MOVQ n+32(FP), CX
	MOVL $0x40000000, AX // 2
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x3f000000, AX // 0.5
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	SHRQ $3, CX
gcombloop:
	VMOVUPS (SI), Y0
	VMOVUPS (BX), Y1
	VMULPS (DX), Y1, Y1     // q
	VSUBPS Y1, Y8, Y2       // 2 - q
	VBLENDVPS Y0, Y1, Y2, Y3 // sign of x set: q, else 2 - q
	VMULPS Y9, Y0, Y0
	VMULPS Y3, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ gcombloop
	VZEROUPPER
	RET
