#!/usr/bin/env bash
# Install what is missing, build with tests, run the whole suite under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/check_format.sh
scripts/build.sh -DHEALTHGYM_BUILD_TESTS=ON
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 900
