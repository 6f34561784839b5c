"""Mixed precision on every model in models/: the compiled model passes the
latest onnx checker (full_check) at every level and dtype, and its forward
output matches the FP32 model's in onnxruntime (which has FP16 CPU kernels)
within 1e-2 relative error at O1 and O2. The report is consistent with the
graph: every Cast amp inserted sits on a precision boundary, no two share
(value, type), and none is on a shape path."""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np
import onnx
import onnxruntime as ort

AMP_COMPILE = os.environ["AMP_COMPILE"]
MODELS = os.environ["AMP_MODELS"]
# Each op's shape-like inputs, from its record (never a copy of the table).
SHAPE_SLOTS = {o["op"]: set(o["shape_inputs"]) for o in json.loads(subprocess.run(
    [AMP_COMPILE, "--op-facts"], capture_output=True, text=True, check=True, timeout=60).stdout)
    if o["domain"] == ""}


def run(path, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def compile_model(src, out, *args):
    r = subprocess.run([AMP_COMPILE, src, "-o", out, *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(r.stderr)
    return r


class Precision(unittest.TestCase):
    def models(self):
        for model in sorted(os.listdir(MODELS)):
            for fname in ("model.onnx", "model.dynamo_eval.onnx"):
                path = os.path.join(MODELS, model, fname)
                if os.path.exists(path):
                    yield model, fname, path

    def test_checker_accepts_every_level_and_dtype(self):
        with tempfile.TemporaryDirectory() as tmp:
            for model, fname, src in self.models():
                for args in (["--opt-level", "O1"], ["--opt-level", "O2"], ["--opt-level", "O3"],
                             ["--dtype", "bf16"], ["--keep-batchnorm-fp32"]):
                    with self.subTest(model=model, file=fname, args=args):
                        out = os.path.join(tmp, "out.onnx")
                        compile_model(src, out, *args)
                        onnx.checker.check_model(out, full_check=True)

    def test_forward_matches_fp32(self):
        with tempfile.TemporaryDirectory() as tmp:
            for model, fname, src in self.models():
                x = np.load(os.path.join(MODELS, model, "data.npz"))["x0"].astype(np.float32)
                self.assertGreater(np.abs(x).sum(), 0)
                ref = run(src, x)
                for level in ("O1", "O2"):
                    with self.subTest(model=model, file=fname, level=level):
                        out = os.path.join(tmp, "out.onnx")
                        compile_model(src, out, "--opt-level", level)
                        m = onnx.load(out)
                        self.assertTrue(any(vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
                                            for vi in m.graph.value_info), "nothing became fp16")
                        got = run(out, x)
                        self.assertEqual(got.dtype, np.float32)  # outputs keep their type
                        rel = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
                        self.assertLessEqual(rel, 1e-2, f"relative error {rel}")

    def test_casts_are_boundaries_and_never_on_shape_paths(self):
        with tempfile.TemporaryDirectory() as tmp:
            for model, fname, src in self.models():
                with self.subTest(model=model, file=fname):
                    out = os.path.join(tmp, "out.onnx")
                    rep = os.path.join(tmp, "report.json")
                    compile_model(src, out, "--report-json", rep)
                    report = json.load(open(rep))
                    precision = {n["output"]: n["precision"] for n in report["nodes"]}
                    g = onnx.load(out).graph
                    types = {vi.name: vi.type.tensor_type.elem_type
                             for vi in list(g.value_info) + list(g.input) + list(g.output)}
                    types.update({t.name: t.data_type for t in g.initializer})
                    consumers = {}
                    for n in g.node:
                        for i, v in enumerate(n.input):
                            consumers.setdefault(v, []).append((n, i))
                    seen = set()
                    casts = [n for n in g.node if n.op_type == "Cast" and n.name.startswith("amp_cast_")]
                    self.assertEqual(len(casts), report["summary"]["casts_inserted"])
                    for c in casts:
                        src_v, to = c.input[0], c.attribute[0].i
                        self.assertNotIn((src_v, to), seen, "two casts of one value to one type")
                        seen.add((src_v, to))
                        self.assertIn(types[src_v], (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                     onnx.TensorProto.BFLOAT16), "cast of non-float data")
                        self.assertNotEqual(types[src_v], to, "a cast to the same type")
                        for n, i in consumers.get(c.output[0], []):
                            self.assertNotIn(i, SHAPE_SLOTS.get(n.op_type, set()), f"cast feeds a shape input of {n.name}")

    def test_transformer_report(self):
        with tempfile.TemporaryDirectory() as tmp:
            rep = os.path.join(tmp, "r.json")
            r = compile_model(os.path.join(MODELS, "tfm", "model.onnx"), os.path.join(tmp, "o.onnx"),
                              "--report-json", rep, "--report")
            self.assertIn("precision report (O1, fp16)", r.stdout)
            ops = {o["op"]: o for o in json.load(open(rep))["ops"]}
            for op in ("MatMul", "Gemm"):
                self.assertEqual(ops[op]["fp32"], 0)
                self.assertGreater(ops[op]["half"], 0)
            for op in ("Softmax", "LayerNormalization", "ReduceMean"):
                self.assertEqual(ops[op]["half"], 0)
                self.assertGreater(ops[op]["fp32"], 0)

    def test_layer_scale_stays_fp32_as_under_autocast(self):
        # A ConvNeXt-style block: y = x + gamma * (x W + b), gamma = 1e-6 (a
        # subnormal in fp16). autocast runs the Linear in half and the Mul by
        # the FP32 parameter in the widest type; so does amp at O1: no Cast
        # of gamma, the Mul in FP32 with its rule in the report, the GEMM in
        # half (its bias Add follows its FP32 consumers here: the one Cast
        # sits after the GEMM); and the forward matches FP32 in onnxruntime.
        from onnx import helper, numpy_helper, TensorProto
        rng = np.random.default_rng(3)
        inits = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 0.3, "w"),
                 numpy_helper.from_array(rng.standard_normal(16).astype(np.float32) * 0.1, "b"),
                 numpy_helper.from_array(np.full(16, 1e-6, np.float32), "gamma")]
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
                 helper.make_node("Mul", ["a", "gamma"], ["s"]), helper.make_node("Add", ["x", "s"], ["y"])]
        g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])], inits)
        with tempfile.TemporaryDirectory() as tmp:
            src, out, rep = (os.path.join(tmp, f) for f in ("m.onnx", "o1.onnx", "r.json"))
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), src)
            compile_model(src, out, "--opt-level", "O1", "--report-json", rep)
            step = onnx.load(out)
            casts_of_gamma = [n for n in step.graph.node if n.op_type == "Cast" and "gamma" in n.input]
            self.assertEqual(casts_of_gamma, [])
            nodes = {n["output"]: n for n in json.load(open(rep))["nodes"]}
            self.assertEqual(nodes["s"]["precision"], "fp32")
            self.assertIn("reads the FP32 parameter 'gamma'", nodes["s"]["rule"])
            self.assertEqual(nodes["m"]["precision"], "fp16")  # the Linear's GEMM, as autocast
            x = rng.standard_normal((4, 16)).astype(np.float32)
            want, got = run(src, x), run(out, x)
            # y - x is the layer-scaled branch (1e-6): compare it, not y.
            branch_want, branch_got = want - x, got - x
            self.assertLess(np.abs(branch_got - branch_want).max() / np.abs(branch_want).max(), 2e-2)

    def test_o0_converts_nothing_and_says_so(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = compile_model(os.path.join(MODELS, "mlp", "model.onnx"), os.path.join(tmp, "o.onnx"),
                              "--opt-level", "O0", "--report")
            self.assertIn("nothing was converted to half", r.stderr)
            self.assertIn("amp converted nothing to half: --opt-level O0", r.stdout)

    def test_policy_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            pol = os.path.join(tmp, "p.json")
            json.dump({"dtype": "bf16", "fp32_ops": ["Gemm"]}, open(pol, "w"))
            rep = os.path.join(tmp, "r.json")
            compile_model(os.path.join(MODELS, "mlp", "model.onnx"), os.path.join(tmp, "o.onnx"),
                          "--policy", pol, "--report-json", rep)
            report = json.load(open(rep))
            self.assertEqual(report["dtype"], "bf16")
            gemm = [n for n in report["nodes"] if n["op"] == "Gemm"]
            self.assertTrue(gemm and all(n["precision"] == "fp32" for n in gemm))
            self.assertTrue(all(n["rule"] == "override: --fp32-ops Gemm" for n in gemm))
            json.dump({"dtype": "fp8"}, open(pol, "w"))
            r = subprocess.run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--policy", pol],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("unknown dtype 'fp8'", r.stderr)


class PolicyErrors(unittest.TestCase):
    """Every bad policy (file or flags) is one clear error line, exit 1."""

    def run_bad(self, args, fragment, policy=None):
        with tempfile.TemporaryDirectory() as tmp:
            if policy is not None:
                path = os.path.join(tmp, "p.json")
                with open(path, "w") as f:
                    f.write(policy)
                args = args + ["--policy", path]
            r = subprocess.run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), *args],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(fragment, r.stderr)

    def test_bad_policies(self):
        self.run_bad([], "is not valid JSON", policy="{dtype: fp16")
        self.run_bad([], "must hold a JSON object", policy="[1, 2]")
        self.run_bad([], "unknown key 'dtypes'", policy='{"dtypes": "bf16"}')
        self.run_bad([], "a value has the wrong type", policy='{"keep_batchnorm_fp32": "yes"}')
        self.run_bad([], "unknown opt level 'O7'", policy='{"opt_level": "O7"}')
        self.run_bad(["--policy", "/nonexistent/p.json"], "cannot open policy file")
        self.run_bad(["--fp32-nodes", "(("], "is not a valid regular expression")
        self.run_bad(["--fp32-ops", "Gemm", "--half-ops", "Gemm"], "is in both the fp32 and the half override lists")


if __name__ == "__main__":
    unittest.main(verbosity=2)
