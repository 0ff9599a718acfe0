#!/usr/bin/env python3
"""Quantize each shared model and the exported BERT-style encoder with
`fennec model quantize` (dynamic; static calibrated on the parity inputs) and
report, for BENCHMARKS.md: file size f32 -> int8; fennec and onnxruntime
latency on the f32 and the int8 file (`fennec model bench --ort --json`, one
thread, the two files measured in turn A,B,A,B and each figure the mean of
its two medians); agreement of the int8 model with the f32 one on fennec
(`fennec model run`: max |diff| of output 0 and a task-level figure) and on
onnxruntime running the same int8 file.

usage: quant_report.py FENNEC_BINARY MODELS_DIR OUT_DIR [--only SUBSTR]
                       [--scale 1.0] [--threads 1] [--modes dynamic,static]
                       [--encoder DIR]

--encoder adds gen_encoder.py's BERT-base-sized encoder (bert_base_like).

Task-level agreement: cls and the encoder top-1 class per row, VAD the
speech decision (p > 0.5) on the parity chunk, the detector the text mask
(p > 0.3) per pixel, the embedding cosine similarity, the melspectrogram
max |diff| relative to the f32 output's peak. The calibration feeds are the
parity inputs themselves (cls also the rendered text line), so the static
figures are optimistic: there is no held-out calibration set here.
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ENCODER = [""]
# name, inputs (in order), runs, warmup, extra eval feeds (ref dirs)
MODELS = [
    ("silero_vad_v5", ["input", "state", "sr"], 400, 40, []),
    ("silero_vad_v4", ["input", "sr", "h", "c"], 400, 40, []),
    ("melspectrogram", ["input"], 400, 40, []),
    ("embedding_model", ["input_1"], 150, 15, []),
    ("ch_ppocr_mobile_v2.0_cls_infer", ["x"], 150, 15, ["cls_text"]),
    ("ch_PP-OCRv4_det_infer", ["x"], 100, 10, []),
    ("t_bert_opset14", ["ids", "mask"], 400, 40, []),
]


def paths(models, name):
    if name == "bert_base_like":
        return os.path.join(ENCODER[0], "model.onnx"), ENCODER[0]
    if name.startswith("t_"):
        d = os.path.join(HERE, "ops", name)
        return os.path.join(d, "model.onnx"), d
    return os.path.join(models, name + ".onnx"), os.path.join(HERE, "ref", name)


def feeds(ref, inputs, extra):
    out = [[(n, os.path.join(ref, f"input_{i}.npy")) for i, n in enumerate(inputs)]]
    for e in extra:
        out.append([(n, os.path.join(HERE, "ref", e, f"input_{i}.npy")) for i, n in enumerate(inputs)])
    return out


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(" ".join(cmd) + "\n" + p.stderr)
        sys.exit(1)
    return p.stdout


def fennec_out(fen, model, feed, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    cmd = [fen, "model", "run", model, "--out", d]
    for n, f in feed:
        cmd += ["--input", f"{n}={f}"]
    run(cmd)
    return d


def ort_outs(model, feed):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return s.run(None, {n: np.load(f) for n, f in feed})[0]


def ort_name(model):
    import onnxruntime as ort
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_outputs()[0].name


def task(name, a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if name.startswith("ch_ppocr_mobile") or name.startswith("t_bert"):
        return "top-1 %d/%d" % (int(np.sum(a.argmax(-1) == b.argmax(-1))), a.shape[0])
    if name.startswith("silero"):
        return "decision %s/%s (p %.4f/%.4f)" % (bool(a.ravel()[0] > 0.5), bool(b.ravel()[0] > 0.5), a.ravel()[0], b.ravel()[0])
    if name.startswith("ch_PP-OCRv4_det"):
        ma, mb = a > 0.3, b > 0.3
        return "mask %.2f%% of pixels equal (%d vs %d on)" % (100 * np.mean(ma == mb), int(ma.sum()), int(mb.sum()))
    if name.startswith("embedding"):
        x, y = a.ravel(), b.ravel()
        return "cosine %.5f" % (float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    return "max |diff| / peak %.3g" % (float(np.max(np.abs(a - b))) / max(1e-30, float(np.max(np.abs(a)))))


def bench(fen, model, feed, runs, warm, threads):
    cmd = [fen, "model", "bench", model, "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warm), "--ort", "--json"]
    for n, f in feed:
        cmd += ["--input", f"{n}={f}"]
    r = json.loads(run(cmd))
    return r["fennec"]["median_ms"], r["onnxruntime"]["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fennec")
    ap.add_argument("models")
    ap.add_argument("out")
    ap.add_argument("--only", default="")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", default="dynamic,static")
    ap.add_argument("--encoder", default="", help="a gen_encoder.py directory (model.onnx, input_0.npy) to add as bert_base_like")
    a = ap.parse_args()
    ENCODER[0] = a.encoder
    if a.encoder:
        MODELS.append(("bert_base_like", ["x"], 30, 3, []))
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    print("| model | mode | size f32 -> int8 (KiB) | fennec f32 / int8 ms | fennec speed-up | ort f32 / int8 ms | ort speed-up | fennec max diff | fennec task | ort max diff | ort task |")
    print("|---|---|---|---|---:|---|---:|---:|---|---:|---|")
    for name, inputs, runs, warm, extra in MODELS:
        if a.only and a.only not in name:
            continue
        f32, ref = paths(a.models, name)
        fs = feeds(ref, inputs, extra)
        runs, warm = max(5, int(runs * a.scale)), max(1, int(warm * a.scale))
        for mode in a.modes.split(","):
            q = os.path.join(a.out, f"{name}.{mode}.onnx")
            cmd = [a.fennec, "model", "quantize", f32, q, "--mode", mode]
            if mode == "static":
                for feed in fs:
                    for n, f in feed:
                        cmd += ["--calibrate", f"{n}={f}"]
            run(cmd)
            ff, fo, qf, qo = [], [], [], []
            for _ in range(2):
                x, y = bench(a.fennec, f32, fs[0], runs, warm, a.threads)
                ff.append(x); fo.append(y)
                x, y = bench(a.fennec, q, fs[0], runs, warm, a.threads)
                qf.append(x); qo.append(y)
            mf, mo, mqf, mqo = (sum(v) / len(v) for v in (ff, fo, qf, qo))
            fd, od, ft, ot = 0.0, 0.0, [], []
            for feed in fs:
                da = fennec_out(a.fennec, f32, feed, tmp)
                db = fennec_out(a.fennec, q, feed, tmp)
                o0 = ort_name(f32) + ".npy"
                ya, yb = np.load(os.path.join(da, o0)), np.load(os.path.join(db, o0))
                fd = max(fd, float(np.max(np.abs(ya.astype(np.float64) - yb))))
                ft.append(task(name, ya, yb))
                ra, rb = ort_outs(f32, feed), ort_outs(q, feed)
                od = max(od, float(np.max(np.abs(ra.astype(np.float64) - rb))))
                ot.append(task(name, ra, rb))
            print("| %s | %s | %.0f -> %.0f (%.2fx) | %.3f / %.3f | **%.2fx** | %.3f / %.3f | %.2fx | %.3g | %s | %.3g | %s |" % (
                name, mode, os.path.getsize(f32) / 1024, os.path.getsize(q) / 1024, os.path.getsize(f32) / os.path.getsize(q),
                mf, mqf, mf / mqf, mo, mqo, mo / mqo, fd, "; ".join(ft), od, "; ".join(ot)), flush=True)


if __name__ == "__main__":
    main()
