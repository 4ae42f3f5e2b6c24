#!/usr/bin/env bash
# Do bf16 autocast and the CPU kernels keep training quality? Trains the default preset
# on pbcseq (250 patients; the next 62 held out) for the same number of epochs and seed
# in fp32 and in bf16, each through LibTorch's modules (--cpu-kernels off) and through
# healthgym's CPU kernels (on), then samples each to the training cohort's size (DDIM 25)
# and scores it with `healthgym evaluate`. Prints a Markdown table: the mean loss over
# the last 5 epochs, training time, and the evaluate summary.
#
#   bench/precision_quality.sh          # EPOCHS=60 HIDDEN=128
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-60}
HIDDEN=${HIDDEN:-128}
OUT=${OUT:-out/precision}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
mkdir -p "$OUT"
# shellcheck source=scripts/split_lib.sh
. scripts/split_lib.sh
split_patients data/pbcseq.csv 250 "$OUT/real.csv" 62 "$OUT/holdout.csv"
ARMS="fp32-modules fp32-kernels bf16-modules bf16-kernels"
for p in $ARMS; do
  precision=${p%%-*}
  kernels=on
  [ "${p#*-}" = modules ] && kernels=off
  start=$(date +%s.%N)
  "$HG" train --data "$OUT/real.csv" --id id --time day --hidden "$HIDDEN" --epochs "$EPOCHS" \
    --seed 1 --precision "$precision" --cpu-kernels "$kernels" --out "$OUT/$p.hg" \
    >"$OUT/$p.train.log" 2>&1
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' >"$OUT/$p.seconds"
  # Sampled in fp32 whatever the training precision: this table compares training.
  "$HG" sample --model "$OUT/$p.hg" --n 250 --sampler ddim --sample-steps 25 --seed 1 \
    --precision fp32 --out "$OUT/$p.csv" >"$OUT/$p.sample.log" 2>&1
  "$HG" evaluate --real "$OUT/real.csv" --synthetic "$OUT/$p.csv" --holdout "$OUT/holdout.csv" \
    --id id --time day --out "$OUT/$p.eval" >"$OUT/$p.eval.log" 2>&1
done
# Sampling precision: the bf16-kernels checkpoint sampled in fp32 and in bf16 with the
# same 3 seeds (the chain's own noise is the same draw; only the network's rounding differs).
SEEDS="1 2 3"
for p in fp32 bf16; do
  for s in $SEEDS; do
    "$HG" sample --model "$OUT/bf16-kernels.hg" --n 250 --sampler ddim --sample-steps 25 \
      --seed "$s" --precision "$p" --out "$OUT/sample-$p-$s.csv" >"$OUT/sample-$p-$s.log" 2>&1
    "$HG" evaluate --real "$OUT/real.csv" --synthetic "$OUT/sample-$p-$s.csv" \
      --holdout "$OUT/holdout.csv" --id id --time day --out "$OUT/sample-$p-$s.eval" \
      >"$OUT/sample-$p-$s.eval.log" 2>&1
  done
done
/usr/bin/python3 - "$OUT" "$EPOCHS" "$HIDDEN" $ARMS <<'PY'
import csv, json, sys
out, epochs, hidden, *arms = sys.argv[1:]
rows = {}
for p in arms:
    log = list(csv.DictReader(open(f"{out}/{p}.hg.log.csv")))
    last = log[-5:]
    s = json.load(open(f"{out}/{p}.eval/report.json"))["summary"]
    rows[p] = {
        "loss, last 5 epochs": sum(float(r["loss"]) for r in last) / len(last),
        "training s": float(open(f"{out}/{p}.seconds").read()),
        "discriminative": s["discriminative"]["mean"],
        "mean KS": s["mean_ks"], "mean TVD": s["mean_tvd"],
        "missing-rate MAD": s["missing_rate_mad"], "correlation MAD": s["corr_mad"],
        "trend corr MAD": s["trend_corr_mad"], "autocorrelation MAD": s["acf_mad"],
        "predictive MAE (synthetic)": s["predictive"]["synthetic_mae"],
    }
print(f"pbcseq, 250 training patients, default preset, width {hidden}, {epochs} epochs, seed 1; "
      "sampled 250 with DDIM 25; evaluate against the 62 held-out patients.\n")
print("| | " + " | ".join(arms) + " |\n|---|" + "---|" * len(arms))
f = lambda v: "n/a" if v is None else f"{v:.4g}"
for k in rows[arms[0]]:
    print(f"| {k} | " + " | ".join(f(rows[a][k]) for a in arms) + " |")
print("\nSampling precision: the bf16-kernels checkpoint sampled 250 with DDIM 25 in fp32 and in "
      "bf16, seeds 1, 2, 3 (each cell fp32 / bf16).\n")
keys = [("discriminative", lambda s: s["discriminative"]["mean"]), ("mean KS", lambda s: s["mean_ks"]),
        ("mean TVD", lambda s: s["mean_tvd"]), ("missing-rate MAD", lambda s: s["missing_rate_mad"]),
        ("correlation MAD", lambda s: s["corr_mad"]), ("trend corr MAD", lambda s: s["trend_corr_mad"]),
        ("autocorrelation MAD", lambda s: s["acf_mad"]),
        ("predictive MAE (synthetic)", lambda s: s["predictive"]["synthetic_mae"])]
seeds = (1, 2, 3)
ev = {(p, s): json.load(open(f"{out}/sample-{p}-{s}.eval/report.json"))["summary"]
      for p in ("fp32", "bf16") for s in seeds}
print("| | " + " | ".join(f"seed {s}" for s in seeds) + " |\n|---|" + "---|" * len(seeds))
for name, get in keys:
    print(f"| {name} | " + " | ".join(f"{f(get(ev[('fp32', s)]))} / {f(get(ev[('bf16', s)]))}"
                                      for s in seeds) + " |")
PY
