"""The training step against PyTorch: for every model in models/, the
functional FP32 step compiled by amp-compile and run in onnxruntime
reproduces reference.json's sgd_fp32 and adam_fp32 losses (within 1e-4
relative over 12 steps), ends at after_sgd_fp32.npz's parameters (within
1e-4), and passes the onnx checker. The optimizer variants (weight decay,
dampening, Nesterov, AdamW) match a NumPy transcription of PyTorch's
torch.optim formulas applied to amp's own gradients."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from training_step import StepRunner  # noqa: E402

AMP_COMPILE = os.environ["AMP_COMPILE"]
MODELS = os.environ["AMP_MODELS"]


def compile_step(src, out, *args):
    emit = [] if "--emit" in args else ["--emit", "functional"]
    lr = [] if "--lr" in args else ["--lr", "0.01"]  # SGD has no default learning rate
    r = subprocess.run([AMP_COMPILE, src, "-o", out, "--loss", "cross_entropy", "--opt-level", "O0", *emit, *lr,
                        *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(r.stderr)


class Trajectories(unittest.TestCase):
    def run_model(self, model, traj):
        ref = json.load(open(os.path.join(MODELS, model, "reference.json")))
        data = np.load(os.path.join(MODELS, model, "data.npz"))
        hp = ref["optimizers"]["sgd" if traj.startswith("sgd") else "adam"]
        if traj.startswith("sgd"):
            args = ["--optimizer", "sgd", "--lr", str(hp["lr"]), "--momentum", str(hp["momentum"]),
                    "--dampening", str(hp["dampening"]), "--weight-decay", str(hp["weight_decay"])]
        else:
            args = ["--optimizer", "adam", "--lr", str(hp["lr"]), "--betas", f"{hp['betas'][0]},{hp['betas'][1]}",
                    "--eps", str(hp["eps"]), "--weight-decay", str(hp["weight_decay"])]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "step.onnx")
            compile_step(os.path.join(MODELS, model, "model.onnx"), out, *args)
            onnx.checker.check_model(out, full_check=True)
            run = StepRunner(out)
            losses = []
            for k in range(ref["steps"]):
                b = k % ref["batches"]
                loss, _ = run.step({"input": data[f"x{b}"], "labels": data[f"y{b}"]})
                losses.append(loss)
        expected = ref["trajectories"][traj]["losses"]
        rel = [abs(a - e) / abs(e) for a, e in zip(losses, expected)]
        self.assertLessEqual(max(rel), 1e-4, f"{model} {traj}: losses {losses} vs {expected}")
        self.assertLess(losses[-1], losses[0] + 0.5)  # it trains, not only matches the first step
        return run

    def check_params(self, model, run):
        after = np.load(os.path.join(MODELS, model, "after_sgd_fp32.npz"))
        checked = 0
        for key in after.files:
            if not key.startswith("param/"):
                continue
            name = key[len("param/"):]
            got, exp = run.state[name], after[key]
            rel = np.max(np.abs(got - exp)) / max(np.max(np.abs(exp)), 1e-12)
            self.assertLessEqual(rel, 1e-4, f"{model}: parameter {name} differs by {rel}")
            checked += 1
        self.assertGreater(checked, 0)


class MixedPrecision(unittest.TestCase):
    """O1 + dynamic loss scaling + Adam, run in onnxruntime's FP16 kernels,
    against PyTorch's autocast + GradScaler trajectory (adam_amp)."""

    def run_amp(self, model):
        ref = json.load(open(os.path.join(MODELS, model, "reference.json")))
        data = np.load(os.path.join(MODELS, model, "data.npz"))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "step.onnx")
            r = subprocess.run([AMP_COMPILE, os.path.join(MODELS, model, "model.onnx"), "-o", out, "--loss",
                                "cross_entropy", "--optimizer", "adam", "--lr", "1e-3", "--emit", "functional"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            onnx.checker.check_model(out, full_check=True)
            self.assertTrue(any(vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
                                for vi in onnx.load(out).graph.value_info))
            run = StepRunner(out)
            losses, scales = [], []
            for k in range(ref["steps"]):
                b = k % ref["batches"]
                scales.append(float(run.state["loss_scale"]))
                losses.append(run.step({"input": data[f"x{b}"], "labels": data[f"y{b}"]})[0])
        exp = ref["trajectories"]["adam_amp"]
        rel = max(abs(a - e) / abs(e) for a, e in zip(losses, exp["losses"]))
        self.assertLessEqual(rel, 2e-3, f"{model}: {losses} vs {exp['losses']}")
        self.assertEqual(scales, exp["scales"])


class LossValues(unittest.TestCase):
    """Each loss attach-loss offers computes PyTorch's formula (checked in NumPy
    on the mlp's own logits)."""

    def test_losses(self):
        src = os.path.join(MODELS, "mlp", "model.onnx")
        x = np.load(os.path.join(MODELS, "mlp", "data.npz"))["x0"]
        so = ort.SessionOptions()
        so.log_severity_level = 3
        logits = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        rng = np.random.default_rng(4)
        targets = rng.uniform(0, 1, logits.shape).astype(np.float32)
        classes = rng.integers(0, logits.shape[1], logits.shape[0]).astype(np.int64)
        z = logits.astype(np.float64)
        log_softmax = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        expected = {
            "cross_entropy": -log_softmax[np.arange(len(classes)), classes].mean(),
            "mse": ((z - targets) ** 2).mean(),
            "l1": np.abs(z - targets).mean(),
            "bce_with_logits": (np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z)))).mean(),
        }
        for kind, value in expected.items():
            with self.subTest(loss=kind), tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "g.onnx")
                r = subprocess.run([AMP_COMPILE, src, "-o", out, "--loss", kind, "--opt-level", "O0", "--emit",
                                    "gradients"], capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                sess = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
                labels = classes if kind == "cross_entropy" else targets
                loss = sess.run(["loss"], {"input": x, "labels": labels})[0]
                self.assertAlmostEqual(float(loss), value, delta=1e-5 * max(1.0, abs(value)))


class LossScaling(unittest.TestCase):
    def test_inf_skips_exactly_that_step_and_halves_the_scale(self):
        data = np.load(os.path.join(MODELS, "mlp", "data.npz"))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "step.onnx")
            compile_step(os.path.join(MODELS, "mlp", "model.onnx"), out, "--optimizer", "adam", "--loss-scale",
                         "dynamic", "--growth-interval", "2")
            run = StepRunner(out)
            feeds = lambda b: {"input": data[f"x{b}"].copy(), "labels": data[f"y{b}"]}  # noqa: E731
            run.step(feeds(0))
            self.assertEqual(float(run.state["loss_scale"]), 65536.0)
            self.assertEqual(int(run.state["loss_scale.growth_tracker"]), 1)
            before = {k: v.copy() for k, v in run.state.items()}
            bad = feeds(1)
            bad["input"][0, 0] = np.inf  # every gradient becomes non-finite
            loss, _ = run.step(bad)
            self.assertFalse(np.isfinite(loss))
            self.assertEqual(float(run.state["loss_scale"]), 32768.0)
            self.assertEqual(int(run.state["loss_scale.growth_tracker"]), 0)
            for k, v in before.items():
                if not k.startswith("loss_scale"):
                    np.testing.assert_array_equal(run.state[k], v, err_msg=f"{k} changed on a skipped step")
            run.step(feeds(2))  # clean steps resume; two in a row double the scale
            self.assertEqual(float(run.state["optimizer.step"]), 2.0)
            run.step(feeds(3))
            self.assertEqual(float(run.state["loss_scale"]), 65536.0)
            self.assertEqual(int(run.state["loss_scale.growth_tracker"]), 0)

    # Overflow of the scaled gradients in FP16 is not tested here: onnxruntime's
    # CPU provider runs some FP16 ops in FP32 and drops the cast pairs around
    # them, so whether an FP16 overflow happens depends on which values are
    # requested. amp's CPU runtime (exact FP16 rounding) is the place for it.


class TrainingInfoForm(unittest.TestCase):
    """The default output: ONNX's training representation. The main graph is
    the forward model (runnable as is, outputs in their declared types), and
    training_info[0] holds the step with an update_binding for every piece of
    state, each binding an initializer of the main graph to an output of the
    step."""

    def test_every_model(self):
        for model in sorted(os.listdir(MODELS)):
            for fname in ("model.onnx", "model.dynamo_eval.onnx"):
                src = os.path.join(MODELS, model, fname)
                if not os.path.exists(src):
                    continue
                with self.subTest(model=model, file=fname), tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "step.onnx")
                    r = subprocess.run([AMP_COMPILE, src, "--loss", "cross_entropy", "--label", "labels",
                                        "--optimizer", "adam", "--lr", "1e-3", "-o", out],
                                       capture_output=True, text=True, timeout=120)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    onnx.checker.check_model(out, full_check=True)
                    m = onnx.load(out)
                    self.assertEqual(len(m.training_info), 1)
                    ti = m.training_info[0]
                    inits = {t.name for t in m.graph.initializer}
                    step_outputs = {o.name for o in ti.algorithm.output}
                    self.assertGreater(len(ti.update_binding), 0)
                    for kv in ti.update_binding:
                        self.assertIn(kv.key, inits)
                        self.assertIn(kv.value, step_outputs)
                    trainable = json.loads({p.key: p.value for p in m.metadata_props}["amp.training"])["trainable"]
                    bound = {kv.key for kv in ti.update_binding}
                    self.assertTrue(set(trainable) <= bound)
                    self.assertIn("loss_scale", bound)
                    orig = onnx.load(src)
                    self.assertEqual([o.type.tensor_type.elem_type for o in m.graph.output],
                                     [o.type.tensor_type.elem_type for o in orig.graph.output])
                    x = np.load(os.path.join(MODELS, model, "data.npz"))["x0"]
                    so = ort.SessionOptions()
                    so.log_severity_level = 3
                    ref = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
                    got = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
                    a = got.run(None, {got.get_inputs()[0].name: x})[0]
                    b = ref.run(None, {ref.get_inputs()[0].name: x})[0]
                    self.assertLessEqual(np.max(np.abs(a - b)) / np.max(np.abs(b)), 1e-2)


def add_trajectory_tests():
    for model in sorted(os.listdir(MODELS)):
        if not os.path.exists(os.path.join(MODELS, model, "reference.json")):
            continue

        def sgd(self, m=model):
            self.check_params(m, self.run_model(m, "sgd_fp32"))

        def adam(self, m=model):
            self.run_model(m, "adam_fp32")

        setattr(Trajectories, f"test_{model}_sgd_fp32", sgd)
        setattr(MixedPrecision, f"test_{model}_adam_amp", lambda self, m=model: self.run_amp(m))
        setattr(Trajectories, f"test_{model}_adam_fp32", adam)


add_trajectory_tests()


class OptimizerFormulas(unittest.TestCase):
    """One step of each optimizer variant against NumPy, from amp's gradients."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(MODELS, "mlp", "model.onnx")
        data = np.load(os.path.join(MODELS, "mlp", "data.npz"))
        self.feeds = {"input": data["x0"], "labels": data["y0"]}
        grad_model = os.path.join(self.tmp.name, "grads.onnx")
        compile_step(self.src, grad_model, "--emit", "gradients")
        sess = ort.InferenceSession(grad_model, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        res = dict(zip(names, sess.run(None, {k: v for k, v in self.feeds.items()})))
        self.grads = {n[:-len("_grad")]: v for n, v in res.items() if n.endswith("_grad")}
        self.params = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(self.src).graph.initializer}
        self.assertTrue(self.grads)

    def tearDown(self):
        self.tmp.cleanup()

    def steps(self, args, n=2):
        out = os.path.join(self.tmp.name, "step.onnx")
        compile_step(self.src, out, *args)
        run = StepRunner(out)
        for _ in range(n):
            run.step(self.feeds)
        return run

    def test_sgd_variants(self):
        lr, mom, damp, wd = 0.1, 0.9, 0.25, 0.01
        for nesterov in (False, True):
            d = 0.0 if nesterov else damp
            args = ["--optimizer", "sgd", "--lr", str(lr), "--momentum", str(mom), "--dampening", str(d),
                    "--weight-decay", str(wd)] + (["--nesterov"] if nesterov else [])
            run = self.steps(args, n=1)
            for name, g in self.grads.items():
                p = self.params[name].astype(np.float64)
                gd = g + wd * p
                buf = gd  # torch: the first step's buffer is the gradient itself
                step = gd + mom * buf if nesterov else buf
                expected = p - lr * step
                np.testing.assert_allclose(run.state[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)

    def test_adam_and_adamw(self):
        lr, b1, b2, eps, wd = 0.01, 0.8, 0.95, 1e-6, 0.1
        for kind in ("adam", "adamw"):
            run = self.steps(["--optimizer", kind, "--lr", str(lr), "--betas", f"{b1},{b2}", "--eps", str(eps),
                              "--weight-decay", str(wd)], n=1)
            for name, g in self.grads.items():
                p = self.params[name].astype(np.float64)
                if kind == "adam":
                    g = g + wd * p
                else:
                    p = p * (1 - lr * wd)
                m = (1 - b1) * g
                v = (1 - b2) * g * g
                denom = np.sqrt(v) / np.sqrt(1 - b2) + eps
                expected = p - (lr / (1 - b1)) * m / denom
                np.testing.assert_allclose(run.state[name], expected, rtol=1e-5, atol=1e-6, err_msg=f"{kind} {name}")
                self.assertEqual(float(run.state["optimizer.step"]), 1.0)

    def test_lr_is_an_input(self):
        out = os.path.join(self.tmp.name, "step.onnx")
        compile_step(self.src, out, "--optimizer", "sgd", "--lr", "0.1")
        run = StepRunner(out)
        before = {k: v.copy() for k, v in run.state.items()}
        run.step(self.feeds, lr=0.0)
        for name in self.grads:
            np.testing.assert_array_equal(run.state[name], before[name])


if __name__ == "__main__":
    unittest.main(verbosity=2)
