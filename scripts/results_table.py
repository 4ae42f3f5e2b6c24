#!/usr/bin/env python3
"""Writes docs/RESULTS.md (to stdout) from scripts/results.sh's work directory:
runs.tsv (one line per synthetic cohort) and each cohort's evaluate report.json."""
import json
import os
import platform
import subprocess
import sys

out, hidden = sys.argv[1], sys.argv[2]
default_flags = sys.argv[3] if len(sys.argv) > 3 else ""

COLUMNS = [  # (header, summary path, lower is better?)
    ("disc.", ("discriminative", "mean"), True),
    ("KS", ("mean_ks",), True),
    ("TVD", ("mean_tvd",), True),
    ("miss.", ("missing_rate_mad",), True),
    ("corr.", ("corr_mad",), True),
    ("trend", ("trend_corr_mad",), True),
    ("cycle", ("cycle_corr_mad",), True),
    ("ACF", ("acf_mad",), True),
    ("static viol.", ("static_violation_rate",), True),
    ("pred. MAE", ("predictive", "synthetic_mae"), True),
    ("outcome AUROC", ("outcome_auroc", "tstr"), False),
    ("DCR share", ("dcr_share_train",), None),
    ("MIA AUC", ("mia_auc",), None),
    ("MIA p", ("mia_p_value",), None),
    ("copies", ("exact_copies",), True),
]


def get(summary, path):
    v = summary
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}"


def cell(summary, path):
    """A summary value; the privacy shares and AUC with their 95% intervals."""
    if path == ("mia_p_value",):
        p = get(summary, path)
        return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")
    text = fmt(get(summary, path))
    ci = {("mia_auc",): "mia_auc_ci95", ("dcr_share_train",): "dcr_share_train_ci95"}.get(path)
    ci = get(summary, (ci,)) if ci else None
    return text + (f" ± {ci:.3f}" if ci is not None else "")


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def print_seed_sweep(d, seeds_dir):
    """Mean ± standard deviation over the run's cohort and scripts/sampling_seeds.sh's."""
    print(f"Over sampling seeds (`scripts/sampling_seeds.sh {d}`): the same two checkpoints "
          "sampled again with other seeds, each metric's mean ± standard deviation over "
          "those cohorts and the run's own (seed preset: DDPM 500 without the guardrail; "
          "default: DDIM 25).\n")
    cols = [c for c in COLUMNS if c[0] not in ("MIA p", "copies")]
    head = ["cohort", "cohorts"] + [c[0] for c in cols]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for arm, label in (("seed", "seed (original)"), ("default_k25", "default, k25")):
        reps = [os.path.join(out, d, arm, "report.json")]
        reps += sorted(os.path.join(seeds_dir, e, "report.json") for e in os.listdir(seeds_dir)
                       if e.startswith(arm + "_s") and os.path.isdir(os.path.join(seeds_dir, e)))
        sums = [json.load(open(r))["summary"] for r in reps if os.path.exists(r)]
        cells = [label, str(len(sums))]
        for c in cols:
            v = [get(x, c[1]) for x in sums]
            v = [x for x in v if isinstance(x, (int, float))]
            if not v:
                cells.append("–")
                continue
            m = sum(v) / len(v)
            sd = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
            cells.append(f"{m:.3f} ± {sd:.3f}")
        print("| " + " | ".join(cells) + " |")
    print()


runs = []
with open(os.path.join(out, "runs.tsv")) as f:
    for line in f:
        fields = line.rstrip("\n").split("\t")
        d, arm, train_s, epochs, sample_s, acc, sampler, note = fields[:8]
        train_wall = fields[8] if len(fields) > 8 else "?"  # runs before it was recorded
        if arm == "died":  # rows kept from runs before the subgroups had their prefix
            arm = "subgroup_died"
        rep = os.path.join(out, d, arm, "report.json")
        summary = json.load(open(rep))["summary"] if os.path.exists(rep) else {}
        runs.append(dict(d=d, arm=arm, train_s=train_s, train_wall=train_wall, epochs=epochs,
                         sample_s=sample_s, acc=acc, sampler=sampler, note=note, s=summary))

# RESULTS_COMMIT names the binary's commit when HEAD moved on during the run.
commit = os.environ.get("RESULTS_COMMIT") or subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
names = {"physionet": "PhysioNet 2012 (2000 training stays, 1000 held out)",
         "pbc": "pbcseq (250 training patients, 62 held out, drawn at random)"}

print("# Results: the original (`--preset seed`) against the default\n")
print("Regenerated by `scripts/results.sh` (this file is its output; do not edit by hand).")
print(f"Machine: {machine()}. Commit {commit}. Both arms: U-Net width {hidden}, "
      "the same training time limit (`train --time-limit`; an arm stops earlier when it has "
      "trained its preset's epochs, the default's 100), everything else from their preset" +
      (f" (the default arm also `{default_flags}`)" if default_flags else "") +
      ". Each cohort is sampled to the training cohort's size and scored by "
      "`healthgym evaluate` against the training patients, with the held-out patients for "
      "privacy and the outcome model.\n")
if os.environ.get("RESULTS_NOTE"):  # what the run shared the machine with, if anything
    print(os.environ["RESULTS_NOTE"] + "\n")
print("Columns (all from `report.json`'s summary): disc. = discriminative score "
      "(|accuracy − 0.5| of a GRU telling real from synthetic, 0 ideal); KS, TVD = mean "
      "Kolmogorov–Smirnov statistic over reals and total variation distance over labels; "
      "miss. = mean |missing-rate difference|; corr., trend, cycle = mean |difference| of "
      "the correlation matrices of values, of per-patient trends and of detrended cycles "
      "(averaged over patients with Fisher's z, each weighing n − 3 for its n shared steps; "
      "over the pairs at least 20 patients estimate in both cohorts, as rarer pairs are "
      "noise); "
      "ACF = mean |autocorrelation difference|; static viol. = share of synthetic patients "
      "whose static variables change over time; pred. MAE = next-step prediction error of a "
      "GRU trained on synthetic, tested on real; outcome AUROC = in-hospital death predicted "
      "from the first half of a stay, trained on synthetic, tested on held-out real "
      "(higher is better); DCR share = share of synthetic patients closer to a training "
      "patient than to a held-out one, the larger set taken as subsets of the smaller's "
      "size (the expectation over all of them; 0.5 ideal), ± its 95% interval over the synthetic patients; MIA AUC = membership inference "
      "over every training and held-out patient, each scored by its distance to the "
      "nearest synthetic one (0.5 ideal), ± its 95% interval (DeLong); MIA p = the "
      "one-sided Mann–Whitney p-value of training patients sitting no nearer the synthetic "
      "ones than held-out patients (small p: evidence of leakage); copies = synthetic patients identical to a training patient. Sampling time "
      "is the wall time of `healthgym sample` for the whole cohort. The row *two real "
      "halves* is the floor: one random half of the training patients scored against the "
      "other (`report.json`'s `summary.real_halves`; with half the patients on each side it "
      "is a little higher than the noise in a full-size comparison).\n")

for d in dict.fromkeys(r["d"] for r in runs):
    rows = [r for r in runs if r["d"] == d]
    print(f"## {names.get(d, d)}\n")
    seed = next((r for r in rows if r["arm"] == "seed"), None)
    default = next((r for r in rows if r["arm"].startswith("default")), None)
    trained = lambda r: f"{r['epochs']} epochs in {r['train_wall']} s" if r else "?"
    print(f"Training: limit {rows[0]['train_s']} s per arm; seed preset {trained(seed)}, "
          f"default {trained(default)} (wall time of `healthgym train`).\n")
    head = ["cohort", "sampler", "sampling s", "accepted %"] + [c[0] for c in COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        if r["arm"].startswith("subgroup_"):
            continue
        label = "seed (original)" if r["arm"] == "seed" else f"default, {r['arm'][8:]}"
        try:
            acc = f"{float(r['acc']):.1f}"
        except ValueError:
            acc = "–"
        cells = [label, r["sampler"], r["sample_s"], acc]
        cells += [cell(r["s"], c[1]) for c in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    halves = next((r["s"]["real_halves"] for r in rows if "real_halves" in r["s"]), None)
    if halves:
        cells = ["two real halves", "–", "–", "–"]
        cells += [fmt(get(halves, c[1])) for c in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    print()
    seeds_dir = os.path.join(out, d, "seeds")
    if os.path.isdir(seeds_dir):
        print_seed_sweep(d, seeds_dir)
    notes = [r for r in rows if r["arm"] == "seed" and r["note"]]
    for r in notes:
        print(f"Seed preset: {r['note']}.\n")
    for r in rows:
        if not r["arm"].startswith("subgroup_"):
            continue
        cond = r["sampler"].split("--condition ", 1)[-1]
        print(f"### Conditional subgroup: `--condition {cond}`\n")
        print(f"{r['note']}. Scored against the real patients with {cond} (training and "
              "held-out subsets); sampling "
              f"{r['sample_s']} s with {r['sampler']}.\n")
        head = ["cohort"] + [c[0] for c in COLUMNS if c[0] != "outcome AUROC"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        cells = [f"{cond} (conditional)"] + [cell(r["s"], c[1]) for c in COLUMNS
                                             if c[0] != "outcome AUROC"]
        print("| " + " | ".join(cells) + " |")
        print()
