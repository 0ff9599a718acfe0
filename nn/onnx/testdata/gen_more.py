#!/usr/bin/env python3
"""Parity cases for fennec's GRU, RNN, Split, Tile and Trilu kernels, made
with onnxruntime (pip install onnx onnxruntime numpy):

    python3 nn/onnx/testdata/gen_more.py

Writes testdata/ops/m_<case>/ (model.onnx, input_<i>.npy, onnxruntime's
output_<i>.npy) beside gen_ops.py's cases; TestOps runs them all. GRU and
RNN in every direction, with both linear_before_reset settings, initial
states and sequence lengths shorter than the sequence.
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
    d = os.path.join(OUT, "m_" + name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    for i, (_, a) in enumerate(inputs):
        np.save(os.path.join(d, f"input_{i}.npy"), a)
    for i, o in enumerate(outs):
        np.save(os.path.join(d, f"output_{i}.npy"), o)


def main():
    for d in os.listdir(OUT):
        if d.startswith("m_"):
            shutil.rmtree(os.path.join(OUT, d))
    rng = np.random.default_rng(13)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    I64 = lambda v: np.array(v, np.int64)
    x = r(5, 3, 4)
    H = 6
    for dirn, D in [("forward", 1), ("reverse", 1), ("bidirectional", 2)]:
        for lbr in (0, 1):
            case(f"gru_{dirn}_lbr{lbr}", "GRU", [("x", x)], {"hidden_size": H, "direction": dirn, "linear_before_reset": lbr}, n_out=2,
                 consts=[("w", r(D, 3 * H, 4)), ("r", r(D, 3 * H, H)), ("b", r(D, 6 * H)), ("sl", np.array([5, 3, 1], np.int32)), ("h0", r(D, 3, H))])
        case(f"rnn_{dirn}", "RNN", [("x", x)], {"hidden_size": H, "direction": dirn}, n_out=2,
             consts=[("w", r(D, H, 4)), ("r", r(D, H, H)), ("b", r(D, 2 * H)), ("sl", np.array([2, 5, 4], np.int32)), ("h0", r(D, 3, H))])
    case("gru_no_bias", "GRU", [("x", x)], {"hidden_size": 3}, n_out=2, consts=[("w", r(1, 9, 4)), ("r", r(1, 9, 3))])
    case("split_input", "Split", [("x", r(2, 7, 3))], {"axis": 1}, n_out=3, consts=[("s", I64([2, 4, 1]))])
    case("split_equal_opset11", "Split", [("x", r(6, 4))], {"axis": 0}, opset=11, n_out=3)
    case("split_attr_opset11", "Split", [("x", r(3, 5))], {"axis": -1, "split": [1, 4]}, opset=11, n_out=2)
    case("split_num_outputs", "Split", [("x", r(7, 2))], {"num_outputs": 3}, opset=18, n_out=3)
    case("tile", "Tile", [("x", r(2, 3, 1))], consts=[("rep", I64([2, 1, 3]))])
    case("tile_i64", "Tile", [("x", I64([[1, 2], [3, 4]]))], consts=[("rep", I64([3, 2]))])
    case("trilu_upper", "Trilu", [("x", r(2, 4, 5))], opset=14)
    case("trilu_lower_k", "Trilu", [("x", r(4, 6))], {"upper": 0}, opset=14, consts=[("k", I64(1))])
    case("trilu_upper_negk", "Trilu", [("x", r(5, 3))], opset=14, consts=[("k", I64(-2))])
    print("wrote the m_ cases to", OUT)


if __name__ == "__main__":
    main()
