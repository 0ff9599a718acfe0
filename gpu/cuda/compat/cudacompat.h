/*
 * cudacompat.h: builds gorgonia.org/cu v0.9.6 (written for CUDA 10/11)
 * against the CUDA 11.8, 12.x and 13.x driver headers without forking it.
 *
 * It is force-included into every cgo compilation unit of a `-tags cuda`
 * build through the environment, so that it reaches the cu package too:
 *
 *   CGO_CFLAGS="-O2 -g -I$CUDA/include -include $PWD/gpu/cuda/compat/cudacompat.h"
 *
 * (see docs/GPU.md). gpu/cuda refuses to compile without it.
 * Everything here happens after <cuda.h>, by renaming call sites with
 * macros to static inline shims; no symbol of ours is exported, and no
 * type or function of cuda.h is redeclared.
 *
 * 1. cuInit. cu calls cuInit from a package init function and os.Exit(1)s
 *    when it fails, so a CUDA build died at start on a machine with a driver
 *    but no usable device, before fennec could fall back to the CPU. The
 *    shim lets cu's init proceed; gpu/cuda calls the real cuInit itself
 *    (after #undef cuInit) and reports its error as the reason for falling
 *    back. cuInit is idempotent, so calling it twice is harmless.
 * 2. CUDA 13 signature changes of entry points cu calls (each was a new
 *    versioned entry point in 12.x and became the default name in 13.0):
 *      cuCtxCreate(pctx, flags, dev)       -> cuCtxCreate(pctx, NULL, flags, dev)   (_v4)
 *      cuMemAdvise(p, n, advice, device)   -> cuMemAdvise(p, n, advice, CUmemLocation) (_v2)
 *      cuMemPrefetchAsync(p, n, dev, s)    -> cuMemPrefetchAsync(p, n, loc, 0, s)   (_v2)
 *      cuGraphGetEdges(g, from, to, n)     -> cuGraphGetEdges(g, from, to, NULL, n)  (_v2)
 *      cuGraphAddDependencies(g, f, t, n)  -> cuGraphAddDependencies(g, f, t, NULL, n) (_v2)
 *    The shims call the names the installed header declares, so they link
 *    against whatever versioned symbol that header selects; nothing here
 *    names a symbol that only old drivers export.
 * 3. Texture and surface references (cuTexRef*, cuSurfRef*,
 *    cuModuleGetTexRef, cuModuleGetSurfRef): deprecated since CUDA 11,
 *    removed from the runtime API in 12. cu wraps them; fennec never uses
 *    them. They are routed to shims returning CUDA_ERROR_NOT_SUPPORTED, so
 *    a fennec binary neither calls nor imports them and keeps loading on a
 *    driver that drops the exports.
 * 4. The CU_* enumerators cu names (JIT targets down to compute_30,
 *    texture-era device attributes) are provided as integer macros with
 *    their fixed ABI values, so a header that dropped one still builds.
 */
#ifndef FENNEC_CUDACOMPAT_H
#define FENNEC_CUDACOMPAT_H

/* CGO_CFLAGS also reach assembler sources (runtime/cgo's .S files). */
#if !defined(__ASSEMBLER__) && defined(__has_include)
#if __has_include(<cuda.h>)
#define FENNEC_CUDACOMPAT_HAVE_CUDA_H 1
#endif
#endif

#ifdef FENNEC_CUDACOMPAT_HAVE_CUDA_H
/* This header is read before the source file's own feature-test macros, so
 * the libc headers cuda.h pulls in are locked to whatever is defined here.
 * _GNU_SOURCE is the superset that cgo's own C files (runtime/cgo, net)
 * ask for; without it they lose pthread_getattr_np and setresuid. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <stddef.h>
#include <cuda.h>

/* gpu/cuda checks this marker and refuses to build without the header. */
#define FENNEC_CUDACOMPAT_APPLIED 1

/* ---- 1. cuInit that never fails cu's package init ---- */
static inline CUresult fennec_compat_cuInit(unsigned int flags) {
    (void)cuInit(flags);
    return CUDA_SUCCESS;
}
#undef cuInit
#define cuInit fennec_compat_cuInit

/* ---- 2. CUDA 13 signature changes ---- */
#if CUDA_VERSION >= 13000
static inline CUresult fennec_compat_cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev) {
    return cuCtxCreate(pctx, NULL, flags, dev);
}
#undef cuCtxCreate
#define cuCtxCreate fennec_compat_cuCtxCreate

static inline CUmemLocation fennec_compat_location(CUdevice dev) {
    CUmemLocation loc;
    loc.type = dev == CU_DEVICE_CPU ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_DEVICE;
    loc.id = dev == CU_DEVICE_CPU ? 0 : (int)dev;
    return loc;
}
static inline CUresult fennec_compat_cuMemAdvise(CUdeviceptr p, size_t n, CUmem_advise advice, CUdevice dev) {
    return cuMemAdvise(p, n, advice, fennec_compat_location(dev));
}
#undef cuMemAdvise
#define cuMemAdvise fennec_compat_cuMemAdvise

static inline CUresult fennec_compat_cuMemPrefetchAsync(CUdeviceptr p, size_t n, CUdevice dev, CUstream s) {
    return cuMemPrefetchAsync(p, n, fennec_compat_location(dev), 0, s);
}
#undef cuMemPrefetchAsync
#define cuMemPrefetchAsync fennec_compat_cuMemPrefetchAsync

static inline CUresult fennec_compat_cuGraphGetEdges(CUgraph g, CUgraphNode *from, CUgraphNode *to, size_t *n) {
    return cuGraphGetEdges(g, from, to, NULL, n);
}
#undef cuGraphGetEdges
#define cuGraphGetEdges fennec_compat_cuGraphGetEdges

static inline CUresult fennec_compat_cuGraphAddDependencies(CUgraph g, const CUgraphNode *from, const CUgraphNode *to, size_t n) {
    return cuGraphAddDependencies(g, from, to, NULL, n);
}
#undef cuGraphAddDependencies
#define cuGraphAddDependencies fennec_compat_cuGraphAddDependencies
#endif /* CUDA_VERSION >= 13000 */

/* ---- 3. texture and surface references: never called ---- */
#define FENNEC_COMPAT_UNSUPPORTED { return CUDA_ERROR_NOT_SUPPORTED; }
static inline CUresult fennec_compat_cuModuleGetTexRef(CUtexref *r, CUmodule m, const char *name) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuModuleGetSurfRef(CUsurfref *r, CUmodule m, const char *name) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetArray(CUtexref r, CUarray a, unsigned int f) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetAddress(size_t *off, CUtexref r, CUdeviceptr p, size_t n) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetAddress2D(CUtexref r, const CUDA_ARRAY_DESCRIPTOR *d, CUdeviceptr p, size_t pitch) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetFormat(CUtexref r, CUarray_format f, int n) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetAddressMode(CUtexref r, int dim, CUaddress_mode am) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetFilterMode(CUtexref r, CUfilter_mode fm) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetMipmapFilterMode(CUtexref r, CUfilter_mode fm) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetMipmapLevelBias(CUtexref r, float b) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetMipmapLevelClamp(CUtexref r, float lo, float hi) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetMaxAnisotropy(CUtexref r, unsigned int a) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetBorderColor(CUtexref r, float *c) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefSetFlags(CUtexref r, unsigned int f) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetAddress(CUdeviceptr *p, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetArray(CUarray *a, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetAddressMode(CUaddress_mode *am, CUtexref r, int dim) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetFilterMode(CUfilter_mode *fm, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetFormat(CUarray_format *f, int *n, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetMaxAnisotropy(int *a, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetBorderColor(float *c, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuTexRefGetFlags(unsigned int *f, CUtexref r) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuSurfRefSetArray(CUsurfref r, CUarray a, unsigned int f) FENNEC_COMPAT_UNSUPPORTED
static inline CUresult fennec_compat_cuSurfRefGetArray(CUarray *a, CUsurfref r) FENNEC_COMPAT_UNSUPPORTED
#undef FENNEC_COMPAT_UNSUPPORTED

#undef cuModuleGetTexRef
#define cuModuleGetTexRef fennec_compat_cuModuleGetTexRef
#undef cuModuleGetSurfRef
#define cuModuleGetSurfRef fennec_compat_cuModuleGetSurfRef
#undef cuTexRefSetArray
#define cuTexRefSetArray fennec_compat_cuTexRefSetArray
#undef cuTexRefSetAddress
#define cuTexRefSetAddress fennec_compat_cuTexRefSetAddress
#undef cuTexRefSetAddress2D
#define cuTexRefSetAddress2D fennec_compat_cuTexRefSetAddress2D
#undef cuTexRefSetFormat
#define cuTexRefSetFormat fennec_compat_cuTexRefSetFormat
#undef cuTexRefSetAddressMode
#define cuTexRefSetAddressMode fennec_compat_cuTexRefSetAddressMode
#undef cuTexRefSetFilterMode
#define cuTexRefSetFilterMode fennec_compat_cuTexRefSetFilterMode
#undef cuTexRefSetMipmapFilterMode
#define cuTexRefSetMipmapFilterMode fennec_compat_cuTexRefSetMipmapFilterMode
#undef cuTexRefSetMipmapLevelBias
#define cuTexRefSetMipmapLevelBias fennec_compat_cuTexRefSetMipmapLevelBias
#undef cuTexRefSetMipmapLevelClamp
#define cuTexRefSetMipmapLevelClamp fennec_compat_cuTexRefSetMipmapLevelClamp
#undef cuTexRefSetMaxAnisotropy
#define cuTexRefSetMaxAnisotropy fennec_compat_cuTexRefSetMaxAnisotropy
#undef cuTexRefSetBorderColor
#define cuTexRefSetBorderColor fennec_compat_cuTexRefSetBorderColor
#undef cuTexRefSetFlags
#define cuTexRefSetFlags fennec_compat_cuTexRefSetFlags
#undef cuTexRefGetAddress
#define cuTexRefGetAddress fennec_compat_cuTexRefGetAddress
#undef cuTexRefGetArray
#define cuTexRefGetArray fennec_compat_cuTexRefGetArray
#undef cuTexRefGetAddressMode
#define cuTexRefGetAddressMode fennec_compat_cuTexRefGetAddressMode
#undef cuTexRefGetFilterMode
#define cuTexRefGetFilterMode fennec_compat_cuTexRefGetFilterMode
#undef cuTexRefGetFormat
#define cuTexRefGetFormat fennec_compat_cuTexRefGetFormat
#undef cuTexRefGetMaxAnisotropy
#define cuTexRefGetMaxAnisotropy fennec_compat_cuTexRefGetMaxAnisotropy
#undef cuTexRefGetBorderColor
#define cuTexRefGetBorderColor fennec_compat_cuTexRefGetBorderColor
#undef cuTexRefGetFlags
#define cuTexRefGetFlags fennec_compat_cuTexRefGetFlags
#undef cuSurfRefSetArray
#define cuSurfRefSetArray fennec_compat_cuSurfRefSetArray
#undef cuSurfRefGetArray
#define cuSurfRefGetArray fennec_compat_cuSurfRefGetArray

/* ---- 4. enumerators cu names, as plain integers ----
 * cu refers to about 200 CU_* enumerators, some deprecated for years
 * (CU_TARGET_COMPUTE_30..62, texture-era device attributes). Their values
 * are part of the driver ABI and never change, so each is defined here with
 * the value from the CUDA 11.8 header (generated; see
 * docs/RATIONALE.md); a header that dropped one still builds cu,
 * and one that kept it is shadowed by the same number. */
#undef CU_AD_FORMAT_FLOAT
#define CU_AD_FORMAT_FLOAT 32
#undef CU_AD_FORMAT_HALF
#define CU_AD_FORMAT_HALF 16
#undef CU_AD_FORMAT_SIGNED_INT16
#define CU_AD_FORMAT_SIGNED_INT16 9
#undef CU_AD_FORMAT_SIGNED_INT32
#define CU_AD_FORMAT_SIGNED_INT32 10
#undef CU_AD_FORMAT_SIGNED_INT8
#define CU_AD_FORMAT_SIGNED_INT8 8
#undef CU_AD_FORMAT_UNSIGNED_INT16
#define CU_AD_FORMAT_UNSIGNED_INT16 2
#undef CU_AD_FORMAT_UNSIGNED_INT32
#define CU_AD_FORMAT_UNSIGNED_INT32 3
#undef CU_AD_FORMAT_UNSIGNED_INT8
#define CU_AD_FORMAT_UNSIGNED_INT8 1
#undef CU_CTX_FLAGS_MASK
#define CU_CTX_FLAGS_MASK 31
#undef CU_CTX_LMEM_RESIZE_TO_MAX
#define CU_CTX_LMEM_RESIZE_TO_MAX 16
#undef CU_CTX_MAP_HOST
#define CU_CTX_MAP_HOST 8
#undef CU_CTX_SCHED_AUTO
#define CU_CTX_SCHED_AUTO 0
#undef CU_CTX_SCHED_BLOCKING_SYNC
#define CU_CTX_SCHED_BLOCKING_SYNC 4
#undef CU_CTX_SCHED_MASK
#define CU_CTX_SCHED_MASK 7
#undef CU_CTX_SCHED_SPIN
#define CU_CTX_SCHED_SPIN 1
#undef CU_CTX_SCHED_YIELD
#define CU_CTX_SCHED_YIELD 2
#undef CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT
#define CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT 40
#undef CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY
#define CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY 19
#undef CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER
#define CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER 44
#undef CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
#define CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM 91
#undef CU_DEVICE_ATTRIBUTE_CLOCK_RATE
#define CU_DEVICE_ATTRIBUTE_CLOCK_RATE 13
#undef CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#undef CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#undef CU_DEVICE_ATTRIBUTE_COMPUTE_MODE
#define CU_DEVICE_ATTRIBUTE_COMPUTE_MODE 20
#undef CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED
#define CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED 90
#undef CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS
#define CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS 31
#undef CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS
#define CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS 89
#undef CU_DEVICE_ATTRIBUTE_ECC_ENABLED
#define CU_DEVICE_ATTRIBUTE_ECC_ENABLED 32
#undef CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED
#define CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED 79
#undef CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH
#define CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH 37
#undef CU_DEVICE_ATTRIBUTE_GPU_OVERLAP
#define CU_DEVICE_ATTRIBUTE_GPU_OVERLAP 15
#undef CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED
#define CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED 86
#undef CU_DEVICE_ATTRIBUTE_INTEGRATED
#define CU_DEVICE_ATTRIBUTE_INTEGRATED 18
#undef CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT
#define CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT 17
#undef CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE
#define CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE 38
#undef CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED
#define CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED 80
#undef CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY
#define CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY 83
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS 62
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH 61
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH 55
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT 57
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT 64
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS 65
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH 63
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH 56
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH 60
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT 59
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH 58
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS 68
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH 67
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH 66
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS 43
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH 42
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH 69
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH 77
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH 21
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_HEIGHT 28
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_NUMSLICES
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_NUMSLICES 29
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_ARRAY_WIDTH 27
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT 46
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH 45
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT 23
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT 28
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS 29
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH 27
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT 71
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH 72
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH 70
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT 74
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH 73
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH 22
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH 26
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE 49
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT 25
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE 48
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH 24
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE 47
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS 54
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH 53
#undef CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH
#define CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH 52
#undef CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X
#define CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X 2
#undef CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y
#define CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y 3
#undef CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z
#define CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z 4
#undef CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X
#define CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X 5
#undef CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y
#define CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y 6
#undef CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z
#define CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z 7
#undef CU_DEVICE_ATTRIBUTE_MAX_PITCH
#define CU_DEVICE_ATTRIBUTE_MAX_PITCH 11
#undef CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK
#define CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK 12
#undef CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR
#define CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR 82
#undef CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK
#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK 8
#undef CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR 81
#undef CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK
#define CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK 1
#undef CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR
#define CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR 39
#undef CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE
#define CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE 36
#undef CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#undef CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD
#define CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD 84
#undef CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID
#define CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID 85
#undef CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS
#define CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS 88
#undef CU_DEVICE_ATTRIBUTE_PCI_BUS_ID
#define CU_DEVICE_ATTRIBUTE_PCI_BUS_ID 33
#undef CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID
#define CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID 34
#undef CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID
#define CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID 50
#undef CU_DEVICE_ATTRIBUTE_REGISTERS_PER_BLOCK
#define CU_DEVICE_ATTRIBUTE_REGISTERS_PER_BLOCK 12
#undef CU_DEVICE_ATTRIBUTE_SHARED_MEMORY_PER_BLOCK
#define CU_DEVICE_ATTRIBUTE_SHARED_MEMORY_PER_BLOCK 8
#undef CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
#define CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO 87
#undef CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED
#define CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED 78
#undef CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT
#define CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT 30
#undef CU_DEVICE_ATTRIBUTE_TCC_DRIVER
#define CU_DEVICE_ATTRIBUTE_TCC_DRIVER 35
#undef CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT
#define CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT 14
#undef CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT
#define CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT 51
#undef CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY
#define CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY 9
#undef CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING
#define CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING 41
#undef CU_DEVICE_ATTRIBUTE_WARP_SIZE
#define CU_DEVICE_ATTRIBUTE_WARP_SIZE 10
#undef CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED
#define CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED 2
#undef CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED
#define CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED 3
#undef CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK
#define CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK 1
#undef CU_EVENT_BLOCKING_SYNC
#define CU_EVENT_BLOCKING_SYNC 1
#undef CU_EVENT_DEFAULT
#define CU_EVENT_DEFAULT 0
#undef CU_EVENT_DISABLE_TIMING
#define CU_EVENT_DISABLE_TIMING 2
#undef CU_EVENT_INTERPROCESS
#define CU_EVENT_INTERPROCESS 4
#undef CU_FUNC_ATTRIBUTE_BINARY_VERSION
#define CU_FUNC_ATTRIBUTE_BINARY_VERSION 6
#undef CU_FUNC_ATTRIBUTE_CACHE_MODE_CA
#define CU_FUNC_ATTRIBUTE_CACHE_MODE_CA 7
#undef CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES
#define CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES 2
#undef CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES
#define CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES 3
#undef CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK
#define CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK 0
#undef CU_FUNC_ATTRIBUTE_NUM_REGS
#define CU_FUNC_ATTRIBUTE_NUM_REGS 4
#undef CU_FUNC_ATTRIBUTE_PTX_VERSION
#define CU_FUNC_ATTRIBUTE_PTX_VERSION 5
#undef CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES
#define CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES 1
#undef CU_FUNC_CACHE_PREFER_EQUAL
#define CU_FUNC_CACHE_PREFER_EQUAL 3
#undef CU_FUNC_CACHE_PREFER_L1
#define CU_FUNC_CACHE_PREFER_L1 2
#undef CU_FUNC_CACHE_PREFER_NONE
#define CU_FUNC_CACHE_PREFER_NONE 0
#undef CU_FUNC_CACHE_PREFER_SHARED
#define CU_FUNC_CACHE_PREFER_SHARED 1
#undef CU_JIT_CACHE_MODE
#define CU_JIT_CACHE_MODE 14
#undef CU_JIT_CACHE_OPTION_CA
#define CU_JIT_CACHE_OPTION_CA 2
#undef CU_JIT_CACHE_OPTION_CG
#define CU_JIT_CACHE_OPTION_CG 1
#undef CU_JIT_CACHE_OPTION_NONE
#define CU_JIT_CACHE_OPTION_NONE 0
#undef CU_JIT_ERROR_LOG_BUFFER
#define CU_JIT_ERROR_LOG_BUFFER 5
#undef CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6
#undef CU_JIT_FALLBACK_STRATEGY
#define CU_JIT_FALLBACK_STRATEGY 10
#undef CU_JIT_GENERATE_DEBUG_INFO
#define CU_JIT_GENERATE_DEBUG_INFO 11
#undef CU_JIT_GENERATE_LINE_INFO
#define CU_JIT_GENERATE_LINE_INFO 13
#undef CU_JIT_INFO_LOG_BUFFER
#define CU_JIT_INFO_LOG_BUFFER 3
#undef CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES
#define CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES 4
#undef CU_JIT_INPUT_CUBIN
#define CU_JIT_INPUT_CUBIN 0
#undef CU_JIT_INPUT_FATBINARY
#define CU_JIT_INPUT_FATBINARY 2
#undef CU_JIT_INPUT_LIBRARY
#define CU_JIT_INPUT_LIBRARY 4
#undef CU_JIT_INPUT_OBJECT
#define CU_JIT_INPUT_OBJECT 3
#undef CU_JIT_INPUT_PTX
#define CU_JIT_INPUT_PTX 1
#undef CU_JIT_LOG_VERBOSE
#define CU_JIT_LOG_VERBOSE 12
#undef CU_JIT_MAX_REGISTERS
#define CU_JIT_MAX_REGISTERS 0
#undef CU_JIT_OPTIMIZATION_LEVEL
#define CU_JIT_OPTIMIZATION_LEVEL 7
#undef CU_JIT_TARGET
#define CU_JIT_TARGET 9
#undef CU_JIT_TARGET_FROM_CUCONTEXT
#define CU_JIT_TARGET_FROM_CUCONTEXT 8
#undef CU_JIT_THREADS_PER_BLOCK
#define CU_JIT_THREADS_PER_BLOCK 1
#undef CU_JIT_WALL_TIME
#define CU_JIT_WALL_TIME 2
#undef CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT
#define CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT 4
#undef CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH
#define CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH 3
#undef CU_LIMIT_MALLOC_HEAP_SIZE
#define CU_LIMIT_MALLOC_HEAP_SIZE 2
#undef CU_LIMIT_PRINTF_FIFO_SIZE
#define CU_LIMIT_PRINTF_FIFO_SIZE 1
#undef CU_LIMIT_STACK_SIZE
#define CU_LIMIT_STACK_SIZE 0
#undef CU_MEMORYTYPE_ARRAY
#define CU_MEMORYTYPE_ARRAY 3
#undef CU_MEMORYTYPE_DEVICE
#define CU_MEMORYTYPE_DEVICE 2
#undef CU_MEMORYTYPE_HOST
#define CU_MEMORYTYPE_HOST 1
#undef CU_MEMORYTYPE_UNIFIED
#define CU_MEMORYTYPE_UNIFIED 4
#undef CU_MEM_ADVISE_SET_ACCESSED_BY
#define CU_MEM_ADVISE_SET_ACCESSED_BY 5
#undef CU_MEM_ADVISE_SET_PREFERRED_LOCATION
#define CU_MEM_ADVISE_SET_PREFERRED_LOCATION 3
#undef CU_MEM_ADVISE_SET_READ_MOSTLY
#define CU_MEM_ADVISE_SET_READ_MOSTLY 1
#undef CU_MEM_ADVISE_UNSET_ACCESSED_BY
#define CU_MEM_ADVISE_UNSET_ACCESSED_BY 6
#undef CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION
#define CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION 4
#undef CU_MEM_ADVISE_UNSET_READ_MOSTLY
#define CU_MEM_ADVISE_UNSET_READ_MOSTLY 2
#undef CU_MEM_ATTACH_GLOBAL
#define CU_MEM_ATTACH_GLOBAL 1
#undef CU_MEM_ATTACH_HOST
#define CU_MEM_ATTACH_HOST 2
#undef CU_MEM_ATTACH_SINGLE
#define CU_MEM_ATTACH_SINGLE 4
#undef CU_OCCUPANCY_DEFAULT
#define CU_OCCUPANCY_DEFAULT 0
#undef CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE
#define CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE 1
#undef CU_POINTER_ATTRIBUTE_BUFFER_ID
#define CU_POINTER_ATTRIBUTE_BUFFER_ID 7
#undef CU_POINTER_ATTRIBUTE_CONTEXT
#define CU_POINTER_ATTRIBUTE_CONTEXT 1
#undef CU_POINTER_ATTRIBUTE_DEVICE_POINTER
#define CU_POINTER_ATTRIBUTE_DEVICE_POINTER 3
#undef CU_POINTER_ATTRIBUTE_HOST_POINTER
#define CU_POINTER_ATTRIBUTE_HOST_POINTER 4
#undef CU_POINTER_ATTRIBUTE_IS_MANAGED
#define CU_POINTER_ATTRIBUTE_IS_MANAGED 8
#undef CU_POINTER_ATTRIBUTE_MEMORY_TYPE
#define CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#undef CU_POINTER_ATTRIBUTE_P2P_TOKENS
#define CU_POINTER_ATTRIBUTE_P2P_TOKENS 5
#undef CU_POINTER_ATTRIBUTE_SYNC_MEMOPS
#define CU_POINTER_ATTRIBUTE_SYNC_MEMOPS 6
#undef CU_PREFER_BINARY
#define CU_PREFER_BINARY 1
#undef CU_PREFER_PTX
#define CU_PREFER_PTX 0
#undef CU_SHARED_MEM_CONFIG_DEFAULT_BANK_SIZE
#define CU_SHARED_MEM_CONFIG_DEFAULT_BANK_SIZE 0
#undef CU_SHARED_MEM_CONFIG_EIGHT_BYTE_BANK_SIZE
#define CU_SHARED_MEM_CONFIG_EIGHT_BYTE_BANK_SIZE 2
#undef CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE
#define CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE 1
#undef CU_STREAM_DEFAULT
#define CU_STREAM_DEFAULT 0
#undef CU_STREAM_NON_BLOCKING
#define CU_STREAM_NON_BLOCKING 1
#undef CU_TARGET_COMPUTE_30
#define CU_TARGET_COMPUTE_30 30
#undef CU_TARGET_COMPUTE_32
#define CU_TARGET_COMPUTE_32 32
#undef CU_TARGET_COMPUTE_35
#define CU_TARGET_COMPUTE_35 35
#undef CU_TARGET_COMPUTE_37
#define CU_TARGET_COMPUTE_37 37
#undef CU_TARGET_COMPUTE_50
#define CU_TARGET_COMPUTE_50 50
#undef CU_TARGET_COMPUTE_52
#define CU_TARGET_COMPUTE_52 52
#undef CU_TARGET_COMPUTE_53
#define CU_TARGET_COMPUTE_53 53
#undef CU_TARGET_COMPUTE_60
#define CU_TARGET_COMPUTE_60 60
#undef CU_TARGET_COMPUTE_61
#define CU_TARGET_COMPUTE_61 61
#undef CU_TARGET_COMPUTE_62
#define CU_TARGET_COMPUTE_62 62
#undef CU_TRSF_NORMALIZED_COORDINATES
#define CU_TRSF_NORMALIZED_COORDINATES 2
#undef CU_TRSF_READ_AS_INTEGER
#define CU_TRSF_READ_AS_INTEGER 1
#undef CU_TR_ADDRESS_MODE_BORDER
#define CU_TR_ADDRESS_MODE_BORDER 3
#undef CU_TR_ADDRESS_MODE_CLAMP
#define CU_TR_ADDRESS_MODE_CLAMP 1
#undef CU_TR_ADDRESS_MODE_MIRROR
#define CU_TR_ADDRESS_MODE_MIRROR 2
#undef CU_TR_ADDRESS_MODE_WRAP
#define CU_TR_ADDRESS_MODE_WRAP 0
#undef CU_TR_FILTER_MODE_LINEAR
#define CU_TR_FILTER_MODE_LINEAR 1
#undef CU_TR_FILTER_MODE_POINT
#define CU_TR_FILTER_MODE_POINT 0

#endif /* FENNEC_CUDACOMPAT_HAVE_CUDA_H */
#endif /* FENNEC_CUDACOMPAT_H */
