# shellcheck shell=bash
# Sourced by the measurement scripts (results, privacy seeds, precision, observation A/B).
# split_patients SRC N1 F1 N2 F2: splits a long-format CSV by patient (rows of a
# patient are contiguous, the id in the first column): the header and the first N1
# patients to F1, the header and the next N2 to F2.
split_patients() {
  awk -F, -v n1="$2" -v f1="$3" -v n2="$4" -v f2="$5" '
    NR == 1 { print > f1; print > f2; next }
    $1 != last { n++; last = $1 }
    n <= n1 { print > f1; next }
    n <= n1 + n2 { print > f2 }
  ' "$1"
}

# split_patients_shuffled SRC N1 F1 N2 F2 SEED: as split_patients, with the patients
# taken in a random order fixed by SEED (rows keep the file's order). For files whose
# order carries meaning: pbcseq's ids follow enrolment, and its last patients have
# the shortest follow-up.
split_patients_shuffled() {
  python3 - "$@" <<'PY'
import random
import sys

src, n1, f1, n2, f2, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
with open(src) as f:
    header = f.readline()
    rows = f.readlines()
ids = list(dict.fromkeys(r.split(",", 1)[0] for r in rows))
random.Random(seed).shuffle(ids)
first, second = set(ids[:n1]), set(ids[n1:n1 + n2])
for path, keep in ((f1, first), (f2, second)):
    with open(path, "w") as out:
        out.write(header)
        out.writelines(r for r in rows if r.split(",", 1)[0] in keep)
PY
}

# epochs_of CHECKPOINT: the epochs it was trained for (healthgym's binary in $HG).
epochs_of() { "$HG" info "$1" --json | sed -n 's/^  "epoch": \([0-9]*\),*$/\1/p' | head -n 1; }
