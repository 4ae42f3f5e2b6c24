#pragma once
// Statistical building blocks for evaluation, each checked against scipy /
// numpy on small fixed inputs. Plain C++: no LibTorch.
#include <cstdint>
#include <vector>

namespace healthgym::metrics {

// Sample functions (ks_statistic, wasserstein1, iqr, quantile, histogram_density)
// treat non-finite values as missing and drop them first (scipy's nan_policy='omit').

// Two-sample Kolmogorov-Smirnov statistic D (scipy.stats.ks_2samp's statistic).
// Both samples non-empty, else NaN.
double ks_statistic(std::vector<double> a, std::vector<double> b);

// Wasserstein-1 distance between empirical distributions
// (scipy.stats.wasserstein_distance). Empty input gives NaN.
double wasserstein1(std::vector<double> a, std::vector<double> b);

// Interquartile range with numpy's default linear interpolation (np.percentile).
double iqr(std::vector<double> x);
double quantile(std::vector<double> x, double q);  // q in [0,1], numpy 'linear'

// Total variation distance between two count vectors over the same categories:
// 0.5 * sum |p - q| after normalising each. NaN if either sums to 0.
double total_variation(const std::vector<double>& counts_a, const std::vector<double>& counts_b);

// Pearson correlation of two equal-length series; NaN when either is constant
// (all values identical) or fewer than 2 points; a NaN input gives NaN. Throws
// std::invalid_argument on different lengths (as do detrend_linear and auroc).
double pearson(const std::vector<double>& x, const std::vector<double>& y);

// Pearson correlation matrix of columns, using for each pair only the rows where
// both are finite (pairwise-complete, as pandas DataFrame.corr). cols[j][i] is
// row i of column j. Entries with < 3 shared rows or constant columns are NaN.
std::vector<std::vector<double>> pairwise_correlation(const std::vector<std::vector<double>>& cols);

// Linear detrending as scipy.signal.detrend(type='linear') at positions t:
// returns the residuals of the least-squares line through (t, y).
std::vector<double> detrend_linear(const std::vector<double>& t, const std::vector<double>& y);

// Fisher z (atanh) with r clipped to [-0.999999, 0.999999], and its inverse.
double fisher_z(double r);
double fisher_z_inverse(double z);

// Sample autocorrelation at a lag, as statsmodels' acf (adjusted=False):
// sum_{t}(x_t - m)(x_{t+lag} - m) / sum_t (x_t - m)^2. NaN if undefined (lag < 0,
// lag >= length, a constant series, or a NaN in x).
double autocorrelation(const std::vector<double>& x, int lag);

// Area under the ROC curve from scores and 0/1 labels (ties count 1/2),
// as sklearn.metrics.roc_auc_score. NaN when only one class is present or a score
// is NaN. Any non-zero label is the positive class.
double auroc(const std::vector<double>& scores, const std::vector<int>& labels);

// The AUROC with its uncertainty: DeLong's standard error (NaN under two of either
// class) and the one-sided p-value of the Mann-Whitney test that positives do not
// score higher than negatives (normal approximation with the tie correction, no
// continuity correction: scipy.stats.mannwhitneyu(pos, neg, alternative="greater",
// use_continuity=False, method="asymptotic")). All NaN where auroc is.
struct AurocTest {
  double auc;
  double se;
  double p_greater;
};
AurocTest auroc_test(const std::vector<double>& scores, const std::vector<int>& labels);

// The probability that m items drawn without replacement from n include at least
// one of k marked ones: 1 - C(n-k, m) / C(n, m). std::invalid_argument unless
// 0 <= k <= n and 0 <= m <= n.
double subset_hit_probability(int64_t n, int64_t k, int64_t m);

// Mean absolute difference over entries finite in both matrices; NaN if none.
double mean_abs_diff(const std::vector<std::vector<double>>& a,
                     const std::vector<std::vector<double>>& b);

// Mean and the half-width of a 95% t interval (n-1 degrees of freedom):
// scipy.stats.t.ppf(0.975, n-1) * std(ddof=1) / sqrt(n). Empty: both NaN; n=1: ci95 NaN.
struct MeanCi {
  double mean = 0, ci95 = 0;
};
MeanCi mean_ci95(const std::vector<double>& x);

// Histogram of x over [lo, hi] in `bins` equal bins (values outside are clamped
// into the end bins), returned as densities that integrate to 1 (np.histogram(
// np.clip(x, lo, hi), bins, (lo, hi), density=True)). NaN densities when x has no
// finite value or the range is not finite or lo > hi.
std::vector<double> histogram_density(const std::vector<double>& x, double lo, double hi, int bins);

// The bins+1 edges histogram_density uses: np.linspace(lo, hi, bins+1), with numpy's
// widening of an empty range (lo == hi) to [lo - 0.5, hi + 0.5].
std::vector<double> histogram_edges(double lo, double hi, int bins);

}  // namespace healthgym::metrics
