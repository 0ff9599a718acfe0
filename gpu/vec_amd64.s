//go:build amd64 && !purego

#include "textflag.h"

// func axpyAVX2(alpha float32, x, y *float32, n int)
// y[i] += alpha * x[i] for i < n; n is a multiple of 32.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $5, CX
	JZ axpydone
axpyloop:
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VFMADD231PS 64(SI), Y0, Y3
	VFMADD231PS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ axpyloop
axpydone:
	VZEROUPPER
	RET

// func spRowAVX2(cols *int32, vals *float32, nnz int, xt *float32, ld int, out *float32)
// out[j] = sum_i vals[i] * xt[cols[i]*ld + j] for j < 32: one output channel
// of a CSR layer over a 32-wide slice of the transposed batch. Two sets of
// accumulators (even and odd non-zeros) hide the FMA latency.
TEXT ·spRowAVX2(SB), NOSPLIT, $0-48
	MOVQ cols+0(FP), SI
	MOVQ vals+8(FP), DI
	MOVQ nnz+16(FP), CX
	MOVQ xt+24(FP), R8
	MOVQ ld+32(FP), R9
	SHLQ $2, R9
	MOVQ out+40(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	MOVQ CX, BX
	SHRQ $1, BX
	JZ sptail
sploop2:
	MOVLQSX (SI), AX
	IMULQ R9, AX
	MOVLQSX 4(SI), R10
	IMULQ R9, R10
	VBROADCASTSS (DI), Y4
	VBROADCASTSS 4(DI), Y9
	VFMADD231PS (R8)(AX*1), Y4, Y0
	VFMADD231PS 32(R8)(AX*1), Y4, Y1
	VFMADD231PS 64(R8)(AX*1), Y4, Y2
	VFMADD231PS 96(R8)(AX*1), Y4, Y3
	VFMADD231PS (R8)(R10*1), Y9, Y5
	VFMADD231PS 32(R8)(R10*1), Y9, Y6
	VFMADD231PS 64(R8)(R10*1), Y9, Y7
	VFMADD231PS 96(R8)(R10*1), Y9, Y8
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ BX
	JNZ sploop2
sptail:
	ANDQ $1, CX
	JZ spdone
	MOVLQSX (SI), AX
	IMULQ R9, AX
	VBROADCASTSS (DI), Y4
	VFMADD231PS (R8)(AX*1), Y4, Y0
	VFMADD231PS 32(R8)(AX*1), Y4, Y1
	VFMADD231PS 64(R8)(AX*1), Y4, Y2
	VFMADD231PS 96(R8)(AX*1), Y4, Y3
spdone:
	VADDPS Y5, Y0, Y0
	VADDPS Y6, Y1, Y1
	VADDPS Y7, Y2, Y2
	VADDPS Y8, Y3, Y3
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// func packRowsAVX(dst, src *float32, offs *int, ld, kc, dstride int)
// Copies 16 floats per k step: dst[p*dstride : +16] = src[o_p : o_p+16],
// where o_p = offs[p] when offs is not nil and p*ld otherwise (elements).
// SGEMM's B packing for a full strip of a row-major B.
TEXT ·packRowsAVX(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ kc+32(FP), CX
	MOVQ dstride+40(FP), DX
	SHLQ $2, DX
	TESTQ CX, CX
	JZ packdone
	TESTQ BX, BX
	JNZ packoffs
packstride:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ R8, SI
	ADDQ DX, DI
	DECQ CX
	JNZ packstride
	JMP packdone
packoffs:
	MOVQ (BX), AX
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $8, BX
	ADDQ DX, DI
	DECQ CX
	JNZ packoffs
packdone:
	VZEROUPPER
	RET
