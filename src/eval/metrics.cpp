#include "healthgym/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace healthgym::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Relative size of a centred sum of squares below which it is rounding error.
constexpr double kConstantTolerance = 1e-10;

// Missing values are absent, not numbers: drop them, then sort (callers often
// pass sorted data, so check first and skip the sort).
std::vector<double> finite_sorted(std::vector<double> x) {
  x.erase(std::remove_if(x.begin(), x.end(), [](double v) { return !std::isfinite(v); }), x.end());
  if (!std::is_sorted(x.begin(), x.end())) std::sort(x.begin(), x.end());
  return x;
}

// numpy's quantile with method='linear' on sorted, non-empty data, including
// its _lerp, which interpolates from the nearer end so q=1 returns the maximum.
double quantile_sorted(const std::vector<double>& s, double q) {
  const size_t n = s.size();
  const double virtual_index = static_cast<double>(n - 1) * q;
  double lo_idx = std::floor(virtual_index);
  const double gamma = virtual_index - lo_idx;
  size_t lo = static_cast<size_t>(std::max(0.0, lo_idx));
  if (lo > n - 1) lo = n - 1;
  const size_t hi = std::min(lo + 1, n - 1);
  const double a = s[lo], b = s[hi];
  const double diff = b - a;
  return gamma >= 0.5 ? b - diff * (1.0 - gamma) : a + diff * gamma;
}

bool all_equal(const std::vector<double>& x) {
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] != x[0]) return false;
  return true;
}

// Regularised incomplete beta I_x(a, b) by Lentz's continued fraction
// (Numerical Recipes' betacf), for the Student t distribution.
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-16) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double lbt =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double bt = std::exp(lbt);
  if (x < (a + 1.0) / (a + b + 2.0)) return bt * beta_cf(a, b, x) / a;
  return 1.0 - bt * beta_cf(b, a, 1.0 - x) / b;
}

// Upper tail P(T > t) of Student's t with df degrees of freedom, t >= 0.
double t_upper_tail(double t, double df) {
  return 0.5 * incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
}

// The t quantile for an upper-tail probability p in (0, 0.5): bisection on the
// monotone tail, to full double precision (only called a few times).
double t_quantile_upper(double p, double df) {
  if (df == 1) return std::tan(M_PI * (0.5 - p));
  if (df == 2) return (1 - 2 * p) * std::sqrt(2.0 / (4 * p * (1 - p)));
  double lo = 0, hi = 1;
  while (t_upper_tail(hi, df) > p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (t_upper_tail(mid, df) > p)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

// 1-based mid-ranks of x (tied values share the mean of their ranks); adds the sum
// of t^3 - t over each group of t ties to *tie_sum when given.
std::vector<double> mid_ranks(const std::vector<double>& x, double* tie_sum) {
  const size_t n = x.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && x[order[j]] == x[order[i]]) ++j;
    const double mid = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1..j
    for (size_t k = i; k < j; ++k) rank[order[k]] = mid;
    if (tie_sum) {
      const double t = static_cast<double>(j - i);
      *tie_sum += t * t * t - t;
    }
    i = j;
  }
  return rank;
}

}  // namespace

double ks_statistic(std::vector<double> a, std::vector<double> b) {
  a = finite_sorted(std::move(a));
  b = finite_sorted(std::move(b));
  if (a.empty() || b.empty()) return kNaN;
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  // Walk the merged values; after consuming every copy of a value the two
  // right-continuous ECDFs are evaluated there (scipy's searchsorted 'right').
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() || j < b.size()) {
    double v;
    if (j >= b.size() || (i < a.size() && a[i] <= b[j]))
      v = a[i];
    else
      v = b[j];
    while (i < a.size() && a[i] == v) ++i;
    while (j < b.size() && b[j] == v) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / na - static_cast<double>(j) / nb));
  }
  return d;
}

double wasserstein1(std::vector<double> a, std::vector<double> b) {
  a = finite_sorted(std::move(a));
  b = finite_sorted(std::move(b));
  if (a.empty() || b.empty()) return kNaN;
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  // Integral of |F_a - F_b| over the merged breakpoints (scipy's _cdf_distance, p=1).
  size_t i = 0, j = 0;
  double total = 0, prev = std::min(a[0], b[0]);
  while (i < a.size() || j < b.size()) {
    double v;
    if (j >= b.size() || (i < a.size() && a[i] <= b[j]))
      v = a[i];
    else
      v = b[j];
    total += std::fabs(static_cast<double>(i) / na - static_cast<double>(j) / nb) * (v - prev);
    prev = v;
    while (i < a.size() && a[i] == v) ++i;
    while (j < b.size() && b[j] == v) ++j;
  }
  return total;
}

double quantile(std::vector<double> x, double q) {
  if (!(q >= 0 && q <= 1)) return kNaN;
  x = finite_sorted(std::move(x));
  if (x.empty()) return kNaN;
  return quantile_sorted(x, q);
}

double iqr(std::vector<double> x) {
  x = finite_sorted(std::move(x));
  if (x.empty()) return kNaN;
  return quantile_sorted(x, 0.75) - quantile_sorted(x, 0.25);
}

double total_variation(const std::vector<double>& counts_a, const std::vector<double>& counts_b) {
  const size_t n = std::max(counts_a.size(), counts_b.size());
  double sa = 0, sb = 0;
  for (double c : counts_a) sa += c;
  for (double c : counts_b) sb += c;
  if (!(sa > 0) || !(sb > 0)) return kNaN;
  double tv = 0;
  for (size_t k = 0; k < n; ++k) {
    const double pa = k < counts_a.size() ? counts_a[k] / sa : 0.0;
    const double pb = k < counts_b.size() ? counts_b[k] / sb : 0.0;
    tv += std::fabs(pa - pb);
  }
  return 0.5 * tv;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw std::invalid_argument("pearson: series of different lengths");
  const size_t n = x.size();
  if (n < 2 || all_equal(x) || all_equal(y)) return kNaN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (!(sxx > 0) || !(syy > 0)) return kNaN;
  const double r = sxy / std::sqrt(sxx * syy);
  return std::max(-1.0, std::min(1.0, r));
}

std::vector<std::vector<double>> pairwise_correlation(
    const std::vector<std::vector<double>>& cols) {
  const size_t p = cols.size();
  std::vector<std::vector<double>> r(p, std::vector<double>(p, kNaN));
  // Each column shifted by its own mean (over its finite rows) so the one-pass
  // sums below lose no precision, plus the list of its finite rows so a pair
  // costs only the sparser column's observations.
  std::vector<std::vector<double>> shifted(p);
  std::vector<std::vector<size_t>> rows(p);
  for (size_t j = 0; j < p; ++j) {
    const auto& c = cols[j];
    double m = 0;
    for (size_t i = 0; i < c.size(); ++i)
      if (std::isfinite(c[i])) {
        rows[j].push_back(i);
        m += c[i];
      }
    if (!rows[j].empty()) m /= static_cast<double>(rows[j].size());
    shifted[j].assign(c.size(), kNaN);
    for (size_t i : rows[j]) shifted[j][i] = c[i] - m;
  }
  for (size_t j = 0; j < p; ++j) {
    for (size_t k = j; k < p; ++k) {
      const bool j_sparser = rows[j].size() <= rows[k].size();
      const auto& idx = j_sparser ? rows[j] : rows[k];
      const auto& xs = shifted[j_sparser ? j : k];
      const auto& ys = shifted[j_sparser ? k : j];
      double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (size_t i : idx) {
        if (i >= ys.size()) continue;
        const double x = xs[i], y = ys[i];
        if (!std::isfinite(y)) continue;
        n += 1;
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
      }
      // A column constant on the shared rows leaves only rounding in its
      // centred sum of squares: call that constant rather than return noise.
      double v = kNaN;
      if (n >= 3) {
        const double cxx = sxx - sx * sx / n, cyy = syy - sy * sy / n, cxy = sxy - sx * sy / n;
        if (cxx > kConstantTolerance * sxx && cyy > kConstantTolerance * syy)
          v = std::max(-1.0, std::min(1.0, cxy / std::sqrt(cxx * cyy)));
      }
      r[j][k] = r[k][j] = v;
    }
  }
  return r;
}

std::vector<double> detrend_linear(const std::vector<double>& t, const std::vector<double>& y) {
  if (t.size() != y.size()) throw std::invalid_argument("detrend_linear: t and y differ in length");
  const size_t n = y.size();
  std::vector<double> out(n);
  if (n == 0) return out;
  double mt = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mt += t[i];
    my += y[i];
  }
  mt /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double stt = 0, sty = 0;
  for (size_t i = 0; i < n; ++i) {
    stt += (t[i] - mt) * (t[i] - mt);
    sty += (t[i] - mt) * (y[i] - my);
  }
  // All positions equal: the least-squares line is the mean (lstsq's minimum-norm fit).
  const double slope = stt > 0 ? sty / stt : 0.0;
  for (size_t i = 0; i < n; ++i) out[i] = (y[i] - my) - slope * (t[i] - mt);
  return out;
}

double fisher_z(double r) {
  if (std::isnan(r)) return kNaN;
  const double c = 0.999999;
  return std::atanh(std::max(-c, std::min(c, r)));
}

double fisher_z_inverse(double z) { return std::tanh(z); }

double autocorrelation(const std::vector<double>& x, int lag) {
  const size_t n = x.size();
  if (lag < 0 || n == 0 || static_cast<size_t>(lag) >= n) return kNaN;
  for (double v : x)
    if (!std::isfinite(v)) return kNaN;
  if (all_equal(x)) return kNaN;
  double m = 0;
  for (double v : x) m += v;
  m /= static_cast<double>(n);
  double den = 0, num = 0;
  for (size_t i = 0; i < n; ++i) den += (x[i] - m) * (x[i] - m);
  for (size_t i = 0; i + lag < n; ++i) num += (x[i] - m) * (x[i + lag] - m);
  if (!(den > 0)) return kNaN;
  return num / den;
}

double subset_hit_probability(int64_t n, int64_t k, int64_t m) {
  if (n < 0 || k < 0 || k > n || m < 0 || m > n)
    throw std::invalid_argument("subset_hit_probability: need 0 <= k <= n and 0 <= m <= n, got n " +
                                std::to_string(n) + ", k " + std::to_string(k) + ", m " +
                                std::to_string(m));
  if (k == 0 || m == 0) return 0.0;
  if (n - k < m) return 1.0;
  // C(n-k, m) / C(n, m) in logs: n is a cohort's size, far past exact factorials.
  const auto lg = [](int64_t x) { return std::lgamma(static_cast<double>(x) + 1.0); };
  const double log_miss = lg(n - k) - lg(n - k - m) - lg(n) + lg(n - m);
  return 1.0 - std::exp(log_miss);
}

AurocTest auroc_test(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size())
    throw std::invalid_argument("auroc: scores and labels differ in length");
  AurocTest r{kNaN, kNaN, kNaN};
  std::vector<double> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) return r;
    (labels[i] != 0 ? pos : neg).push_back(scores[i]);
  }
  if (pos.empty() || neg.empty()) return r;
  std::vector<double> all = pos;
  all.insert(all.end(), neg.begin(), neg.end());
  double tie_sum = 0;  // sum of t^3 - t over groups of t tied scores
  const std::vector<double> rank_all = mid_ranks(all, &tie_sum);
  const std::vector<double> rank_pos = mid_ranks(pos, nullptr);
  const std::vector<double> rank_neg = mid_ranks(neg, nullptr);
  const size_t np = pos.size(), nn = neg.size();
  const double n_pos = static_cast<double>(np), n_neg = static_cast<double>(nn);
  // DeLong's structural components from mid-ranks (Sun & Xu 2014): the share of
  // negatives each positive outranks, and of positives each negative is outranked by,
  // a tied pair counting 1/2. The AUC is the mean of either.
  std::vector<double> v10(np), v01(nn);
  for (size_t i = 0; i < np; ++i) v10[i] = (rank_all[i] - rank_pos[i]) / n_neg;
  for (size_t j = 0; j < nn; ++j) v01[j] = 1.0 - (rank_all[np + j] - rank_neg[j]) / n_pos;
  const double auc = std::accumulate(v10.begin(), v10.end(), 0.0) / n_pos;
  r.auc = auc;
  if (np >= 2 && nn >= 2) {
    auto sample_var = [](const std::vector<double>& v, double mean) {
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      return ss / static_cast<double>(v.size() - 1);
    };
    r.se = std::sqrt(sample_var(v10, auc) / n_pos + sample_var(v01, auc) / n_neg);
  }
  // Mann-Whitney U's null variance with ties, as scipy's asymptotic method.
  const double n = n_pos + n_neg;
  const double var_u = n_pos * n_neg / 12.0 * ((n + 1) - tie_sum / (n * (n - 1)));
  if (var_u > 0) {
    const double z = (auc - 0.5) * n_pos * n_neg / std::sqrt(var_u);
    r.p_greater = 0.5 * std::erfc(z / std::sqrt(2.0));
  }
  return r;
}

double auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  return auroc_test(scores, labels).auc;
}

double mean_abs_diff(const std::vector<std::vector<double>>& a,
                     const std::vector<std::vector<double>>& b) {
  double sum = 0, n = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    for (size_t j = 0; j < std::min(a[i].size(), b[i].size()); ++j)
      if (std::isfinite(a[i][j]) && std::isfinite(b[i][j])) {
        sum += std::fabs(a[i][j] - b[i][j]);
        n += 1;
      }
  return n > 0 ? sum / n : kNaN;
}

MeanCi mean_ci95(const std::vector<double>& x) {
  MeanCi out;
  const size_t n = x.size();
  if (n == 0) return {kNaN, kNaN};
  double m = 0;
  for (double v : x) m += v;
  m /= static_cast<double>(n);
  out.mean = m;
  if (n < 2) {
    out.ci95 = kNaN;
    return out;
  }
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  const double sem = std::sqrt(ss / static_cast<double>(n - 1)) / std::sqrt(static_cast<double>(n));
  out.ci95 = t_quantile_upper(0.025, static_cast<double>(n - 1)) * sem;
  return out;
}

std::vector<double> histogram_edges(double lo, double hi, int bins) {
  if (bins <= 0) return {};
  if (lo == hi) {  // numpy widens an empty range by 0.5 on each side
    lo -= 0.5;
    hi += 0.5;
  }
  // np.linspace: start + i * step, with the last edge exactly `hi`.
  std::vector<double> e(static_cast<size_t>(bins) + 1);
  const double step = (hi - lo) / bins;
  for (int i = 0; i <= bins; ++i) e[i] = lo + i * step;
  e[bins] = hi;
  return e;
}

std::vector<double> histogram_density(const std::vector<double>& x, double lo, double hi,
                                      int bins) {
  if (bins <= 0) return {};
  std::vector<double> out(static_cast<size_t>(bins), kNaN);
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) return out;
  const std::vector<double> e = histogram_edges(lo, hi, bins);
  const double first = e.front(), last = e.back();
  const double norm = bins / (last - first);
  std::vector<double> counts(bins, 0.0);
  double total = 0;
  for (double v : x) {
    if (!std::isfinite(v)) continue;
    v = std::max(first, std::min(last, v));
    // numpy's bin search: a scaled guess, then a correction against the edges.
    long k = static_cast<long>((v - first) * norm);
    if (k >= bins) k = bins - 1;
    if (k < 0) k = 0;
    if (v < e[k] && k > 0) --k;
    if (v >= e[k + 1] && k != bins - 1) ++k;
    counts[k] += 1;
    total += 1;
  }
  if (total == 0) return out;
  for (int k = 0; k < bins; ++k) out[k] = counts[k] / (e[k + 1] - e[k]) / total;
  return out;
}

}  // namespace healthgym::metrics
