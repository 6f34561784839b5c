#!/usr/bin/env python3
"""PyTorch eager's CPU step beside amp's (bench/cost.sh --cpu): the benchmark MLP or Transformer
(bench/models/gen_bench_models.py's modules), FP32, cross-entropy, Adam(lr 1e-3), at a batch, on
the threads OMP_NUM_THREADS allows; prints the median seconds per step after one warm-up.
usage: python cpu_torch.py mlp|transformer BATCH [STEPS]  (needs torch; run beside amp-train)"""
import os, statistics, sys, time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "models"))
from gen_bench_models import MLP, Transformer  # noqa: E402

def main(name, batch, steps):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    model, shape = (MLP(), (batch, 1024)) if name == "mlp" else (Transformer(), (batch, 256, 64))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(*shape)
    y = torch.randint(0, 10, (batch,))
    secs = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        secs.append(time.perf_counter() - t)
    print(f"{statistics.median(secs[1:]):.3f}")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
