//go:build amd64 && !purego

#include "textflag.h"

// func dot4VNNI(x *uint8, w *int8, ldw, kp int, out *int32)
// out[r] = sum_k x[k] * w[r*ldw + k] for r = 0..3, x unsigned, w signed;
// kp is a positive multiple of 64.
TEXT ·dot4VNNI(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ ldw+16(FP), R8
	MOVQ kp+24(FP), CX
	MOVQ out+32(FP), DX
	LEAQ (R8)(R8*2), R9
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	SHRQ $6, CX
vnniloop:
	VMOVDQU32 (SI), Z4
	VPDPBUSD (DI), Z4, Z0
	VPDPBUSD (DI)(R8*1), Z4, Z1
	VPDPBUSD (DI)(R8*2), Z4, Z2
	VPDPBUSD (DI)(R9*1), Z4, Z3
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ vnniloop
	VEXTRACTI64X4 $1, Z0, Y5
	VPADDD Y5, Y0, Y0
	VEXTRACTI64X4 $1, Z1, Y5
	VPADDD Y5, Y1, Y1
	VEXTRACTI64X4 $1, Z2, Y5
	VPADDD Y5, Y2, Y2
	VEXTRACTI64X4 $1, Z3, Y5
	VPADDD Y5, Y3, Y3
	// horizontal sum of Y0 into its low lane, stored at 0(DX)
	VEXTRACTI128 $1, Y0, X5
	VPADDD X5, X0, X0
	VPSHUFD $0x4E, X0, X5
	VPADDD X5, X0, X0
	VPSHUFD $0xB1, X0, X5
	VPADDD X5, X0, X0
	VMOVD X0, 0(DX)
	// horizontal sum of Y1 into its low lane, stored at 4(DX)
	VEXTRACTI128 $1, Y1, X5
	VPADDD X5, X1, X1
	VPSHUFD $0x4E, X1, X5
	VPADDD X5, X1, X1
	VPSHUFD $0xB1, X1, X5
	VPADDD X5, X1, X1
	VMOVD X1, 4(DX)
	// horizontal sum of Y2 into its low lane, stored at 8(DX)
	VEXTRACTI128 $1, Y2, X5
	VPADDD X5, X2, X2
	VPSHUFD $0x4E, X2, X5
	VPADDD X5, X2, X2
	VPSHUFD $0xB1, X2, X5
	VPADDD X5, X2, X2
	VMOVD X2, 8(DX)
	// horizontal sum of Y3 into its low lane, stored at 12(DX)
	VEXTRACTI128 $1, Y3, X5
	VPADDD X5, X3, X3
	VPSHUFD $0x4E, X3, X5
	VPADDD X5, X3, X3
	VPSHUFD $0xB1, X3, X5
	VPADDD X5, X3, X3
	VMOVD X3, 12(DX)
	VZEROUPPER
	RET

// func dot4AVX2(x *int8, w *int8, ldw, kp int, out *int32)
// out[r] = sum_k x[k] * w[r*ldw + k] for r = 0..3, both signed; kp is a
// positive multiple of 16. Products of two int8 fit int16 pairs summed into
// int32 by VPMADDWD, so the sum is exact.
TEXT ·dot4AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ ldw+16(FP), R8
	MOVQ kp+24(FP), CX
	MOVQ out+32(FP), DX
	LEAQ (R8)(R8*2), R9
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	SHRQ $4, CX
avx2loop:
	VPMOVSXBW (SI), Y4
	VPMOVSXBW (DI), Y5
	VPMADDWD Y5, Y4, Y5
	VPADDD Y5, Y0, Y0
	VPMOVSXBW (DI)(R8*1), Y6
	VPMADDWD Y6, Y4, Y6
	VPADDD Y6, Y1, Y1
	VPMOVSXBW (DI)(R8*2), Y7
	VPMADDWD Y7, Y4, Y7
	VPADDD Y7, Y2, Y2
	VPMOVSXBW (DI)(R9*1), Y8
	VPMADDWD Y8, Y4, Y8
	VPADDD Y8, Y3, Y3
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ avx2loop
	// horizontal sum of Y0 into its low lane, stored at 0(DX)
	VEXTRACTI128 $1, Y0, X5
	VPADDD X5, X0, X0
	VPSHUFD $0x4E, X0, X5
	VPADDD X5, X0, X0
	VPSHUFD $0xB1, X0, X5
	VPADDD X5, X0, X0
	VMOVD X0, 0(DX)
	// horizontal sum of Y1 into its low lane, stored at 4(DX)
	VEXTRACTI128 $1, Y1, X5
	VPADDD X5, X1, X1
	VPSHUFD $0x4E, X1, X5
	VPADDD X5, X1, X1
	VPSHUFD $0xB1, X1, X5
	VPADDD X5, X1, X1
	VMOVD X1, 4(DX)
	// horizontal sum of Y2 into its low lane, stored at 8(DX)
	VEXTRACTI128 $1, Y2, X5
	VPADDD X5, X2, X2
	VPSHUFD $0x4E, X2, X5
	VPADDD X5, X2, X2
	VPSHUFD $0xB1, X2, X5
	VPADDD X5, X2, X2
	VMOVD X2, 8(DX)
	// horizontal sum of Y3 into its low lane, stored at 12(DX)
	VEXTRACTI128 $1, Y3, X5
	VPADDD X5, X3, X3
	VPSHUFD $0x4E, X3, X5
	VPADDD X5, X3, X3
	VPSHUFD $0xB1, X3, X5
	VPADDD X5, X3, X3
	VMOVD X3, 12(DX)
	VZEROUPPER
	RET

// func vnni4x16(tile *int32, a *uint8, lda int, panel *int8, k4 int)
TEXT ·vnni4x16(SB), NOSPLIT, $0-40
	MOVQ tile+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	MOVQ panel+24(FP), DX
	MOVQ k4+32(FP), CX
	LEAQ (R9)(R9*2), R10
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
v4x16loop:
	VMOVDQU32 (DX), Z4
	VPBROADCASTD (SI), Z5
	VPBROADCASTD (SI)(R9*1), Z6
	VPBROADCASTD (SI)(R9*2), Z7
	VPBROADCASTD (SI)(R10*1), Z8
	VPDPBUSD Z4, Z5, Z0
	VPDPBUSD Z4, Z6, Z1
	VPDPBUSD Z4, Z7, Z2
	VPDPBUSD Z4, Z8, Z3
	ADDQ $4, SI
	ADDQ $64, DX
	DECQ CX
	JNZ v4x16loop
	VMOVDQU32 Z0, 0(DI)
	VMOVDQU32 Z1, 64(DI)
	VMOVDQU32 Z2, 128(DI)
	VMOVDQU32 Z3, 192(DI)
	VZEROUPPER
	RET

// func vnni4x32(tile *int32, a *uint8, lda int, panel *int8, pstride, k4 int)
// vnni4x16 over two adjacent panels (the second pstride bytes on): tile
// rows of 32, eight accumulators.
TEXT ·vnni4x32(SB), NOSPLIT, $0-48
	MOVQ tile+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	MOVQ panel+24(FP), DX
	MOVQ pstride+32(FP), R11
	MOVQ k4+40(FP), CX
	LEAQ (R9)(R9*2), R10
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
v4x32loop:
	VMOVDQU32 (DX), Z4
	VMOVDQU32 (DX)(R11*1), Z9
	VPBROADCASTD (SI), Z5
	VPBROADCASTD (SI)(R9*1), Z6
	VPBROADCASTD (SI)(R9*2), Z7
	VPBROADCASTD (SI)(R10*1), Z8
	VPDPBUSD Z4, Z5, Z0
	VPDPBUSD Z9, Z5, Z10
	VPDPBUSD Z4, Z6, Z1
	VPDPBUSD Z9, Z6, Z11
	VPDPBUSD Z4, Z7, Z2
	VPDPBUSD Z9, Z7, Z12
	VPDPBUSD Z4, Z8, Z3
	VPDPBUSD Z9, Z8, Z13
	ADDQ $4, SI
	ADDQ $64, DX
	DECQ CX
	JNZ v4x32loop
	VMOVDQU32 Z0, 0(DI)
	VMOVDQU32 Z10, 64(DI)
	VMOVDQU32 Z1, 128(DI)
	VMOVDQU32 Z11, 192(DI)
	VMOVDQU32 Z2, 256(DI)
	VMOVDQU32 Z12, 320(DI)
	VMOVDQU32 Z3, 384(DI)
	VMOVDQU32 Z13, 448(DI)
	VZEROUPPER
	RET
