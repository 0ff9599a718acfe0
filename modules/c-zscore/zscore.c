/*
 * c-zscore: a fennec guest module in C (entrypoint "zscore").
 *
 * Input (CBOR):  {"values": [number, ...]}  or  {"values": bstr of little-endian f32}
 * Output (CBOR): {"values": [float64 z-scores], "mean": float64, "std": float64, "n": uint}
 *
 * The statistics are computed on the host with fennec_tensor ops (reduce mean,
 * subtract with broadcasting, square, sqrt, divide); std is the population
 * standard deviation, and a constant input gives all-zero z-scores. The CBOR
 * reader and writer below are deliberately tiny: definite-length items only
 * (what fennec's SDKs and host produce), nesting limited, every length checked
 * against the input.
 *
 * Build: clang --target=wasm32-wasi -mexec-model=reactor -O2 -o zscore.wasm zscore.c
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fennec.h"

/* ---------- CBOR reader ---------- */

typedef struct {
    const uint8_t *p, *end;
    int err;
} rd;

static int rd_head(rd *r, int *major, uint64_t *arg, int *info) {
    if (r->err || r->p >= r->end) return r->err = 1, 0;
    uint8_t b = *r->p++;
    *major = b >> 5;
    *info = b & 31;
    int n = 0;
    if (*info < 24) {
        *arg = *info;
        return 1;
    }
    switch (*info) {
    case 24: n = 1; break;
    case 25: n = 2; break;
    case 26: n = 4; break;
    case 27: n = 8; break;
    default: return r->err = 1, 0; /* indefinite lengths and reserved values are refused */
    }
    if (r->end - r->p < n) return r->err = 1, 0;
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | *r->p++;
    *arg = v;
    return 1;
}

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Reads a number (int or float); returns 0 on error. */
static int rd_number(rd *r, double *out) {
    int major, info;
    uint64_t a;
    if (!rd_head(r, &major, &a, &info)) return 0;
    if (major == 0) *out = (double)a;
    else if (major == 1) *out = -1.0 - (double)a;
    else if (major == 7 && info == 25) *out = half_to_double((uint16_t)a);
    else if (major == 7 && info == 26) {
        uint32_t u = (uint32_t)a;
        float f;
        memcpy(&f, &u, 4);
        *out = f;
    } else if (major == 7 && info == 27) memcpy(out, &a, 8);
    else return r->err = 1, 0;
    return 1;
}

static int rd_skip(rd *r, int depth) {
    int major, info;
    uint64_t a;
    if (depth > 16 || !rd_head(r, &major, &a, &info)) return r->err = 1, 0;
    switch (major) {
    case 2: case 3:
        if ((uint64_t)(r->end - r->p) < a) return r->err = 1, 0;
        r->p += a;
        return 1;
    case 4:
        for (uint64_t i = 0; i < a; i++) if (!rd_skip(r, depth + 1)) return 0;
        return 1;
    case 5:
        for (uint64_t i = 0; i < 2 * a; i++) if (!rd_skip(r, depth + 1)) return 0;
        return 1;
    case 6:
        return rd_skip(r, depth + 1);
    default:
        return 1;
    }
}

/* ---------- CBOR writer ---------- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int err;
} wr;

static void wr_bytes(wr *w, const void *p, size_t n) {
    if (w->err) return;
    if (w->len + n > w->cap) {
        size_t c = w->cap ? w->cap * 2 : 256;
        while (c < w->len + n) c *= 2;
        uint8_t *nb = realloc(w->buf, c);
        if (!nb) { w->err = 1; return; }
        w->buf = nb;
        w->cap = c;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void wr_head(wr *w, int major, uint64_t v) {
    uint8_t b[9];
    int n;
    if (v < 24) { b[0] = (uint8_t)(major << 5 | v); n = 1; }
    else if (v <= 0xff) { b[0] = (uint8_t)(major << 5 | 24); b[1] = (uint8_t)v; n = 2; }
    else if (v <= 0xffff) { b[0] = (uint8_t)(major << 5 | 25); b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)v; n = 3; }
    else if (v <= 0xffffffffu) {
        b[0] = (uint8_t)(major << 5 | 26);
        for (int i = 0; i < 4; i++) b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
        n = 5;
    } else {
        b[0] = (uint8_t)(major << 5 | 27);
        for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        n = 9;
    }
    wr_bytes(w, b, n);
}

static void wr_text(wr *w, const char *s) {
    size_t n = strlen(s);
    wr_head(w, 3, n);
    wr_bytes(w, s, n);
}

static void wr_double(wr *w, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    uint8_t b[9] = {0xfb};
    for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
    wr_bytes(w, b, 9);
}

/* ---------- entrypoint ---------- */

static char msg[512];

static int32_t failf(const char *what, int32_t code) {
    char err[400];
    fennec_last_error_str(err, sizeof err);
    size_t n = 0;
    const char *parts[] = {what, code < 0 ? ": " : "", code < 0 ? err : ""};
    for (int i = 0; i < 3; i++)
        for (const char *s = parts[i]; *s && n < sizeof msg - 1; s++) msg[n++] = *s;
    msg[n] = 0;
    return fennec_fail_str(msg);
}

/* parse_values fills *vals (malloc'd f32) and *n from the input. */
static int parse_values(const uint8_t *in, size_t len, float **vals, int32_t *n) {
    rd r = {in, in + len, 0};
    int major, info;
    uint64_t pairs;
    if (!rd_head(&r, &major, &pairs, &info) || major != 5) return 0;
    int found = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        uint64_t klen;
        if (!rd_head(&r, &major, &klen, &info) || major != 3 || (uint64_t)(r.end - r.p) < klen) return 0;
        int is_values = klen == 6 && memcmp(r.p, "values", 6) == 0;
        r.p += klen;
        if (!is_values) {
            if (!rd_skip(&r, 0)) return 0;
            continue;
        }
        uint64_t cnt;
        if (!rd_head(&r, &major, &cnt, &info)) return 0;
        if (major == 2) { /* bstr of f32 */
            if (cnt % 4 || (uint64_t)(r.end - r.p) < cnt || cnt / 4 > INT32_MAX / 4) return 0;
            *n = (int32_t)(cnt / 4);
            *vals = malloc(cnt ? cnt : 1);
            if (!*vals) return 0;
            memcpy(*vals, r.p, cnt);
            r.p += cnt;
        } else if (major == 4) {
            /* each element takes at least one byte: bound the allocation by the input */
            if (cnt > (uint64_t)(r.end - r.p) || cnt > INT32_MAX / 4) return 0;
            *n = (int32_t)cnt;
            *vals = malloc(cnt ? cnt * 4 : 1);
            if (!*vals) return 0;
            for (uint64_t j = 0; j < cnt; j++) {
                double d;
                if (!rd_number(&r, &d)) return 0;
                (*vals)[j] = (float)d;
            }
        } else {
            return 0;
        }
        found = 1;
    }
    return found && !r.err && r.p == r.end;
}

/* Tensor handles of one call; 0 = not allocated. All are freed on every
 * path out of zscore (success or error), so a failing call leaks nothing on
 * an instance that is reused for the next call. */
enum { T_X, T_MEAN, T_D, T_SQ, T_VAR, T_COUNT };

static void free_handles(int32_t *h) {
    for (int i = 0; i < T_COUNT; i++)
        if (h[i] > 0) fennec_tensor_free(h[i]);
}

FENNEC_EXPORT("zscore") int32_t zscore(int32_t in_len) {
    if (in_len < 0) return fennec_fail_str("negative input length");
    uint8_t *in = malloc(in_len ? (size_t)in_len : 1);
    if (!in) return fennec_fail_str("out of memory");
    int32_t got = fennec_input(in, in_len);
    if (got < 0) {
        free(in);
        return failf("input", got);
    }
    float *vals = NULL;
    int32_t n = 0;
    if (!parse_values(in, (size_t)got, &vals, &n)) {
        free(in);
        free(vals);
        return fennec_fail_str("input: want a CBOR map {\"values\": [numbers] or bstr of f32}");
    }
    free(in);
    if (n == 0) {
        free(vals);
        return fennec_fail_str("input: no values");
    }

    int32_t h[T_COUNT] = {0};
    int32_t rc = 0;
    const char *what = NULL;
    float m = 0, s = 0;
#define TRY(expr, name)            \
    do {                           \
        rc = (expr);               \
        if (rc < 0) {              \
            what = (name);         \
            goto fail;             \
        }                          \
    } while (0)
    TRY(h[T_X] = fennec_tensor_f32_2d(1, n, vals), "tensor.new");
    TRY(h[T_MEAN] = fennec_tensor_reduce(FENNEC_REDUCE_MEAN, h[T_X], 1, 1, 0), "reduce mean");
    TRY(h[T_D] = fennec_tensor_binary(FENNEC_SUB, h[T_X], h[T_MEAN], 0), "sub");
    TRY(h[T_SQ] = fennec_tensor_unary(FENNEC_SQUARE, h[T_D], 0, 0), "square");
    TRY(h[T_VAR] = fennec_tensor_reduce(FENNEC_REDUCE_MEAN, h[T_SQ], 1, 1, 0), "reduce var");
    TRY(fennec_tensor_unary(FENNEC_SQRT, h[T_VAR], 0, h[T_VAR]), "sqrt"); /* in place: var becomes std */
    TRY(fennec_tensor_read(h[T_MEAN], &m, 4), "read mean");
    TRY(fennec_tensor_read(h[T_VAR], &s, 4), "read std");
    if (s > 0) {
        /* z into sq's storage (sq is no longer needed) */
        TRY(fennec_tensor_binary(FENNEC_DIV, h[T_D], h[T_VAR], h[T_SQ]), "div");
        TRY(fennec_tensor_read(h[T_SQ], vals, n * 4), "read z");
    } else {
        memset(vals, 0, (size_t)n * 4);
    }
#undef TRY
    free_handles(h);

    wr w = {0};
    wr_head(&w, 5, 4);
    wr_text(&w, "values");
    wr_head(&w, 4, (uint64_t)n);
    for (int32_t i = 0; i < n; i++) wr_double(&w, vals[i]);
    wr_text(&w, "mean");
    wr_double(&w, m);
    wr_text(&w, "std");
    wr_double(&w, s);
    wr_text(&w, "n");
    wr_head(&w, 0, (uint64_t)n);
    free(vals);
    if (w.err) {
        free(w.buf);
        return fennec_fail_str("out of memory");
    }
    rc = fennec_output(w.buf, (int32_t)w.len);
    free(w.buf);
    if (rc < 0) return failf("output", rc);
    return 0;

fail:
    /* failf reads last_error before the frees can replace it */
    rc = failf(what, rc);
    free_handles(h);
    free(vals);
    return rc;
}
