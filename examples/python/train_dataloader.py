#!/usr/bin/env python3
"""Train a torchvision-style CNN from a torch DataLoader with amp, beside the
same loop in PyTorch with torch.autocast + GradScaler, printing both losses
per step.

    pip install .                      # the amp package (and torch, tqdm for this example)
    python examples/python/train_dataloader.py [--steps 20] [--device cpu|cuda]

amp compiles the exported model ahead of time into one mixed-precision
training step (fp16 matmuls/convs, FP32 softmax/norms/loss, FP32 Adam
masters, dynamic loss scaling) and takes the DataLoader's torch tensors as
they are (DLPack; no copy to numpy). Without torch installed, the amp loop
runs alone on the shipped models/cnn export and its data.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

import amp

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    from tqdm import tqdm
except ImportError:  # a plain loop without the bar
    def tqdm(iterable, **_):
        return iterable


def torch_side(args, workdir):
    """The model in PyTorch, its ONNX export, a DataLoader, and the autocast loop's state."""
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = nn.Sequential(  # a small torchvision-style CNN: conv-bn-relu blocks, pooling, a head
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    path = os.path.join(workdir, "cnn.onnx")
    model.train()
    torch.onnx.export(model, torch.randn(args.batch, 3, 32, 32), path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      dynamo=False)
    images = torch.randn(args.batch * args.steps, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch * args.steps,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch, shuffle=True,
                        drop_last=True)
    device = torch.device(args.device)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    half = torch.float16 if args.device == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(args.device, enabled=args.device == "cuda")

    def step(x, y):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device_type=args.device, dtype=half):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.item()

    return path, loader, step


def numpy_side(args):
    """Without torch: the shipped CNN export and its data, in shuffled batches."""
    root = os.path.join(HERE, "..", "..", "models", "cnn")
    data = np.load(os.path.join(root, "train.npz"))
    x, y = data["input"], data["labels"]
    rng = np.random.default_rng(0)

    def loader():
        for _ in range(args.steps):
            rows = rng.choice(len(x), args.batch, replace=False)
            yield x[rows], y[rows]

    return os.path.join(root, "model.onnx"), loader(), None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-torch", action="store_true", help="run the amp loop alone")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        torch_step = None
        try:
            if args.no_torch:
                raise ImportError("--no-torch")
            onnx_path, loader, torch_step = torch_side(args, workdir)
        except ImportError as e:
            print(f"torch is not available ({e}): the amp loop runs alone on models/cnn", file=sys.stderr)
            args.batch = min(args.batch, 8)
            onnx_path, loader, _ = numpy_side(args)

        step = amp.compile(onnx_path, loss="cross_entropy", optimizer="adam", lr=args.lr)
        print(step.log, end="", file=sys.stderr)
        sess = amp.Session(step, device=args.device)
        bar = tqdm(loader, total=args.steps, desc="amp", unit="step")
        for k, (x, y) in enumerate(bar):
            out = sess.step(input=x, labels=y)  # torch tensors or numpy arrays
            line = f"step {k:3d}  amp loss {out['loss']:.4f} (scale {out['loss_scale']:g}{', skipped' if out['skipped'] else ''})"
            if torch_step is not None:
                line += f"  torch autocast loss {torch_step(x, y):.4f}"
            (bar.write if hasattr(bar, "write") else print)(line)
        sess.save_checkpoint(os.path.join(workdir, "ckpt"))
        print(f"amp {amp.__version__}: {sess.step_count} steps on {sess.device}")


if __name__ == "__main__":
    main()
