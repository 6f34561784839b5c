#!/usr/bin/env python3
"""Prints amp-train's per-step losses (its --log JSON lines) beside PyTorch's
for the same model, optimizer and precision (reference.json), and the
largest relative difference.
usage: compare_trajectory.py METRICS.jsonl MODEL_DIR TRAJECTORY"""
import json
import os
import sys


def main(log_path, model_dir, traj):
    with open(log_path) as f:
        got = [json.loads(line) for line in f]
    with open(os.path.join(model_dir, "reference.json")) as f:
        ref = json.load(f)["trajectories"][traj]
    print(f"{'step':>4}  {'amp loss':>10}  {'PyTorch loss':>12}  {'rel diff':>9}  {'amp scale':>9}  {'PyTorch scale':>13}")
    worst = 0.0
    for g, loss, scale in zip(got, ref["losses"], ref["scales"]):
        rel = abs(g["loss"] - loss) / abs(loss)
        worst = max(worst, rel)
        print(f"{g['step']:>4}  {g['loss']:>10.6f}  {loss:>12.6f}  {rel:>9.2e}  {g['loss_scale']:>9g}  {scale:>13g}")
    print(f"largest relative difference: {worst:.2e} over {min(len(got), len(ref['losses']))} steps")


if __name__ == "__main__":
    main(*sys.argv[1:4])
