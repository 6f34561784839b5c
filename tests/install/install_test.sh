#!/bin/bash
# amp as an installed product: `cmake --install` into a fresh temporary
# prefix, examples/cpp configured with only -DCMAKE_PREFIX_PATH=<prefix>,
# built and run; its losses must equal amp-train's on the same step and data,
# and the step it compiled through the API must be byte-identical to
# amp-compile's. Also checks what the install holds: public headers only, and
# a libamp that exports none of its dependencies' symbols.
# usage: install_test.sh BUILD_DIR SOURCE_DIR PYTHON
set -euo pipefail
build=$1 src=$2 py=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in include/amp/amp.h include/amp/session.h include/amp/version.h bin/amp-compile bin/amp-train \
         lib/cmake/amp/ampConfig.cmake; do
  [ -e "$prefix/$f" ] || { echo "FAIL: the install has no $f"; exit 1; }
done
if find "$prefix/include" -type f | grep -v '/include/amp/'; then
  echo "FAIL: the install holds headers outside include/amp/ (above)"; exit 1
fi
lib=$(ls "$prefix"/lib*/libamp.so.* | head -1)
# (The symbols in a file first: `nm | grep -q` under pipefail fails when grep
# stops reading early and nm gets SIGPIPE.)
nm -DC --defined-only "$lib" > "$tmp/symbols.txt"
if grep -E '(onnx|google)::|amp::(Executor|Model|Graph|Tensor|Pass)\b|Session::Impl::' "$tmp/symbols.txt"; then
  echo "FAIL: libamp exports internal or third-party symbols (above)"; exit 1
fi
grep -q 'amp::Session::Run()' "$tmp/symbols.txt" || { echo "FAIL: amp::Session::Run not exported"; exit 1; }

# The example, from its own folder, knowing only the prefix.
cmake -S "$src/examples/cpp" -B "$tmp/example" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log"
cmake --build "$tmp/example" > "$tmp/build.log"
steps=4 batch=16
"$tmp/example/train_step" "$src/models/mlp/model.onnx" $steps $batch cpu "$tmp/api_step.onnx" \
  > "$tmp/example.txt"
cat "$tmp/example.txt"

# The same step from the installed amp-compile, and the example's data as .npz.
"$prefix/bin/amp-compile" "$src/models/mlp/model.onnx" --loss cross_entropy --optimizer adam \
  --lr 1e-3 -o "$tmp/cli_step.onnx" 2> "$tmp/compile.log"
cmp "$tmp/api_step.onnx" "$tmp/cli_step.onnx" || { echo "FAIL: amp::Compile and amp-compile differ"; exit 1; }
"$py" - "$tmp/data.npz" $((steps * batch)) <<'PYEOF'
import sys
import numpy as np
path, n = sys.argv[1], int(sys.argv[2])
F, C = 64, 10
s = np.arange(n, dtype=np.int64)[:, None]
j = np.arange(F, dtype=np.int64)[None, :]
x = (((s * F + j) * 7919 % 201 - 100).astype(np.float32) / np.float32(64)).astype(np.float32)
np.savez(path, input=x, labels=(np.arange(n, dtype=np.int64) * 31 % C))
PYEOF
"$prefix/bin/amp-train" "$tmp/cli_step.onnx" --data "$tmp/data.npz" --batch-size $batch \
  --steps $steps --log "$tmp/log.jsonl" -q 2> "$tmp/train.log"
"$py" - "$tmp/example.txt" "$tmp/log.jsonl" $steps <<'PYEOF'
import json, sys
example = [l.split() for l in open(sys.argv[1]) if l.startswith("step ")]
log = [json.loads(l) for l in open(sys.argv[2])]
steps = int(sys.argv[3])
assert len(example) == steps == len(log), (len(example), len(log))
for e, l in zip(example, log):
    k, loss, scale = int(e[1]), float(e[3]), float(e[5])
    assert k == l["step"], (k, l)
    assert loss == l["loss"], f"step {k}: example loss {loss!r}, amp-train {l['loss']!r}"
    assert scale == l["loss_scale"], (k, scale, l["loss_scale"])
print(f"install: ok: {steps} losses equal to amp-train's ({example[-1][3]} at the last step)")
PYEOF
