#!/usr/bin/python3
"""Reference values for tests/test_metrics.cpp (scipy 1.10.1, numpy 1.24).

Run: /usr/bin/python3 scripts/metrics_reference.py
sklearn, statsmodels and pandas are not installed here, so their definitions are
computed with numpy/scipy as they document them:
  - roc_auc_score: Mann-Whitney U / (n_pos * n_neg) (scipy.stats.mannwhitneyu),
    checked against the brute-force pair count with ties as 1/2; DeLong's standard
    error from that pair count, the one-sided p-value from mannwhitneyu;
  - statsmodels acf(adjusted=False): sum (x_t - m)(x_{t+k} - m) / sum (x_t - m)^2;
  - pandas DataFrame.corr(): np.corrcoef on the rows where both columns are
    finite, NaN below 3 shared rows (our contract) or for a constant column.
NaN inputs to the sample metrics are dropped first (nan_policy='omit').
"""
import numpy as np
from scipy import signal, stats

np.set_printoptions(precision=17)
nan = float("nan")


def show(name, value):
    if np.ndim(value) == 0:
        print(f"{name} = {float(value)!r}")
    else:
        print(f"{name} = {{{', '.join(repr(float(v)) for v in np.ravel(value))}}}")


def omit(x):
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


# Kolmogorov-Smirnov, ties inside and across samples, unequal sizes.
ks_cases = {
    "ks1": ([1, 2, 2, 3, 4], [2, 2, 3, 5, 6, 7, 7]),
    "ks2": ([0.5, 1.5, 1.5, 2.5], [1.5, 1.5, 1.5]),
    "ks3": ([3.2, -1.0, 0.7, 0.7, 9.1, 4.4, 2.0, 2.0, 5.5], [0.7, 2.0, 8.8, -4.0]),
    "ks_nan": ([1, nan, 3, 2], [2.5, nan, 0.5]),
}
for k, (a, b) in ks_cases.items():
    show(k, stats.ks_2samp(omit(a), omit(b)).statistic)

# Wasserstein-1.
w_cases = {
    "w1": ([1, 2, 2, 3, 4], [2, 2, 3, 5, 6, 7, 7]),
    "w2": ([0, 10], [5]),
    "w3": ([3.2, -1.0, 0.7, 0.7, 9.1, 4.4, 2.0, 2.0, 5.5], [0.7, 2.0, 8.8, -4.0]),
    "w_nan": ([1, nan, 3, 2], [2.5, nan, 0.5]),
}
for k, (a, b) in w_cases.items():
    show(k, stats.wasserstein_distance(omit(a), omit(b)))

# Quantiles (numpy 'linear') and IQR.
qx = [7, 1, 3, 3, 10, 2.5]
for q in [0, 0.005, 0.25, 0.5, 0.75, 0.995, 1]:
    show(f"quantile({q})", np.percentile(qx, q * 100))
show("iqr", np.subtract(*np.percentile(qx, [75, 25])))
show("iqr_nan", np.subtract(*np.nanpercentile([4, nan, 1, 2, 8, nan], [75, 25])))
show("quantile_0.1_of_0.1x3", np.quantile([0.1, 0.2, 0.3], 0.1))

# Total variation.
ca, cb = np.array([3, 1, 0], float), np.array([1, 1, 2], float)
show("tvd", 0.5 * np.abs(ca / ca.sum() - cb / cb.sum()).sum())

# Pearson.
show("pearson", stats.pearsonr([1, 2, 3, 4, 5.5], [2, 1, 4, 3, 7]).statistic)
show("pearson_neg2", np.corrcoef([1, 2], [5, 3])[0, 1])

# Pairwise-complete correlation.
cols = np.array([
    [1.0, 2.0, nan, 4.0, 5.0, 6.0],
    [2.0, 1.0, 3.0, nan, 7.0, 5.0],
    [nan, nan, 1.0, 2.0, nan, 9.0],  # only 2 rows shared with column 1
    [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # constant
    [0.5, nan, 0.1, 0.9, 0.2, nan],
])
p = len(cols)
R = np.full((p, p), nan)
for i in range(p):
    for j in range(p):
        m = np.isfinite(cols[i]) & np.isfinite(cols[j])
        if m.sum() >= 3 and np.ptp(cols[i][m]) > 0 and np.ptp(cols[j][m]) > 0:
            R[i, j] = np.corrcoef(cols[i][m], cols[j][m])[0, 1]
show("pairwise", R)

# Linear detrending.
show("detrend", signal.detrend([1, 4, 2, 8, 5, 7], type="linear"))
t = np.array([0, 1, 3, 4, 7], float)
y = np.array([2.0, 2.5, 1.0, 6.0, 4.0])
show("detrend_t", y - np.polyval(np.polyfit(t, y, 1), t))

# Fisher z.
show("fisher_z(0.5)", np.arctanh(0.5))
show("fisher_z(1)", np.arctanh(0.999999))
show("fisher_z(-0.3)", np.arctanh(-0.3))
show("fisher_z_inverse(0.7)", np.tanh(0.7))

# Autocorrelation (statsmodels acf, adjusted=False).
x = np.array([1, 3, 2, 5, 4, 6, 8, 7], float)
d = x - x.mean()
for lag in range(4):
    show(f"acf({lag})", np.sum(d[: len(x) - lag] * d[lag:]) / np.sum(d * d))

# AUROC with tied scores.
scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1, 0.35])
labels = np.array([0, 0, 1, 1, 1, 0, 1, 1, 0])
pos, neg = scores[labels == 1], scores[labels == 0]
u = stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
brute = np.mean([(p_ > n_) + 0.5 * (p_ == n_) for p_ in pos for n_ in neg])
assert abs(u - brute) < 1e-15
show("auroc", u)
# DeLong's standard error from the pairwise kernel (not from mid-ranks, as the C++).
psi = np.array([[(p_ > n_) + 0.5 * (p_ == n_) for n_ in neg] for p_ in pos])
v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
show("auroc_se", np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)))
show("auroc_p_greater", stats.mannwhitneyu(pos, neg, alternative="greater", use_continuity=False,
                                           method="asymptotic").pvalue)

# Mean absolute difference over entries finite in both.
A = np.array([[1.0, 0.5, nan], [0.5, 1.0, -0.2]])
B = np.array([[1.0, 0.1, 0.3], [nan, 1.0, 0.4]])
m = np.isfinite(A) & np.isfinite(B)
show("mad", np.abs(A - B)[m].mean())

# Mean and 95% t interval.
for name, v in [("ci5", [0.12, 0.08, 0.15, 0.11, 0.05]), ("ci2", [1.0, 2.0]),
                ("ci31", np.linspace(0.0, 3.0, 31) ** 2)]:
    v = np.asarray(v, float)
    show(name + "_mean", v.mean())
    show(name + "_half", stats.t.ppf(0.975, len(v) - 1) * stats.sem(v))

# Histogram densities with clamping into the end bins.
hx = np.array([0, 0.1, 0.25, 0.5, 0.5, 0.99, 1, -3, 5])
dens, edges = np.histogram(np.clip(hx, 0, 1), 4, (0, 1), density=True)
show("hist", dens)
show("hist_edges", edges)
hx2 = np.array([0.3, 0.6, 0.9, 1.2, 0.45])
dens, edges = np.histogram(np.clip(hx2, 0.3, 1.2), 3, (0.3, 1.2), density=True)
show("hist2", dens)
show("hist2_edges", edges)
dens, edges = np.histogram([2.0, 2.0], 2, (2.0, 2.0), density=True)
show("hist_flat", dens)
show("hist_flat_edges", edges)

# Known answers for tests/test_fidelity.cpp (FidelityKnownAnswers): values pooled over rows.
hr_real, hr_syn = [80, 82, 90, 91, 100], [85, 86]
age_real, age_syn = [50, 50, 50, 60, 60, 70], [55, 55, 65]
show("fid_hr_ks", stats.ks_2samp(hr_real, hr_syn).statistic)
show("fid_hr_w1", stats.wasserstein_distance(hr_real, hr_syn))
show("fid_hr_iqr", np.subtract(*np.percentile(hr_real, [75, 25])))
show("fid_age_ks", stats.ks_2samp(age_real, age_syn).statistic)
show("fid_age_w1", stats.wasserstein_distance(age_real, age_syn))
show("fid_age_iqr", np.subtract(*np.percentile(age_real, [75, 25])))
show("fid_len_ks", stats.ks_2samp([3, 2, 1], [2, 1]).statistic)
show("fid_hr_step1_q", np.percentile([82, 91], [25, 75]))
