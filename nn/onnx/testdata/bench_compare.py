#!/usr/bin/env python3
"""fennec against onnxruntime, interleaved, for BENCHMARKS.md.

    python3 nn/onnx/testdata/bench_compare.py [../shared/models] [--rounds 3] [--runs 200] [--threads 1,2]

On a shared machine the load changes from minute to minute, so the two
engines are measured in turn, model by model (fennec, onnxruntime, fennec,
onnxruntime, ...), for --rounds rounds; each measurement is the mean latency
of --runs runs after warm-up (2x--runs for fennec; fennec: `go test -bench BenchmarkModels` with
-benchtime Nx on a test binary built once; onnxruntime 1.32 CPU provider,
intra-op threads as fennec's, inter-op 1, default graph optimisations, one
session per model and thread count kept across rounds). The table gives the
median over rounds of each, their ratio, fennec's allocations per run and
the geometric mean of the ratios per thread count. Beside the latencies it
gives the CPU time per run of each engine (fennec: the user+system time of
a benchmark process doing 2N runs less that of one doing N, over N;
onnxruntime: process time over the timed runs): on a loaded machine a
process waits for a core, which latency counts and CPU time does not, so at
one thread the CPU-time ratio is the steadier figure (at two threads it sums
both threads and is not a latency).
"""
import argparse
import math
import os
import re
import resource
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


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="?", default=os.path.join(ROOT, "..", "shared", "models"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200, help="runs per measurement, at least")
    ap.add_argument("--seconds", type=float, default=0.4, help="fast models get more runs, to last about this long")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="", help="comma-separated model names (default: all six)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    models = args.only.split(",") if args.only else MODELS

    tmp = tempfile.mkdtemp()
    binary = os.path.join(tmp, "onnx.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./nn/onnx/"], cwd=ROOT, check=True)

    sessions, feeds, runs = {}, {}, {}
    for model in models:
        ref = os.path.join(HERE, "ref", model)
        for t in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            s = ort.InferenceSession(os.path.join(args.models, model + ".onnx"), so, providers=["CPUExecutionProvider"])
            sessions[model, t] = s
            feeds[model] = {inp.name: np.load(os.path.join(ref, f"input_{i}.npy")) for i, inp in enumerate(s.get_inputs())}
            if t == threads[0]:
                # runs per measurement: --runs, or more for fast models, so
                # that each measurement lasts about --seconds
                t0 = time.perf_counter()
                for _ in range(20):
                    s.run(None, feeds[model])
                lat = (time.perf_counter() - t0) / 20
                runs[model] = max(args.runs, min(20000, int(args.seconds / max(lat, 1e-6))))

    fen, rt, allocs, fcpu, rcpu = {}, {}, {}, {}, {}
    for r in range(args.rounds):
        for model in models:
            n_runs = runs[model]
            for t in threads:
                name = f"BenchmarkModels/{re.escape(model)}.onnx/threads={t}$"

                def bench(n):
                    c0 = cpu_children()
                    out = subprocess.run([binary, "-test.run", "^$", "-test.bench", name, "-test.benchmem",
                                          "-test.benchtime", f"{n}x"], cwd=PKG, check=True,
                                         capture_output=True, text=True).stdout
                    return out, cpu_children() - c0

                # A -benchtime Nx process loads and plans twice (testing's
                # probe with b.N=1, then N) whatever N is, so the CPU time of
                # 2N runs less that of N is the CPU time of N runs alone.
                _, cpu_n = bench(n_runs)
                out, cpu_2n = bench(2 * n_runs)
                m = re.search(r"\s([\d.]+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op", out)
                if not m:
                    sys.exit(f"no benchmark line for {model} threads={t}:\n{out}")
                fen.setdefault((model, t), []).append(float(m.group(1)) / 1e6)
                fcpu.setdefault((model, t), []).append(max(0.0, cpu_2n - cpu_n) / n_runs * 1e3)
                allocs[model, t] = (int(m.group(2)), int(m.group(3)))

                s, feed = sessions[model, t], feeds[model]
                for _ in range(20):
                    s.run(None, feed)
                t0, p0 = time.perf_counter(), time.process_time()
                for _ in range(n_runs):
                    s.run(None, feed)
                rt.setdefault((model, t), []).append((time.perf_counter() - t0) / n_runs * 1e3)
                rcpu.setdefault((model, t), []).append((time.process_time() - p0) / n_runs * 1e3)
        print(f"round {r + 1} done", file=sys.stderr)

    print(f"onnxruntime {ort.__version__}; {args.rounds} rounds; runs per measurement {runs}; load average {os.getloadavg()}")
    print("| model | threads | fennec ms | onnxruntime ms | fennec / ort | fennec CPU ms | ort CPU ms | CPU ratio | fennec B, allocs per run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    geo, cgeo = {}, {}
    for model in models:
        for t in threads:
            f, o = statistics.median(fen[model, t]), statistics.median(rt[model, t])
            fc, oc = statistics.median(fcpu[model, t]), statistics.median(rcpu[model, t])
            geo.setdefault(t, []).append(f / o)
            cgeo.setdefault(t, []).append(fc / oc if oc > 0 else float("nan"))
            b, a = allocs[model, t]
            print(f"| {model} | {t} | {f:.3f} | {o:.3f} | {f / o:.2f} | {fc:.3f} | {oc:.3f} | {fc / oc:.2f} | {b} B, {a} |")
    gm = lambda rs: math.exp(sum(map(math.log, rs)) / len(rs))
    for t in threads:
        print(f"geometric mean of fennec / ort at {t} thread(s): latency {gm(geo[t]):.2f}, CPU time {gm(cgeo[t]):.2f}")


if __name__ == "__main__":
    main()
