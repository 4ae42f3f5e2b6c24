#!/usr/bin/env bash
# Fails when any C++ source differs from .clang-format's style.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format is not installed" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find include src apps tests bench -name '*.[ch]pp')
clang-format --dry-run -Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted"
