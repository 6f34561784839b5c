#!/usr/bin/env bash
# Builds amp and runs every test: once in a normal build, once under
# AddressSanitizer + UndefinedBehaviorSanitizer. Installs what is missing first.
# usage: tools/test.sh            (AMP_SKIP_SANITIZERS=1 skips the second pass)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup.sh
jobs=$(nproc)

echo "== clang-format (every C++ and CUDA file)"
mapfile -t sources < <(git ls-files '*.h' '*.cc' '*.cu' '*.cuh')
clang-format --dry-run --Werror "${sources[@]}"

run_suite() {  # build-dir, extra cmake args...
  local dir=$1
  shift
  echo "== configure and build: $dir $*"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== test: $dir"
  (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 900)
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${AMP_SKIP_SANITIZERS:-0}" != 1 ]; then
  # Sanitizer builds leave CUDA off: the CUDA code is compiled (and its host
  # side tested) in the normal build above. They use clang, so that the
  # libFuzzer targets (tests/fuzz, -DAMP_FUZZ=ON) link against the same
  # ASan+UBSan runtime; their ctest cases fuzz each for ${AMP_FUZZ_SECONDS:-60} s
  # and rerun the saved regressions. A build-asan left by g++ is reconfigured.
  if [ -f build-asan/CMakeCache.txt ] &&
    ! grep -qs 'CMAKE_CXX_COMPILER_ID "Clang"' build-asan/CMakeFiles/*/CMakeCXXCompiler.cmake; then
    rm -rf build-asan
  fi
  CC=clang CXX=clang++ ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DAMP_SANITIZE=ON -DAMP_ENABLE_CUDA=OFF -DAMP_FUZZ=ON
fi
echo "== all tests passed"
