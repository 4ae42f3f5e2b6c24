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
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        cols = [[] for _ in header]
        for row in rows:
            for i, cell in enumerate(row):
                cols[i].append(cell != "")
    return header, cols


def jaccard(a, b):
    both = sum(1 for x, y in zip(a, b) if x and y)
    either = sum(1 for x, y in zip(a, b) if x or y)
    return both / either if either else 0.0


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    header, real = observed(argv[1])
    syn = []
    for p in argv[2:]:
        h, cols = observed(p)
        if h != header:
            sys.exit(f"{p}: columns differ from {argv[1]}")
        syn.append(cols)
    names = range(2, len(header))
    partial = [i for i in names if 0 < sum(real[i]) < len(real[i])]
    print("pair\treal\t" + "\t".join(argv[2:]))
    gaps = [[] for _ in syn]
    for n, a in enumerate(partial):
        for b in partial[n + 1:]:
            j = jaccard(real[a], real[b])
            if j < 0.9:
                continue
            js = [jaccard(s[a], s[b]) for s in syn]
            for g, x in zip(gaps, js):
                g.append(abs(j - x))
            print(f"{header[a]}/{header[b]}\t{j:.3f}\t" + "\t".join(f"{x:.3f}" for x in js))
    print("mean |co-observation difference|\t\t" +
          "\t".join(f"{sum(g) / max(len(g), 1):.3f}" for g in gaps))
    rate = lambda c: 1 - sum(c) / len(c)
    mads = [sum(abs(rate(real[i]) - rate(s[i])) for i in names) / len(names) for s in syn]
    print("mean |missing-rate difference|\t\t" + "\t".join(f"{m:.3f}" for m in mads))


if __name__ == "__main__":
    main(sys.argv)
