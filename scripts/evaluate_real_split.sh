#!/usr/bin/env bash
# Sanity check of `evaluate` on real data alone: splits the bundled PhysioNet file by
# stay into "real" (first 1500), "synthetic" (next 1500) and holdout (last 1000), and
# evaluates them; two independent real samples should score near the ideal values.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/real_split}
mkdir -p "$out"
awk -F, -v dir="$out" '
  NR == 1 { h = $0; print h > dir "/A.csv"; print h > dir "/B.csv"; print h > dir "/C.csv"; next }
  $1 != last { n++; last = $1 }
  { f = n <= 1500 ? "A" : (n <= 3000 ? "B" : "C"); print > (dir "/" f ".csv") }
' data/physionet2012_set_a.csv
time ./build/healthgym evaluate --real "$out/A.csv" --synthetic "$out/B.csv" --holdout "$out/C.csv" \
  --id stay_id --time hour --outcome in_hospital_death --out "$out/report"
