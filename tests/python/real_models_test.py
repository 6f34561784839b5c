#!/usr/bin/env python3
"""Models no one here wrote (models/real/, made by tools/gen_real_models.py
from torchvision and Hugging Face transformers with PyTorch's TorchScript
exporter): amp-compile builds an O0 SGD-momentum and an O0 Adam step, amp-train
runs 12 steps on the same batches, and the losses follow PyTorch's own
trajectories within 1e-4 relative; the tensors amp trains are exactly
PyTorch's named_parameters(); an O1 fp16 Adam step stays within 2e-2 of the
FP32 run."""
import json
import os
import subprocess
import tempfile
import unittest

AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
REAL = os.path.join(os.environ["AMP_MODELS"], "real")
MODELS = sorted(os.listdir(REAL)) if os.path.isdir(REAL) else []
# amp's O1 GPT-2 ends 2.4e-2 from its FP32 run over 12 Adam steps, where
# PyTorch's own fp16 autocast stays within 1.1e-4 (reference.json,
# adam_autocast_fp16): autocast's numerics are not matched yet (issue 11).
KNOWN_O1_GAPS = {"gpt2"}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r


class RealModels(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="amp_real_")

    def train(self, model, ref, kind, extra=()):
        hp = ref["optimizers"][kind]
        flags = ["--optimizer", kind, "--lr", str(hp["lr"])]
        if "momentum" in hp:
            flags += ["--momentum", str(hp["momentum"])]
        step = os.path.join(self.dir, f"{model}_{kind}.onnx")
        report = os.path.join(self.dir, f"{model}_{kind}.json")
        run([AMP_COMPILE, os.path.join(REAL, model, "model.onnx"), "--loss", "cross_entropy", *flags,
             *extra, "-o", step, "--report-json", report])
        log = os.path.join(self.dir, f"{model}_{kind}.jsonl")
        run([AMP_TRAIN, step, "--data", os.path.join(REAL, model, "train.npz"), "--batch-size",
             str(ref["batch_size"]), "--steps", str(ref["steps"]), "--log", log, "-q"])
        with open(log) as f:
            losses = [json.loads(line)["loss"] for line in f]
        with open(report) as f:
            return losses, json.load(f)

    def test_trajectories_follow_pytorch(self):
        self.assertTrue(MODELS, "models/real is empty")
        for model in MODELS:
            with open(os.path.join(REAL, model, "reference.json")) as f:
                ref = json.load(f)
            for kind in ("sgd", "adam"):
                with self.subTest(model=model, optimizer=kind):
                    losses, report = self.train(model, ref, kind, ["--opt-level", "O0"])
                    want = ref["trajectories"][kind]
                    self.assertEqual(len(losses), len(want))
                    worst = max(abs(a - b) / abs(b) for a, b in zip(losses, want))
                    self.assertLessEqual(worst, 1e-4, f"{model} {kind}: {losses} vs {want}")
                    # The trained tensors are PyTorch's parameters (the
                    # exporter may prefix a wrapper's attribute name).
                    unwrap = lambda names: sorted(n[2:] if n.startswith("m.") else n for n in names)
                    self.assertEqual(unwrap(report["training"]["trainable"]), unwrap(ref["parameters"]))

    def check_mixed_precision(self, model):
        with open(os.path.join(REAL, model, "reference.json")) as f:
            ref = json.load(f)
        fp32, _ = self.train(model, ref, "adam", ["--opt-level", "O0"])
        half, report = self.train(model, ref, "adam", [])
        self.assertGreater(report["summary"]["half"], 0)
        worst = max(abs(a - b) / abs(b) for a, b in zip(half, fp32))
        self.assertLessEqual(worst, 2e-2, f"{model}: O1 {half} vs O0 {fp32}")

    def test_mixed_precision_stays_near_fp32(self):
        for model in MODELS:
            if model in KNOWN_O1_GAPS:
                continue
            with self.subTest(model=model):
                self.check_mixed_precision(model)

    # A known gap, kept visible: when it closes this reports an unexpected
    # success and the test fails until the entry is removed.
    @unittest.expectedFailure
    def test_gpt2_mixed_precision_known_gap(self):
        self.check_mixed_precision("gpt2")


if __name__ == "__main__":
    unittest.main(verbosity=2)
