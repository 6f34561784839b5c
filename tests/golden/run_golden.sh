#!/usr/bin/env bash
# Runs the "# RUN:" lines of one golden test file, lit-style: %s is the file,
# and amp-opt, amp-compile, FileCheck and not name the built tools.
# usage: run_golden.sh FILE TOOLS_DIR FILECHECK NOT
set -euo pipefail
file=$1 tools=$2 filecheck=$3 not=$4
mapfile -t runs < <(sed -n 's/^# RUN: *//p' "$file")
if [ ${#runs[@]} -eq 0 ]; then
  echo "error: no '# RUN:' line in $file" >&2
  exit 1
fi
for cmd in "${runs[@]}"; do
  cmd=${cmd//%s/$file}
  cmd=$(sed -E "s#(^|[ |])amp-opt #\1$tools/amp-opt #g; s#(^|[ |])amp-compile #\1$tools/amp-compile #g; \
s#(^|[ |])FileCheck #\1$filecheck #g; s#(^|[ |])not #\1$not #g" <<<"$cmd")
  echo "RUN: $cmd"
  bash -o pipefail -c "$cmd"
done
