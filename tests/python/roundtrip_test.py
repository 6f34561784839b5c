"""Round trip: every model in models/ imported and exported by amp-compile
(O0, and with the batch bound and shape subgraphs folded) passes the latest
onnx checker with full_check=True and gives the same outputs in onnxruntime
as the original (relative error <= 1e-6)."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
import onnxruntime as ort

AMP_COMPILE = os.environ["AMP_COMPILE"]
MODELS = os.environ["AMP_MODELS"]
REL_TOL = 1e-6


def run_ort(path, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: feeds[n] for n in names})


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


class RoundTrip(unittest.TestCase):
    def check(self, model, fname, extra_args):
        src = os.path.join(MODELS, model, fname)
        data = np.load(os.path.join(MODELS, model, "data.npz"))
        x = data["x0"].astype(np.float32)
        self.assertGreater(np.abs(x).sum(), 0)  # never on all-zero data
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.onnx")
            args = [AMP_COMPILE, src, "-o", out, "--opt-level", "O0"] + extra_args
            if "--bind-dim" in extra_args:
                args[-1] = f"batch={x.shape[0]}"
            r = subprocess.run(args, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            onnx.checker.check_model(out, full_check=True)
            in_name = onnx.load(src).graph.input[0].name
            ref = run_ort(src, {in_name: x})
            got = run_ort(out, {in_name: x})
            self.assertEqual(len(ref), len(got))
            for a, b in zip(got, ref):
                self.assertEqual(a.shape, b.shape)
                self.assertLessEqual(rel_err(a, b), REL_TOL)


def add_cases():
    for model in sorted(os.listdir(MODELS)):
        for fname in ("model.onnx", "model.dynamo_eval.onnx"):
            if not os.path.exists(os.path.join(MODELS, model, fname)):
                continue
            tag = fname.replace(".", "_")
            setattr(RoundTrip, f"test_{model}_{tag}_o0",
                    lambda self, m=model, f=fname: self.check(m, f, []))
            setattr(RoundTrip, f"test_{model}_{tag}_bound_folded",
                    lambda self, m=model, f=fname: self.check(m, f, ["--bind-dim", "batch"]))


add_cases()

if __name__ == "__main__":
    unittest.main(verbosity=2)
