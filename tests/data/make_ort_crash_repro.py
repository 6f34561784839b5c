"""Writes ort_enable_all_crash.onnx next to this script: the smallest graph
found (by delta debugging amp's O1 output of models/tfm) on which
onnxruntime 1.32 segfaults while creating a session at ORT_ENABLE_ALL, its
default level (DISABLE_ALL, BASIC and EXTENDED are fine):

    x: float16[batch,8,32] -> Transpose(perm=[1,0,2]) -> MatMul(., W: float16[32,96]) -> y

A valid ONNX model (the onnx checker accepts it), so the crash is
onnxruntime's bug; see docs/ONNXRUNTIME.md. Regenerate with
    python3 tests/data/make_ort_crash_repro.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model():
    w = np.random.default_rng(0).uniform(-1, 1, (32, 96)).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="transpose"),
         helper.make_node("MatMul", ["xt", "w"], ["y"], name="matmul")],
        "ort_enable_all_crash",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 8, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [8, "batch", 96])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="amp tests/data/make_ort_crash_repro.py")
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_enable_all_crash.onnx")
    onnx.save(make_model(), out)
    print("wrote", out)
