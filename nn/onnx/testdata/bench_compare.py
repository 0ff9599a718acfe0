#!/usr/bin/env python3
"""fennec against onnxruntime, interleaved, for BENCHMARKS.md.

    python3 nn/onnx/testdata/bench_compare.py [../shared/models] [--rounds 3] [--runs 200] [--threads 1,2]

On a shared machine the load changes from minute to minute, so the two
engines are measured in turn, model by model (fennec, onnxruntime, fennec,
onnxruntime, ...), for --rounds rounds; each measurement is the mean latency
of --runs runs after warm-up (fennec: `go test -bench BenchmarkModels` with
-benchtime Nx on a test binary built once; onnxruntime 1.32 CPU provider,
intra-op threads as fennec's, inter-op 1, default graph optimisations, one
session per model and thread count kept across rounds). The table gives the
median over rounds of each, their ratio, fennec's allocations per run and
the geometric mean of the ratios per thread count.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)  # nn/onnx
ROOT = os.path.dirname(os.path.dirname(PKG))
MODELS = ["ch_ppocr_mobile_v2.0_cls_infer", "embedding_model", "melspectrogram", "silero_vad_v5", "silero_vad_v4", "ch_PP-OCRv4_det_infer"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="?", default=os.path.join(ROOT, "..", "shared", "models"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="", help="comma-separated model names (default: all six)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    models = args.only.split(",") if args.only else MODELS

    tmp = tempfile.mkdtemp()
    binary = os.path.join(tmp, "onnx.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./nn/onnx/"], cwd=ROOT, check=True)

    sessions, feeds = {}, {}
    for model in models:
        ref = os.path.join(HERE, "ref", model)
        for t in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            s = ort.InferenceSession(os.path.join(args.models, model + ".onnx"), so, providers=["CPUExecutionProvider"])
            sessions[model, t] = s
            feeds[model] = {inp.name: np.load(os.path.join(ref, f"input_{i}.npy")) for i, inp in enumerate(s.get_inputs())}

    fen, rt, allocs = {}, {}, {}
    for r in range(args.rounds):
        for model in models:
            for t in threads:
                name = f"BenchmarkModels/{re.escape(model)}.onnx/threads={t}$"
                out = subprocess.run([binary, "-test.run", "^$", "-test.bench", name, "-test.benchmem",
                                      "-test.benchtime", f"{args.runs}x"], cwd=PKG, check=True,
                                     capture_output=True, text=True).stdout
                m = re.search(r"\s([\d.]+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op", out)
                if not m:
                    sys.exit(f"no benchmark line for {model} threads={t}:\n{out}")
                fen.setdefault((model, t), []).append(float(m.group(1)) / 1e6)
                allocs[model, t] = (int(m.group(2)), int(m.group(3)))

                s, feed = sessions[model, t], feeds[model]
                for _ in range(20):
                    s.run(None, feed)
                t0 = time.perf_counter()
                for _ in range(args.runs):
                    s.run(None, feed)
                rt.setdefault((model, t), []).append((time.perf_counter() - t0) / args.runs * 1e3)
        print(f"round {r + 1} done", file=sys.stderr)

    print(f"onnxruntime {ort.__version__}; {args.rounds} rounds of {args.runs} runs; load average {os.getloadavg()}")
    print("| model | threads | fennec ms | onnxruntime ms | fennec / ort | fennec B, allocs per run |")
    print("|---|---:|---:|---:|---:|---:|")
    geo = {}
    for model in models:
        for t in threads:
            f, o = statistics.median(fen[model, t]), statistics.median(rt[model, t])
            geo.setdefault(t, []).append(f / o)
            b, a = allocs[model, t]
            print(f"| {model} | {t} | {f:.3f} | {o:.3f} | {f / o:.2f} | {b} B, {a} |")
    for t, rs in geo.items():
        print(f"geometric mean of fennec / ort at {t} thread(s): {math.exp(sum(map(math.log, rs)) / len(rs)):.2f}")


if __name__ == "__main__":
    main()
