#!/usr/bin/env python3
"""Load time of a model: fennec's Load + NewSession (BenchmarkLoad in the
nn/onnx test binary) against onnxruntime's InferenceSession creation (CPU
provider, intra-op 1, inter-op 1, default optimisations), measured in turn,
round by round, so machine load affects both.

usage: go test -c -o /tmp/onnx.test ./nn/onnx
       python3 nn/onnx/testdata/bench_load.py /tmp/onnx.test [../shared/models] [--rounds 5] [--n 20]

Prints each round's fennec and onnxruntime medians (ms) and the median ratio.
BenchmarkLoad loads ch_PP-OCRv4_det_infer.onnx from ../shared/models as the
tests do.
"""
import argparse, os, re, statistics, subprocess, time

import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("testbin")
    ap.add_argument("models", nargs="?", default=os.path.join(HERE, "..", "..", "..", "..", "shared", "models"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    path = os.path.join(a.models, "ch_PP-OCRv4_det_infer.onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])  # warm the file cache
    pkg = os.path.join(HERE, "..")
    fen, onx = [], []
    for r in range(a.rounds):
        out = subprocess.run([a.testbin, "-test.run", "^$", "-test.bench", "^BenchmarkLoad$",
                              "-test.benchtime", f"{a.n}x", "-test.benchmem"],
                             cwd=pkg, capture_output=True, text=True, check=True).stdout
        m = re.search(r"BenchmarkLoad\S*\s+\d+\s+(\d+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op", out)
        f = int(m.group(1)) / 1e6
        ts = []
        for _ in range(a.n):
            t0 = time.perf_counter()
            ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            ts.append(time.perf_counter() - t0)
        o = statistics.median(ts) * 1e3
        fen.append(f)
        onx.append(o)
        print(f"round {r}: fennec {f:.2f} ms ({int(m.group(2))//1024} KB, {m.group(3)} allocs per load), onnxruntime {o:.2f} ms, ratio {f/o:.2f}", flush=True)
    print(f"median: fennec {statistics.median(fen):.2f} ms, onnxruntime {statistics.median(onx):.2f} ms "
          f"(ort {ort.__version__}), fennec / ort {statistics.median([f/o for f, o in zip(fen, onx)]):.2f}")


if __name__ == "__main__":
    main()
