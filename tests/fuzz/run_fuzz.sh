#!/usr/bin/env bash
# The fuzz targets' ctest cases (tests/fuzz/CMakeLists.txt).
#   run_fuzz.sh BINARY NAME TOOLS_DIR ARTIFACT_DIR
#       fuzzes for ${AMP_FUZZ_SECONDS:-60} s on a seed corpus generated into a
#       temporary folder (make_corpus.py; the repo is not written), with the
#       committed seeds/NAME and regressions/NAME read as well; a crashing
#       input is kept in ARTIFACT_DIR.
#   run_fuzz.sh --regressions BINARY NAME
#       runs BINARY once on every file in regressions/NAME and seeds/NAME.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shopt -s nullglob

if [ "${1:-}" = --regressions ]; then
  binary=$2 name=$3
  files=("$here/regressions/$name"/* "$here/seeds/$name"/*)
  if [ ${#files[@]} -eq 0 ]; then
    echo "run_fuzz.sh: no inputs in $here/regressions/$name or $here/seeds/$name" >&2
    exit 1
  fi
  exec "$binary" "${files[@]}"
fi

binary=$1 name=$2 tools=$3 artifacts=$4
seconds=${AMP_FUZZ_SECONDS:-60}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amp_fuzz_$name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 "$here/make_corpus.py" "$tmp" --amp-train "$tools/amp-train" "$name"
mkdir -p "$tmp/$name" "$artifacts"
dirs=("$tmp/$name")  # new inputs go to the first folder only
for d in "$here/seeds/$name" "$here/regressions/$name"; do [ -d "$d" ] && dirs+=("$d"); done
dict=()
case $name in
  onnx_text) dict=(-dict="$here/onnx_text.dict") ;;
  npz | checkpoint) dict=(-dict="$here/npz.dict") ;;
esac
echo "fuzz.$name: $seconds s, $(ls "$tmp/$name" | wc -l) generated seeds; crashes go to $artifacts/"
"$binary" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "${dict[@]}" "${dirs[@]}"
