#!/usr/bin/env python3
"""Compares when variables are measured in a real and a synthetic cohort.

  scripts/observation_pattern.py REAL.csv SYN.csv [SYN2.csv ...]

For each pair of variables that the real data measures together (Jaccard index
of their observed cells >= 0.9), prints that index in the real cohort and in each
synthetic one, then the mean |missing-rate difference| per synthetic cohort, then
per variable its persistence, P(observed at a step | observed at the patient's
previous step), and the mean |persistence difference|; last, how many of the
time-varying variables (those that change within some real patient) each step
measures: the share of steps measuring none, the mean, standard deviation and 95th
percentile, and the largest gap between the two cohorts' distributions of that
count (Kolmogorov-Smirnov). The first two columns (id and time) are skipped; a
patient's rows are contiguous. Standard library only.
"""
import csv
import sys


def observed(path):
    """The header, each column's observed cells as the bits of one integer, the row count,
    and the rows followed by a row of the same patient (bits)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        cols = [0] * len(header)
        n = 0
        same_next = 0
        last_id = None
        for n, row in enumerate(rows, 1):
            if row and row[0] == last_id:
                same_next |= 1 << (n - 2)
            last_id = row[0] if row else None
            for i, cell in enumerate(row):
                if cell != "":
                    cols[i] |= 1 << (n - 1)
    return header, cols, n, same_next


def persistence(col, same_next):
    """P(observed at the next step | observed now), within patients."""
    now = col & same_next
    return (now & (col >> 1)).bit_count() / now.bit_count() if now else float("nan")


def time_varying(path):
    """Indices of the columns (after id and time) whose cells change within a patient."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        varying, first, last_id = set(), None, None
        for row in rows:
            if row[0] != last_id:
                first, last_id = row, row[0]
                continue
            for i in range(2, len(row)):
                if row[i] != first[i]:
                    varying.add(i)
    return sorted(varying)


def per_step_counts(path, columns):
    """For each row, how many of `columns` it observes."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        return [sum(1 for i in columns if row[i] != "") for row in rows]


def count_summary(counts):
    c = sorted(counts)
    n = len(c)
    mean = sum(c) / n
    sd = (sum((x - mean) ** 2 for x in c) / n) ** 0.5
    return [sum(1 for x in c if x == 0) / n, mean, sd, c[min(n - 1, int(0.95 * n))]]


def ks_counts(a, b):
    top = max(max(a), max(b))
    ca = [0] * (top + 2)
    cb = [0] * (top + 2)
    for x in a:
        ca[x] += 1
    for x in b:
        cb[x] += 1
    gap, fa, fb = 0.0, 0.0, 0.0
    for k in range(top + 1):
        fa += ca[k] / len(a)
        fb += cb[k] / len(b)
        gap = max(gap, abs(fa - fb))
    return gap


def jaccard(a, b):
    either = (a | b).bit_count()
    return (a & b).bit_count() / either if either else 0.0


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    header, real, n_real, real_next = observed(argv[1])
    syn, syn_next = [], []
    for p in argv[2:]:
        h, cols, n, nxt = observed(p)
        if h != header:
            sys.exit(f"{p}: columns differ from {argv[1]}")
        syn.append((cols, n))
        syn_next.append(nxt)
    names = range(2, len(header))
    partial = [i for i in names if 0 < real[i].bit_count() < n_real]
    print("pair\treal\t" + "\t".join(argv[2:]))
    gaps = [[] for _ in syn]
    for n, a in enumerate(partial):
        for b in partial[n + 1:]:
            j = jaccard(real[a], real[b])
            if j < 0.9:
                continue
            js = [jaccard(s[a], s[b]) for s, _ in syn]
            for g, x in zip(gaps, js):
                g.append(abs(j - x))
            print(f"{header[a]}/{header[b]}\t{j:.3f}\t" + "\t".join(f"{x:.3f}" for x in js))
    print("mean |co-observation difference|\t\t" +
          "\t".join(f"{sum(g) / max(len(g), 1):.3f}" for g in gaps))
    def rate(col, n):
        return 1 - col.bit_count() / n

    mads = [sum(abs(rate(real[i], n_real) - rate(s[i], n)) for i in names) / len(names)
            for s, n in syn]
    print("mean |missing-rate difference|\t\t" + "\t".join(f"{m:.3f}" for m in mads))

    print("\npersistence\treal\t" + "\t".join(argv[2:]))
    diffs = [[] for _ in syn]
    for i in partial:
        r = persistence(real[i], real_next)
        ps = [persistence(s[i], nxt) for (s, _), nxt in zip(syn, syn_next)]
        for d, x in zip(diffs, ps):
            if r == r and x == x:
                d.append(abs(r - x))
        print(f"{header[i]}\t{r:.3f}\t" + "\t".join(f"{x:.3f}" for x in ps))
    print("mean |persistence difference|\t\t" +
          "\t".join(f"{sum(d) / max(len(d), 1):.3f}" for d in diffs))

    columns = time_varying(argv[1])
    real_counts = per_step_counts(argv[1], columns)
    syn_counts = [per_step_counts(p, columns) for p in argv[2:]]
    print(f"\nvariables measured per step ({len(columns)} time-varying)\treal\t" +
          "\t".join(argv[2:]))
    summaries = [count_summary(real_counts)] + [count_summary(c) for c in syn_counts]
    for k, name in enumerate(["share of steps measuring none", "mean", "standard deviation",
                              "95th percentile"]):
        print(f"{name}\t" + "\t".join(f"{s[k]:.3f}" for s in summaries))
    print("KS distance of the counts\t\t" +
          "\t".join(f"{ks_counts(real_counts, c):.3f}" for c in syn_counts))


if __name__ == "__main__":
    main(sys.argv)
