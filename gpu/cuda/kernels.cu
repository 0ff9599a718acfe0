// fennec CUDA kernels. The backend compiles this file with NVRTC when it
// starts (for the device's own architecture) and loads the PTX through the
// driver API; it is embedded in the binary (kernels.go).
//
// Conventions, checked by kernels_test.go:
//  * every kernel is extern "C" and listed in kernelSpecs (kernels.go) with
//    its parameter list;
//  * every parameter is a pointer, an i64, a double, or a float: gorgonia's
//    launcher copies 8 bytes per parameter, so floats travel in the low half
//    of an 8-byte slot (little endian) and integers are always 64-bit;
//  * loops are grid-stride loops, so any grid size is correct and the host
//    caps grids to a few waves of the device;
//  * sums that the CPU backend accumulates in float64 are accumulated in
//    double here too, so both backends agree within gputest's tolerances.

typedef long long i64;
typedef unsigned long long u64;

#define FOR_EACH(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)
#define INF __int_as_float(0x7f800000)

// ---- elementwise ----

// Binary ops (gpu.BinaryOp values). max/min return a when the comparison
// is false, as the CPU backend does.
__device__ __forceinline__ float bin_op(i64 op, float a, float b) {
    switch (op) {
    case 1: return a + b;
    case 2: return a - b;
    case 3: return a * b;
    case 4: return a / b;
    case 5: return b > a ? b : a;
    case 6: return b < a ? b : a;
    }
    return 0.0f;
}

// binary: out = a op b where each operand is either a full vector (mode 0)
// or one scalar broadcast to all n (mode 1).
extern "C" __global__ void binary(i64 op, float *out, const float *a, const float *b, i64 n, i64 amode, i64 bmode) {
    FOR_EACH(i, n) {
        float x = a[amode ? 0 : i];
        float y = b[bmode ? 0 : i];
        out[i] = bin_op(op, x, y);
    }
}

// binary_bcast: NumPy broadcasting over at most 8 (coalesced) dimensions.
// d0..d7 are the output dimensions, padded at the front with 1; sa and sb
// are the element strides of a and b along them (0 where broadcast).
// Indices stay below 2^31 (gpu.MaxElements), so 32-bit division suffices.
extern "C" __global__ void binary_bcast(i64 op, float *out, const float *a, const float *b, i64 n,
        i64 d0, i64 d1, i64 d2, i64 d3, i64 d4, i64 d5, i64 d6, i64 d7,
        i64 sa0, i64 sa1, i64 sa2, i64 sa3, i64 sa4, i64 sa5, i64 sa6, i64 sa7,
        i64 sb0, i64 sb1, i64 sb2, i64 sb3, i64 sb4, i64 sb5, i64 sb6, i64 sb7) {
    const unsigned d[8] = {(unsigned)d0, (unsigned)d1, (unsigned)d2, (unsigned)d3, (unsigned)d4, (unsigned)d5, (unsigned)d6, (unsigned)d7};
    const unsigned sa[8] = {(unsigned)sa0, (unsigned)sa1, (unsigned)sa2, (unsigned)sa3, (unsigned)sa4, (unsigned)sa5, (unsigned)sa6, (unsigned)sa7};
    const unsigned sb[8] = {(unsigned)sb0, (unsigned)sb1, (unsigned)sb2, (unsigned)sb3, (unsigned)sb4, (unsigned)sb5, (unsigned)sb6, (unsigned)sb7};
    FOR_EACH(i, n) {
        unsigned rem = (unsigned)i, oa = 0, ob = 0;
#pragma unroll
        for (int k = 7; k >= 0; k--) {
            unsigned q = rem / d[k];
            unsigned r = rem - q * d[k];
            oa += r * sa[k];
            ob += r * sb[k];
            rem = q;
        }
        out[i] = bin_op(op, a[oa], b[ob]);
    }
}

__device__ __forceinline__ float sigmoid_f(float x) {
    // e = e^-|x|: sigmoid(|x|) = 1/(1+e), sigmoid(-|x|) = e/(1+e)
    float e = expf(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x < 0.0f ? e * s : s;
}

// unary: gpu.UnaryOp values.
extern "C" __global__ void unary(i64 op, float *out, const float *a, i64 n, float alpha) {
    FOR_EACH(i, n) {
        float x = a[i], r;
        switch (op) {
        case 1: r = alpha * x; break;
        case 2: r = x + alpha; break;
        case 3: r = -x; break;
        case 4: r = expf(x); break;
        case 5: r = logf(x); break;
        case 6: r = sqrtf(x); break;
        case 7: r = x * x; break;
        case 8: r = fabsf(x); break;
        case 9: r = x > 0.0f ? x : 0.0f; break;
        case 10: r = sigmoid_f(x); break;
        case 11: r = tanhf(x); break;
        case 12: r = powf(x, alpha); break;
        case 13: r = x < -alpha ? -alpha : x; r = r > alpha ? alpha : r; break;
        default: r = x; break; // 14: copy
        }
        out[i] = r;
    }
}

// unary_grad: out = g * op'(x).
extern "C" __global__ void unary_grad(i64 op, float *out, const float *x, const float *g, i64 n, float alpha) {
    FOR_EACH(i, n) {
        float v = x[i], gv = g[i], r;
        switch (op) {
        case 1: r = alpha * gv; break;
        case 4: r = gv * expf(v); break;
        case 5: r = gv / v; break;
        case 6: r = gv / (2.0f * sqrtf(v)); break;
        case 7: r = 2.0f * v * gv; break;
        case 8: r = v > 0.0f ? gv : (v < 0.0f ? -gv : 0.0f); break;
        case 9: r = v > 0.0f ? gv : 0.0f; break;
        case 10: { float s = sigmoid_f(v); r = gv * s * (1.0f - s); } break;
        case 11: { float t = tanhf(v); r = gv * (1.0f - t * t); } break;
        default: r = 0.0f; break;
        }
        out[i] = r;
    }
}

extern "C" __global__ void axpy(float *y, const float *x, i64 n, float alpha) {
    FOR_EACH(i, n) { y[i] += alpha * x[i]; }
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----

__device__ double block_sum(double v) {
    __shared__ double sh[33];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    v = sh[32];
    __syncthreads();
    return v;
}

// block_max and block_min return the extreme over the block to every thread
// (b > a ? b : a, as the CPU backend compares).
__device__ float block_ext(float v, bool isMax) {
    __shared__ float sh[33];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_down_sync(0xffffffffu, v, o);
        v = isMax ? (u > v ? u : v) : (u < v ? u : v);
    }
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < (int)(blockDim.x >> 5) ? sh[lane] : (isMax ? -INF : INF);
        for (int o = 16; o > 0; o >>= 1) {
            float u = __shfl_down_sync(0xffffffffu, v, o);
            v = isMax ? (u > v ? u : v) : (u < v ? u : v);
        }
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    v = sh[32];
    __syncthreads();
    return v;
}

// ---- reductions along an axis: the input is viewed as [outer, L, inner] ----

// reduce_rows handles inner == 1: one block per row of length L.
// op: 1 sum, 2 mean, 3 max, 4 min.
extern "C" __global__ void reduce_rows(i64 op, float *out, const float *a, i64 rows, i64 L) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *row = a + r * L;
        if (op <= 2) {
            double s = 0.0;
            for (i64 k = threadIdx.x; k < L; k += blockDim.x) s += (double)row[k];
            s = block_sum(s);
            if (threadIdx.x == 0) out[r] = (float)(op == 2 ? s / (double)L : s);
        } else {
            const bool isMax = op == 3;
            float m = isMax ? -INF : INF;
            for (i64 k = threadIdx.x; k < L; k += blockDim.x) {
                float v = row[k];
                m = isMax ? (v > m ? v : m) : (v < m ? v : m);
            }
            m = block_ext(m, isMax);
            if (threadIdx.x == 0) out[r] = m;
        }
    }
}

// reduce_cols handles inner > 1: one thread per output element walks the
// axis with stride inner (neighbouring threads read neighbouring columns).
extern "C" __global__ void reduce_cols(i64 op, float *out, const float *a, i64 outer, i64 L, i64 inner) {
    FOR_EACH(c, outer * inner) {
        const i64 o = c / inner, j = c - o * inner;
        const float *col = a + o * L * inner + j;
        if (op <= 2) {
            double s = 0.0;
            for (i64 k = 0; k < L; k++) s += (double)col[k * inner];
            out[c] = (float)(op == 2 ? s / (double)L : s);
        } else {
            const bool isMax = op == 3;
            float m = isMax ? -INF : INF;
            for (i64 k = 0; k < L; k++) {
                float v = col[k * inner];
                m = isMax ? (v > m ? v : m) : (v < m ? v : m);
            }
            out[c] = m;
        }
    }
}

// ---- softmax ----

extern "C" __global__ void softmax_rows(float *out, const float *a, i64 rows, i64 L, i64 logMode) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *x = a + r * L;
        float *o = out + r * L;
        float m = -INF;
        for (i64 k = threadIdx.x; k < L; k += blockDim.x) m = x[k] > m ? x[k] : m;
        m = block_ext(m, true);
        double s = 0.0;
        for (i64 k = threadIdx.x; k < L; k += blockDim.x) s += (double)expf(x[k] - m);
        s = block_sum(s);
        if (logMode) {
            const float ls = (float)log(s);
            for (i64 k = threadIdx.x; k < L; k += blockDim.x) o[k] = (x[k] - m) - ls;
        } else {
            const double inv = 1.0 / s;
            for (i64 k = threadIdx.x; k < L; k += blockDim.x) o[k] = (float)((double)expf(x[k] - m) * inv);
        }
    }
}

extern "C" __global__ void softmax_cols(float *out, const float *a, i64 outer, i64 L, i64 inner, i64 logMode) {
    FOR_EACH(c, outer * inner) {
        const i64 o = c / inner, j = c - o * inner, base = o * L * inner + j;
        float m = -INF;
        for (i64 k = 0; k < L; k++) { float v = a[base + k * inner]; m = v > m ? v : m; }
        double s = 0.0;
        for (i64 k = 0; k < L; k++) s += (double)expf(a[base + k * inner] - m);
        if (logMode) {
            const float ls = (float)log(s);
            for (i64 k = 0; k < L; k++) out[base + k * inner] = (a[base + k * inner] - m) - ls;
        } else {
            const double inv = 1.0 / s;
            for (i64 k = 0; k < L; k++) out[base + k * inner] = (float)((double)expf(a[base + k * inner] - m) * inv);
        }
    }
}

// ---- argmax (first index of the maximum, as the CPU backend) ----

extern "C" __global__ void argmax_rows(int *out, const float *a, i64 rows, i64 L) {
    __shared__ float sv[1024];
    __shared__ i64 si[1024];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *x = a + r * L;
        float best = 0.0f;
        i64 bi = -1;
        for (i64 k = threadIdx.x; k < L; k += blockDim.x) {
            float v = x[k];
            if (bi < 0 || v > best) { best = v; bi = k; }
        }
        sv[threadIdx.x] = best;
        si[threadIdx.x] = bi;
        __syncthreads();
        for (unsigned s = blockDim.x >> 1; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                float v = sv[threadIdx.x + s];
                i64 k = si[threadIdx.x + s];
                i64 cur = si[threadIdx.x];
                if (k >= 0 && (cur < 0 || v > sv[threadIdx.x] || (v == sv[threadIdx.x] && k < cur))) {
                    sv[threadIdx.x] = v;
                    si[threadIdx.x] = k;
                }
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) out[r] = (int)si[0];
        __syncthreads();
    }
}

extern "C" __global__ void argmax_cols(int *out, const float *a, i64 outer, i64 L, i64 inner) {
    FOR_EACH(c, outer * inner) {
        const i64 o = c / inner, j = c - o * inner, base = o * L * inner + j;
        float best = a[base];
        i64 bi = 0;
        for (i64 k = 1; k < L; k++) {
            float v = a[base + k * inner];
            if (v > best) { best = v; bi = k; }
        }
        out[c] = (int)bi;
    }
}

// ---- losses: each block adds its share of the loss sum to part[blockIdx.x]
// (gridDim.x <= the scratch size); the host adds the partial sums. ----

// mse: sum (p-t)^2; grad = 2(p-t)/n (inv = 1/n).
extern "C" __global__ void loss_mse(double *part, float *grad, const float *p, const float *t, i64 n, double inv) {
    double s = 0.0;
    FOR_EACH(i, n) {
        double d = (double)p[i] - (double)t[i];
        s += d * d;
        if (grad) grad[i] = (float)(2.0 * d * inv);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// bce on logits: max(z,0) - z*y + log(1+e^-|z|); grad = (sigmoid(z)-y)/n.
extern "C" __global__ void loss_bce(double *part, float *grad, const float *p, const float *t, i64 n, double inv) {
    double s = 0.0;
    FOR_EACH(i, n) {
        const double y = (double)t[i], z = (double)p[i];
        s += fmax(z, 0.0) - z * y + log1p(exp(-fabs(z)));
        if (grad) grad[i] = (float)(((double)sigmoid_f(p[i]) - y) * inv);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// sce_check records in *bad the smallest index of a class target outside
// [0, classes) (the host initialises *bad to all ones).
extern "C" __global__ void sce_check(u64 *bad, const int *target, i64 batch, i64 classes) {
    FOR_EACH(i, batch) {
        int c = target[i];
        if (c < 0 || (i64)c >= classes) atomicMin(bad, (u64)i);
    }
}

// sce_rows: softmax cross-entropy, one block per row of logits. Targets are
// class indices (ti) or probabilities (tf); exactly one is non-null. When
// sce_check found a bad target nothing is written.
extern "C" __global__ void sce_rows(double *part, float *grad, const float *p, const int *ti, const float *tf,
        i64 batch, i64 classes, double inv, const u64 *bad) {
    if (ti && *bad != ~0ull) return;
    double total = 0.0;
    for (i64 r = blockIdx.x; r < batch; r += gridDim.x) {
        const float *row = p + r * classes;
        float m = -INF;
        for (i64 k = threadIdx.x; k < classes; k += blockDim.x) m = row[k] > m ? row[k] : m;
        m = block_ext(m, true);
        double s = 0.0;
        for (i64 k = threadIdx.x; k < classes; k += blockDim.x) s += (double)expf(row[k] - m);
        s = block_sum(s);
        const double lse = (double)m + log(s);
        double l = 0.0;
        if (ti) {
            if (threadIdx.x == 0) l = lse - (double)row[ti[r]];
        } else {
            for (i64 k = threadIdx.x; k < classes; k += blockDim.x) {
                double y = (double)tf[r * classes + k];
                if (y != 0.0) l += y * (lse - (double)row[k]);
            }
        }
        total += block_sum(l);
        if (grad) {
            for (i64 k = threadIdx.x; k < classes; k += blockDim.x) {
                double y = ti ? (k == (i64)ti[r] ? 1.0 : 0.0) : (double)tf[r * classes + k];
                grad[r * classes + k] = (float)((exp((double)row[k] - lse) - y) * inv);
            }
        }
    }
    if (threadIdx.x == 0) part[blockIdx.x] = total;
}
