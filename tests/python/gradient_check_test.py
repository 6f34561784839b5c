"""Every gradient rule against central finite differences. Each case is a
tiny model (ONNX text) whose parameters are initializers; amp-compile
--emit gradients builds loss and gradients, onnxruntime runs them, and the
same loss is differentiated numerically. Float64 where onnxruntime's CPU
kernels take it (relative error <= 1e-6); float32 with larger steps where
they do not (relative error <= 2e-2)."""
import json
import os
import subprocess
import tempfile
import unittest
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, parser

AMP_COMPILE = os.environ["AMP_COMPILE"]


def make_session(model_bytes):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


# name: (dtype, body, inputs {name: shape}, params {name: shape}, loss, extra args)
D, F = "double", "float"
CASES = {
    "gemm": (D, "y = Gemm <transB = 1, alpha = 0.5, beta = 2.0> (x, w, b)", {"x": [3, 4]}, {"w": [5, 4], "b": [5]}, "mse"),
    "gemm_transA": (D, "y = Gemm <transA = 1> (x, w, b)", {"x": [4, 3]}, {"w": [4, 5], "b": [1, 5]}, "mse"),
    "matmul_batched": (D, "y = MatMul (x, w)", {"x": [2, 3, 4]}, {"w": [4, 5]}, "mse"),
    "matmul_both": (D, "y = MatMul (w1, w)", {}, {"w1": [2, 3, 4], "w": [2, 4, 5]}, "mse"),
    "add_broadcast": (D, "y = Add (x, b)", {"x": [3, 4]}, {"b": [1, 4]}, "mse"),
    "sub_mul_div": (D, "s = Sub (x, a)\n m = Mul (s, b)\n y = Div (m, c)", {"x": [3, 4]},
                    {"a": [4], "b": [3, 1], "c": [1, 4]}, "mse"),
    "relu_tanh_sigmoid": (D, "r = Relu (w)\n t = Tanh (r)\n y = Sigmoid (t)", {}, {"w": [3, 4]}, "mse"),
    "exp_log_sqrt_recip": (D, "e = Exp (w)\n l = Log (e)\n s = Sqrt (e)\n r = Reciprocal (s)\n y = Add (l, r)", {}, {"w": [6]}, "mse"),
    # onnxruntime has no float64 Erf or OneHot: these run in float32.
    "erf_neg_leaky": (F, "e = Erf (w)\n n = Neg (e)\n y = LeakyRelu <alpha = 0.1> (n)", {}, {"w": [6]}, "mse"),
    "gelu": (F, "y = Gelu (w)", {}, {"w": [6]}, "mse", 20),
    "pow": (D, "p = Constant <value = double {3.0}> ()\n y = Pow (w, p)", {}, {"w": [6]}, "mse"),
    "softmax": (D, "y = Softmax <axis = -1> (w)", {}, {"w": [3, 5]}, "mse"),
    "logsoftmax": (D, "y = LogSoftmax <axis = 1> (w)", {}, {"w": [3, 5]}, "mse"),
    "layernorm": (D, "y = LayerNormalization <axis = -1> (x, g, b)", {"x": [3, 6]}, {"g": [6], "b": [6]}, "mse"),
    "layernorm_input": (D, "y = LayerNormalization <axis = 1> (w, g)", {}, {"w": [2, 3, 4], "g": [3, 4]}, "mse"),
    "reduce_mean_sum": (D, "m = ReduceMean <axes = [1], keepdims = 0> (w)\n y = ReduceSum (m, ax)", {}, {"w": [3, 4, 2]},
                        "mse_scalar_free"),
    "reshape_transpose": (D, "t = Transpose <perm = [1, 0, 2]> (w)\n y = Reshape (t, shp)", {}, {"w": [2, 3, 4]}, "mse"),
    "flatten_squeeze": (D, "f = Flatten <axis = 1> (w)\n u = Unsqueeze (f, ax0)\n y = Squeeze (u, ax0)", {}, {"w": [2, 3, 2]}, "mse"),
    "concat_split": (D, "c = Concat <axis = 1> (w, v)\n a, b = Split <axis = 1> (c, sp)\n y = Mul (a, b)", {},
                     {"w": [2, 3], "v": [2, 3]}, "mse"),
    "gather": (D, "y = Gather <axis = 0> (w, idx)", {}, {"w": [5, 3]}, "mse"),
    # Any axis, index tensors of any rank, repeated indices summed: the class
    # token of ViT/BERT (a scalar index on axis 1) and a 2-D index on axis 2.
    "gather_axis1_scalar": (D, "y = Gather <axis = 1> (w, i0)", {}, {"w": [2, 5, 3]}, "mse"),
    "gather_axis2_matrix": (D, "y = Gather <axis = -1> (w, idx2)", {}, {"w": [2, 3, 5]}, "mse"),
    # A packed projection split by one Gather per position (as exporters
    # write the QKV split): its gradient is a Concat, not summed scatters.
    "gather_split": (D, "q = Gather <axis = 0> (w, c0)\n k = Gather <axis = 0> (w, c1)\n v = Gather <axis = 0> (w, c2)\n"
                        " s = Mul (q, k)\n y = Add (s, v)", {}, {"w": [3, 2, 4]}, "mse"),
    "where_expand": (D, "c = Greater (x, zero)\n e = Expand (w, shp2)\n y = Where (c, e, v)", {"x": [3, 4]},
                     {"w": [1, 4], "v": [3, 1]}, "mse"),
    "cross_entropy": (F, "y = Identity (w)", {}, {"w": [4, 5]}, "cross_entropy"),
    "batchnorm_training": (D, "y, rm, rv = BatchNormalization <training_mode = 1> (x, s, b, m, v)", {"x": [4, 3, 2, 2]},
                           {"s": [3], "b": [3]}, "mse_bn"),
    "conv": (F, "y = Conv <strides = [2, 2], pads = [1, 0, 1, 1], dilations = [1, 2]> (x, w, b)", {"x": [2, 3, 7, 8]},
             {"w": [4, 3, 3, 2], "b": [4]}, "mse"),
    "conv_grouped": (F, "y = Conv <group = 2, strides = [2, 1], pads = [1, 1, 0, 1]> (x, w, b)", {"x": [2, 4, 6, 5]},
                     {"w": [6, 2, 3, 3], "b": [6]}, "mse"),
    "conv_depthwise_input": (F, "y = Conv <group = 3, pads = [1, 1, 1, 1]> (w, k)", {}, {"w": [1, 3, 5, 5], "k": [3, 1, 3, 3]}, "mse"),
    # Depthwise with a channel multiplier of 2, strides, dilations and an
    # output size that leaves part of the full correlation unused (Slice).
    "conv_depthwise_strided": (F, "y = Conv <group = 4, strides = [2, 2], dilations = [1, 2], pads = [1, 1, 1, 1]> (x, w)",
                               {"x": [2, 4, 7, 8]}, {"w": [8, 1, 3, 3]}, "mse"),
    "nll": (F, "l = LogSoftmax <axis = 1> (w)\n y = NegativeLogLikelihoodLoss (l, labels)", {}, {"w": [4, 5]}, "nll"),
    # Hugging Face computes its loss in the graph with ignore_index (-100);
    # class weights as nn.CrossEntropyLoss(weight=...) exports them. Label 3
    # is ignored here: mean over the others' weights, and its row gets no
    # gradient.
    "sce_ignore_index_weights": (F, "y = SoftmaxCrossEntropyLoss <ignore_index = 3> (w, labels, cw)", {},
                                 {"w": [4, 5]}, "nll"),
    "nll_ignore_index_sum": (F, "l = LogSoftmax <axis = 1> (w)\n"
                                " y = NegativeLogLikelihoodLoss <ignore_index = 1, reduction = \"sum\"> (l, labels)",
                             {}, {"w": [4, 5]}, "nll"),
    # 1-D (audio) and 3-D (volumes): strided, padded, dilated, grouped.
    "conv1d": (F, "y = Conv <strides = [2], pads = [1, 2], dilations = [2]> (x, w, b)", {"x": [2, 3, 11]},
               {"w": [4, 3, 3], "b": [4]}, "mse"),
    "conv1d_grouped_input": (F, "y = Conv <group = 2, pads = [1, 1]> (w, k)", {}, {"w": [2, 4, 7], "k": [4, 2, 3]},
                             "mse"),
    "conv3d": (F, "y = Conv <strides = [1, 2, 1], pads = [1, 0, 0, 1, 1, 0]> (w, k, b)", {},
               {"w": [1, 2, 4, 5, 3], "k": [3, 2, 2, 3, 2], "b": [3]}, "mse"),
    # ConvTranspose (decoders, UNets): strided with output_padding, padded,
    # dilated, grouped, 1-D.
    "conv_transpose": (F, "y = ConvTranspose <strides = [2, 2], pads = [1, 0, 1, 1], output_padding = [1, 0]> (x, w, b)",
                       {"x": [2, 3, 4, 3]}, {"w": [3, 2, 3, 3], "b": [2]}, "mse"),
    "conv_transpose_input": (F, "y = ConvTranspose <group = 2, dilations = [2]> (w, k)", {},
                             {"w": [2, 4, 5], "k": [4, 3, 2]}, "mse"),
    # Einsum: a contraction, a batched one with a letter only one operand
    # has (summed, broadcast back), and the implicit output form.
    "einsum_matmul": (D, "y = Einsum <equation = \"ij,jk->ik\"> (w, v)", {}, {"w": [3, 4], "v": [4, 2]}, "mse"),
    "einsum_batched_sum": (D, "y = Einsum <equation = \"bhqd,bhkd->bhq\"> (w, v)", {},
                           {"w": [2, 3, 4, 5], "v": [2, 3, 2, 5]}, "mse"),
    # Ellipses: a batched Linear's weight (contracted over the ellipsis),
    # and an ellipsis in both operands.
    "einsum_ellipsis": (D, "y = Einsum <equation = \"...ij,jk->...ik\"> (w, v)", {},
                        {"w": [2, 3, 4, 5], "v": [5, 2]}, "mse"),
    "einsum_ellipsis_both": (D, "y = Einsum <equation = \"...ij,...j->...i\"> (w, v)", {},
                              {"w": [2, 3, 4, 5], "v": [2, 3, 5]}, "mse"),
    "einsum_implicit": (D, "y = Einsum <equation = \"ij,kj\"> (w, x)", {"x": [2, 4]}, {"w": [3, 4]}, "mse"),
    # Nearest upsampling by whole factors, as F.interpolate(scale_factor=k)
    # exports it, and the half_pixel default.
    "resize_nearest": (F, "y = Resize <mode = \"nearest\", coordinate_transformation_mode = \"asymmetric\", "
                          "nearest_mode = \"floor\"> (w, , rsc)", {}, {"w": [1, 2, 3, 2]}, "mse"),
    "resize_nearest_half_pixel": (F, "y = Resize <mode = \"nearest\"> (w, , rsc3)", {}, {"w": [2, 1, 2, 3]}, "mse"),
    # GatherElements (repeated indices summed) and the scatters without
    # reduction (distinct indices: data's gradient zeroed where overwritten).
    "gather_elements": (D, "y = GatherElements <axis = 1> (w, gei)", {}, {"w": [3, 4]}, "mse", 16),
    "scatter_elements": (D, "y = ScatterElements <axis = 0> (w, sei, v)", {}, {"w": [3, 4], "v": [2, 4]}, "mse", 16),
    "scatter_nd": (D, "y = ScatterND (w, sni, v)", {}, {"w": [4, 3], "v": [2, 3]}, "mse", 16),
    # Negative steps (torch.flip, x[::-1], x[5:0:-2]), with a positive one
    # on another axis.
    "slice_negative_steps": (D, "y = Slice (w, nst, nen, nax, nsp)", {}, {"w": [6, 7]}, "mse"),
    "slice_flip": (D, "y = Slice (w, fst, fen, fax, fsp)", {}, {"w": [3, 4]}, "mse"),
    "conv_input": (F, "y = Conv <pads = [1, 1, 1, 1]> (w, k)", {}, {"w": [1, 2, 5, 5], "k": [3, 2, 3, 3]}, "mse"),
    "slice": (D, "y = Slice (w, st, en, axs)", {}, {"w": [4, 5]}, "mse"),
    # Strided slices (x[1::2, -8::3], Swin's patch merging): the gradient
    # spreads dY out to every step-th position.
    "slice_steps": (D, "y = Slice (w, st2, en2, axs, sps2)", {}, {"w": [7, 9]}, "mse"),
    # GatherND (dynamo's exports of GPT-2 and Llama pick the last position
    # with it); a repeated index sums its gradients.
    "gathernd": (D, "y = GatherND (w, gnd)", {}, {"w": [3, 4, 2]}, "mse"),
    "pad_constant": (D, "y = Pad (w, pd)", {}, {"w": [3, 4]}, "mse"),
    "pad_axes_value": (D, "y = Pad (w, pd2, cvd, axm1)", {}, {"w": [2, 3, 4]}, "mse", 18),
    "max_min_broadcast": (D, "a = Max (w, v)\n y = Min (a, x)", {"x": [3, 4]}, {"w": [3, 4], "v": [1, 4]}, "mse"),
    "avgpool": (F, "y = AveragePool <kernel_shape = [3, 2], strides = [2, 2], pads = [1, 0, 1, 1], count_include_pad = 1> (w)",
                {}, {"w": [2, 3, 6, 5]}, "mse"),
    "identity_dropout_cast": (F, "i = Identity (w)\n d = Dropout (i)\n c = Cast <to = 11> (d)\n y = Cast <to = 1> (c)", {},
                              {"w": [3, 4]}, "mse"),
    # The dynamo exporter's CastLike (a Cast once imported): to float64 (like
    # a double constant) and back to float32 (like the input).
    "castlike": (F, "c = CastLike (w, cvd)\n y = CastLike (c, x)", {"x": [3, 4]}, {"w": [3, 4]}, "mse"),
    # Every loss attach-loss offers, on a small linear model.
    "loss_l1": (D, "y = MatMul (x, w)", {"x": [3, 4]}, {"w": [4, 2]}, "l1"),
    "loss_bce_with_logits": (D, "y = MatMul (x, w)", {"x": [3, 4]}, {"w": [4, 2]}, "bce_with_logits"),
    "loss_mse_abs": (D, "a = Abs (w)\n y = Mul (x, a)", {"x": [3, 4]}, {"w": [4]}, "mse"),
    # Activations of torchvision and timm models (MobileNetV3's HardSwish,
    # EfficientNet's SiLU pieces, SELU/ELU nets) and bounded functions; the
    # x4 puts HardSwish's input on all three of its pieces.
    "sin_cos_softplus": (F, "s = Sin (w)\n c = Cos (s)\n y = Softplus (c)", {}, {"w": [6]}, "mse"),
    "elu_selu_softsign": (F, "e = Elu <alpha = 0.7> (w)\n s = Selu (e)\n y = Softsign (s)", {}, {"w": [8]}, "mse"),
    "hardswish_hardsigmoid": (F, "m = Mul (w, k4)\n h = HardSwish (m)\n y = HardSigmoid <alpha = 0.5> (h)", {},
                              {"w": [12]}, "mse"),
    "mish": (F, "y = Mish (w)", {}, {"w": [6]}, "mse", 18),
    "clip": (F, "c = Clip (w, clo, chi)\n y = Mul (c, w)", {}, {"w": [10]}, "mse"),
    "maxpool_gap": (F, "p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (w)\n y = GlobalAveragePool (p)", {}, {"w": [2, 3, 4, 4]}, "mse"),
    # The other reductions, with and without kept dims, attribute axes
    # (opset 17) and input axes (opset 18), negative ones among them.
    "reduce_max_min": (D, "a = ReduceMax <axes = [1], keepdims = 0> (w)\n b = ReduceMin <axes = [-1]> (v)\n"
                          " y = Add (a, b)", {}, {"w": [3, 4], "v": [3, 4]}, "mse"),
    "reduce_norms": (D, "a = ReduceL2 <axes = [1]> (w)\n b = ReduceL1 <axes = [0], keepdims = 0> (v)\n"
                        " c = ReduceSumSquare <axes = [1]> (u)\n ac = Add (a, c)\n y = Add (ac, b)", {},
                     {"w": [3, 4], "v": [3, 4], "u": [3, 4]}, "mse"),
    "reduce_logs": (D, "a = ReduceLogSumExp (w, axm1)\n e = Exp (v)\n b = ReduceLogSum (e, axm1)\n"
                       " y = Add (a, b)", {}, {"w": [3, 4], "v": [3, 4]}, "mse", 18),
    "reduce_max_opset18": (D, "y = ReduceMax <keepdims = 0> (w, axs)", {}, {"w": [3, 4, 2]}, "mse", 18),
    "global_max_pool": (F, "y = GlobalMaxPool (w)", {}, {"w": [2, 3, 4, 4]}, "mse"),
    "prelu": (F, "y = PRelu (x, w)", {"x": [2, 4, 3, 3]}, {"w": [4, 1, 1]}, "mse"),
    # Both sides of the kink, never across it: w*w >= 0 and -(w*w) <= 0.
    "prelu_input": (F, "s = Mul (w, w)\n n = Neg (s)\n a = PRelu (s, sl)\n b = PRelu (n, sl)\n y = Add (a, b)",
                    {}, {"w": [3, 4]}, "mse"),
    "cumsum": (D, "a = CumSum <reverse = 1> (w, c1)\n b = CumSum <exclusive = 1> (a, c1)\n y = Mul (b, w)", {},
               {"w": [3, 4]}, "mse"),
    "tile": (D, "y = Tile (w, rep)", {}, {"w": [2, 3]}, "mse"),
    "instance_norm": (F, "y = InstanceNormalization <epsilon = 0.01> (x, g, b)", {"x": [2, 3, 4, 3]},
                      {"g": [3], "b": [3]}, "mse"),
    "instance_norm_input": (F, "y = InstanceNormalization (w, cg, cb)", {}, {"w": [2, 3, 5]}, "mse"),
    # opset 18: scale and bias per group; opset 21: per channel.
    "group_norm_18": (F, "y = GroupNormalization <num_groups = 2, epsilon = 0.01> (w, g, b)", {},
                      {"w": [2, 4, 3, 2], "g": [2], "b": [2]}, "mse", 18),
    "group_norm_21": (F, "y = GroupNormalization <num_groups = 2, epsilon = 0.01> (w, g, b)", {},
                      {"w": [2, 6, 3], "g": [6], "b": [6]}, "mse", 21),
}

CONSTANTS = {
    "shp": ("int64", [2], [3, 8]), "ax0": ("int64", [1], [0]), "ax": ("int64", [1], [0]),
    "sp": ("int64", [2], [3, 3]), "st": ("int64", [2], [1, -4]), "en": ("int64", [2], [3, 4]),
    "axs": ("int64", [2], [0, 1]), "idx": ("int64", [4], [4, 0, 4, 2]),
    "i0": ("int64", [], [3]), "c0": ("int64", [], [0]), "c1": ("int64", [], [1]), "c2": ("int64", [], [-1]), "idx2": ("int64", [2, 2], [4, 1, 1, 0]), "shp2": ("int64", [2], [3, 4]),
    "st2": ("int64", [2], [1, -8]), "en2": ("int64", [2], [7, 9]), "sps2": ("int64", [2], [2, 3]),
    "gnd": ("int64", [3, 2], [0, 1, 2, 3, 0, 1]),
    "pd": ("int64", [4], [1, 0, 2, 3]), "pd2": ("int64", [2], [2, 1]), "cvd": ("double", [], [0.5]),
    "axm1": ("int64", [1], [-1]),
    "cw": ("float", [5], [0.5, 1.0, 2.0, 1.5, 0.25]),
    "rep": ("int64", [2], [2, 3]), "nst": ("int64", [2], [5, 1]), "nen": ("int64", [2], [0, 7]),
    "nax": ("int64", [2], [0, 1]), "nsp": ("int64", [2], [-2, 3]), "fst": ("int64", [1], [-1]),
    "fen": ("int64", [1], [-9223372036854775807]), "fax": ("int64", [1], [1]), "fsp": ("int64", [1], [-1]), "gei": ("int64", [3, 5], [0, 3, 3, 1, 2, 1, 1, 0, 2, 3, 0, 2, 2, 2, 1]),
    "sei": ("int64", [2, 4], [2, 0, 1, 2, 0, 1, 2, 1]), "sni": ("int64", [2, 1], [3, 1]), "rsc": ("float", [4], [1.0, 1.0, 2.0, 3.0]),
    "rsc3": ("float", [4], [1.0, 2.0, 3.0, 1.0]), "cg": ("float", [3], [1.5, 0.5, -1.0]), "cb": ("float", [3], [0.1, 0.0, -0.2]), "sl": ("float", [4], [0.25, -0.5, 1.5, 0.1]),
    "k4": ("float", [], [4.0]), "clo": ("float", [], [-0.5]), "chi": ("float", [], [0.8]),
}


def build(name, case):
    dtype, body, inputs, params = case[:4]
    opset = case[5] if len(case) > 5 else 17
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    npdt = np.float64 if dtype == D else np.float32
    inits, decls = [], []
    values = {}
    for p, shape in params.items():
        values[p] = rng.uniform(-1.5, 1.5, shape).astype(npdt)
        if name == "exp_log_sqrt_recip":
            values[p] = rng.uniform(0.2, 1.5, shape).astype(npdt)
        if name == "pow":
            values[p] = rng.uniform(0.5, 1.5, shape).astype(npdt)
        if name == "maxpool_gap":  # distinct values 0.1 apart: a step of 1e-2 never changes the max
            values[p] = (rng.permutation(int(np.prod(shape))) * 0.1 - 4.0).reshape(shape).astype(npdt)
    used = {c: v for c, v in CONSTANTS.items() if c in body}
    if name == "batchnorm_training":
        values_stats = {"m": np.zeros(3, npdt), "v": np.ones(3, npdt)}
    in_decl = ", ".join(f"{dtype}[{','.join(map(str, s))}] {n}" for n, s in inputs.items())
    if case[4] == "nll":
        in_decl = "int64[4] labels"
    text = f'<ir_version: 8, opset_import: ["" : {opset}]>\nmain ({in_decl}) => ({dtype}[?] y)\n{{\n'
    if "zero" in body:
        text += f"  zero = Constant <value = {dtype} {{0.0}}> ()\n"
    for c, (t, shape, vals) in used.items():
        ttype = f"{t}[{','.join(map(str, shape))}]" if shape else t
        text += f"  {c} = Constant <value = {ttype} {{{', '.join(map(str, vals))}}}> ()\n"
    text += "  " + body + "\n}\n"
    model = parser.parse_model(text)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE if dtype == D else onnx.TensorProto.FLOAT, None))
    for p, v in values.items():
        model.graph.initializer.append(numpy_helper.from_array(v, p))
    if name == "batchnorm_training":
        for p, v in values_stats.items():
            model.graph.initializer.append(numpy_helper.from_array(v, p))
        model.graph.output.extend([onnx.helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, None) for n in ("rm", "rv")])
    feeds = {n: rng.uniform(-1, 1, s).astype(npdt) for n, s in inputs.items()}
    if case[4] == "nll":
        feeds["labels"] = np.array([0, 3, 1, 4], np.int64)
    return model, values, feeds, npdt


class GradientCheck(unittest.TestCase):
    def check(self, name, case):
        model, params, feeds, npdt = build(name, case)
        loss = case[4]
        with tempfile.TemporaryDirectory() as tmp:
            src, out = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "g.onnx")
            onnx.save(model, src)
            args = ["--emit", "gradients", "--opt-level", "O0"]
            if loss == "cross_entropy":
                args += ["--loss", "cross_entropy"]
            elif loss == "nll":  # the model's own NLL loss on labels it reads
                args += ["--loss", "model"]
            elif loss == "mse_bn":
                args += ["--loss", "mse", "--output", "y"]
            elif loss in ("l1", "bce_with_logits"):
                args += ["--loss", loss]
            else:
                args += ["--loss", "mse"]
            r = subprocess.run([AMP_COMPILE, src, "-o", out, "--lr", "0.01", *args], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            g = onnx.load(out)
            loss_name = json.loads({p.key: p.value for p in g.metadata_props}["amp.training"])["loss"]
            label_info = [i for i in g.graph.input if i.name == "labels"][0]
            sess = make_session(g.SerializeToString())
            rng = np.random.default_rng(1)
            fwd = make_session(model.SerializeToString())
            y0 = fwd.run(["y"], {**feeds})[0]
            if loss == "nll":
                labels = feeds["labels"]
            elif label_info.type.tensor_type.elem_type == onnx.TensorProto.INT64:
                labels = rng.integers(0, y0.shape[1], y0.shape[0]).astype(np.int64)
            else:
                labels = rng.uniform(-1, 1, y0.shape).astype(npdt)
            base = {**feeds, "labels": labels}
            names = [o.name for o in sess.get_outputs()]
            results = dict(zip(names, sess.run(None, base)))

            def loss_at(p_name, value):
                # Override one initializer: rebuild the gradient model's initializer.
                m2 = onnx.load(out)
                for t in m2.graph.initializer:
                    if t.name == p_name:
                        t.CopyFrom(numpy_helper.from_array(value, p_name))
                s2 = make_session(m2.SerializeToString())
                return float(s2.run([loss_name], base)[0])

            eps = 1e-6 if npdt == np.float64 else 1e-2
            tol = 1e-6 if npdt == np.float64 else 2e-2
            for p, value in params.items():
                grad = results[p + "_grad"]
                self.assertEqual(grad.shape, value.shape)
                numeric = np.zeros_like(value, dtype=np.float64)
                flat = value.reshape(-1)
                for i in range(flat.size):
                    plus, minus = flat.copy(), flat.copy()
                    plus[i] += eps
                    minus[i] -= eps
                    numeric.reshape(-1)[i] = (loss_at(p, plus.reshape(value.shape)) -
                                              loss_at(p, minus.reshape(value.shape))) / (2 * eps)
                self.assertGreater(np.abs(numeric).max(), 0, f"{name}/{p}: zero gradient, a vacuous check")
                err = np.abs(grad - numeric).max() / np.abs(numeric).max()
                self.assertLessEqual(err, tol, f"{name}/{p}: analytic vs numeric relative error {err}")


for _name, _case in CASES.items():
    setattr(GradientCheck, f"test_{_name}", lambda self, n=_name, c=_case: self.check(n, c))

if __name__ == "__main__":
    unittest.main(verbosity=2)
