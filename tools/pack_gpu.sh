#!/usr/bin/env bash
# Builds the GPU binaries here (Release, sm_90) and packs what the lent GPU
# machine lacks into .gpu/ (ignored by git; name it in the device tool's
# carry): stripped amp-compile, amp-train, amp_cuda_tests, the shared
# libraries the machine does not have (libonnx, OpenBLAS and its Fortran
# runtime) as one .tar.xz, and the shipped models' compiled training steps.
# bench/gpu_session.sh, run there, unpacks and uses them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build-gpu --target amp-compile amp-train amp_cuda_tests
rm -rf .gpu && mkdir -p .gpu/bin .gpu/steps
for b in tools/amp-compile tools/amp-train tests/amp_cuda_tests; do
  strip -o ".gpu/bin/$(basename $b)" "build-gpu/$b"
done
libs=(/usr/lib/x86_64-linux-gnu/libonnx.so.1 /usr/lib/x86_64-linux-gnu/libonnx_proto.so.1
      /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0
      /usr/lib/x86_64-linux-gnu/libgfortran.so.5 /usr/lib/x86_64-linux-gnu/libquadmath.so.0)
# Open MPI's libraries, which amp-train links (loaded always; MPI_Init runs
# only under mpirun).
mapfile -t mpi_libs < <(ldd build-gpu/tools/amp-train | awk '/libmpi|libopen-|libhwloc|libevent|libpmix/ {print $3}')
libs+=("${mpi_libs[@]}")
mkdir -p .gpu/lib && cp -L "${libs[@]}" .gpu/lib/
tar -C .gpu -cJf .gpu/libs.tar.xz lib && rm -rf .gpu/lib
for m in mlp tfm; do
  build-gpu/tools/amp-compile models/$m/model.onnx --loss cross_entropy --optimizer adam \
      --lr 1e-3 -o .gpu/steps/${m}_amp.onnx 2>/dev/null
done
# The NCCL smoke test's step: the MLP with its gradients all-reduced.
build-gpu/tools/amp-compile models/mlp/model.onnx --loss cross_entropy --optimizer adam \
    --lr 1e-3 --data-parallel -o .gpu/steps/mlp_dp.onnx 2>/dev/null
# .gpu/ is in .gitignore: it travels only when named in the device tool's carry.
du -sh .gpu
