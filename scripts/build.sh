#!/usr/bin/env bash
# Configures and builds healthgym into build/ (Release).
#   scripts/build.sh [--target T] [CMAKE_ARGS...]   (--target builds one target only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
target=()
if [ "${1:-}" = "--target" ]; then
  target=(--target "$2")
  shift 2
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$jobs" "${target[@]}"
