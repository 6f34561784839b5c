#!/bin/bash
# The cost of the three benchmark steps as the compiler decides it, without a
# GPU: the O1 fp16 Adam step with dynamic loss scaling (what PyTorch AMP runs:
# autocast + GradScaler + fused Adam), specialized for the CUDA backend at the
# benchmark batch; kernel launches, planned peak (arena + state + inputs) and
# the predicted time on an H100 (codegen/cost_model.h), beside the targets.
# With --cpu, also amp-train's CPU step times (2 threads): FP32 Adam, O1 over
# FP32, and PyTorch eager's FP32 step when torch is importable (by python3, or
# by $TORCH_PYTHON).
# usage: bench/cost.sh [--cpu] [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cpu=0
torch_python=${TORCH_PYTHON:-python3}
if [ "${1:-}" = "--cpu" ]; then cpu=1; shift; fi
bin=$(cd "${1:-$root/build}" && pwd)/tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-12s %6s | %9s %7s | %10s %8s | %12s %8s\n" model batch launches target "peak MiB" target "predicted ms" target
for row in "mlp 512 20 944 1.3" "transformer 32 150 1474 4.5" "resnet18 128 160 1599 -"; do
  set -- $row
  python3 "$root/bench/models/fill_skeleton.py" "$root/bench/models/$1.skeleton.onnx" "$work/$1.onnx"
  "$bin/amp-compile" "$work/$1.onnx" --loss cross_entropy --optimizer adam --lr 1e-3 \
    --bind-dim batch="$2" --target cuda --device-model h100 --report-json "$work/$1.json" \
    -o "$work/$1.step.onnx" 2>"$work/$1.log" || { cat "$work/$1.log"; exit 1; }
  python3 - "$work/$1.json" "$1" "$2" "$3" "$4" "$5" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["cost"]
name, batch, t_launch, t_peak, t_ms = sys.argv[2:]
missing = " (no CUDA kernel yet: " + ", ".join(c["ops_without_kernel"]) + ")" if c["ops_without_kernel"] else ""
print(f"{name:12s} {batch:>6s} | {c['launches']:9d} {t_launch:>7s} | {c['peak_bytes'] / 2**20:10.0f} {t_peak:>8s} | "
      f"{c['predicted_ms']:12.2f} {t_ms:>8s}{missing}")
PY
done
echo "(targets: PyTorch 2.15 on an H100, fp16 autocast + GradScaler + fused Adam; peak MB as MiB)"
if [ $cpu = 1 ]; then
  echo
  echo "CPU, 2 threads: amp-train seconds per step (median of 3 after 1 warm-up)"
  for row in "mlp 8" "transformer 2"; do
    set -- $row
    python3 - "$work/$1.onnx" "$2" "$work/$1.npz" <<'PY'
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1], load_external_data=False); b = int(sys.argv[2])
x = m.graph.input[0].type.tensor_type.shape.dim
shape = [b] + [d.dim_value for d in x[1:]]
rng = np.random.default_rng(0)
np.savez(sys.argv[3], input=rng.standard_normal([4 * b] + shape[1:]).astype(np.float32),
         labels=rng.integers(0, 10, 4 * b).astype(np.int64))
PY
    for level in O0 O1; do
      "$bin/amp-compile" "$work/$1.onnx" --loss cross_entropy --optimizer adam --lr 1e-3 \
        --opt-level $level -o "$work/$1.$level.onnx" 2>/dev/null
      OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 "$bin/amp-train" "$work/$1.$level.onnx" \
        --data "$work/$1.npz" --steps 4 --batch-size "$2" --log "$work/$1.$level.jsonl" >/dev/null 2>&1
      python3 - "$work/$1.$level.jsonl" > "$work/$1.$level.s" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
secs = [r["seconds"] for r in rows if "seconds" in r][1:]
print(f"{statistics.median(secs):.3f}" if secs else "nan")
PY
    done
    o0=$(cat "$work/$1.O0.s"); o1=$(cat "$work/$1.O1.s")
    # PyTorch eager's FP32 step, same threads, same batch (TORCH_PYTHON: an
    # interpreter that has torch; CI has none).
    if pt=$(OMP_NUM_THREADS=2 "$torch_python" "$root/bench/cpu_torch.py" "$1" "$2" 2>/dev/null); then
      ratio=$(python3 -c "print(f'{$o0 / $pt:.2f}x')")
    else
      pt="-"; ratio="(torch not importable by $torch_python)"
    fi
    o1r=$(python3 -c "print(f'{$o1 / $o0:.2f}x')")
    printf "  %-12s batch %2s: amp O0 %s s, PyTorch eager %s s, amp/PyTorch %s; amp O1 %s s = %s its O0\n" \
      "$1" "$2" "$o0" "$pt" "$ratio" "$o1" "$o1r"
  done
fi
