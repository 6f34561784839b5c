"""Every malformed input makes amp-compile exit with code 1 and print one
line that names the problem (and the node, when there is one): never a crash
(a signal), a hang (the 30 s timeout) or an internal error."""
import os
import random
import subprocess
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

AMP_COMPILE = os.environ["AMP_COMPILE"]
MODELS = os.environ["AMP_MODELS"]


def raw_tensor(name, dims, raw):
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def small_model(nodes=None, inits=None, opset=17, ir=8, outputs=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    if nodes is None:
        nodes = [helper.make_node("Add", ["x", "w"], ["s"], name="add"),
                 helper.make_node("Relu", ["s"], ["y"], name="relu")]
    if inits is None:
        inits = [numpy_helper.from_array(np.array([1, -2, 3, 0.5], np.float32), "w")]
    g = helper.make_graph(nodes, "g", [x], outputs or [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


class Malformed(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.SerializeToString())
        return path

    def expect_error(self, path, fragment, extra=()):
        r = subprocess.run([AMP_COMPILE, path, "-o", os.path.join(self.dir, "out.onnx"), *extra],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, f"rc={r.returncode} stderr={r.stderr}")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("amp-compile: error: "), lines[0])
        self.assertNotIn("internal", lines[0])
        self.assertIn(fragment, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out.onnx")))

    def test_valid_model_compiles(self):  # the baseline the other cases break
        path = self.write("ok.onnx", small_model())
        r = subprocess.run([AMP_COMPILE, path, "-o", os.path.join(self.dir, "out.onnx")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        onnx.checker.check_model(os.path.join(self.dir, "out.onnx"), full_check=True)

    def test_missing_file_and_folder(self):
        self.expect_error(os.path.join(self.dir, "nothere.onnx"), "cannot open")
        self.expect_error(self.dir, "is a folder")

    def test_empty_file(self):
        self.expect_error(self.write("empty.onnx", b""), "the file is empty")

    def test_truncated_file(self):
        with open(os.path.join(MODELS, "cnn", "model.onnx"), "rb") as f:
            data = f.read()
        for cut in (3, 200, len(data) // 2, len(data) - 7):
            self.expect_error(self.write(f"cut{cut}.onnx", data[:cut]), "not a valid ONNX model")

    def test_random_bytes(self):
        rng = random.Random(5)
        for i in range(20):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
            r = subprocess.run([AMP_COMPILE, self.write(f"junk{i}.onnx", junk)],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("amp-compile: error: ", r.stderr)

    def test_cycle(self):
        nodes = [helper.make_node("Add", ["x", "y"], ["s"], name="add"),
                 helper.make_node("Relu", ["s"], ["y"], name="relu")]
        self.expect_error(self.write("cycle.onnx", small_model(nodes=nodes)), "cycle through node")

    def test_undefined_input(self):
        nodes = [helper.make_node("Relu", ["ghost"], ["y"], name="relu")]
        self.expect_error(self.write("dangling.onnx", small_model(nodes=nodes)),
                          "node 'relu' (Relu) reads 'ghost', which no node, input or initializer defines")

    def test_unknown_op(self):
        nodes = [helper.make_node("Frobnicate", ["x"], ["y"], name="frob")]
        self.expect_error(self.write("unknown.onnx", small_model(nodes=nodes)),
                          "node 'frob' (Frobnicate): op 'Frobnicate' is not supported")

    def test_unsupported_opset_and_ir(self):
        self.expect_error(self.write("old.onnx", small_model(opset=11)), "unsupported opset 11")
        self.expect_error(self.write("new.onnx", small_model(opset=40)), "unsupported opset 40")
        self.expect_error(self.write("ir.onnx", small_model(ir=4)), "unsupported ONNX IR version 4")

    def test_duplicate_outputs(self):
        nodes = [helper.make_node("Relu", ["x"], ["y"], name="a"),
                 helper.make_node("Neg", ["x"], ["y"], name="b")]
        self.expect_error(self.write("dup.onnx", small_model(nodes=nodes)),
                          "node 'b' (Neg) defines 'y', which is already defined")
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        self.expect_error(self.write("dup2.onnx", small_model(outputs=[y, y])), "listed twice")

    def test_raw_data_shorter_than_shape(self):
        w = raw_tensor("w", [4], np.zeros(2, np.float32).tobytes() + b"\1")
        self.expect_error(self.write("short.onnx", small_model(inits=[w])),
                          "initializer 'w' has 9 bytes of raw data but its shape [4] of float needs 16")

    def test_huge_and_negative_dims(self):
        big = raw_tensor("w", [1 << 45], b"")
        self.expect_error(self.write("huge.onnx", small_model(inits=[big])), "larger than amp accepts")
        prod = raw_tensor("w", [1 << 30, 1 << 30, 4], b"")
        self.expect_error(self.write("huge2.onnx", small_model(inits=[prod])), "larger than amp accepts")
        neg = raw_tensor("w", [-4], b"")
        self.expect_error(self.write("neg.onnx", small_model(inits=[neg])), "negative dim -4")
        m = small_model()
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1 << 50
        self.expect_error(self.write("hugein.onnx", m), "graph input 'x' has dim")

    def external(self, location, offset=0, length=16):
        w = raw_tensor("w", [4], b"")
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
            e = w.external_data.add()
            e.key, e.value = k, v
        return small_model(inits=[w])

    def test_external_data(self):
        self.write("m/w.bin", np.arange(6, dtype=np.float32).tobytes())
        self.write("secret.bin", np.arange(6, dtype=np.float32).tobytes())
        ok = self.write("m/ok.onnx", self.external("w.bin", 8))
        r = subprocess.run([AMP_COMPILE, ok, "-o", os.path.join(self.dir, "ok_out.onnx")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.expect_error(self.write("m/abs.onnx", self.external(os.path.join(self.dir, "secret.bin"))),
                          "is an absolute path")
        self.expect_error(self.write("m/esc.onnx", self.external("../secret.bin")),
                          "outside the model's folder")
        self.expect_error(self.write("m/miss.onnx", self.external("gone.bin")), "cannot be read")
        self.expect_error(self.write("m/short.onnx", self.external("w.bin", 16)),
                          "has 24 bytes, fewer than offset 16 + length 16")

    def test_deeply_nested_subgraphs(self):
        def wrap(field, body):
            n, head = len(body), bytes([(field << 3) | 2])
            while True:
                b = n & 0x7F
                n >>= 7
                head += bytes([b | (0x80 if n else 0)])
                if not n:
                    return head + body
        graph = b""
        for _ in range(3000):
            graph = wrap(1, wrap(5, wrap(6, graph)))
        self.expect_error(self.write("deep.onnx", b"\x08\x08" + wrap(7, graph)), "deeper than")

    def test_control_flow_is_refused_by_name(self):
        then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])])
        cond = numpy_helper.from_array(np.array(True), "c")
        nodes = [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=then_g)]
        self.expect_error(self.write("if.onnx", small_model(nodes=nodes, inits=[cond])),
                          "node 'branch' (If) attribute 'else_branch' is a subgraph")

    def test_bad_training_options(self):
        path = self.write("ok.onnx", small_model())
        self.expect_error(path, "unknown loss 'hinge'", extra=["--loss", "hinge"])
        self.expect_error(path, "cross_entropy needs logits of rank >= 2", extra=["--loss", "cross_entropy"])
        self.expect_error(path, "--loss model needs a scalar output", extra=["--loss", "model"])
        self.expect_error(path, "--output 'nope' is not an output of the model", extra=["--loss", "mse", "--output", "nope"])
        self.expect_error(path, "--freeze '(' is not a valid regular expression", extra=["--loss", "mse", "--freeze", "("])
        self.expect_error(path, "the loss does not depend on any trainable parameter",
                          extra=["--loss", "mse", "--freeze", "."])
        self.expect_error(path, "optimizer hyperparameters out of range", extra=["--loss", "mse", "--lr", "-1"])
        self.expect_error(path, "nesterov momentum requires a momentum",
                          extra=["--loss", "mse", "--lr", "0.01", "--nesterov"])
        # PyTorch's SGD has no default learning rate; Adam's is 1e-3.
        self.expect_error(path, "optimizer sgd needs a learning rate (--lr)", extra=["--loss", "mse"])
        self.expect_error(path, "--loss-scale expects dynamic, none or a number", extra=["--loss", "mse", "--loss-scale", "big"])
        self.expect_error(path, "loss scale options out of range",
                          extra=["--loss", "mse", "--loss-scale", "dynamic", "--backoff-factor", "2"])

    def test_flags_that_would_be_ignored_are_errors(self):
        path = self.write("ok.onnx", small_model())
        # Nothing to write: no -o and no report.
        r = subprocess.run([AMP_COMPILE, path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nothing to write: pass -o OUT.onnx", r.stderr)
        # Training flags without --loss on a model whose output is no loss.
        self.expect_error(path, "--optimizer, --lr given without --loss",
                          extra=["--optimizer", "adam", "--lr", "1e-3"])
        self.expect_error(path, "--loss-scale given without --loss", extra=["--loss-scale", "dynamic"])
        # A model whose only output is a scalar is its own loss.
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        loss = helper.make_tensor_value_info("l", TensorProto.FLOAT, [])
        nodes = [helper.make_node("Mul", ["x", "w"], ["s"]),
                 helper.make_node("ReduceSum", ["s"], ["l"], keepdims=0)]
        g = helper.make_graph(nodes, "g", [x], [loss],
                              [numpy_helper.from_array(np.array([1, -2, 3, 0.5], np.float32), "w")])
        scalar = self.write("scalar.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
        out = os.path.join(self.dir, "step.onnx")
        r = subprocess.run([AMP_COMPILE, scalar, "--optimizer", "sgd", "--lr", "0.1", "-o", out],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("training it as its own loss (--loss model)", r.stderr)
        self.assertEqual(len(onnx.load(out).training_info), 1)
        # Adam without --lr records torch.optim.Adam's default, 1e-3.
        r = subprocess.run([AMP_COMPILE, scalar, "--optimizer", "adam", "-o", out],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = {p.key: p.value for p in onnx.load(out).metadata_props}
        self.assertAlmostEqual(float(meta["amp.lr"]), 1e-3, places=9)

    def test_bad_flags(self):
        path = self.write("ok.onnx", small_model())
        self.expect_error(path, "--bind-dim expects NAME=VALUE", extra=["--bind-dim", "batch"])
        # The specialized step exists only for a backend.
        self.expect_error(path, "--print-specialized needs --target cpu|cuda",
                          extra=["--print-specialized"])
        r = subprocess.run([AMP_COMPILE, path, "--opt-level", "O9"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
