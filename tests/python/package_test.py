#!/usr/bin/env python3
"""The Python package (`import amp`): it trains the shipped models to the same
losses as amp-train (bit-identical), takes numpy arrays and DLPack tensors,
refuses wrong names, dtypes and shapes with a ValueError that says what the
model expects, and a checkpoint saved in Python resumes in amp-train and back.
Run with PYTHONPATH at the build's python/ folder (ctest sets it)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx

import amp

AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
MODELS = os.environ["AMP_MODELS"]
MLP = os.path.join(MODELS, "mlp", "model.onnx")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r


def train_data(model):
    d = np.load(os.path.join(MODELS, model, "train.npz"))
    return {k: d[k] for k in d.files}


def batches(data, batch, steps, first=0):
    """amp-train's batches without --shuffle: step k takes samples [kB, (k+1)B) mod N."""
    n = len(next(iter(data.values())))
    per_epoch = n // batch
    for k in range(first, first + steps):
        start = (k % per_epoch) * batch
        yield {name: a[start:start + batch] for name, a in data.items()}


def amp_train_losses(step_path, data_path, batch, steps, extra=()):
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "log.jsonl")
        run([AMP_TRAIN, step_path, "--data", data_path, "--batch-size", str(batch), "--steps",
             str(steps), "--log", log, "-q", *extra])
        return [json.loads(line)["loss"] for line in open(log)]


class Package(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="amp_package_")

    def test_version(self):
        self.assertRegex(amp.__version__, r"^\d+\.\d+\.\d+$")

    def test_losses_equal_amp_train(self):
        for model, batch, opts in [("mlp", 16, dict(optimizer="adam", lr=1e-3)),
                                   ("mlp", 16, dict(optimizer="sgd", lr=0.05, opt_level="O0")),
                                   ("cnn", 8, dict(optimizer="adamw", lr=1e-3, weight_decay=0.01)),
                                   ("tfm", 4, dict(optimizer="adam", lr=1e-3))]:
            with self.subTest(model=model, **opts):
                src = os.path.join(MODELS, model, "model.onnx")
                step = amp.compile(src, loss="cross_entropy", **opts)
                path = os.path.join(self.dir, f"{model}.onnx")
                step.save(path)
                # The CLI compiles the same bytes.
                cli = os.path.join(self.dir, f"{model}_cli.onnx")
                flags = ["--optimizer", opts["optimizer"], "--lr", str(opts["lr"])]
                if "weight_decay" in opts:
                    flags += ["--weight-decay", str(opts["weight_decay"])]
                if "opt_level" in opts:
                    flags += ["--opt-level", opts["opt_level"]]
                run([AMP_COMPILE, src, "--loss", "cross_entropy", *flags, "-o", cli])
                self.assertEqual(open(cli, "rb").read(), step.onnx_bytes)
                data = train_data(model)
                sess = amp.Session(step)
                ours = [sess.step(b)["loss"] for b in batches(data, batch, 5)]
                theirs = amp_train_losses(path, os.path.join(MODELS, model, "train.npz"), batch, 5)
                self.assertEqual([np.float32(x) for x in ours], [np.float32(x) for x in theirs])
                self.assertLess(ours[-1], ours[0] * 1.5)

    def test_inputs_from_numpy_views_lists_and_dlpack(self):
        step = amp.compile(MLP, loss="cross_entropy", optimizer="adam", lr=1e-3)
        data = train_data("mlp")
        x, y = data["input"][:16], data["labels"][:16]
        ref = amp.Session(step).step(input=x, labels=y)["loss"]
        # A Fortran-ordered copy, a DLPack capsule holder, a plain list.
        cases = {
            "fortran": dict(input=np.asfortranarray(x), labels=y),
            "dlpack": dict(input=np.from_dlpack(x), labels=np.from_dlpack(y)),
            "list": dict(input=x.tolist(), labels=y),
        }
        for name, inputs in cases.items():
            with self.subTest(name):
                if name == "list":
                    # A Python list of floats becomes float64: refused, not cast.
                    with self.assertRaisesRegex(ValueError, "expects float"):
                        amp.Session(step).step(inputs)
                    continue
                self.assertEqual(amp.Session(step).step(inputs)["loss"], ref)

        class Capsule:  # any object with __dlpack__, as torch tensors have
            def __init__(self, a):
                self.a = a

            def __dlpack__(self, **kw):
                return self.a.__dlpack__(**kw)

            def __dlpack_device__(self):
                return self.a.__dlpack_device__()

        self.assertEqual(amp.Session(step).step(input=Capsule(x), labels=Capsule(y))["loss"], ref)

    def test_wrong_inputs_raise_value_errors(self):
        sess = amp.Session(amp.compile(MLP, loss="cross_entropy", optimizer="adam", lr=1e-3))
        x = np.ones((16, 64), np.float32)
        y = np.zeros(16, np.int64)
        with self.assertRaisesRegex(ValueError, r"no input 'images' \(its inputs: input, labels, lr\)"):
            sess.step(images=x, labels=y)
        with self.assertRaisesRegex(ValueError, "input 'input' is double; the model expects float"):
            sess.step(input=x.astype(np.float64), labels=y)
        with self.assertRaisesRegex(ValueError, r"has shape \[16,32\]"):
            sess.step(input=np.ones((16, 32), np.float32), labels=y)
        with self.assertRaisesRegex(ValueError, "the model expects int64"):
            sess.step(input=x, labels=y.astype(np.int32))
        with self.assertRaises(amp.InvalidInputError):
            sess.set_lr(-1)
        with self.assertRaises(ValueError):
            amp.compile(MLP, loss="cross_entropy", optimizer="rmsprop")
        with self.assertRaisesRegex(ValueError, "not a model|parse|protobuf|ModelProto"):
            amp.compile(b"not an onnx model", loss="cross_entropy", lr=0.01)
        with self.assertRaises(ValueError):
            amp.compile(os.path.join(self.dir, "missing.onnx"))
        with self.assertRaises(ValueError):
            amp.Session(amp.compile(MLP, loss="cross_entropy"), device="tpu")
        with self.assertRaises(TypeError):
            amp.compile(3.5)
        self.assertEqual(sess.step_count, 0)  # nothing ran

    def test_loss_inside_the_model_with_ignore_index(self):
        # A Hugging Face style model: it reads labels and returns its own
        # loss, nn.CrossEntropyLoss's ignore_index=-100 in the graph.
        from onnx import helper as h, numpy_helper as nh, TensorProto as T
        rng = np.random.default_rng(3)
        w = nh.from_array(rng.standard_normal((6, 5)).astype(np.float32), "w")
        graph = h.make_graph(
            [h.make_node("MatMul", ["input", "w"], ["logits"]),
             h.make_node("SoftmaxCrossEntropyLoss", ["logits", "labels"], ["loss"], ignore_index=-100)],
            "hf", [h.make_tensor_value_info("input", T.FLOAT, ["batch", 6]),
                   h.make_tensor_value_info("labels", T.INT64, ["batch"])],
            [h.make_tensor_value_info("loss", T.FLOAT, [])], [w])
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
        sess = amp.Session(amp.compile(model, loss="model", optimizer="sgd", lr=0.5, opt_level="O0"))
        x = rng.standard_normal((4, 6)).astype(np.float32)
        before = sess.parameters()["w"].copy()
        out = sess.step(input=x, labels=np.full(4, -100, np.int64))  # every sample ignored
        self.assertEqual(out["loss"], 0.0)
        np.testing.assert_array_equal(sess.parameters()["w"], before)  # gradient 0, not NaN
        labels = np.array([1, -100, 4, 0], np.int64)
        logits = x @ before
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        keep = labels != -100
        want = -logp[keep.nonzero()[0], labels[keep]].mean()  # mean over the 3 kept samples
        self.assertAlmostEqual(sess.step(input=x, labels=labels)["loss"], want, places=5)
        # SGD moved w by -lr * the analytic gradient of that mean.
        p = np.exp(logp)
        onehot = np.zeros_like(p)
        onehot[keep.nonzero()[0], labels[keep]] = 1
        grad = x.T @ ((p - onehot) * keep[:, None] / keep.sum())
        np.testing.assert_allclose(sess.parameters()["w"], before - 0.5 * grad, rtol=1e-5, atol=1e-6)

    def test_model_proto_and_report(self):
        proto = onnx.load(MLP)
        step = amp.compile(proto, loss="cross_entropy", optimizer="sgd", lr=0.1, dtype="bf16")
        report = step.report()
        self.assertEqual(report["summary"]["casts_inserted"] > 0, True)
        self.assertIn("bf16", json.dumps(report))
        sess = amp.Session(step)
        self.assertEqual([i["name"] for i in sess.inputs()], ["input", "labels", "lr"])
        self.assertEqual(sess.inputs()[0]["shape"], ["batch", 64])
        self.assertEqual([o["name"] for o in sess.outputs()], ["loss", "logits"])
        self.assertAlmostEqual(sess.lr, 0.1, places=6)

    def test_parameters_eval_and_export(self):
        step = amp.compile(MLP, loss="cross_entropy", optimizer="adam", lr=1e-3)
        sess = amp.Session(step)
        data = train_data("mlp")
        before = {k: v.copy() for k, v in sess.parameters().items()}
        self.assertEqual(sorted(before), sorted(["body.0.weight", "body.0.bias", "body.2.weight",
                                                 "body.2.bias", "head.weight", "head.bias"]))
        self.assertFalse(next(iter(sess.parameters().values())).flags.writeable)
        for b in batches(data, 16, 3):
            sess.step(b)
        after = sess.parameters()
        for k in before:
            self.assertFalse(np.array_equal(before[k], after[k]), k)
        # eval: the forward graph (mixed precision, as compiled) with the
        # current weights equals the exported inference model run by
        # onnxruntime, to fp16 accuracy (onnxruntime's fp16 Gemm rounds
        # differently).
        x = data["input"][:8]
        logits = sess.eval(input=x)["logits"]
        path = os.path.join(self.dir, "trained.onnx")
        sess.export_inference(path)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        ref = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(
            None, {"input": x})[0]
        np.testing.assert_allclose(logits, ref, rtol=2e-3, atol=2e-4)
        self.assertGreater(np.abs(ref).max(), 1e-3)
        # load_parameters puts the old weights back: eval gives the old logits.
        sess.load_parameters(before)
        fresh = amp.Session(step).eval(input=x)["logits"]
        np.testing.assert_array_equal(sess.eval(input=x)["logits"], fresh)
        with self.assertRaises(ValueError):
            sess.load_parameters({"head.bias": np.zeros(3, np.float32)})

    def test_checkpoint_resumes_in_amp_train_and_back(self):
        step = amp.compile(MLP, loss="cross_entropy", optimizer="adam", lr=1e-3)
        path = os.path.join(self.dir, "step.onnx")
        step.save(path)
        data = train_data("mlp")
        npz = os.path.join(MODELS, "mlp", "train.npz")
        straight = amp.Session(step)
        reference = [straight.step(b)["loss"] for b in batches(data, 16, 6)]

        # Python 0..1, amp-train 2..3 from Python's checkpoint, Python 4..5
        # from amp-train's.
        py = amp.Session(path)
        losses = [py.step(b)["loss"] for b in batches(data, 16, 2)]
        ckpt = os.path.join(self.dir, "ckpt")
        py.save_checkpoint(ckpt, {"from": "python"})
        back = os.path.join(self.dir, "ckpt_cli")
        losses += amp_train_losses(path, npz, 16, 2, ["--resume", ckpt, "--checkpoint", back])
        py2 = amp.Session(step)
        meta = py2.load_checkpoint(back)
        self.assertEqual(py2.step_count, 4)
        self.assertEqual(meta["batch_size"], 16)
        losses += [py2.step(b)["loss"] for b in batches(data, 16, 2, first=4)]
        self.assertEqual([np.float32(x) for x in losses], [np.float32(x) for x in reference])
        with self.assertRaises(ValueError):
            py2.load_checkpoint(os.path.join(self.dir, "nowhere"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
