#!/usr/bin/env bash
# Regenerates docs/RESULTS.md: `--preset seed` (the original) against the default, with
# the same training time limit on this machine, on both bundled datasets, each sampled to
# the real training cohort's size and scored by `healthgym evaluate`; then fidelity
# against the number of DDIM steps K, and conditional subgroups.
#
#   scripts/results.sh                 # up to PhysioNet 300 s and pbcseq 150 s of training per arm
#   PHYSIONET_TRAIN_S=1800 PBC_TRAIN_S=900 HIDDEN=128 scripts/results.sh
#
# Environment: HIDDEN (U-Net width of both arms, 64), KS (DDIM steps swept, "10 25 50 100
# 500"), OUT (work directory, out/results), DATASETS ("physionet pbc"), RESULTS_MD
# (docs/RESULTS.md), GUIDANCE (1), DEFAULT_FLAGS (extra train flags of the default arm,
# e.g. "--precision bf16": the seed arm is the original, fp32). scripts/results_table.py
# also reads RESULTS_COMMIT (the binary's commit, when HEAD moved on during the run) and
# RESULTS_NOTE (printed under the header: what else the machine ran meanwhile).
# SEED_SWEEP ("pbc"): datasets whose two checkpoints are then sampled with 4 more seeds
# (scripts/sampling_seeds.sh) for each metric's spread; PhysioNet's seed arm takes 17-25
# minutes per cohort. ARMS ("seed default"): ARMS=default reruns only the default arm and keeps the seed
# arm's rows and files from the last run in OUT (the seed preset is the original and
# does not change between commits; its DDPM sampling takes most of the run). Either
# way the rows of datasets not in DATASETS are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
HIDDEN=${HIDDEN:-64}
KS=${KS:-"10 25 50 100 500"}
OUT=${OUT:-out/results}
DATASETS=${DATASETS:-"physionet pbc"}
PHYSIONET_TRAIN_S=${PHYSIONET_TRAIN_S:-300}
PBC_TRAIN_S=${PBC_TRAIN_S:-150}
DEFAULT_FLAGS=${DEFAULT_FLAGS:-}
SEED_SWEEP=${SEED_SWEEP:-pbc}
HG=./build/healthgym
[ -x "$HG" ] || scripts/build.sh --target healthgym
mkdir -p "$OUT"
ARMS=${ARMS:-"seed default"}
runs="$OUT/runs.tsv"
case " $ARMS " in
  *" seed "*)
    # Keep the rows of the datasets not rerun.
    if [ -f "$runs" ]; then
      awk -F'\t' -v ds=" $DATASETS " 'index(ds, " " $1 " ") == 0' "$runs" >"$runs.kept" &&
        mv "$runs.kept" "$runs"
    else
      : >"$runs"
    fi
    ;;
  *)
    for d in $DATASETS; do
      for f in "$OUT/$d/seed.hg" "$OUT/$d/seed/report.json"; do
        [ -f "$f" ] || { echo "ARMS=$ARMS needs the seed arm of an earlier run: no $f" >&2; exit 2; }
      done
    done
    # Keep the seed rows, and every row of the datasets not rerun.
    awk -F'\t' -v ds=" $DATASETS " '$2 == "seed" || index(ds, " " $1 " ") == 0' "$runs" \
      >"$runs.kept" && mv "$runs.kept" "$runs"
    ;;
esac
has_arm() { case " $ARMS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# shellcheck source=scripts/split_lib.sh
. scripts/split_lib.sh

# Keeps the patients whose column $2 equals $3 (static, so any row decides).
subgroup() {
  awk -F, -v col="$2" -v val="$3" '
    NR == 1 {
      for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == col) c = i }
      if (!c) { print "subgroup: no column " col " in " FILENAME > "/dev/stderr"; exit 2 }
      print; next
    }
    { v = $c; gsub(/"/, "", v) }
    v == val { print }
  ' "$1"
}

patients() { awk -F, 'NR > 1 && $1 != last { n++; last = $1 } END { print n }' "$1"; }

# evaluate_run DATASET ARM SYN: scores SYN against the dataset's train/holdout.
evaluate_run() {
  local d=$1 arm=$2 syn=$3
  local extra=()
  [ -n "$OUTCOME" ] && extra=(--outcome "$OUTCOME")
  "$HG" evaluate --real "$REAL" --synthetic "$syn" --holdout "$HOLDOUT" --id "$ID" \
    --time "$TIME" "${extra[@]}" --out "$OUT/$d/$arm" >"$OUT/$d/$arm.evaluate.log" 2>&1
}

# record DATASET ARM TRAIN_S EPOCHS SAMPLE_S ACCEPTANCE SAMPLER NOTE TRAIN_WALL_S
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$runs"; }

train_wall() { cat "$OUT/$1/$2.train_s" 2>/dev/null || echo "?"; }

acceptance_of() { sed -n 's/.*guardrail acceptance \([0-9.]*\)%.*/\1/p' "$1" | tail -n 1; }

run_dataset() {
  local d=$1 src train_s n
  case $d in
    physionet)
      src=data/physionet2012_set_a.csv ID=stay_id TIME=hour OUTCOME=in_hospital_death
      train_s=$PHYSIONET_TRAIN_S
      split_patients "$src" 2000 "$OUT/$d/real.csv" 1000 "$OUT/$d/holdout.csv"
      ;;
    pbc)
      src=data/pbcseq.csv ID=id TIME=day OUTCOME=""
      train_s=$PBC_TRAIN_S
      # A random split: the file's last patients, enrolled last, have the shortest
      # follow-up (4.1 visits against 6.8), so they were no fair holdout for privacy.
      split_patients_shuffled "$src" 250 "$OUT/$d/real.csv" 62 "$OUT/$d/holdout.csv" 1
      ;;
  esac
  REAL=$OUT/$d/real.csv HOLDOUT=$OUT/$d/holdout.csv
  n=$(patients "$REAL")
  echo "== $d: $n training patients, $(patients "$HOLDOUT") held out, ${train_s}s of training per arm"

  for arm in seed default; do
    has_arm "$arm" || continue
    echo "-- $d/$arm: training"
    local flags=() t_start
    # shellcheck disable=SC2206 # the flags are words
    [ "$arm" = default ] && flags=($DEFAULT_FLAGS)
    # Each arm trains its preset's epochs or until the time limit, whichever comes
    # first: the default preset's 100 epochs end before the limit on a small cohort
    # (pbcseq), where more epochs buy fidelity with privacy (scripts/privacy_seeds.sh).
    t_start=$(now)
    "$HG" train --preset "$arm" --data "$REAL" --id "$ID" --time "$TIME" --hidden "$HIDDEN" \
      --time-limit "$train_s" "${flags[@]}" --out "$OUT/$d/$arm.hg" \
      >"$OUT/$d/$arm.train.log" 2>&1
    secs "$t_start" "$(now)" >"$OUT/$d/$arm.train_s"
  done

  # Seed: the original samples with DDPM over all T steps behind its guardrail. Its
  # acceptance is measured on 200 sequences; the cohort itself is then written with
  # --no-guardrail (out-of-range values clamped), since a low acceptance would make
  # the original's own loop run for hours.
  local acc t0 t1
  if has_arm seed; then
    echo "-- $d/seed: guardrail probe and sampling"
    "$HG" sample --model "$OUT/$d/seed.hg" --n 200 --max-attempts 200 \
      --out "$OUT/$d/seed_probe.csv" >"$OUT/$d/seed_probe.log" 2>&1 || true
    acc=$(acceptance_of "$OUT/$d/seed_probe.log")
    if [ -z "$acc" ]; then
      acc=$(sed -n 's/.*(acceptance \([0-9.]*\)%).*/\1/p' "$OUT/$d/seed_probe.log" | tail -n 1)
    fi
    t0=$(now)
    "$HG" sample --model "$OUT/$d/seed.hg" --n "$n" --no-guardrail --out "$OUT/$d/seed.csv" \
      >"$OUT/$d/seed.sample.log" 2>&1
    t1=$(now)
    record "$d" seed "$train_s" "$(epochs_of "$OUT/$d/seed.hg")" "$(secs "$t0" "$t1")" "${acc:-0}" \
      "ddpm 500" "guardrail acceptance from a 200-sequence probe; cohort written without it" \
      "$(train_wall "$d" seed)"
    evaluate_run "$d" seed "$OUT/$d/seed.csv"
  fi

  # Default: sample's defaults (x0 clamped, EMA weights, statics held), K swept.
  for k in $KS; do
    echo "-- $d/default: sampling with K = $k"
    local sampler=(--sampler ddim --sample-steps "$k")
    [ "$k" = 500 ] && sampler=(--sampler ddpm)
    t0=$(now)
    "$HG" sample --model "$OUT/$d/default.hg" --n "$n" "${sampler[@]}" \
      --out "$OUT/$d/default_k$k.csv" >"$OUT/$d/default_k$k.sample.log" 2>&1
    t1=$(now)
    record "$d" "default_k$k" "$train_s" "$(epochs_of "$OUT/$d/default.hg")" "$(secs "$t0" "$t1")" \
      "$(acceptance_of "$OUT/$d/default_k$k.sample.log")" "${sampler[*]}" "" \
      "$(train_wall "$d" default)"
    evaluate_run "$d" "default_k$k" "$OUT/$d/default_k$k.csv"
  done

  # Subgroups, generated on request (`--condition`) and each scored against the real
  # subgroup: stays that ended in death, and a unit whose schedules differ (an arterial
  # line in 79% of cardiac surgery hours against 35% of medical ones); in pbcseq, the
  # patients who died (5.2 visits against 7.5 for the censored).
  local groups
  case $d in
    physionet) groups="died:in_hospital_death=yes cardiac_surgery:icu_type=cardiac_surgery" ;;
    pbc) groups="died:status=2" ;;
  esac
  local g name cond col val m
  for g in $groups; do
    name=${g%%:*} cond=${g#*:}
    col=${cond%%=*} val=${cond#*=}
    echo "-- $d/default: conditional subgroup $cond"
    subgroup "$REAL" "$col" "$val" >"$OUT/$d/real_$name.csv"
    subgroup "$HOLDOUT" "$col" "$val" >"$OUT/$d/holdout_$name.csv"
    m=$(patients "$OUT/$d/real_$name.csv")
    t0=$(now)
    "$HG" sample --model "$OUT/$d/default.hg" --n "$m" --sampler ddim --sample-steps 50 \
      --condition "$cond" --guidance "${GUIDANCE:-1}" \
      --out "$OUT/$d/$name.csv" >"$OUT/$d/$name.sample.log" 2>&1
    t1=$(now)
    record "$d" "subgroup_$name" "$train_s" "$(epochs_of "$OUT/$d/default.hg")" "$(secs "$t0" "$t1")" \
      "$(acceptance_of "$OUT/$d/$name.sample.log")" "ddim 50, --condition $cond" \
      "$(sed -n 's/^conditions: //p' "$OUT/$d/$name.sample.log")" "$(train_wall "$d" default)"
    REAL=$OUT/$d/real_$name.csv HOLDOUT=$OUT/$d/holdout_$name.csv OUTCOME="" \
      evaluate_run "$d" "subgroup_$name" "$OUT/$d/$name.csv"
  done
}

for d in $DATASETS; do
  mkdir -p "$OUT/$d"
  rm -rf "$OUT/$d/seeds"  # another run's checkpoints
  run_dataset "$d"
  # Sampling noise, where a cohort is small enough to sample several times.
  case " $SEED_SWEEP " in *" $d "*) scripts/sampling_seeds.sh "$d" ;; esac
done

md=${RESULTS_MD:-docs/RESULTS.md}
mkdir -p "$(dirname "$md")"
/usr/bin/env python3 scripts/results_table.py "$OUT" "$HIDDEN" "$DEFAULT_FLAGS" >"$md.tmp"
mv "$md.tmp" "$md"
echo "wrote $md"
