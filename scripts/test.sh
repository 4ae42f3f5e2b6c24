#!/usr/bin/env bash
# Install what is missing, build with tests, run the whole suite under ctest; then
# the same suite under ASan and UBSan (SANITIZE=0 skips that stage).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/check_format.sh
scripts/build.sh -DHEALTHGYM_BUILD_TESTS=ON
(cd build && ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 900)
if [ "${SANITIZE:-1}" != 0 ]; then
  scripts/test_sanitized.sh
fi
