#!/usr/bin/env python3
"""Copies ONNX's backend node tests (Debian's libonnx-testdata) into OUT,
upgrading the models written for opsets older than 13 with ONNX's own
version converter, so that amp-run can check amp's kernels on them. A model
the converter cannot upgrade is copied unchanged (amp-run then skips it,
saying why). Data sets are linked, not copied.

usage: prepare.py SRC OUT    (SRC: .../libonnx-testdata/data/node)
"""
import os
import shutil
import sys

import onnx
from onnx import version_converter

MIN_OPSET = 13


def default_opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def main(src, out):
    os.makedirs(out, exist_ok=True)
    upgraded = kept = 0
    for name in sorted(os.listdir(src)):
        sdir = os.path.join(src, name)
        mpath = os.path.join(sdir, "model.onnx")
        if not os.path.isfile(mpath):
            continue
        odir = os.path.join(out, name)
        os.makedirs(odir, exist_ok=True)
        for entry in os.listdir(sdir):
            if entry.startswith("test_data_set_"):
                link = os.path.join(odir, entry)
                if not os.path.lexists(link):
                    os.symlink(os.path.join(sdir, entry), link)
        model = onnx.load(mpath)
        opset = default_opset(model)
        if opset is not None and opset < MIN_OPSET:
            try:
                model = version_converter.convert_version(model, MIN_OPSET)
                model.ir_version = max(model.ir_version, 7)
                onnx.checker.check_model(model)
                upgraded += 1
            except Exception:  # noqa: BLE001 - the converter raises many kinds
                model = onnx.load(mpath)
                kept += 1
        onnx.save(model, os.path.join(odir, "model.onnx"))
    print(f"prepare.py: {out}: {upgraded} models upgraded to opset {MIN_OPSET}, "
          f"{kept} could not be upgraded")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
