#!/usr/bin/env bash
# Installs everything amp needs to build and test, from Debian packages and
# pinned PyPI test tools. Idempotent: a second run on a ready machine only
# checks and returns.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

debs=(cmake ninja-build g++ pkg-config
      libprotobuf-dev protobuf-compiler libonnx-dev
      libcli11-dev googletest libgtest-dev llvm-15-tools nlohmann-json3-dev
      libopenblas-dev clang-format zlib1g-dev libonnx-testdata
      clang libclang-rt-14-dev  # clang: the sanitizer build and its libFuzzer targets
      libopenmpi-dev openmpi-bin)  # data-parallel training (amp-train under mpirun)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if ! "$py" - "$here/requirements-test.txt" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as md
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line: continue
    name, ver = line.split('==')
    if md.version(name) != ver: sys.exit(1)
PYEOF
then
  echo "setup: installing Python test tools from requirements-test.txt"
  "$py" -m pip install -q --disable-pip-version-check -r "$here/requirements-test.txt"
fi
# The cudnn-frontend C++ headers (cuDNN's graph API, header-only), where a
# CUDA toolkit with cuDNN is: PyPI's nvidia-cudnn-frontend, pinned, its
# headers only (the wheel's Python side and dependencies are not needed).
cfe_version=1.32.0
cfe_dir="$here/.deps/cudnn-frontend-$cfe_version"
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
if [ -e "$cuda_include/cudnn.h" ] && [ ! -e "$cfe_dir/include/cudnn_frontend.h" ]; then
  echo "setup: fetching the cudnn-frontend $cfe_version headers"
  tmp=$(mktemp -d)
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "nvidia-cudnn-frontend==$cfe_version"
  "$py" - "$tmp" "$cfe_dir" <<'PYEOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("include/")])
PYEOF
  rm -rf "$tmp"
fi
echo "setup: ready"
