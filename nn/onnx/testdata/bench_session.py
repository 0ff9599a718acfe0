#!/usr/bin/env python3
"""Runs `fennec model bench --ort --json` on every shared model at the given
thread counts (fennec and onnxruntime alternate run by run inside each call)
and prints a markdown table of medians and ratios, with the geometric mean.

usage: bench_session.py FENNEC_BINARY MODELS_DIR [--threads 1,2] [--scale 1.0]
                        [--only SUBSTR] [--alone]

Inputs are the parity inputs in nn/onnx/testdata/ref (the detector also at a
random 320x320 image). --scale multiplies the run counts. The exported torch
models of the issue (BERT-style encoders, a causal decoder, a ResNet-style CNN,
a two-layer LSTM) come from nn/onnx/testdata/ops/t_*/ with their input_N.npy;
--set shared|exported|all picks the set (default all).

--alone runs each engine by itself instead: all of fennec's runs of a model
(`fennec model bench --json`), then all of onnxruntime's (in this process,
intra-op threads as given, inter-op 1, default spinning), each after its own
warm-up. Per-run alternation is fairer to load that changes over time, but at
two threads each engine's idle or spinning workers change the other's next
run (BENCHMARKS.md "Quiet-machine check after the merges"), so two-thread
figures are taken alone.
"""
import argparse, json, math, os, subprocess, sys, time


def ort_alone(path, feeds, threads, runs, warm):
    """onnxruntime's median, p10 and p90 in ms over runs, after warm runs."""
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(warm):
        sess.run(None, feeds)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        ts.append((time.perf_counter_ns() - t0) / 1e6)
    ts.sort()
    q = lambda f: float(np.percentile(ts, f))
    return q(50), q(10), q(90)

HERE = os.path.dirname(os.path.abspath(__file__))
# model, input names in order, runs, warmup, extra flags
MODELS = [
    ("silero_vad_v5", ["input", "state", "sr"], 400, 40, []),
    ("silero_vad_v4", ["input", "sr", "h", "c"], 400, 40, []),
    ("melspectrogram", ["input"], 400, 40, []),
    ("embedding_model", ["input_1"], 150, 15, []),
    ("ch_ppocr_mobile_v2.0_cls_infer", ["x"], 150, 15, []),
    ("ch_PP-OCRv4_det_infer", ["x"], 150, 15, []),
    ("ch_PP-OCRv4_det_infer@320", None, 20, 3, ["--input", "x=f32:1x3x320x320:random"]),
]
# exported torch models: testdata/ops/NAME/model.onnx with input_N.npy beside it
EXPORTED = [
    ("t_bert_opset14", ["ids", "mask"], 400, 40, []),
    ("t_bert_opset17", ["ids", "mask"], 400, 40, []),
    ("t_gpt_causal_opset14", ["ids", "mask"], 400, 40, []),
    ("t_resnet_opset13", ["x"], 200, 20, []),
    ("t_lstm2_opset14", ["x"], 400, 40, []),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fennec")
    ap.add_argument("models")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--set", default="all", choices=["shared", "exported", "all"])
    ap.add_argument("--alone", action="store_true")
    a = ap.parse_args()
    todo = []
    if a.set in ("shared", "all"):
        todo += [(m, False) for m in MODELS]
    if a.set in ("exported", "all"):
        todo += [(m, True) for m in EXPORTED]
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        ratios = []
        for (name, inputs, runs, warm, extra), exported in todo:
            if a.only and a.only not in name:
                continue
            base = name.split("@")[0]
            if exported:
                path = os.path.join(HERE, "ops", base, "model.onnx")
                inp = lambda i: os.path.join(HERE, "ops", base, f"input_{i}.npy")
            else:
                path = os.path.join(a.models, base + ".onnx")
                inp = lambda i: os.path.join(HERE, "ref", base, f"input_{i}.npy")
            n_runs = max(5, int(runs * a.scale))
            cmd = [a.fennec, "model", "bench", path,
                   "--threads", str(threads), "--runs", str(n_runs),
                   "--warmup", str(warm), "--json"] + ([] if a.alone else ["--ort"]) + extra
            if inputs:
                for i, n in enumerate(inputs):
                    cmd += ["--input", f"{n}={inp(i)}"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                sys.exit(1)
            r = json.loads(out.stdout)
            if a.alone:
                import numpy as np
                if inputs:
                    feeds = {n: np.load(inp(i)) for i, n in enumerate(inputs)}
                else:  # the detector on a random 320x320 image, as fennec's --input
                    feeds = {"x": np.random.default_rng(1).random((1, 3, 320, 320), dtype=np.float32)}
                med, p10, p90 = ort_alone(path, feeds, threads, n_runs, warm)
                r["onnxruntime"] = {"median_ms": med, "p10_ms": p10, "p90_ms": p90}
                r["ratio"] = r["fennec"]["median_ms"] / med
            f, o = r["fennec"], r["onnxruntime"]
            row = (name, threads, f["median_ms"], f["p10_ms"], f["p90_ms"],
                   o["median_ms"], o["p10_ms"], o["p90_ms"], r["ratio"])
            rows.append(row)
            if "@" not in name:
                ratios.append(r["ratio"])
            print("| %s | %d | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) | **%.2f** |" % row, flush=True)
        if ratios:
            print("geomean threads=%d (det at 64x64): %.2f" % (threads, math.exp(sum(map(math.log, ratios)) / len(ratios))), flush=True)


if __name__ == "__main__":
    main()
