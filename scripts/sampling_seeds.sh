#!/usr/bin/env bash
# Sampling noise: one cohort's fidelity and privacy numbers move with the sampling
# seed alone, most on a small cohort (pbcseq's trend difference went 0.32-0.54 over
# seeds of one checkpoint). This samples both arms of a scripts/results.sh run again
# with other seeds (the seed preset as results.sh samples it: DDPM, --no-guardrail;
# the default with DDIM 25) and scores each cohort; scripts/results_table.py then
# prints each metric's mean and standard deviation over these and the run's own cohort.
#
#   scripts/sampling_seeds.sh pbc              # seeds 1 2 3 4 in out/results/pbc/seeds
#   SEEDS="1 2" OUT=out/results scripts/sampling_seeds.sh physionet
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:?usage: scripts/sampling_seeds.sh physionet|pbc}
SEEDS=${SEEDS:-"1 2 3 4"}
OUT=${OUT:-out/results}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
case $d in
  physionet) ID=stay_id TIME=hour OUTCOME=(--outcome in_hospital_death) ;;
  pbc) ID=id TIME=day OUTCOME=() ;;
  *) echo "unknown dataset $d (physionet or pbc)" >&2; exit 2 ;;
esac
dir=$OUT/$d
for f in "$dir/seed.hg" "$dir/default.hg" "$dir/real.csv" "$dir/holdout.csv"; do
  [ -f "$f" ] || { echo "no $f: run scripts/results.sh first" >&2; exit 2; }
done
n=$(awk -F, 'NR > 1 && $1 != last { n++; last = $1 } END { print n }' "$dir/real.csv")
mkdir -p "$dir/seeds"
for s in $SEEDS; do
  for arm in seed default_k25; do
    echo "-- $d/$arm: sampling seed $s"
    if [ "$arm" = seed ]; then
      flags=(--model "$dir/seed.hg" --no-guardrail)
    else
      flags=(--model "$dir/default.hg" --sampler ddim --sample-steps 25)
    fi
    "$HG" sample "${flags[@]}" --n "$n" --seed "$s" --out "$dir/seeds/${arm}_s$s.csv" \
      >"$dir/seeds/${arm}_s$s.sample.log" 2>&1
    "$HG" evaluate --real "$dir/real.csv" --synthetic "$dir/seeds/${arm}_s$s.csv" \
      --holdout "$dir/holdout.csv" --id "$ID" --time "$TIME" "${OUTCOME[@]}" \
      --out "$dir/seeds/${arm}_s$s" >"$dir/seeds/${arm}_s$s.evaluate.log" 2>&1
  done
done
echo "wrote $dir/seeds"
