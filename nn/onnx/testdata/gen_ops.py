#!/usr/bin/env python3
"""Single-operator parity cases for fennec's ONNX kernels, made with
onnxruntime (pip install onnx onnxruntime numpy):

    python3 nn/onnx/testdata/gen_ops.py

Each case is a one-node model testdata/ops/<case>/model.onnx with seeded
inputs input_<i>.npy and onnxruntime's outputs output_<i>.npy; TestOps runs
every case directory. Cases cover the attributes the kernels handle:
groups, depthwise, dilations, asymmetric pads, auto_pad, strides, 1-D
windows, ceil_mode, count_include_pad, transposes, opset-dependent
semantics (Softmax before/after 13, Slice attributes vs inputs).
"""
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ops")
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def case(name, op, inputs, attrs=None, opset=13, n_out=1, consts=None):
    """inputs: list of (name, np.ndarray); consts become initializers."""
    rng_inputs = [(n, a) for n, a in inputs]
    init = [onnx.numpy_helper.from_array(a, n) for n, a in (consts or [])]
    names = [n for n, _ in rng_inputs] + [n for n, _ in (consts or [])]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **(attrs or {}))
    g = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in rng_inputs],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_out)],
        init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {n: a for n, a in rng_inputs})
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    for i, (_, a) in enumerate(rng_inputs):
        np.save(os.path.join(d, f"input_{i}.npy"), a)
    for i, o in enumerate(outs):
        np.save(os.path.join(d, f"output_{i}.npy"), o)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    rng = np.random.default_rng(7)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    x = r(2, 4, 7, 9)
    case("conv_basic", "Conv", [("x", x)], consts=[("w", r(6, 4, 3, 3)), ("b", r(6))])
    case("conv_group2_stride2_pads", "Conv", [("x", x)], {"group": 2, "strides": [2, 2], "pads": [1, 0, 2, 1]}, consts=[("w", r(6, 2, 3, 2))])
    case("conv_dilation", "Conv", [("x", x)], {"dilations": [2, 3], "pads": [2, 2, 2, 2]}, consts=[("w", r(3, 4, 3, 3)), ("b", r(3))])
    case("conv_depthwise", "Conv", [("x", x)], {"group": 4, "strides": [1, 2], "pads": [1, 1, 1, 1]}, consts=[("w", r(4, 1, 3, 3))])
    case("conv_depthwise_dil_stride", "Conv", [("x", x)], {"group": 4, "strides": [2, 3], "dilations": [2, 1], "pads": [0, 2, 1, 0]}, consts=[("w", r(4, 1, 2, 5)), ("b", r(4))])
    case("conv_same_upper", "Conv", [("x", x)], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, consts=[("w", r(5, 4, 4, 4))])
    case("conv_same_lower", "Conv", [("x", x)], {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, consts=[("w", r(5, 4, 4, 4))])
    case("conv_valid", "Conv", [("x", x)], {"auto_pad": "VALID"}, consts=[("w", r(5, 4, 2, 3))])
    case("conv_1x1", "Conv", [("x", x)], consts=[("w", r(8, 4, 1, 1)), ("b", r(8))])
    case("conv_1d", "Conv", [("x", r(2, 3, 20))], {"strides": [3], "pads": [2, 1]}, consts=[("w", r(4, 3, 5))])
    case("conv_weight_input", "Conv", [("x", x), ("w", r(6, 4, 3, 3))])
    case("maxpool_ceil", "MaxPool", [("x", x)], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1})
    case("maxpool_pads", "MaxPool", [("x", x)], {"kernel_shape": [2, 3], "pads": [1, 1, 0, 1], "strides": [1, 2]})
    case("avgpool_include_pad", "AveragePool", [("x", x)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1})
    case("avgpool_exclude_pad", "AveragePool", [("x", x)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]})
    case("global_avgpool", "GlobalAveragePool", [("x", x)])
    case("batchnorm", "BatchNormalization", [("x", x)], {"epsilon": 1e-3}, consts=[("s", r(4)), ("b", r(4)), ("m", r(4)), ("v", np.abs(r(4)) + 0.1)])
    case("gemm_trans_alpha_beta", "Gemm", [("a", r(5, 3)), ("b", r(4, 5))], {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, consts=[("c", r(4))])
    case("gemm_plain", "Gemm", [("a", r(3, 5)), ("b", r(5, 4))], consts=[("c", r(3, 4))])
    case("matmul_batched_broadcast", "MatMul", [("a", r(2, 1, 3, 5)), ("b", r(3, 5, 4))])
    case("matmul_3d_2d", "MatMul", [("a", r(2, 3, 5)), ("b", r(5, 4))])
    case("matmul_vec", "MatMul", [("a", r(5)), ("b", r(2, 5, 3))])
    case("softmax_opset11_axis1", "Softmax", [("x", r(2, 3, 4))], {"axis": 1}, opset=11)
    case("softmax_opset13_axis1", "Softmax", [("x", r(2, 3, 4))], {"axis": 1})
    case("logsoftmax", "LogSoftmax", [("x", r(3, 7))])
    case("slice_inputs_neg_step", "Slice", [("x", r(5, 6, 7))], consts=[("s", np.array([4, -1], np.int64)), ("e", np.array([0, -100], np.int64)), ("a", np.array([0, 2], np.int64)), ("t", np.array([-2, -3], np.int64))])
    case("slice_attrs_opset9", "Slice", [("x", r(5, 6))], {"starts": [1, 2], "ends": [100, -1], "axes": [0, 1]}, opset=9)
    case("transpose", "Transpose", [("x", r(2, 3, 4, 5))], {"perm": [3, 1, 0, 2]})
    case("gather_axis1", "Gather", [("x", r(3, 5, 2))], {"axis": 1}, consts=[("i", np.array([[4, 0], [-1, 2]], np.int64))])
    case("reducemean_axes", "ReduceMean", [("x", r(2, 3, 4))], {"axes": [0, 2], "keepdims": 0})
    case("reducemax_keep", "ReduceMax", [("x", r(2, 3, 4))], {"axes": [1]})
    case("concat_axis2", "Concat", [("a", r(2, 3, 1)), ("b", r(2, 3, 4))], {"axis": 2})
    case("add_broadcast", "Add", [("a", r(2, 1, 4)), ("b", r(3, 1))])
    case("div_broadcast_channel", "Div", [("a", r(2, 4, 3, 3)), ("b", np.abs(r(1, 4, 1, 1)) + 0.5)])
    case("pow_scalar", "Pow", [("a", np.abs(r(3, 4)))], consts=[("b", np.array(1.7, np.float32))])
    case("max_variadic", "Max", [("a", r(3, 4)), ("b", r(4)), ("c", r(3, 1))])
    case("clip_opset9", "Clip", [("x", r(4, 5))], {"min": -0.5, "max": 0.7}, opset=9)
    case("clip_opset13", "Clip", [("x", r(4, 5))], consts=[("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.2, np.float32))])
    case("hardsigmoid", "HardSigmoid", [("x", r(4, 5) * 4)], {"alpha": 0.3, "beta": 0.4})
    case("leakyrelu", "LeakyRelu", [("x", r(4, 5))], {"alpha": 0.2})
    case("where", "Where", [("c", rng.standard_normal((3, 1)) > 0), ("a", r(3, 4)), ("b", r(4))])
    case("expand", "Expand", [("x", r(3, 1))], consts=[("s", np.array([2, 3, 4], np.int64))])
    case("unsqueeze_opset13", "Unsqueeze", [("x", r(3, 4))], consts=[("a", np.array([0, -1], np.int64))])
    case("flatten_axis2", "Flatten", [("x", r(2, 3, 4, 5))], {"axis": 2})
    case("cast_f32_i64", "Cast", [("x", r(3, 4) * 10)], {"to": I64})
    case("constantofshape", "ConstantOfShape", [("s", np.array([2, 3], np.int64))], {"value": helper.make_tensor("v", F, [1], [1.5])})
    case("lstm_bidirectional_peep", "LSTM", [("x", r(5, 2, 3))], {"hidden_size": 4, "direction": "bidirectional"}, n_out=3,
         consts=[("w", r(2, 16, 3)), ("r", r(2, 16, 4)), ("b", r(2, 32)), ("sl", np.array([5, 5], np.int32)), ("h0", r(2, 2, 4)), ("c0", r(2, 2, 4)), ("p", r(2, 12))])
    case("lstm_reverse", "LSTM", [("x", r(4, 1, 3))], {"hidden_size": 3, "direction": "reverse"}, n_out=3,
         consts=[("w", r(1, 12, 3)), ("r", r(1, 12, 3))])
    case("pad_reflect", "Pad", [("x", r(2, 3, 5))], {"mode": "reflect"}, consts=[("p", np.array([0, 1, 2, 0, 2, 3], np.int64))])
    case("pad_edge", "Pad", [("x", r(2, 3, 5))], {"mode": "edge"}, consts=[("p", np.array([1, 0, 2, 0, 2, 1], np.int64))])
    case("pad_constant_neg", "Pad", [("x", r(3, 5))], consts=[("p", np.array([1, -2, 0, 3], np.int64)), ("v", np.array(0.25, np.float32))])
    case("pad_opset2_attrs", "Pad", [("x", r(3, 5))], {"pads": [1, 1, 0, 2], "value": -1.0}, opset=9)
    case("convtranspose_stride2", "ConvTranspose", [("x", r(1, 4, 5, 6))], {"strides": [2, 2], "kernel_shape": [2, 2]}, opset=11, consts=[("w", r(4, 3, 2, 2)), ("b", r(3))])
    case("convtranspose_group_pads_dil", "ConvTranspose", [("x", r(2, 4, 5, 4))], {"strides": [2, 1], "group": 2, "pads": [1, 0, 0, 1], "dilations": [1, 2], "output_padding": [1, 0]}, opset=13, consts=[("w", r(4, 2, 3, 3))])
    case("convtranspose_1d", "ConvTranspose", [("x", r(1, 2, 7))], {"strides": [3]}, opset=13, consts=[("w", r(2, 3, 4))])
    e = np.array([], np.float32)
    case("resize_nearest_asym_floor", "Resize", [("x", r(1, 2, 3, 4))], {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, opset=11, consts=[("roi", e), ("s", np.array([1, 1, 2, 2], np.float32))])
    case("resize_nearest_half_pixel", "Resize", [("x", r(1, 2, 3, 4))], {"mode": "nearest"}, opset=13, consts=[("roi", e), ("s", np.array([1, 1, 1.5, 0.6], np.float32))])
    case("resize_linear_half_pixel", "Resize", [("x", r(1, 2, 3, 4))], {"mode": "linear"}, opset=13, consts=[("roi", e), ("s", np.array([1, 1, 2.5, 1.7], np.float32))])
    case("resize_linear_align_sizes", "Resize", [("x", r(2, 1, 4, 5))], {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, opset=13,
         consts=[("roi", e), ("sc", e), ("sz", np.array([2, 1, 7, 3], np.int64))])
    lstm_seqlens_cases()
    print("wrote", len(os.listdir(OUT)), "cases to", OUT)


def lstm_seqlens_cases():
    """LSTM with sequence_lens shorter than the sequence: onnxruntime zeroes
    Y past an entry's length and gives its last valid state as Y_h, Y_c.
    Its own generator, so adding it changed no other case's inputs
    (python3 -c 'import gen_ops; gen_ops.lstm_seqlens_cases()')."""
    rng = np.random.default_rng(11)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    case("lstm_seqlens_forward", "LSTM", [("x", r(5, 3, 3))], {"hidden_size": 4}, n_out=3,
         consts=[("w", r(1, 16, 3)), ("r", r(1, 16, 4)), ("b", r(1, 32)), ("sl", np.array([5, 2, 0], np.int32)), ("h0", r(1, 3, 4)), ("c0", r(1, 3, 4))])
    case("lstm_seqlens_bidirectional", "LSTM", [("x", r(6, 3, 2))], {"hidden_size": 3, "direction": "bidirectional"}, n_out=3,
         consts=[("w", r(2, 12, 2)), ("r", r(2, 12, 3)), ("b", r(2, 24)), ("sl", np.array([3, 6, 1], np.int32)), ("h0", r(2, 3, 3)), ("c0", r(2, 3, 3)), ("p", r(2, 9))])
    case("lstm_seqlens_reverse", "LSTM", [("x", r(4, 2, 3))], {"hidden_size": 2, "direction": "reverse"}, n_out=3,
         consts=[("w", r(1, 8, 3)), ("r", r(1, 8, 2)), ("b", r(1, 16)), ("sl", np.array([2, 4], np.int32))])


if __name__ == "__main__":
    main()
