#!/usr/bin/env python3
"""Make reference outputs for fennec's ONNX parity tests with onnxruntime.

    pip install onnxruntime numpy
    python3 nn/onnx/testdata/gen_reference.py [../shared/models]

For each model in CASES it feeds fixed, seeded inputs (written beside the
outputs, so the Go test feeds exactly the same bytes) and writes
testdata/ref/<model>/<input|output>_<i>.npy. onnxruntime runs on the CPU
provider with one thread and all graph optimisations off, so the reference is
the plain operator semantics.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared", "models")

# Intermediate values also compared (a softmax over two classes alone says
# little): model file -> value names, written as extra_<i>.npy.
EXTRA = {
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": ["depthwise_conv2d_1.tmp_0", "reshape2_0.tmp_0", "p2o.Add.87"],
    # A random image gives a near-zero probability map; compare the logits
    # and the upsampling path too. (The neck's concatenated features,
    # p2o.Concat.1, rms 118, differ from onnxruntime's by up to 7e-4 in 10 of
    # 24,576 elements: float32 rounding, 6e-6 of their scale, but beyond the
    # per-element atol where large terms cancel; so it is not listed.)
    "ch_PP-OCRv4_det_infer.onnx": ["p2o.ConvTranspose.1", "p2o.ConvTranspose.3", "p2o.Add.281"],
}

# model file -> list of (input name, shape, dtype, kind)
CASES = {
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": [("x", (1, 3, 48, 192), np.float32, "normal")],
    "embedding_model.onnx": [("input_1", (1, 76, 32, 1), np.float32, "normal")],
    "melspectrogram.onnx": [("input", (1, 1280), np.float32, "audio")],
    # PP-OCRv4 detection at 64x64 (a multiple of 32), to keep the files small.
    "ch_PP-OCRv4_det_infer.onnx": [("x", (1, 3, 64, 64), np.float32, "normal")],
    # Silero: a 512-sample 16 kHz chunk of a seeded 440 Hz tone in noise and a
    # non-zero recurrent state, so the LSTM and the 16 kHz If branch matter.
    "silero_vad_v5.onnx": [("input", (1, 512), np.float32, "tone"), ("state", (2, 1, 128), np.float32, "small"),
                           ("sr", (), np.int64, "16000")],
    "silero_vad_v4.onnx": [("input", (1, 512), np.float32, "tone"), ("sr", (), np.int64, "16000"),
                           ("h", (2, 1, 64), np.float32, "small"), ("c", (2, 1, 64), np.float32, "small")],
}


def make(shape, dtype, kind, rng):
    if kind == "16000":
        return np.array(16000, dtype=dtype)
    if kind == "tone":
        t = np.arange(shape[-1]) / 16000.0
        return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(shape)).astype(dtype)
    if kind == "small":
        return (0.3 * rng.standard_normal(shape)).astype(dtype)
    if kind == "audio":
        return (rng.standard_normal(shape) * 3000).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def main():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for model, inputs in CASES.items():
        path = os.path.join(MODELS, model)
        if not os.path.exists(path):
            print("skip (absent):", path)
            continue
        rng = np.random.default_rng(20261203)
        m = onnx.load(path)
        extra = EXTRA.get(model, [])
        for name in extra:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {name: make(shape, dt, kind, rng) for name, shape, dt, kind in inputs}
        outs = sess.run(None, feed)
        d = os.path.join(HERE, "ref", os.path.splitext(model)[0])
        os.makedirs(d, exist_ok=True)
        for i, (name, *_rest) in enumerate(inputs):
            np.save(os.path.join(d, f"input_{i}.npy"), feed[name])
        n = len(outs) - len(extra)
        for i, o in enumerate(outs[:n]):
            np.save(os.path.join(d, f"output_{i}.npy"), o)
        for i, o in enumerate(outs[n:]):
            np.save(os.path.join(d, f"extra_{i}.npy"), o)
        print(model, "->", [o.shape for o in outs], "ort", ort.__version__)


def text_line(text, rotate=0, font_path="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
    """A rendered text line, preprocessed as PaddleOCR's classifier expects:
    height 48, width scaled by the aspect ratio up to 192, (x/255-0.5)/0.5,
    zero padded on the right. Returns CHW float32."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, 40)
    l, t, r, b = font.getbbox(text)
    img = Image.new("RGB", (r - l + 16, b - t + 16), "white")
    ImageDraw.Draw(img).text((8 - l, 8 - t), text, font=font, fill="black")
    img = img.rotate(rotate)
    w = min(192, int(np.ceil(48 * img.width / img.height)))
    a = np.asarray(img.resize((w, 48), Image.BILINEAR), np.float32).transpose(2, 0, 1) / 255.0
    out = np.zeros((3, 48, 192), np.float32)
    out[:, :, :w] = (a - 0.5) / 0.5
    return out


def cls_text():
    """The orientation classifier on real rendered text, upright and turned
    180 degrees, as one batch of two: testdata/ref/cls_text."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("skip cls_text: pip install pillow")
        return
    path = os.path.join(MODELS, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    if not os.path.exists(path):
        return
    up = text_line("Hello fennec 2026")
    down = text_line("Hello fennec 2026", rotate=180)
    x = np.stack([up, down])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})
    d = os.path.join(HERE, "ref", "cls_text")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "input_0.npy"), x)
    np.save(os.path.join(d, "output_0.npy"), y)
    print("cls_text ->", y.tolist(), "argmax", y.argmax(1).tolist())


if __name__ == "__main__":
    main()
    cls_text()
