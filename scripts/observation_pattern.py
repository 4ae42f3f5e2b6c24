#!/usr/bin/env python3
"""Compares when variables are measured in a real and a synthetic cohort.

  scripts/observation_pattern.py REAL.csv SYN.csv [SYN2.csv ...]

For each pair of variables that the real data measures together (Jaccard index
of their observed cells >= 0.9), prints that index in the real cohort and in each
synthetic one, then the mean |missing-rate difference| per synthetic cohort. The
first two columns (id and time) are skipped. Standard library only.
"""
import csv
import sys


def observed(path):
    """The header, each column's observed cells as the bits of one integer, and the row count."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        cols = [0] * len(header)
        n = 0
        for n, row in enumerate(rows, 1):
            for i, cell in enumerate(row):
                if cell != "":
                    cols[i] |= 1 << (n - 1)
    return header, cols, n


def jaccard(a, b):
    either = (a | b).bit_count()
    return (a & b).bit_count() / either if either else 0.0


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    header, real, n_real = observed(argv[1])
    syn = []
    for p in argv[2:]:
        h, cols, n = observed(p)
        if h != header:
            sys.exit(f"{p}: columns differ from {argv[1]}")
        syn.append((cols, n))
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


if __name__ == "__main__":
    main(sys.argv)
