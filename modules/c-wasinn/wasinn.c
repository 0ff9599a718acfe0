/* wasinn: run an ONNX model through wasi-nn and print its outputs.
 *
 *   wasinn (--name NAME | --file MODEL.onnx) -i TYPE:DIMS:FILE ... [--outputs N] [--max BYTES]
 *
 * TYPE is f32, u8, i32 or i64; DIMS like 1x3x48x192; FILE holds the raw
 * little-endian elements. Each output is printed as "output K: N bytes"
 * followed by its values read as f32, one per line. Written the way an
 * author of a WasmEdge or wasmtime guest writes one: plain WASI and the
 * witx header, nothing of fennec. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasi_ephemeral_nn.h"

#define MAX_INPUTS 8
#define MAX_RANK 8

static uint8_t *read_file(const char *path, uint32_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "wasinn: cannot open %s\n", path);
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0) break;
    n += r;
  }
  fclose(f);
  *len = (uint32_t)n;
  return buf;
}

static int parse_type(const char *s, size_t n, wasi_nn_tensor_type_t *t) {
  if (n == 3 && !strncmp(s, "f32", 3)) { *t = WASI_NN_F32; return 0; }
  if (n == 2 && !strncmp(s, "u8", 2)) { *t = WASI_NN_U8; return 0; }
  if (n == 3 && !strncmp(s, "i32", 3)) { *t = WASI_NN_I32; return 0; }
  if (n == 3 && !strncmp(s, "i64", 3)) { *t = WASI_NN_I64; return 0; }
  return -1;
}

int main(int argc, char **argv) {
  const char *name = NULL, *file = NULL;
  wasi_nn_tensor_t inputs[MAX_INPUTS];
  uint32_t dims[MAX_INPUTS][MAX_RANK];
  int ninputs = 0;
  uint32_t maxout = 1 << 20, noutputs = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--name") && i + 1 < argc) {
      name = argv[++i];
    } else if (!strcmp(argv[i], "--file") && i + 1 < argc) {
      file = argv[++i];
    } else if (!strcmp(argv[i], "--outputs") && i + 1 < argc) {
      noutputs = (uint32_t)strtoul(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--max") && i + 1 < argc) {
      maxout = (uint32_t)strtoul(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "-i") && i + 1 < argc && ninputs < MAX_INPUTS) {
      char *spec = argv[++i];
      char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
      wasi_nn_tensor_t *t = &inputs[ninputs];
      if (!c2 || parse_type(spec, (size_t)(c1 - spec), &t->type)) {
        fprintf(stderr, "wasinn: bad input %s (want TYPE:DIMS:FILE)\n", spec);
        return 2;
      }
      t->rank = 0;
      for (char *p = c1 + 1; p < c2 && t->rank < MAX_RANK;) {
        dims[ninputs][t->rank++] = (uint32_t)strtoul(p, &p, 10);
        if (*p == 'x') p++;
      }
      t->dims = dims[ninputs];
      t->data = read_file(c2 + 1, &t->data_len);
      if (!t->data) return 1;
      ninputs++;
    } else {
      fprintf(stderr, "usage: wasinn (--name NAME | --file MODEL.onnx) -i TYPE:DIMS:FILE ... [--outputs N] [--max BYTES]\n");
      return 2;
    }
  }
  wasi_nn_graph_t graph;
  int32_t err;
  if (name) {
    err = wasi_nn_load_by_name(name, (uint32_t)strlen(name), &graph);
  } else if (file) {
    wasi_nn_graph_builder_t b;
    b.data = read_file(file, &b.len);
    if (!b.data) return 1;
    err = wasi_nn_load(&b, 1, WASI_NN_ONNX, WASI_NN_CPU, &graph);
  } else {
    fprintf(stderr, "wasinn: --name or --file is required\n");
    return 2;
  }
  if (err) {
    fprintf(stderr, "wasinn: load: errno %d\n", (int)err);
    return 1;
  }
  wasi_nn_context_t ctx;
  if ((err = wasi_nn_init_execution_context(graph, &ctx))) {
    fprintf(stderr, "wasinn: init_execution_context: errno %d\n", (int)err);
    return 1;
  }
  for (int i = 0; i < ninputs; i++) {
    if ((err = wasi_nn_set_input(ctx, (uint32_t)i, &inputs[i]))) {
      fprintf(stderr, "wasinn: set_input %d: errno %d\n", i, (int)err);
      return 1;
    }
  }
  if ((err = wasi_nn_compute(ctx))) {
    fprintf(stderr, "wasinn: compute: errno %d\n", (int)err);
    return 1;
  }
  uint8_t *out = malloc(maxout);
  for (uint32_t k = 0; k < noutputs; k++) {
    uint32_t n = 0;
    err = wasi_nn_get_output(ctx, k, out, maxout, &n);
    if (err) {
      fprintf(stderr, "wasinn: get_output %u: errno %d\n", k, (int)err);
      return 1;
    }
    printf("output %u: %u bytes\n", k, n);
    for (uint32_t j = 0; j + 4 <= n; j += 4) {
      float v;
      memcpy(&v, out + j, 4);
      printf("%.9g\n", v);
    }
  }
  return 0;
}
