#!/usr/bin/env bash
# Sets up a fresh machine, builds amp, and runs the main job on a shipped
# model: compile models/tfm/model.onnx (a small Transformer exported by
# PyTorch) to mixed precision and show what the compiler did, then compile its
# training step and train it 12 steps next to PyTorch's own losses.
# usage: tools/quickstart.sh [MODEL.onnx]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target amp-compile amp-opt
model=${1:-models/tfm/model.onnx}
mkdir -p out
echo
echo "== amp-compile $model -o out/compiled.onnx --bind-dim batch=4 --report"
./build/tools/amp-compile "$model" -o out/compiled.onnx --bind-dim batch=4 --report > out/report.txt
head -n 60 out/report.txt
echo "   ... (report shortened; all of it is in out/report.txt)"
echo
echo "== wrote out/compiled.onnx ($(stat -c %s out/compiled.onnx) bytes): the model in mixed precision"
echo
echo "== the training step: loss, backward, Adam on FP32 master weights, O1 fp16, dynamic loss scaling"
./build/tools/amp-compile models/tfm/model.onnx --loss cross_entropy --label labels \
    --optimizer adam --lr 1e-3 --emit functional -o out/tfm_step.onnx
echo
echo "== 12 training steps against PyTorch's autocast + GradScaler run (adam_amp)"
echo "   (executed by onnxruntime until amp's own runtime and amp-train land)"
python3 tools/demo_train.py out/tfm_step.onnx models/tfm adam_amp 12
