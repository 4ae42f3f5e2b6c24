#!/usr/bin/env python3
"""Keeps only a cohort's observation schedule, to ask whether it alone gives it away.

  scripts/schedule_only.py REAL.csv IN.csv OUT.csv [SEED]

Writes IN.csv to OUT.csv with every observed cell of a time-varying column (one that
changes within some patient of REAL.csv) replaced by a value drawn at random from that
column's observed values in REAL.csv, and every patient's static columns (the rest,
after id and time) replaced by those of a patient of REAL.csv drawn at random. Which
cells are observed, the ids, times and lengths stay. Run it on the real and on the
synthetic cohort, then `healthgym evaluate` the two outputs (with the real cohort's
schema, `healthgym schema`): what the discriminative score still finds is in the
schedules. Standard library only.
"""
import csv
import random
import sys


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    real_path, in_path, out_path = argv[1:4]
    rng = random.Random(int(argv[4]) if len(argv) == 5 else 1)
    with open(real_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    varying, first, last_id = set(), None, None
    patients = []  # first row of each real patient
    for row in rows[1:]:
        if row[0] != last_id:
            first, last_id = row, row[0]
            patients.append(row)
            continue
        for i in range(2, len(row)):
            if row[i] != first[i]:
                varying.add(i)
    statics = [i for i in range(2, len(header)) if i not in varying]
    pools = {i: [r[i] for r in rows[1:] if r[i] != ""] for i in varying}
    with open(in_path, newline="", encoding="utf-8") as f:
        cohort = list(csv.reader(f))
    if cohort[0] != header:
        sys.exit(f"{in_path}: columns differ from {real_path}")
    with open(out_path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        last_id, donor = None, None
        for row in cohort[1:]:
            if row[0] != last_id:
                last_id, donor = row[0], rng.choice(patients)
            new = list(row)
            for i in statics:
                new[i] = donor[i]
            for i in varying:
                if row[i] != "" and pools[i]:
                    new[i] = rng.choice(pools[i])
            out.writerow(new)


if __name__ == "__main__":
    main(sys.argv)
