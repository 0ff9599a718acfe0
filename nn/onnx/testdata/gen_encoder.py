#!/usr/bin/env python3
"""Write a BERT-base-sized encoder (random weights, seeded) for the int8
speed target of issue #10: the exported t_bert models are 32 wide, too small
for int8 products to matter, so this one has BERT-base's layer shapes
(hidden 768, 12 heads, FFN 3072, sequence 128) in torch's export pattern
(MatMul + Add, LayerNormalization, exact GELU through Erf, Softmax
attention).

usage: gen_encoder.py OUT_DIR [--layers 2] [--seq 128] [--hidden 768]

Writes OUT_DIR/model.onnx (about 28 MB a layer, not committed) and
OUT_DIR/input_0.npy (x [1, seq, hidden], standard normal). Needs the onnx
package (the venv onnxruntime is in).
"""
import argparse, math, os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=768)
    a = ap.parse_args()
    H, S, NH = a.hidden, a.seq, 12
    D, F = H // NH, 4 * H
    rng = np.random.default_rng(10)
    inits, nodes = [], []

    def const(name, v):
        inits.append(numpy_helper.from_array(np.asarray(v), name))
        return name

    def w(name, *shape):
        return const(name, (rng.standard_normal(shape) / math.sqrt(shape[0])).astype(np.float32))

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def linear(x, name, i, o):
        y = node("MatMul", [x, w(name + ".w", i, o)], name + ".mm")
        return node("Add", [y, const(name + ".b", (0.02 * rng.standard_normal(o)).astype(np.float32))], name + ".out")

    def ln(x, name):
        return node("LayerNormalization", [x, const(name + ".g", np.ones(H, np.float32)),
                                           const(name + ".beta", np.zeros(H, np.float32))], name, axis=-1, epsilon=1e-12)

    heads = const("heads_shape", np.array([1, S, NH, D], np.int64))
    flat = const("flat_shape", np.array([1, S, H], np.int64))
    sqrt2, one, half = const("sqrt2", np.float32(math.sqrt(2))), const("one", np.float32(1)), const("half", np.float32(0.5))
    scale = const("scale", np.float32(1 / math.sqrt(D)))
    x = "x"
    for l in range(a.layers):
        p = f"l{l}"
        q, k, v = (node("Transpose", [node("Reshape", [linear(x, f"{p}.{n}", H, H), heads], f"{p}.{n}.r")], f"{p}.{n}.t", perm=[0, 2, 1, 3]) for n in "qkv")
        kt = node("Transpose", [k], f"{p}.kt", perm=[0, 1, 3, 2])
        s = node("Mul", [node("MatMul", [q, kt], f"{p}.qk"), scale], f"{p}.scores")
        att = node("MatMul", [node("Softmax", [s], f"{p}.probs", axis=-1), v], f"{p}.ctx")
        ctx = node("Reshape", [node("Transpose", [att], f"{p}.ctx.t", perm=[0, 2, 1, 3]), flat], f"{p}.ctx.r")
        x = ln(node("Add", [x, linear(ctx, f"{p}.o", H, H)], f"{p}.res1"), f"{p}.ln1")
        h = linear(x, f"{p}.ff1", H, F)
        g = node("Mul", [node("Mul", [h, node("Add", [node("Erf", [node("Div", [h, sqrt2], f"{p}.g.div")], f"{p}.g.erf"), one], f"{p}.g.add")], f"{p}.g.mul"), half], f"{p}.gelu")
        x = ln(node("Add", [x, linear(g, f"{p}.ff2", F, H)], f"{p}.res2"), f"{p}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["y"], name="y"))
    g = helper.make_graph(nodes, "encoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, S, H])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, S, H])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="gen_encoder.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    os.makedirs(a.out, exist_ok=True)
    onnx.save(m, os.path.join(a.out, "model.onnx"))
    np.save(os.path.join(a.out, "input_0.npy"), rng.standard_normal((1, S, H)).astype(np.float32))


if __name__ == "__main__":
    main()
