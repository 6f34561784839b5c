#!/usr/bin/env bash
# Coverage-guided fuzzing of amp's input readers (tests/fuzz): the ONNX
# importer, the ONNX-text parser, the .npz/.npy reader, the checkpoint loader.
#   tools/fuzz.sh [SECONDS] [TARGET...]     (default: 600 s each, all four)
# Builds (or reuses) the clang ASan+UBSan build with the fuzz targets
# ($AMP_FUZZ_BUILD_DIR, default build-asan: the one tools/test.sh makes),
# writes the seed corpora into .fuzz/seeds/ (gitignored), keeps the growing
# corpus in .fuzz/corpus/TARGET/, runs each target for SECONDS
# ($AMP_FUZZ_JOBS targets at a time, default 1), and prints the executions of
# each. A finding (crash, leak, UB, timeout, out of memory) makes it exit 1;
# the input is kept as .fuzz/artifacts/TARGET/crash-* (minimize it with
# BINARY -minimize_crash=1 -runs=10000 FILE, and add it under
# tests/fuzz/regressions/TARGET/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
all=(onnx_import onnx_text npz checkpoint)
seconds=600
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (known: ${all[*]})" >&2; exit 2; }
done
build=${AMP_FUZZ_BUILD_DIR:-build-asan}
jobs=${AMP_FUZZ_JOBS:-1}

echo "== build: $build (clang, ASan+UBSan, fuzz targets)"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAMP_SANITIZE=ON \
    -DAMP_ENABLE_CUDA=OFF -DAMP_FUZZ=ON "${launcher[@]}" >/dev/null
fi
if ! grep -q '^AMP_FUZZ:BOOL=ON' "$build/CMakeCache.txt" ||
  ! grep -qs 'CMAKE_CXX_COMPILER_ID "Clang"' "$build"/CMakeFiles/*/CMakeCXXCompiler.cmake; then
  echo "fuzz.sh: $build is not a clang build with -DAMP_FUZZ=ON (remove it, or set AMP_FUZZ_BUILD_DIR)" >&2
  exit 2
fi
cmake --build "$build" -j "$(nproc)" --target amp-train "${targets[@]/%/_fuzz}"

echo "== seed corpora: .fuzz/seeds/"
rm -rf .fuzz/seeds
python3 tests/fuzz/make_corpus.py .fuzz/seeds --amp-train "$build/tools/amp-train" "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_one() {  # target
  local t=$1 dict=()
  mkdir -p ".fuzz/corpus/$t" ".fuzz/artifacts/$t" .fuzz/logs .fuzz/seeds/"$t"
  case $t in
    onnx_text) dict=(-dict=tests/fuzz/onnx_text.dict) ;;
    npz | checkpoint) dict=(-dict=tests/fuzz/npz.dict) ;;
  esac
  local dirs=(".fuzz/corpus/$t" ".fuzz/seeds/$t")
  for d in "tests/fuzz/seeds/$t" "tests/fuzz/regressions/$t"; do [ -d "$d" ] && dirs+=("$d"); done
  "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix=".fuzz/artifacts/$t/" "${dict[@]}" "${dirs[@]}" \
    >".fuzz/logs/$t.log" 2>&1
}
echo "== fuzzing ${targets[*]}: $seconds s each, $jobs at a time (logs in .fuzz/logs/)"
declare -A rc
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    if wait "${pids[0]}"; then rc[${names[0]}]=0; else rc[${names[0]}]=$?; fi
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then rc[${names[$i]}]=0; else rc[${names[$i]}]=$?; fi
done

status=0
for t in "${targets[@]}"; do
  log=".fuzz/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ "${rc[$t]}" = 0 ]; then
    printf '%-12s ok       %12s executions in %s s (%s, corpus %s inputs)\n' "$t" "${execs:-?}" \
      "$seconds" "${cov:-cov: ?}" "$(ls ".fuzz/corpus/$t" | wc -l)"
  else
    status=1
    printf '%-12s FINDING  %12s executions; exit %s; see %s\n' "$t" "${execs:-?}" "${rc[$t]}" "$log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" |
      head -5 | sed 's/^/    /'
  fi
done
exit $status
