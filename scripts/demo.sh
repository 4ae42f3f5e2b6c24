#!/usr/bin/env bash
# The main job on the bundled data: install what is missing, build, train a
# small model on PhysioNet 2012 ICU stays, sample synthetic stays, write CSV.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh --target healthgym
mkdir -p out
./build/healthgym train --data data/physionet2012_set_a.csv --id stay_id --time hour \
  --out out/physionet.hg --epochs "${EPOCHS:-10}" --hidden "${HIDDEN:-128}"
./build/healthgym sample --model out/physionet.hg --n "${N:-100}" --out out/physionet_synthetic.csv
./build/healthgym info out/physionet.hg | head -12
echo "synthetic cohort: out/physionet_synthetic.csv ($(($(wc -l < out/physionet_synthetic.csv) - 1)) rows)"
