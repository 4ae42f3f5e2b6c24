#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan into build-fuzz/ and
# runs each for a fixed time on its corpus (tests/fuzz/corpus/<target>/).
# A crash leaves crash-* in build-fuzz/findings/<target>/ and fails the script;
# copy the input into the corpus once fixed, where the normal suite
# (FuzzRegressions.*) replays it on every run.
#
#   scripts/fuzz.sh                  # csv, schema, checkpoint: 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh csv
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(csv schema checkpoint)
jobs=$(nproc 2>/dev/null || echo 2)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHEALTHGYM_FUZZ=ON -DHEALTHGYM_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"
status=0
for t in "${targets[@]}"; do
  work="build-fuzz/findings/$t"
  mkdir -p "$work/corpus"
  rm -f "$work"/crash-* "$work"/timeout-* "$work"/oom-*
  echo "fuzz_$t: ${seconds}s"
  # New inputs go to a scratch corpus; the checked-in one is only read.
  if ! (cd "$work" && ASAN_OPTIONS=detect_leaks=0 ../../fuzz_"$t" -max_total_time="$seconds" \
         -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 corpus ../../../tests/fuzz/corpus/"$t" \
         2>&1 | tail -n 12); then
    status=1
  fi
  ls "$work"/crash-* "$work"/timeout-* "$work"/oom-* 2>/dev/null && status=1
done
exit $status
