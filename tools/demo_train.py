#!/usr/bin/env python3
"""Runs a compiled training step (amp-compile --emit functional) for a few
steps and prints each loss next to PyTorch's. Interim: the step is executed
by onnxruntime (a test tool here) until amp's own runtime and amp-train land.

usage: demo_train.py STEP.onnx MODEL_DIR TRAJECTORY [STEPS]
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
from training_step import StepRunner  # noqa: E402


def main():
    step_path, model_dir, trajectory = sys.argv[1:4]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    ref = json.load(open(os.path.join(model_dir, "reference.json")))
    data = np.load(os.path.join(model_dir, "data.npz"))
    run = StepRunner(step_path)
    expected = ref["trajectories"][trajectory]
    print(f"{'step':>4} {'amp loss':>10} {'PyTorch':>10} {'rel diff':>9} {'loss scale':>10}")
    worst = 0.0
    for k in range(min(steps, len(expected["losses"]))):
        b = k % ref["batches"]
        scale = float(run.state["loss_scale"]) if "loss_scale" in run.state else 1.0
        loss, _ = run.step({"input": data[f"x{b}"], "labels": data[f"y{b}"]})
        rel = abs(loss - expected["losses"][k]) / abs(expected["losses"][k])
        worst = max(worst, rel)
        print(f"{k:>4} {loss:>10.5f} {expected['losses'][k]:>10.5f} {rel:>9.1e} {scale:>10.0f}")
    print(f"largest relative difference from PyTorch ({trajectory}): {worst:.1e}")


if __name__ == "__main__":
    main()
