#!/usr/bin/env python3
"""Parity cases for fennec's quantized ONNX kernels, made with onnxruntime
(pip install onnx onnxruntime numpy):

    python3 nn/onnx/testdata/gen_quant.py

Writes testdata/ops/q_<case>/ (model.onnx, input_<i>.npy, onnxruntime's
output_<i>.npy) beside gen_ops.py's cases; TestOps runs them all, and the
quantized outputs must match exactly. Cases: QuantizeLinear and
DequantizeLinear per tensor and per axis, u8 and i8; DynamicQuantizeLinear;
MatMulInteger with per-row/per-column zero points and a batch; ConvInteger;
QLinearMatMul; QLinearConv with per-channel weights, bias, groups, pads and
strides.
"""
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ops")


def case(name, op, inputs, attrs=None, opset=13, n_out=1, consts=None):
    init = [onnx.numpy_helper.from_array(a, n) for n, a in (consts or [])]
    names = [n for n, _ in inputs] + [n for n, _ in (consts or [])]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **(attrs or {}))
    g = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_out)],
        init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {n: a for n, a in inputs})
    d = os.path.join(OUT, "q_" + name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    for i, (_, a) in enumerate(inputs):
        np.save(os.path.join(d, f"input_{i}.npy"), a)
    for i, o in enumerate(outs):
        np.save(os.path.join(d, f"output_{i}.npy"), o)


def main():
    for d in os.listdir(OUT):
        if d.startswith("q_"):
            shutil.rmtree(os.path.join(OUT, d))
    rng = np.random.default_rng(11)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    u8 = lambda *s: rng.integers(0, 256, s).astype(np.uint8)
    i8 = lambda *s: rng.integers(-128, 128, s).astype(np.int8)
    f = lambda v: np.array(v, np.float32)
    # u8 x s8 products: onnxruntime's AVX2 kernel (VPMADDUBSW) sums pairs of
    # products in int16 with saturation, so with full-range s8 weights its
    # answer is not the exact one (see its docs, "quantization on x86-64").
    # fennec accumulates exactly; cases mixing u8 and s8 use 7-bit weights,
    # as onnxruntime's quantizer does (reduce_range), so both are exact.
    i7 = lambda *s: rng.integers(-64, 64, s).astype(np.int8)

    # Values on exact .5 steps check round-half-to-even.
    x = r(3, 4, 5) * 3
    ties = f([[0.05, 0.15, 0.25, -0.05, -0.15, 12.7, -12.8, 30, -30, 0]])
    case("quantize_u8", "QuantizeLinear", [("x", x)], consts=[("s", f(0.05)), ("z", np.array(128, np.uint8))])
    case("quantize_i8_ties", "QuantizeLinear", [("x", ties)], consts=[("s", f(0.1)), ("z", np.array(0, np.int8))])
    case("quantize_no_zero_point", "QuantizeLinear", [("x", ties)], consts=[("s", f(0.1))])
    case("quantize_per_axis", "QuantizeLinear", [("x", x)], {"axis": 1}, consts=[("s", f([0.02, 0.04, 0.08, 0.1])), ("z", np.array([0, 10, 200, 255], np.uint8))])
    case("quantize_opset10", "QuantizeLinear", [("x", x)], opset=10, consts=[("s", f(0.03)), ("z", np.array(-5, np.int8))])
    case("dequantize_u8", "DequantizeLinear", [("x", u8(3, 4, 5))], consts=[("s", f(0.05)), ("z", np.array(128, np.uint8))])
    case("dequantize_i8_axis0", "DequantizeLinear", [("x", i8(3, 4))], {"axis": 0}, consts=[("s", f([0.1, 0.2, 0.3])), ("z", np.array([0, -3, 7], np.int8))])
    case("dequantize_i32", "DequantizeLinear", [("x", rng.integers(-100000, 100000, (6,)).astype(np.int32))], consts=[("s", f(0.001))])
    case("dynamic_quantize", "DynamicQuantizeLinear", [("x", r(4, 6) * 2 + 0.5)], opset=11, n_out=3)
    case("dynamic_quantize_positive", "DynamicQuantizeLinear", [("x", np.abs(r(3, 5)) + 1)], opset=11, n_out=3)
    case("matmulinteger_u8", "MatMulInteger", [("a", u8(4, 7)), ("b", u8(7, 5))], opset=10, consts=[("az", np.array(120, np.uint8)), ("bz", np.array(130, np.uint8))])
    case("matmulinteger_u8i8_percol", "MatMulInteger", [("a", u8(2, 3, 6)), ("b", i7(6, 4))], opset=10,
         consts=[("az", np.array(7, np.uint8)), ("bz", np.array([0, -1, 5, 3], np.int8))])
    case("matmulinteger_no_zp", "MatMulInteger", [("a", i8(5, 8)), ("b", i8(8, 3))], opset=10)
    case("matmulinteger_batch", "MatMulInteger", [("a", u8(2, 3, 4)), ("b", u8(2, 4, 5))], opset=10)
    case("qlinearmatmul_u8", "QLinearMatMul", [("a", u8(3, 16))], opset=10,
         consts=[("as", f(0.02)), ("az", np.array(128, np.uint8)), ("b", u8(16, 5)), ("bs", f(0.01)), ("bz", np.array(110, np.uint8)), ("ys", f(0.05)), ("yz", np.array(100, np.uint8))])
    case("qlinearmatmul_i8", "QLinearMatMul", [("a", i8(2, 3, 9))], opset=10,
         consts=[("as", f(0.03)), ("az", np.array(1, np.int8)), ("b", i8(9, 4)), ("bs", f(0.02)), ("bz", np.array(0, np.int8)), ("ys", f(0.1)), ("yz", np.array(-3, np.int8))])
    case("convinteger", "ConvInteger", [("x", u8(1, 3, 6, 7))], {"pads": [1, 1, 1, 1]}, opset=10,
         consts=[("w", u8(4, 3, 3, 3)), ("xz", np.array(100, np.uint8)), ("wz", np.array(120, np.uint8))])
    case("convinteger_group_stride", "ConvInteger", [("x", u8(2, 4, 7, 5))], {"group": 2, "strides": [2, 1], "dilations": [1, 2]}, opset=10,
         consts=[("w", u8(6, 2, 2, 2)), ("xz", np.array(3, np.uint8))])
    case("qlinearconv_perchannel_bias", "QLinearConv", [("x", u8(1, 3, 8, 8))], {"pads": [1, 1, 1, 1], "strides": [2, 2]}, opset=10,
         consts=[("xs", f(0.02)), ("xz", np.array(128, np.uint8)), ("w", i7(4, 3, 3, 3)), ("ws", f([0.01, 0.02, 0.015, 0.03])),
                 ("wz", np.array([0, 0, 0, 0], np.int8)), ("ys", f(0.05)), ("yz", np.array(120, np.uint8)), ("b", rng.integers(-500, 500, (4,)).astype(np.int32))])
    case("qlinearconv_depthwise", "QLinearConv", [("x", u8(1, 4, 6, 6))], {"group": 4, "pads": [1, 1, 1, 1]}, opset=10,
         consts=[("xs", f(0.02)), ("xz", np.array(10, np.uint8)), ("w", u8(4, 1, 3, 3)), ("ws", f(0.01)),
                 ("wz", np.array(128, np.uint8)), ("ys", f(0.03)), ("yz", np.array(0, np.uint8))])
    # Longer than a 16-lane vector (gpu's AVX-512 kernels and their tails),
    # ties with a nonzero zero point (round(x / s) + z, not round(x / s + z)),
    # and the int8 convolution paths fennec picks: pointwise, "same" 5x5,
    # few output pixels, per-column QLinearMatMul on constant s8 weights.
    case("quantize_u8_ties_zp", "QuantizeLinear", [("x", np.tile(ties, (1, 3)))], consts=[("s", f(0.1)), ("z", np.array(3, np.uint8))])
    case("dynamic_quantize_long", "DynamicQuantizeLinear", [("x", r(5, 211) * 3 + 0.7)], opset=11, n_out=3)
    case("dequantize_i8_long", "DequantizeLinear", [("x", i8(3, 41))], consts=[("s", f(0.07)), ("z", np.array(-9, np.int8))])
    case("convinteger_s8_weights", "ConvInteger", [("x", u8(1, 8, 7, 9))], {"pads": [1, 1, 1, 1]}, opset=10,
         consts=[("w", i7(12, 8, 3, 3)), ("xz", np.array(77, np.uint8)), ("wz", np.array(0, np.int8))])
    case("qlinearconv_pointwise", "QLinearConv", [("x", u8(2, 24, 6, 6))], {}, opset=10,
         consts=[("xs", f(0.02)), ("xz", np.array(128, np.uint8)), ("w", i7(20, 24, 1, 1)), ("ws", (rng.random(20) * 0.02 + 0.005).astype(np.float32)),
                 ("wz", np.zeros(20, np.int8)), ("ys", f(0.05)), ("yz", np.array(120, np.uint8)), ("b", rng.integers(-500, 500, (20,)).astype(np.int32))])
    case("qlinearconv_same5x5", "QLinearConv", [("x", u8(1, 3, 9, 11))], {"pads": [2, 2, 2, 2]}, opset=10,
         consts=[("xs", f(0.03)), ("xz", np.array(5, np.uint8)), ("w", i7(6, 3, 5, 5)), ("ws", (rng.random(6) * 0.02 + 0.005).astype(np.float32)),
                 ("wz", np.zeros(6, np.int8)), ("ys", f(0.2)), ("yz", np.array(4, np.uint8)), ("b", rng.integers(-900, 900, (6,)).astype(np.int32))])
    case("qlinearconv_few_pixels", "QLinearConv", [("x", u8(1, 16, 2, 3))], {"pads": [1, 1, 1, 1]}, opset=10,
         consts=[("xs", f(0.02)), ("xz", np.array(60, np.uint8)), ("w", i7(24, 16, 3, 3)), ("ws", f(0.01)),
                 ("wz", np.array(0, np.int8)), ("ys", f(0.3)), ("yz", np.array(130, np.uint8))])
    case("qlinearmatmul_u8s8_percol", "QLinearMatMul", [("a", u8(5, 70))], opset=10,
         consts=[("as", f(0.02)), ("az", np.array(90, np.uint8)), ("b", i7(70, 20)), ("bs", (rng.random(20) * 0.02 + 0.005).astype(np.float32)),
                 ("bz", np.zeros(20, np.int8)), ("ys", f(0.4)), ("yz", np.array(128, np.uint8))])
    print("wrote the q_ cases to", OUT)


if __name__ == "__main__":
    main()
