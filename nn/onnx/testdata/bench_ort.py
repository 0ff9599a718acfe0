#!/usr/bin/env python3
"""Time onnxruntime on the parity inputs, for BENCHMARKS.md.

    python3 nn/onnx/testdata/bench_ort.py [../shared/models]

CPU provider, intra-op threads 1 and 2, inter-op 1, default graph
optimisations (what users run); median of 200 runs after 20 warm-ups.
"""
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared", "models")

for model in ["ch_ppocr_mobile_v2.0_cls_infer", "embedding_model", "melspectrogram", "silero_vad_v5", "silero_vad_v4", "ch_PP-OCRv4_det_infer"]:
    for threads in (1, 2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(MODELS, model + ".onnx"), so, providers=["CPUExecutionProvider"])
        feed = {}
        for i, inp in enumerate(sess.get_inputs()):
            feed[inp.name] = np.load(os.path.join(HERE, "ref", model, f"input_{i}.npy"))
        for _ in range(20):
            sess.run(None, feed)
        ts = []
        for _ in range(200):
            t0 = time.perf_counter()
            sess.run(None, feed)
            ts.append(time.perf_counter() - t0)
        print(f"{model} threads={threads}: median {statistics.median(ts)*1e3:.3f} ms (ort {ort.__version__})")
