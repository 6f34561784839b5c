#!/usr/bin/env python3
"""amp against PyTorch AMP on the same GPU, same run.

For each model (MLP 1024-4096x4-1000 batch 512; Transformer encoder 4 pre-norm
layers, d=768, 12 heads, ff=3072, GELU, seq 256, batch 32): PyTorch with fp16
autocast + GradScaler + Adam(fused=True), eager and (with --compile)
torch.compile default and mode="reduce-overhead"; then amp: the model
exported to ONNX (TorchScript exporter, training mode), compiled by
amp-compile (O1 fp16, dynamic loss scaling, Adam) and trained by amp-train
--device cuda. Step time: median of >= 30 steps after warm-up (CUDA events
for PyTorch; amp-train's per-step seconds, which include its host
synchronization). Peak memory: torch.cuda.max_memory_allocated, and for amp
its memory plan (arena + state + inputs). Also the two ceilings: the fp16
GEMM rate and the device copy bandwidth.

usage: bench.py --amp-bin DIR [--models mlp,transformer] [--compile] [--steps 40]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        dims = [1024, 4096, 4096, 4096, 4096, 1000]
        layers = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, d=768, heads=12, ff=3072, layers=4, d_in=64, classes=10):
        super().__init__()
        self.proj = nn.Linear(d_in, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(self.proj(x)).mean(dim=1))


SPECS = {
    "mlp": dict(make=MLP, x=(512, 1024), classes=1000),
    "transformer": dict(make=Transformer, x=(32, 256, 64), classes=10),
}


def median_ms(fn, steps, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def ceilings():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    ms = median_ms(lambda: a @ b, 20, 5)
    tflops = 2 * n ** 3 / ms / 1e9
    x = torch.empty(1 << 28, device="cuda", dtype=torch.float32)  # 1 GiB
    y = torch.empty_like(x)
    ms_copy = median_ms(lambda: y.copy_(x), 20, 5)
    gbs = 2 * x.numel() * 4 / ms_copy / 1e6
    return {"fp16_gemm_tflops": round(tflops, 1), "copy_gb_per_s": round(gbs, 1)}


def pytorch_step(name, mode, steps):
    torch.manual_seed(0)
    spec = SPECS[name]
    model = spec["make"]().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    scaler = torch.amp.GradScaler("cuda")
    x = torch.randn(*spec["x"], device="cuda")
    y = torch.randint(0, spec["classes"], (spec["x"][0],), device="cuda")
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    if mode == "compile":
        step = torch.compile(step)
    elif mode == "reduce-overhead":
        step = torch.compile(step, mode="reduce-overhead")
    torch.cuda.reset_peak_memory_stats()
    ms = median_ms(step, steps, warmup=15 if mode != "eager" else 10)
    peak = torch.cuda.max_memory_allocated()
    del model, opt
    torch.cuda.empty_cache()
    return {"ms": round(ms, 3), "peak_mb": round(peak / 2 ** 20, 1)}


def amp_step(name, amp_bin, steps, work):
    torch.manual_seed(0)
    spec = SPECS[name]
    model = spec["make"]().train()
    x = torch.randn(*spec["x"])
    onnx_path = os.path.join(work, f"{name}.onnx")
    torch.onnx.export(model, (x,), onnx_path, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      opset_version=17, dynamo=False)
    step_path = os.path.join(work, f"{name}_step.onnx")
    t0 = time.time()
    r = subprocess.run([os.path.join(amp_bin, "amp-compile"), onnx_path, "--loss", "cross_entropy",
                        "--optimizer", "adam", "--lr", "1e-4", "-o", step_path,
                        "--external-data-threshold", "1024"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-400:]}
    compile_s = time.time() - t0
    data = os.path.join(work, f"{name}.npz")
    np.savez(data, input=x.numpy(), labels=np.random.randint(0, spec["classes"], (spec["x"][0],)))
    log = os.path.join(work, f"{name}.jsonl")
    r = subprocess.run([os.path.join(amp_bin, "amp-train"), step_path, "--data", data,
                        "--batch-size", str(spec["x"][0]), "--steps", str(steps + 10), "--device",
                        "cuda", "--log", log, "--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-400:]}
    rows = [json.loads(line) for line in open(log)]
    ms = statistics.median(row["seconds"] * 1000 for row in rows[10:])
    return {"ms": round(ms, 3), "compile_s": round(compile_s, 1),
            "summary": r.stderr.strip().splitlines()[-1][:300],
            "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--amp-bin", required=True)
    p.add_argument("--models", default="mlp,transformer")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", default="bench_results.json")
    a = p.parse_args()
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d")}
    res["ceilings"] = ceilings()
    print(json.dumps(res), flush=True)
    work = tempfile.mkdtemp()
    for name in a.models.split(","):
        r = {}
        modes = ["eager"] + (["compile", "reduce-overhead"] if a.compile else [])
        for mode in modes:
            try:
                r[f"pytorch_{mode}"] = pytorch_step(name, mode, a.steps)
            except Exception as e:  # noqa: BLE001
                r[f"pytorch_{mode}"] = {"error": str(e)[:300]}
            print(name, mode, r[f"pytorch_{mode}"], flush=True)
        try:
            r["amp"] = amp_step(name, a.amp_bin, a.steps, work)
        except Exception as e:  # noqa: BLE001
            r["amp"] = {"error": str(e)[:300]}
        best = min((v["ms"] for k, v in r.items() if k.startswith("pytorch") and "ms" in v),
                   default=None)
        if best and "ms" in r["amp"]:
            r["amp_over_pytorch_best"] = round(r["amp"]["ms"] / best, 3)
        print(name, "amp", r["amp"], "ratio", r.get("amp_over_pytorch_best"), flush=True)
        res[name] = r
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
