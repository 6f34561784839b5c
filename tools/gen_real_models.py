#!/usr/bin/env python3
"""Real models as tests: builds models that no one here wrote (torchvision and
Hugging Face transformers, small configs, random init), exports each with
PyTorch's TorchScript exporter in training mode, and records PyTorch's own
12-step SGD and Adam loss trajectories on the CPU from the same initial weights
and batches, and its named_parameters(). Run at development time only (needs
torch, torchvision, transformers; CI and the tests do not):

    python tools/gen_real_models.py [OUT_DIR=models/real]

Each model gets OUT_DIR/<name>/{model.onnx, train.npz, reference.json}; amp's
tests (tests/python/real_models_test.py) compile and train them with amp-train
and compare.
"""
import json
import os
import sys

import numpy as np
import onnx
import torch

STEPS = 12
HP = {"sgd": {"lr": 0.01, "momentum": 0.9}, "adam": {"lr": 1e-3}}


def mobilenet_v3_small():
    import torchvision
    m = torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.5, reduced_tail=True)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    g = torch.Generator().manual_seed(1)
    batch = 4
    x = torch.randn(batch * STEPS, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch * STEPS,), generator=g)
    return m, x, y, batch, "input", True


class LastPosition(torch.nn.Module):
    """A causal LM's logits at the last position (the all-ones attention mask
    is built inside: the TorchScript exporter has no aten::diff)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids):
        return self.m(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1, :]


class Classify(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids):
        return self.m(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    g = torch.Generator().manual_seed(1)
    batch = 2
    x = torch.randint(0, 500, (batch * STEPS, 16), generator=g)
    y = torch.randint(0, 500, (batch * STEPS,), generator=g)
    # A fixed batch: with a symbolic one, the exporter computes a shape from
    # data that amp cannot fold (noted in the issue).
    return LastPosition(GPT2LMHeadModel(cfg)), x, y, batch, "input", False


def bert():
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                     intermediate_size=128, vocab_size=1000, max_position_embeddings=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    g = torch.Generator().manual_seed(1)
    batch = 4
    x = torch.randint(0, 1000, (batch * STEPS, 12), generator=g)
    y = torch.randint(0, 3, (batch * STEPS,), generator=g)
    return Classify(BertForSequenceClassification(cfg)), x, y, batch, "input", False


MODELS = {"mobilenet_v3_small": mobilenet_v3_small, "gpt2": gpt2, "bert": bert}


def trajectory(model, state, x, y, batch, kind, autocast=False):
    model.load_state_dict(state)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, **HP["sgd"]) if kind == "sgd"
           else torch.optim.Adam(params, **HP["adam"]))
    losses = []
    for k in range(STEPS):
        with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            out = model(x[k * batch:(k + 1) * batch])
            loss = torch.nn.functional.cross_entropy(out, y[k * batch:(k + 1) * batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "real")
    for name, make in MODELS.items():
        torch.manual_seed(0)
        model, x, y, batch, input_name, dynamic_batch = make()
        model.train()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        torch.onnx.export(model, (x[:batch],), path, input_names=[input_name], output_names=["logits"],
                          dynamic_axes={input_name: {0: "batch"}} if dynamic_batch else None,
                          training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, dynamo=False)
        m = onnx.load(path)
        m.ir_version = min(m.ir_version, 10)  # amp reads IR 7 to 11
        onnx.save(m, path)
        model.load_state_dict(state)  # the export's trace ran BatchNorm in training mode
        np.savez(os.path.join(d, "train.npz"), **{input_name: x.numpy(), "labels": y.numpy()})
        ref = {"batch_size": batch, "steps": STEPS, "optimizers": HP,
               "parameters": sorted(n for n, p in model.named_parameters() if p.requires_grad),
               "trajectories": {k: trajectory(model, state, x, y, batch, k) for k in HP},
               # PyTorch's own fp16 autocast run of the Adam trajectory: how far
               # mixed precision moves this model from FP32 in PyTorch itself.
               "adam_autocast_fp16": trajectory(model, state, x, y, batch, "adam", autocast=True),
               "generator": "tools/gen_real_models.py", "torch": torch.__version__}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
        print(f"{name}: {os.path.getsize(path) / 1e6:.2f} MB, sgd {ref['trajectories']['sgd'][-1]:.4f}, "
              f"adam {ref['trajectories']['adam'][-1]:.4f}")


if __name__ == "__main__":
    main()
