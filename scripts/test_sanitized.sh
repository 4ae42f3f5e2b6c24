#!/usr/bin/env bash
# The whole suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer
# into build-asan/ (any report fails the run: -fno-sanitize-recover=all).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DHEALTHGYM_BUILD_TESTS=ON \
  -DHEALTHGYM_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
cd build-asan
# LibTorch (not instrumented) keeps process-lifetime allocations that LeakSanitizer
# would report at exit; tests/lsan.supp names them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/../tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j"$jobs" --timeout 1800
