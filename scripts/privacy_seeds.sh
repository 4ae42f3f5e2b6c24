#!/usr/bin/env bash
# Privacy over training seeds: one run's membership AUC has a standard error of about
# 0.04 with pbcseq's 250 training and 62 held-out patients, too wide to tell two
# presets apart. This trains both presets with several seeds on one split, samples
# each to the training cohort's size and prints the privacy numbers of `evaluate`
# (with the discriminative score, mean KS and trend difference beside them).
#
#   scripts/privacy_seeds.sh                 # pbcseq, seeds 2 3 4, up to 120 s per model
#   SEEDS="1 2 3 4 5" TRAIN_S=300 scripts/privacy_seeds.sh
#
# Each model trains its preset's epochs or until TRAIN_S, whichever comes first, as in
# scripts/results.sh.
#
# Environment: SEEDS, TRAIN_S, HIDDEN (128), OUT (out/privacy_seeds), SPLIT_SEED (1, as
# scripts/results.sh draws pbcseq's holdout), DEFAULT_FLAGS ("--precision bf16").
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"2 3 4"}
TRAIN_S=${TRAIN_S:-120}
HIDDEN=${HIDDEN:-128}
OUT=${OUT:-out/privacy_seeds}
SPLIT_SEED=${SPLIT_SEED:-1}
DEFAULT_FLAGS=${DEFAULT_FLAGS:-"--precision bf16"}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
mkdir -p "$OUT"
# shellcheck source=scripts/split_lib.sh
. scripts/split_lib.sh
split_patients_shuffled data/pbcseq.csv 250 "$OUT/real.csv" 62 "$OUT/holdout.csv" "$SPLIT_SEED"

for s in $SEEDS; do
  for arm in seed default; do
    flags=()
    # shellcheck disable=SC2206 # the flags are words
    [ "$arm" = default ] && flags=($DEFAULT_FLAGS)
    "$HG" train --preset "$arm" --data "$OUT/real.csv" --id id --time day --hidden "$HIDDEN" \
      --time-limit "$TRAIN_S" --seed "$s" "${flags[@]}" \
      --out "$OUT/$arm$s.hg" >"$OUT/$arm$s.train.log" 2>&1
    epochs_of "$OUT/$arm$s.hg" >"$OUT/$arm$s.epochs"
    sampler=(--no-guardrail)  # the original's DDPM chain, out-of-range values clamped
    [ "$arm" = default ] && sampler=(--sampler ddim --sample-steps 25)
    "$HG" sample --model "$OUT/$arm$s.hg" --n 250 --seed "$s" "${sampler[@]}" \
      --out "$OUT/$arm$s.csv" >"$OUT/$arm$s.sample.log" 2>&1
    "$HG" evaluate --real "$OUT/real.csv" --synthetic "$OUT/$arm$s.csv" \
      --holdout "$OUT/holdout.csv" --id id --time day --out "$OUT/$arm$s" \
      >"$OUT/$arm$s.evaluate.log" 2>&1
    echo "-- seed $s, $arm: done"
  done
done

python3 - "$OUT" "$SEEDS" <<'PY'
import json, sys
out, seeds = sys.argv[1], sys.argv[2].split()
print("preset   seed  epochs  disc.  KS     trend  DCR share  MIA AUC")
for arm in ("seed", "default"):
    mias = []
    for s in seeds:
        summary = json.load(open(f"{out}/{arm}{s}/report.json"))["summary"]
        disc = summary["discriminative"]
        disc = disc["mean"] if isinstance(disc, dict) else disc
        mias.append(summary["mia_auc"])
        epochs = open(f"{out}/{arm}{s}.epochs").read().strip() or "?"
        print(f"{arm:8} {s:>4}  {epochs:>6}  {disc:.3f}  {summary['mean_ks']:.3f}  "
              f"{summary['trend_corr_mad']:.3f}  {summary['dcr_share_train']:.3f}"
              f"      {summary['mia_auc']:.3f}")
    print(f"{arm:8} mean MIA AUC {sum(mias) / len(mias):.3f}")
PY
