#!/usr/bin/env python3
"""Run f32 and fennec-quantized models through onnxruntime, for BENCHMARKS.md.

    fennec model quantize ../shared/models/M.onnx DIR/M.dynamic.onnx   (each model)
    python3 nn/onnx/testdata/quantize_ort.py DIR [../shared/models]

For each model with DIR/M.{dynamic,static}.onnx: file sizes, max |diff| of
output 0 against the f32 model on the parity inputs (testdata/ref), top-1
agreement for the classifier (parity input and the rendered text line), and
onnxruntime latency (CPU, 1 intra-op thread, median of 200 after 20
warm-ups), f32 and int8 measured in turn (A,B,A,B) so load hits both.
"""
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
QDIR = sys.argv[1]
MODELS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "..", "..", "shared", "models")


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def feeds(model, sess):
    out = []
    dirs = [model] + (["cls_text"] if model.startswith("ch_ppocr_mobile") else [])
    for d in dirs:
        f = {}
        for i, inp in enumerate(sess.get_inputs()):
            f[inp.name] = np.load(os.path.join(HERE, "ref", d, f"input_{i}.npy"))
        out.append(f)
    return out


for model in ["ch_ppocr_mobile_v2.0_cls_infer", "embedding_model", "melspectrogram", "silero_vad_v5", "silero_vad_v4", "ch_PP-OCRv4_det_infer"]:
    f32p = os.path.join(MODELS, model + ".onnx")
    for mode in ("dynamic", "static"):
        qp = os.path.join(QDIR, f"{model}.{mode}.onnx")
        if not os.path.exists(qp):
            continue
        a, b = session(f32p), session(qp)
        fs = feeds(model, a)
        diff, top1 = 0.0, []
        for f in fs:
            ya, yb = a.run(None, f)[0], b.run(None, f)[0]
            diff = max(diff, float(np.max(np.abs(ya - yb))))
            if model.startswith("ch_ppocr_mobile"):
                top1.append(bool(np.all(ya.argmax(-1) == yb.argmax(-1))))
        ts = {0: [], 1: []}
        for _ in range(20):
            a.run(None, fs[0]); b.run(None, fs[0])
        for _ in range(200):
            for k, s in ((0, a), (1, b)):
                t0 = time.perf_counter()
                s.run(None, fs[0])
                ts[k].append(time.perf_counter() - t0)
        ma, mb = statistics.median(ts[0]) * 1e3, statistics.median(ts[1]) * 1e3
        extra = f" top1 {sum(top1)}/{len(top1)}" if top1 else ""
        print(f"{model} {mode}: size {os.path.getsize(f32p)} -> {os.path.getsize(qp)} maxdiff {diff:.4g}{extra} ort f32 {ma:.3f} ms int8 {mb:.3f} ms speedup {ma/mb:.2f}x (ort {ort.__version__})", flush=True)
