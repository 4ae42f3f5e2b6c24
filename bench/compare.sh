#!/usr/bin/env bash
# Runs the PyTorch reference (bench/seed_reference.py, with Debian's python3-torch) and
# `healthgym bench` alternately at the same shapes, ROUNDS times each, and prints every
# JSON line and the ratios of the medians (healthgym / reference).
#
#   bench/compare.sh [ROUNDS] [-- extra flags for both, e.g. --sample-steps 20]
#   HG_FLAGS="--precision bf16" bench/compare.sh 3   # flags for healthgym only
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
common=("$@")
py=${PYTHON:-/usr/bin/python3}
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "compare: the reference needs Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 2
fi
[ -x build/healthgym ] || { echo "compare: build first (scripts/build.sh)" >&2; exit 2; }
threads=$(nproc)
ref=() hg=()
for ((i = 1; i <= rounds; i++)); do
  r=$("$py" bench/seed_reference.py --threads "$threads" "${common[@]}" | tail -n 1)
  echo "reference: $r"
  ref+=("$r")
  # shellcheck disable=SC2086
  h=$(./build/healthgym bench --threads "$threads" "${common[@]}" ${HG_FLAGS:-} | tail -n 1)
  echo "healthgym: $h"
  hg+=("$h")
done
"$py" - "${ref[@]}" "::" "${hg[@]}" <<'PY'
import json, statistics, sys
args = sys.argv[1:]
cut = args.index("::")
ref = [json.loads(a) for a in args[:cut]]
hg = [json.loads(a) for a in args[cut + 1:]]
for key in ("train_seq_per_s", "sample_seq_per_s"):
    r = statistics.median(x[key] for x in ref)
    h = statistics.median(x[key] for x in hg)
    print(f"{key}: reference {r:.3f}, healthgym {h:.3f}, ratio {h / r:.2f}x")
PY
