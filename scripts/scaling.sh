#!/usr/bin/env bash
# Measures data-parallel scaling on this machine and prints a Markdown table for
# docs/SCALING.md: training and sampling throughput with 1..MAX_NPROC local
# processes (`--nproc`), the cores split evenly between them.
#
#   scripts/scaling.sh                    # PhysioNet, 512 patients, width 256 (reference shapes)
#   PATIENTS=1024 EPOCHS=3 MAX_NPROC=4 scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS=${PATIENTS:-512}
EPOCHS=${EPOCHS:-2}
HIDDEN=${HIDDEN:-256}
SAMPLE_N=${SAMPLE_N:-256}
MAX_NPROC=${MAX_NPROC:-$(nproc)}
OUT=${OUT:-out/scaling}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
mkdir -p "$OUT"
awk -F, -v n="$PATIENTS" 'NR == 1 { print; next } $1 != last { k++; last = $1 } k <= n' \
  data/physionet2012_set_a.csv >"$OUT/data.csv"

now() { date +%s.%N; }
echo "| processes | threads each | training seq/s (epochs 2..$EPOCHS) | speed-up | sampling seq/s (DDIM 25) | speed-up |"
echo "|---|---|---|---|---|---|"
base_t="" base_s=""
for p in $(seq 1 "$MAX_NPROC"); do
  rm -f "$OUT/m$p.hg"*
  "$HG" train --data "$OUT/data.csv" --id stay_id --time hour --hidden "$HIDDEN" \
    --epochs "$EPOCHS" --batch 128 --seed 1 --nproc "$p" --out "$OUT/m$p.hg" >/dev/null 2>&1
  # Epoch 1 includes start-up (data, rendezvous); later epochs are steady state.
  train=$(awk -F, -v n="$PATIENTS" 'NR > 2 { s += $5; k++ } END { printf "%.1f", n * k / s }' \
    "$OUT/m$p.hg.log.csv")
  t0=$(now)
  "$HG" sample --model "$OUT/m$p.hg" --n "$SAMPLE_N" --sampler ddim --sample-steps 25 \
    --nproc "$p" --out "$OUT/s$p.csv" --allow-copies >/dev/null 2>&1
  t1=$(now)
  samp=$(awk -v n="$SAMPLE_N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
  [ -z "$base_t" ] && base_t=$train && base_s=$samp
  threads=$(($(nproc) / p)); [ "$threads" -lt 1 ] && threads=1
  awk -v p="$p" -v th="$threads" -v t="$train" -v s="$samp" -v bt="$base_t" -v bs="$base_s" \
    'BEGIN { printf "| %d | %d | %.1f | %.2fx | %.1f | %.2fx |\n", p, th, t, t / bt, s, s / bs }'
done
