#!/usr/bin/env python3
"""Real models as tests: builds models that no one here wrote (torchvision and
Hugging Face transformers, small configs, random init), exports each with
PyTorch's TorchScript exporter in training mode (and the transformers also
with the dynamo exporter, as <name>_dynamo), and records PyTorch's own
12-step SGD and Adam loss trajectories on the CPU from the same initial weights
and batches, and its named_parameters(). Run at development time only (needs
torch, torchvision, transformers; CI and the tests do not):

    python tools/gen_real_models.py [OUT_DIR=models/real] [NAME...]

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


class ClassifyWithLoss(torch.nn.Module):
    """The Hugging Face style: the model takes labels and returns its own loss
    (CrossEntropyLoss with ignore_index=-100); compiled with --loss model."""
    own_loss = True

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids, labels):
        return self.m(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss


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


def images(batch=4, size=32, classes=10):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch * STEPS, 3, size, size, generator=g)
    y = torch.randint(0, classes, (batch * STEPS,), generator=g)
    return x, y, batch


def no_stochastic_depth(m):
    import torchvision
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
        if isinstance(mod, torchvision.ops.StochasticDepth):
            mod.p = 0.0
    return m


def efficientnet_b0():
    # EfficientNet-B0's blocks (MBConv, squeeze-excitation, depthwise convs,
    # SiLU) at a quarter of its width and depth: the full model is 21 MB.
    import torchvision
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    m = no_stochastic_depth(EfficientNet(setting, dropout=0.0, stochastic_depth_prob=0.0,
                                         num_classes=10, last_channel=last))
    assert isinstance(m, torchvision.models.EfficientNet)
    # 64x64 images, 8 a batch: BatchNorm over 4 samples of 1x1 maps makes
    # PyTorch's own trajectory chaotic from the first step.
    return (m, *images(batch=8, size=64), "input", True)


def vit():
    from torchvision.models import VisionTransformer
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64,
                          mlp_dim=128, num_classes=10)
    return (m, *images(), "input", False)


def swin():
    from torchvision.models import SwinTransformer
    m = SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                        window_size=[4, 4], stochastic_depth_prob=0.0, num_classes=10)
    return (m, *images(), "input", False)


def convnext():
    from torchvision.models import ConvNeXt
    from torchvision.models.convnext import CNBlockConfig
    m = ConvNeXt([CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)],
                 stochastic_depth_prob=0.0, num_classes=10)
    return (m, *images(), "input", False)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, vocab_size=500,
                      max_position_embeddings=64)
    g = torch.Generator().manual_seed(1)
    batch = 2
    x = torch.randint(0, 500, (batch * STEPS, 16), generator=g)
    y = torch.randint(0, 500, (batch * STEPS,), generator=g)
    return LastPosition(LlamaForCausalLM(cfg)), x, y, batch, "input", False


def bert_hf_loss():
    m, x, y, batch, name, dyn = bert()
    y = y.clone()
    y[[3, 17, 30]] = -100  # ignored samples: the mean is over the others
    return ClassifyWithLoss(m.m), x, y, batch, name, dyn


MODELS = {"mobilenet_v3_small": mobilenet_v3_small, "bert_hf_loss": bert_hf_loss, "gpt2": gpt2, "bert": bert,
          "efficientnet_b0": efficientnet_b0, "vit": vit, "swin": swin, "convnext": convnext,
          "llama": llama}
# Which models also come from the dynamo exporter (torch.onnx.export's
# default today), as <name>_dynamo. It writes BatchNorm in inference form even
# in train(): those models train with amp-compile --train-mode (their
# reference's compile_flags).
DYNAMO = {"gpt2", "bert", "vit", "swin", "convnext", "llama", "mobilenet_v3_small",
          "efficientnet_b0"}


def trajectory(model, state, x, y, batch, kind, autocast=False, dtype=torch.float32, nudge=False):
    model.load_state_dict(state)
    model.to(dtype)
    if nudge:  # every float parameter one rounding unit up
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    if dtype != torch.float32:
        x = x.to(dtype) if x.is_floating_point() else x
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, **HP["sgd"]) if kind == "sgd"
           else torch.optim.Adam(params, **HP["adam"]))
    losses = []
    for k in range(STEPS):
        with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            xb, yb = x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch]
            if getattr(model, "own_loss", False):
                loss = model(xb, yb)
            else:
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.to(torch.float32)
    return losses


def aliases(model):
    names = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(n)
    return {ns[0]: ns[1:] for ns in names.values() if len(ns) > 1}


def reproducible_steps(ref, runs, tol=1e-5):
    """How many leading steps every other run reproduces `ref` to `tol`
    relative: where PyTorch's own trajectory is not chaotic."""
    n = len(ref)
    for run in runs:
        k = 0
        while k < n and abs(run[k] - ref[k]) <= tol * abs(ref[k]):
            k += 1
        n = min(n, k)
    return n


def export(model, x, path, input_name, dynamic_batch, dynamo, y=None):
    if getattr(model, "own_loss", False):  # (ids, labels) -> loss
        torch.onnx.export(model, (x, y), path, input_names=[input_name, "labels"],
                          output_names=["loss"], training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, dynamo=False)
        return
    if dynamo:
        # optimize=False: the default optimizer folds parameters into derived
        # constants (W^T as a new initializer, ViT's class token expanded to
        # the batch, equal LayerNorm weights merged into one tensor), which
        # no longer says what PyTorch trains.
        torch.onnx.export(model, (x,), path, input_names=[input_name], output_names=["logits"],
                          dynamo=True, external_data=False, optimize=False)
    else:
        torch.onnx.export(model, (x,), path, input_names=[input_name], output_names=["logits"],
                          dynamic_axes={input_name: {0: "batch"}} if dynamic_batch else None,
                          training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, dynamo=False)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "real")
    only = set(sys.argv[2:])
    jobs = [(n, False) for n in MODELS] + [(n, True) for n in MODELS if n in DYNAMO]
    for base, dynamo in jobs:
        name = base + ("_dynamo" if dynamo else "")
        if only and name not in only:
            continue
        torch.manual_seed(0)
        model, x, y, batch, input_name, dynamic_batch = MODELS[base]()
        model.train()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        export(model, x[:batch], path, input_name, dynamic_batch, dynamo, y[:batch])
        m = onnx.load(path)
        m.ir_version = min(m.ir_version, 10)  # amp reads IR 7 to 11
        onnx.save(m, path)
        model.load_state_dict(state)  # the export's trace ran BatchNorm in training mode
        np.savez(os.path.join(d, "train.npz"), **{input_name: x.numpy(), "labels": y.numpy()})
        ref = {"batch_size": batch, "steps": STEPS, "optimizers": HP,
               "parameters": sorted(n for n, p in model.named_parameters() if p.requires_grad),
               # Tied parameters (GPT-2's lm_head.weight is transformer.wte.weight):
               # every name of each, under the one named_parameters() gives.
               "parameter_aliases": aliases(model),
               "trajectories": {k: trajectory(model, state, x, y, batch, k) for k in HP},
               # The steps PyTorch reproduces itself to 1e-5 (its float64 run,
               # and an fp32 run from weights one rounding unit away): a CNN
               # with BatchNorm over a tiny batch is chaotic after a few.
               "reproducible_steps": {
                   k: reproducible_steps(trajectory(model, state, x, y, batch, k), [
                       trajectory(model, state, x, y, batch, k, dtype=torch.float64),
                       trajectory(model, state, x, y, batch, k, nudge=True)]) for k in HP},
               # PyTorch's own fp16 autocast run of the Adam trajectory: how far
               # mixed precision moves this model from FP32 in PyTorch itself.
               "adam_autocast_fp16": trajectory(model, state, x, y, batch, "adam", autocast=True),
               "exporter": "dynamo" if dynamo else "torchscript",
               "loss": "model" if getattr(model, "own_loss", False) else "cross_entropy",
               "compile_flags": ["--train-mode"] if dynamo and any(
                   isinstance(mod, torch.nn.BatchNorm2d) for mod in model.modules()) else [],
               "generator": "tools/gen_real_models.py", "torch": torch.__version__}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
        print(f"{name}: {os.path.getsize(path) / 1e6:.2f} MB, sgd {ref['trajectories']['sgd'][-1]:.4f}, "
              f"adam {ref['trajectories']['adam'][-1]:.4f}")


if __name__ == "__main__":
    main()
