#!/usr/bin/env bash
# Sets up a fresh machine, builds amp, and runs the main job on a shipped
# model: compile models/tfm/model.onnx (a small Transformer exported by
# PyTorch) and show what the compiler did.
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
./build/tools/amp-compile "$model" -o out/compiled.onnx --bind-dim batch=4 --report | head -60
echo "   ... (report shortened; run the command above for all of it)"
echo
echo "== wrote out/compiled.onnx ($(stat -c %s out/compiled.onnx) bytes): the model in mixed precision"
echo "Training (amp-train) is not built yet: see the issues."
