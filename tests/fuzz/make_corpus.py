#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora, OUT/<target>/, from what the repo
ships (nothing here is committed in bulk):

  onnx_import  models/*/*.onnx, tests/fuzz/mlp_step.onnx, and each part of
               tests/golden/*.onnxtxt as binary ONNX (through the onnx package)
  onnx_text    each part of tests/golden/*.onnxtxt (cut at '# -----' lines)
  npz          tests/data/*.npz, models/*/train.npz, their .npy members, and
               the checkpoint below
  checkpoint   a checkpoint of tests/fuzz/mlp_step.onnx written by amp-train
               (--amp-train), and the same arrays as np.savez_compressed

usage: make_corpus.py OUT [--amp-train PATH] [TARGET...]
"""
import argparse
import glob
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ["onnx_import", "onnx_text", "npz", "checkpoint"]


def put(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def golden_parts():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.onnxtxt"))):
        with open(path) as f:
            for part in re.split(r"(?m)^# -----[^\n]*\n", f.read()):
                if "{" in part:
                    yield part


def checkpoint(amp_train):
    """The bytes of a checkpoint of mlp_step.onnx, or None without amp-train."""
    if not amp_train:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([amp_train, os.path.join(ROOT, "tests", "fuzz", "mlp_step.onnx"),
                        "--data", os.path.join(ROOT, "models", "mlp", "train.npz"),
                        "--batch-size", "8", "--steps", "2", "--checkpoint", tmp, "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        return read(os.path.join(tmp, "checkpoint.npz"))


def compressed(npz_bytes):
    """The same members, deflated (np.savez_compressed writes this)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as src, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--amp-train")
    ap.add_argument("targets", nargs="*")
    args = ap.parse_intermixed_args()
    targets = args.targets or TARGETS
    for t in targets:
        if t not in TARGETS:
            sys.exit(f"make_corpus.py: unknown target '{t}' (known: {' '.join(TARGETS)})")
    ckpt = checkpoint(args.amp_train) if {"npz", "checkpoint"} & set(targets) else None
    if "onnx_import" in targets:
        for path in glob.glob(os.path.join(ROOT, "models", "*", "*.onnx")):
            put(args.out, "onnx_import", read(path))
        put(args.out, "onnx_import", read(os.path.join(ROOT, "tests", "fuzz", "mlp_step.onnx")))
        try:
            import onnx.parser
            for part in golden_parts():
                try:
                    put(args.out, "onnx_import", onnx.parser.parse_model(part).SerializeToString())
                except Exception:  # a part that only amp reads, or an error case
                    pass
        except ImportError:
            print("make_corpus.py: no onnx package; golden parts not converted", file=sys.stderr)
    if "onnx_text" in targets:
        for part in golden_parts():
            put(args.out, "onnx_text", part.encode())
    if "npz" in targets:
        archives = glob.glob(os.path.join(ROOT, "tests", "data", "*.npz"))
        archives += glob.glob(os.path.join(ROOT, "models", "*", "train.npz"))
        for path in archives:
            data = read(path)
            put(args.out, "npz", data)
            if os.path.getsize(path) < 4096:
                with zipfile.ZipFile(path) as z:
                    for name in z.namelist():
                        put(args.out, "npz", z.read(name))
        if ckpt:
            put(args.out, "npz", ckpt)
    if "checkpoint" in targets and ckpt:
        put(args.out, "checkpoint", ckpt)
        put(args.out, "checkpoint", compressed(ckpt))


if __name__ == "__main__":
    main()
