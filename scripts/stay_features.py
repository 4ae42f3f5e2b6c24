#!/usr/bin/env python3
"""What gives synthetic stays away: per-stay features, real against synthetic.

  scripts/stay_features.py REAL.csv SYNTHETIC.csv [TOP]

Both files are long-format CSVs with the same columns, the id first and the time
second. For each patient it computes, over the time-varying columns (those that
change within some real patient): the steps measuring nothing, the longest run of
them, the most columns measured in one step, the distinct sets of columns measured
together, and per column the observations, the first observed step, the longest gap,
the spread of the gaps and the exact repeats (an observation equal, as written, to the
one before). It prints the TOP (40) features whose real and synthetic distributions
differ most (two-sample Kolmogorov-Smirnov statistic) with both means, then the TOP/2
column pairs whose co-observation (Jaccard index of the steps measuring each) differs
most. A discriminator needs only a few features with large statistics. Standard
library only.
"""
import collections
import csv
import sys


def load(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        stays = collections.OrderedDict()
        for row in reader:
            stays.setdefault(row[0], []).append(row)
    return header, stays


def varying_columns(header, stays):
    out = set()
    for rows in stays.values():
        for i in range(2, len(header)):
            if i not in out and any(r[i] != rows[0][i] for r in rows):
                out.add(i)
    return sorted(out)


def features(header, stays, cols):
    out = collections.defaultdict(list)
    for rows in stays.values():
        counts = [sum(1 for i in cols if row[i] != "") for row in rows]
        out["empty steps"].append(sum(1 for c in counts if c == 0))
        run = longest = 0
        for c in counts:
            run = run + 1 if c == 0 else 0
            longest = max(longest, run)
        out["longest empty run"].append(longest)
        out["most measured in a step"].append(max(counts))
        out["distinct measured sets"].append(
            len(set(tuple(row[i] != "" for i in cols) for row in rows)))
        for i in cols:
            steps = [k for k, row in enumerate(rows) if row[i] != ""]
            gaps = [b - a for a, b in zip(steps, steps[1:])]
            name = header[i]
            out[f"{name} observations"].append(len(steps))
            out[f"{name} first step"].append(steps[0] if steps else len(rows))
            out[f"{name} longest gap"].append(max(gaps) if gaps else len(rows))
            if len(gaps) > 1:
                mean = sum(gaps) / len(gaps)
                out[f"{name} gap spread"].append((sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5)
            values = [rows[k][i] for k in steps]
            out[f"{name} repeats"].append(sum(1 for a, b in zip(values, values[1:]) if a == b))
    return out


def ks(a, b):
    if not a or not b:
        return 0.0
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        while i < len(a) and a[i] == x:
            i += 1
        while j < len(b) and b[j] == x:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return d


def jaccards(stays, cols):
    on = [[row[i] != "" for i in cols] for rows in stays.values() for row in rows]
    out = {}
    for a in range(len(cols)):
        for b in range(a + 1, len(cols)):
            both = sum(1 for o in on if o[a] and o[b])
            either = sum(1 for o in on if o[a] or o[b])
            out[(a, b)] = both / either if either else 0.0
    return out


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    top = int(argv[3]) if len(argv) == 4 else 40
    header, real = load(argv[1])
    header2, syn = load(argv[2])
    if header2 != header:
        sys.exit(f"{argv[2]}: columns differ from {argv[1]}")
    cols = varying_columns(header, real)
    fr, fs = features(header, real, cols), features(header, syn, cols)
    rows = sorted(((ks(fr[k], fs[k]), k) for k in fr), reverse=True)[:top]
    print(f"{'KS':>6}  {'feature':32} {'real mean':>10} {'synthetic':>10}")
    for d, k in rows:
        mr = sum(fr[k]) / max(len(fr[k]), 1)
        ms = sum(fs[k]) / max(len(fs[k]), 1)
        print(f"{d:6.3f}  {k:32} {mr:10.2f} {ms:10.2f}")
    jr, js = jaccards(real, cols), jaccards(syn, cols)
    pairs = sorted(((abs(jr[p] - js[p]), p) for p in jr), reverse=True)[:max(top // 2, 1)]
    print(f"\n{'diff':>6}  {'measured together':32} {'real':>10} {'synthetic':>10}")
    for d, (a, b) in pairs:
        print(f"{d:6.3f}  {header[cols[a]] + ' & ' + header[cols[b]]:32} {jr[(a, b)]:10.3f} {js[(a, b)]:10.3f}")


if __name__ == "__main__":
    main(sys.argv)
