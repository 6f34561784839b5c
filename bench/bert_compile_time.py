#!/usr/bin/env python3
"""Compile time of a 12-layer BERT (issue 11's bar: an O1 Adam step in under
1 s on one core). Development time only (needs torch and transformers):

    python bench/bert_compile_time.py [AMP_BIN=build/tools] [OUT=/tmp/bert12]

Exports BertForSequenceClassification (12 layers, hidden 256) with both
exporters, then times `taskset -c 0 amp-compile ... --loss cross_entropy
--optimizer adam` on each, three runs, and prints the best."""
import os
import subprocess
import sys
import time

import onnx
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import gen_real_models as g  # noqa: E402


def main():
    amp_bin = sys.argv[1] if len(sys.argv) > 1 else "build/tools"
    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/bert12"
    os.makedirs(out, exist_ok=True)
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(num_hidden_layers=12, hidden_size=256, num_attention_heads=4,
                     intermediate_size=1024, vocab_size=1000, max_position_embeddings=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    torch.manual_seed(0)
    model = g.Classify(BertForSequenceClassification(cfg))
    model.train()
    x = torch.randint(0, 1000, (4, 12))
    for dynamo in (False, True):
        path = os.path.join(out, f"bert12{'_dynamo' if dynamo else ''}.onnx")
        g.export(model, x, path, "input", False, dynamo)
        nodes = len(onnx.load(path).graph.node)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(["taskset", "-c", "0", os.path.join(amp_bin, "amp-compile"), path, "--loss",
                            "cross_entropy", "--optimizer", "adam", "-o", path + ".step.onnx"],
                           check=True, capture_output=True)
            best = min(best, time.perf_counter() - t)
        print(f"{'dynamo' if dynamo else 'torchscript'}: {nodes} nodes, O1 Adam step in {best:.2f} s")


if __name__ == "__main__":
    main()
