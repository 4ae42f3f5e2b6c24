# Sourced by the measurement scripts (results, precision, observation A/B).
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
