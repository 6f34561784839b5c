#!/usr/bin/env bash
# One call on the lent GPU machine (carry .gpu, packed by tools/pack_gpu.sh):
# the CUDA kernel tests against the CPU reference, the shipped models trained
# with --device cuda next to PyTorch's trajectories, then bench.py.
# usage: bench/gpu_session.sh [bench.py args...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p /tmp/amp-lib && tar -C /tmp/amp-lib -xJf .gpu/libs.tar.xz
export LD_LIBRARY_PATH=/tmp/amp-lib/lib:${LD_LIBRARY_PATH:-}
# cuDNN (its fused attention) from the machine's nvidia-cudnn-cu13 wheel.
cudnn_lib=$(python3 -c "import nvidia.cudnn as c; print(list(c.__path__)[0] + '/lib')" 2>/dev/null || true)
[ -n "$cudnn_lib" ] && export LD_LIBRARY_PATH=$cudnn_lib:$LD_LIBRARY_PATH
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
echo "== CUDA kernels against the CPU reference"
.gpu/bin/amp_cuda_tests 2>&1 | tee "$out/cuda_tests.txt" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|error" | head -40
echo "== shipped models on the GPU (O1 fp16 + dynamic scaling + Adam) vs PyTorch adam_amp"
for m in mlp tfm; do
  b=$(python3 -c "import numpy as np; print(np.load('models/$m/data.npz')['x0'].shape[0])")
  .gpu/bin/amp-train .gpu/steps/${m}_amp.onnx --data models/$m/train.npz --batch-size "$b" \
      --steps 12 --device cuda --log "$out/${m}_cuda.jsonl" --quiet 2>&1 | tail -2
  python3 tools/compare_trajectory.py "$out/${m}_cuda.jsonl" models/$m adam_amp | tail -1
done
echo "== NCCL: a one-rank data-parallel job (torchrun's variables) on the GPU"
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 timeout 120 \
  .gpu/bin/amp-train .gpu/steps/mlp_dp.onnx --data models/mlp/train.npz --batch-size 16 \
      --steps 12 --device cuda --collective-timeout 60 --log "$out/mlp_nccl.jsonl" --quiet 2>&1 |
  tee "$out/nccl.txt" | tail -2
echo "== bench"
python3 bench/bench.py --amp-bin .gpu/bin --out "$out/bench_results.json" "$@" 2>&1 | tail -40
