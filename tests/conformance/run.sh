#!/bin/bash
# ONNX's backend node tests on amp's CPU runtime: upgrades the old-opset
# models (prepare.py, ONNX's version converter), then amp-run checks every
# test of every op amp supports. usage: run.sh AMP_RUN WORKDIR SUITE...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
amp_run=$1
work=$2
shift 2
data=/usr/share/libonnx-testdata/data
if [ ! -d "$data/node" ]; then
  echo "libonnx-testdata is not installed (apt-get install libonnx-testdata; tools/setup.sh does)"
  exit 1
fi
status=0
for suite in "$@"; do
  python3 "$here/prepare.py" "$data/$suite" "$work/$suite"
  "$amp_run" --suite "$work/$suite" --expect-fail "$here/expected_failures.txt" || status=1
done
exit $status
