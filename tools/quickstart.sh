#!/usr/bin/env bash
# Sets up a fresh machine, builds amp, and runs the main job on a shipped
# model: compile models/tfm/model.onnx (a small Transformer exported by
# PyTorch) to mixed precision and show what the compiler did, then compile its
# training step and train it 12 steps with amp-train, next to PyTorch's own
# losses for the same run.
# usage: tools/quickstart.sh [MODEL.onnx]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target amp-compile amp-opt amp-train amp-run
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
    --optimizer adam --lr 1e-3 -o out/tfm_step.onnx
# On the GPU when there is one and this build has CUDA; else the CPU runtime,
# which emulates fp16 rounding exactly. (The CUDA backend has not yet run on
# a GPU: issue 16.)
device=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 &&
    grep -q "^CMAKE_CUDA_COMPILER:.*nvcc" build/CMakeCache.txt 2>/dev/null; then
  device=cuda
fi
echo
echo "== amp-train out/tfm_step.onnx --data models/tfm/train.npz --batch-size 4 --steps 12 --device $device"
./build/tools/amp-train out/tfm_step.onnx --data models/tfm/train.npz --batch-size 4 --steps 12 \
    --device "$device" --log out/metrics.jsonl --checkpoint out/checkpoint --eval \
    --export-inference out/trained.onnx
echo
echo "== amp's losses (out/metrics.jsonl) next to PyTorch's autocast + GradScaler run (adam_amp)"
python3 tools/compare_trajectory.py out/metrics.jsonl models/tfm adam_amp
