/*
 * fennec.h - fennec host ABI v1 for C, C++, Zig and other clang-based guests.
 *
 * This header declares the host imports of docs/ABI.md with their import
 * module and name, the ABI's numeric codes, and small inline helpers. It
 * needs no library: build a reactor module with
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o m.wasm m.c
 *
 * (add --sysroot=/path/to/wasi-sysroot when wasi-libc is not installed where
 * clang looks by default; Debian's wasi-libc package needs no flag).
 *
 * An entrypoint is an exported function int32_t name(int32_t in_len):
 *
 *   FENNEC_EXPORT("process") int32_t process(int32_t in_len) {
 *       uint8_t *in = malloc(in_len);
 *       if (fennec_input(in, in_len) < 0) return fennec_fail_str("input");
 *       ...
 *       fennec_output(out, out_len);
 *       return 0;
 *   }
 *
 * Within ABI major version 1 functions are only ever added; codes and
 * signatures never change.
 */
#ifndef FENNEC_H
#define FENNEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FENNEC_ABI_VERSION 1

#define FENNEC_IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define FENNEC_EXPORT(name) __attribute__((export_name(name)))

/* Error codes: every function returns >= 0 on success, one of these on error. */
enum {
    FENNEC_EINVAL = -1,    /* invalid argument: unknown op, flag, axis */
    FENNEC_EMEM = -2,      /* pointer/length outside guest memory */
    FENNEC_EHANDLE = -3,   /* unknown, freed, forged or foreign handle */
    FENNEC_ESHAPE = -4,    /* malformed shape or shapes do not fit */
    FENNEC_EDTYPE = -5,    /* unknown or unsupported dtype */
    FENNEC_EQUOTA = -6,    /* tensor byte or handle quota exceeded */
    FENNEC_EDENIED = -7,   /* capability not granted */
    FENNEC_ENOMEM = -8,    /* backend could not allocate */
    FENNEC_EINTERNAL = -9, /* host failure; see fennec_last_error */
    FENNEC_ESTATE = -10,   /* not valid now (e.g. input outside a call) */
    FENNEC_EBUDGET = -11,  /* privacy budget would be overspent */
    FENNEC_ETOOBIG = -12   /* buffer larger than the host's limit */
};

/* Log levels (slog numbering). */
enum { FENNEC_LOG_DEBUG = -4, FENNEC_LOG_INFO = 0, FENNEC_LOG_WARN = 4, FENNEC_LOG_ERROR = 8 };

/* dtypes */
enum { FENNEC_F32 = 1, FENNEC_I8 = 2, FENNEC_I32 = 3 };

/* matmul flags */
enum { FENNEC_TRANS_A = 1, FENNEC_TRANS_B = 2 };

/* binary ops (NumPy broadcasting) */
enum { FENNEC_ADD = 1, FENNEC_SUB = 2, FENNEC_MUL = 3, FENNEC_DIV = 4, FENNEC_MAX = 5, FENNEC_MIN = 6 };

/* unary ops */
enum {
    FENNEC_SCALE = 1, FENNEC_ADD_SCALAR = 2, FENNEC_NEG = 3, FENNEC_EXP = 4, FENNEC_LOG = 5,
    FENNEC_SQRT = 6, FENNEC_SQUARE = 7, FENNEC_ABS = 8, FENNEC_RELU = 9, FENNEC_SIGMOID = 10,
    FENNEC_TANH = 11, FENNEC_POW = 12, FENNEC_CLAMP = 13, FENNEC_COPY = 14
};

/* reductions */
enum { FENNEC_REDUCE_SUM = 1, FENNEC_REDUCE_MEAN = 2, FENNEC_REDUCE_MAX = 3, FENNEC_REDUCE_MIN = 4 };

/* losses (batch mean) */
enum { FENNEC_LOSS_SOFTMAX_CE = 1, FENNEC_LOSS_BCE = 2, FENNEC_LOSS_MSE = 3 };

/* ---- core module "fennec" (always granted) ---- */
FENNEC_IMPORT("fennec", "abi_version") int32_t fennec_abi_version(void);
FENNEC_IMPORT("fennec", "last_error") int32_t fennec_last_error(char *buf, int32_t buf_cap);
FENNEC_IMPORT("fennec", "input") int32_t fennec_input(void *buf, int32_t buf_cap);
FENNEC_IMPORT("fennec", "output") int32_t fennec_output(const void *ptr, int32_t len);
FENNEC_IMPORT("fennec", "fail") int32_t fennec_fail(const char *ptr, int32_t len);
FENNEC_IMPORT("fennec", "log") int32_t fennec_log(int32_t level, const char *ptr, int32_t len);

/* ---- "fennec_tensor" (capability "tensor") ---- */
FENNEC_IMPORT("fennec_tensor", "new")
int32_t fennec_tensor_new(int32_t dtype, const int32_t *shape, int32_t rank, const void *data, int32_t data_len);
FENNEC_IMPORT("fennec_tensor", "free") int32_t fennec_tensor_free(int32_t h);
FENNEC_IMPORT("fennec_tensor", "dtype") int32_t fennec_tensor_dtype(int32_t h);
FENNEC_IMPORT("fennec_tensor", "rank") int32_t fennec_tensor_rank(int32_t h);
FENNEC_IMPORT("fennec_tensor", "shape") int32_t fennec_tensor_shape(int32_t h, int32_t *buf, int32_t buf_cap);
FENNEC_IMPORT("fennec_tensor", "read") int32_t fennec_tensor_read(int32_t h, void *buf, int32_t buf_len);
FENNEC_IMPORT("fennec_tensor", "write") int32_t fennec_tensor_write(int32_t h, const void *ptr, int32_t len);
FENNEC_IMPORT("fennec_tensor", "reshape") int32_t fennec_tensor_reshape(int32_t h, const int32_t *shape, int32_t rank);
FENNEC_IMPORT("fennec_tensor", "matmul") int32_t fennec_tensor_matmul(int32_t a, int32_t b, int32_t flags, int32_t out);
FENNEC_IMPORT("fennec_tensor", "binary") int32_t fennec_tensor_binary(int32_t op, int32_t a, int32_t b, int32_t out);
FENNEC_IMPORT("fennec_tensor", "unary") int32_t fennec_tensor_unary(int32_t op, int32_t a, float alpha, int32_t out);
FENNEC_IMPORT("fennec_tensor", "unary_grad")
int32_t fennec_tensor_unary_grad(int32_t op, int32_t x, int32_t g, float alpha, int32_t out);
FENNEC_IMPORT("fennec_tensor", "axpy") int32_t fennec_tensor_axpy(int32_t y, int32_t x, float alpha);
FENNEC_IMPORT("fennec_tensor", "softmax") int32_t fennec_tensor_softmax(int32_t a, int32_t axis, int32_t log, int32_t out);
FENNEC_IMPORT("fennec_tensor", "reduce")
int32_t fennec_tensor_reduce(int32_t op, int32_t a, int32_t axis, int32_t keepdims, int32_t out);
FENNEC_IMPORT("fennec_tensor", "argmax") int32_t fennec_tensor_argmax(int32_t a, int32_t axis, int32_t out);
FENNEC_IMPORT("fennec_tensor", "loss")
int32_t fennec_tensor_loss(int32_t op, int32_t pred, int32_t target, float *loss, int32_t grad_out);

/* ---- "fennec_privacy" (capability "privacy"): patient-level DP-SGD ---- */
/* Charges the call's dataset for `steps` Poisson-sampled Gaussian steps and starts the run;
 * groups is an i32 [rows] tensor of dense unit (patient) ids. Returns the number of units. */
FENNEC_IMPORT("fennec_privacy", "dp_sgd_begin")
int32_t fennec_dp_sgd_begin(int32_t groups, double clip, double noise_multiplier, double sampling_rate, int32_t steps);
/* One step: params and out are n_params handles (weight [in, out], bias [out] per layer of a ReLU MLP
 * with one logit); out receives the noisy mean of the sampled units' clipped gradients. Returns the
 * number of units the host sampled. */
FENNEC_IMPORT("fennec_privacy", "dp_sgd_step")
int32_t fennec_dp_sgd_step(const int32_t *params, int32_t n_params, int32_t x, int32_t y, const int32_t *out);

/* ---- inline helpers ---- */

static inline size_t fennec__strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* Logs a NUL-terminated message. */
static inline void fennec_log_str(int32_t level, const char *msg) {
    fennec_log(level, msg, (int32_t)fennec__strlen(msg));
}

/* Records msg as the call's failure and returns 1, for `return fennec_fail_str(...)`. */
static inline int32_t fennec_fail_str(const char *msg) {
    fennec_fail(msg, (int32_t)fennec__strlen(msg));
    return 1;
}


/* ---- "fennec_nn" (capability "nn"): the operator's ONNX models on tensor handles ----
 * which: 0 inputs, 1 outputs. int64 model values travel as FENNEC_I32 tensors,
 * int8/uint8/bool as FENNEC_I8 (docs/ABI.md). */
FENNEC_IMPORT("fennec_nn", "graph_load") int32_t fennec_nn_graph_load(const char *name, int32_t name_len);
FENNEC_IMPORT("fennec_nn", "graph_free") int32_t fennec_nn_graph_free(int32_t graph);
FENNEC_IMPORT("fennec_nn", "graph_io_count") int32_t fennec_nn_graph_io_count(int32_t graph, int32_t which);
FENNEC_IMPORT("fennec_nn", "graph_io_name")
int32_t fennec_nn_graph_io_name(int32_t graph, int32_t which, int32_t index, char *buf, int32_t buf_cap);
FENNEC_IMPORT("fennec_nn", "graph_io_shape")
int32_t fennec_nn_graph_io_shape(int32_t graph, int32_t which, int32_t index, int32_t *dims, int32_t dims_cap);
FENNEC_IMPORT("fennec_nn", "graph_io_dtype") int32_t fennec_nn_graph_io_dtype(int32_t graph, int32_t which, int32_t index);
FENNEC_IMPORT("fennec_nn", "graph_run")
int32_t fennec_nn_graph_run(int32_t graph, const int32_t *inputs, int32_t n_inputs, int32_t *outputs, int32_t outputs_cap);

/* Copies the last error message into buf (NUL-terminated, truncated to cap-1). */
static inline const char *fennec_last_error_str(char *buf, int32_t cap) {
    if (cap <= 0) return "";
    int32_t n = fennec_last_error(buf, cap - 1);
    if (n < 0) n = 0;
    if (n > cap - 1) n = cap - 1;
    buf[n] = 0;
    return buf;
}

/* Creates an f32 tensor of rank-2 shape [rows, cols] from data (NULL zero-fills). */
static inline int32_t fennec_tensor_f32_2d(int32_t rows, int32_t cols, const float *data) {
    int32_t shape[2] = {rows, cols};
    return fennec_tensor_new(FENNEC_F32, shape, 2, data, data ? rows * cols * 4 : 0);
}

#ifdef __cplusplus
}
#endif
#endif /* FENNEC_H */
