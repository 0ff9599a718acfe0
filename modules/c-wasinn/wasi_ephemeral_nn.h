/* wasi_ephemeral_nn.h: the wasi-nn witx ABI (wasi_ephemeral_nn), transcribed
 * from wasmtime's crates/wasi-nn/witx/wasi-nn.witx and WasmEdge's
 * plugins/wasi_nn (types.h, wasinnfunc.cpp) the way a guest author writes it:
 * nothing fennec-specific. Tensor-type codes differ between the two
 * runtimes; this header follows the witx (the wasi-nn Rust crate), and
 * WASI_NN_WASMEDGE selects WasmEdge's. */
#ifndef WASI_EPHEMERAL_NN_H
#define WASI_EPHEMERAL_NN_H

#include <stdint.h>

typedef uint32_t wasi_nn_errno_t; /* witx tag u16, returned as i32 */
enum {
  WASI_NN_SUCCESS = 0,
  WASI_NN_INVALID_ARGUMENT = 1,
  WASI_NN_INVALID_ENCODING = 2,
  WASI_NN_MISSING_MEMORY = 3,
  WASI_NN_BUSY = 4,
  WASI_NN_RUNTIME_ERROR = 5,
  WASI_NN_UNSUPPORTED_OPERATION = 6,
  WASI_NN_TOO_LARGE = 7,
  WASI_NN_NOT_FOUND = 8,
};

typedef uint8_t wasi_nn_tensor_type_t;
#ifdef WASI_NN_WASMEDGE
enum { WASI_NN_F16 = 0, WASI_NN_F32 = 1, WASI_NN_U8 = 2, WASI_NN_I32 = 3, WASI_NN_I64 = 4 };
#else
enum { WASI_NN_F16 = 0, WASI_NN_F32 = 1, WASI_NN_F64 = 2, WASI_NN_U8 = 3, WASI_NN_I32 = 4, WASI_NN_I64 = 5 };
#endif

typedef uint8_t wasi_nn_graph_encoding_t;
enum { WASI_NN_OPENVINO = 0, WASI_NN_ONNX = 1, WASI_NN_TENSORFLOW = 2, WASI_NN_PYTORCH = 3, WASI_NN_TFLITE = 4, WASI_NN_AUTODETECT = 5 };

typedef uint8_t wasi_nn_target_t;
enum { WASI_NN_CPU = 0, WASI_NN_GPU = 1, WASI_NN_TPU = 2 };

typedef uint32_t wasi_nn_graph_t;
typedef uint32_t wasi_nn_context_t;

typedef struct {
  const uint8_t *data;
  uint32_t len;
} wasi_nn_graph_builder_t;

/* The 20-byte tensor record of the witx. */
typedef struct {
  const uint32_t *dims;
  uint32_t rank;
  wasi_nn_tensor_type_t type;
  const uint8_t *data;
  uint32_t data_len;
} wasi_nn_tensor_t;

#define WASI_NN_IMPORT(name) __attribute__((import_module("wasi_ephemeral_nn"), import_name(name)))

WASI_NN_IMPORT("load")
int32_t wasi_nn_load(const wasi_nn_graph_builder_t *builders, uint32_t n, uint32_t encoding, uint32_t target, wasi_nn_graph_t *graph);
WASI_NN_IMPORT("load_by_name")
int32_t wasi_nn_load_by_name(const char *name, uint32_t len, wasi_nn_graph_t *graph);
WASI_NN_IMPORT("init_execution_context")
int32_t wasi_nn_init_execution_context(wasi_nn_graph_t graph, wasi_nn_context_t *ctx);
WASI_NN_IMPORT("set_input")
int32_t wasi_nn_set_input(wasi_nn_context_t ctx, uint32_t index, const wasi_nn_tensor_t *tensor);
WASI_NN_IMPORT("compute")
int32_t wasi_nn_compute(wasi_nn_context_t ctx);
WASI_NN_IMPORT("get_output")
int32_t wasi_nn_get_output(wasi_nn_context_t ctx, uint32_t index, uint8_t *buf, uint32_t max, uint32_t *written);

#endif
