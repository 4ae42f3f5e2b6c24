#!/usr/bin/env bash
# How well two training setups learn when PhysioNet variables are measured: both
# train at once (one thread each, TRAIN_S seconds) on the first 2000 stays, sample
# 2000 stays with DDIM 25, and are compared by scripts/observation_pattern.py and
# `healthgym evaluate` (against those stays, the next 1000 held out).
#
#   scripts/observation_ab.sh                      # the previous default against today's
#   A="--missing-groups 0 --batch 128" B="" TRAIN_S=300 EVALUATE=0 scripts/observation_ab.sh
#
# Environment: A, B (train flags on top of the default preset, width HIDDEN (128) and
# --precision bf16), TRAIN_S (300), OUT (out/observation_ab), EVALUATE (1).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A-"--missing-groups 0 --batch 128"}
B=${B-""}
TRAIN_S=${TRAIN_S:-300}
HIDDEN=${HIDDEN:-128}
OUT=${OUT:-out/observation_ab}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
mkdir -p "$OUT"
# shellcheck source=scripts/split_lib.sh
. scripts/split_lib.sh
split_patients data/physionet2012_set_a.csv 2000 "$OUT/real.csv" 1000 "$OUT/holdout.csv"

arm() {
  local name=$1 flags=$2
  # shellcheck disable=SC2086 # the flags are words
  "$HG" train --data "$OUT/real.csv" --id stay_id --time hour --hidden "$HIDDEN" \
    --precision bf16 --threads 1 --epochs 1000000 --time-limit "$TRAIN_S" $flags \
    --out "$OUT/$name.hg" >"$OUT/$name.train.log" 2>&1
  "$HG" sample --model "$OUT/$name.hg" --n 2000 --threads 1 --sampler ddim --sample-steps 25 \
    --out "$OUT/$name.csv" >"$OUT/$name.sample.log" 2>&1
  if [ "${EVALUATE:-1}" != 0 ]; then
    "$HG" evaluate --real "$OUT/real.csv" --synthetic "$OUT/$name.csv" \
      --holdout "$OUT/holdout.csv" --id stay_id --time hour --outcome in_hospital_death \
      --threads 1 --out "$OUT/$name.eval" >"$OUT/$name.eval.log" 2>&1
  fi
}
echo "A: ${A:-(default preset)}"
echo "B: ${B:-(default preset)}"
arm a "$A" &
pid_a=$!
arm b "$B" &
pid_b=$!
wait "$pid_a"
wait "$pid_b"
for x in a b; do echo "$x: $("$HG" info "$OUT/$x.hg" | sed -n 's/^trained *//p')"; done
python3 scripts/observation_pattern.py "$OUT/real.csv" "$OUT/a.csv" "$OUT/b.csv"
if [ "${EVALUATE:-1}" != 0 ]; then
  for x in a b; do echo "== $x"; tail -n 6 "$OUT/$x.eval.log" | head -n 5; done
fi
