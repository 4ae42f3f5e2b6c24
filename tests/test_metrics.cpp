// Each metric against scipy 1.10.1 / numpy 1.24 on small fixed inputs. The
// expected numbers come from scripts/metrics_reference.py (run it with
// /usr/bin/python3); the names in comments are the names it prints.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "healthgym/metrics.hpp"

using namespace healthgym::metrics;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kTol = 1e-12;

void expect_all_near(const std::vector<double>& got, const std::vector<double>& want,
                     double tol = kTol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]))
      EXPECT_TRUE(std::isnan(got[i])) << "index " << i << " got " << got[i];
    else
      EXPECT_NEAR(got[i], want[i], tol) << "index " << i;
  }
}

}  // namespace

TEST(Metrics, KsMatchesScipyWithTiesAndUnequalSizes) {
  EXPECT_NEAR(ks_statistic({1, 2, 2, 3, 4}, {2, 2, 3, 5, 6, 7, 7}), 0.5714285714285714, kTol);
  EXPECT_NEAR(ks_statistic({0.5, 1.5, 1.5, 2.5}, {1.5, 1.5, 1.5}), 0.25, kTol);
  EXPECT_NEAR(ks_statistic({3.2, -1.0, 0.7, 0.7, 9.1, 4.4, 2.0, 2.0, 5.5}, {0.7, 2.0, 8.8, -4.0}),
              0.25, kTol);
  // Symmetric, and zero for identical samples.
  EXPECT_NEAR(ks_statistic({2, 2, 3, 5, 6, 7, 7}, {1, 2, 2, 3, 4}), 0.5714285714285714, kTol);
  EXPECT_EQ(ks_statistic({1, 2, 2, 3}, {3, 2, 1, 2}), 0.0);
}

TEST(Metrics, KsDropsNanAndIsNanWhenEmpty) {
  EXPECT_NEAR(ks_statistic({1, kNaN, 3, 2}, {2.5, kNaN, 0.5}), 0.5, kTol);  // ks_nan
  EXPECT_TRUE(std::isnan(ks_statistic({}, {1.0})));
  EXPECT_TRUE(std::isnan(ks_statistic({1.0}, {kNaN})));
}

TEST(Metrics, WassersteinMatchesScipy) {
  EXPECT_NEAR(wasserstein1({1, 2, 2, 3, 4}, {2, 2, 3, 5, 6, 7, 7}), 2.1714285714285713, kTol);
  EXPECT_NEAR(wasserstein1({0, 10}, {5}), 5.0, kTol);
  EXPECT_NEAR(wasserstein1({3.2, -1.0, 0.7, 0.7, 9.1, 4.4, 2.0, 2.0, 5.5}, {0.7, 2.0, 8.8, -4.0}),
              2.0583333333333336, kTol);
  EXPECT_NEAR(wasserstein1({1, kNaN, 3, 2}, {2.5, kNaN, 0.5}), 0.6666666666666667, kTol);
  EXPECT_EQ(wasserstein1({4, 1, 2}, {1, 2, 4}), 0.0);
  EXPECT_TRUE(std::isnan(wasserstein1({}, {1.0})));
}

TEST(Metrics, QuantileAndIqrMatchNumpyLinear) {
  const std::vector<double> x = {7, 1, 3, 3, 10, 2.5};
  EXPECT_NEAR(quantile(x, 0), 1.0, kTol);
  EXPECT_NEAR(quantile(x, 0.005), 1.0375, kTol);
  EXPECT_NEAR(quantile(x, 0.25), 2.625, kTol);
  EXPECT_NEAR(quantile(x, 0.5), 3.0, kTol);
  EXPECT_NEAR(quantile(x, 0.75), 6.0, kTol);
  EXPECT_NEAR(quantile(x, 0.995), 9.924999999999999, kTol);
  EXPECT_EQ(quantile(x, 1), 10.0);
  EXPECT_NEAR(iqr(x), 3.375, kTol);
  EXPECT_NEAR(iqr({4, kNaN, 1, 2, 8, kNaN}), 3.25, kTol);  // iqr_nan (np.nanpercentile)
  // numpy's lerp, bit for bit.
  EXPECT_EQ(quantile({0.1, 0.2, 0.3}, 0.1), 0.12000000000000001);
  EXPECT_EQ(quantile({5.0}, 0.3), 5.0);
  EXPECT_EQ(iqr({5.0}), 0.0);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
  EXPECT_TRUE(std::isnan(quantile({kNaN}, 0.5)));
  EXPECT_TRUE(std::isnan(quantile({1.0}, 1.5)));
  EXPECT_TRUE(std::isnan(iqr({})));
}

TEST(Metrics, TotalVariation) {
  EXPECT_NEAR(total_variation({3, 1, 0}, {1, 1, 2}), 0.5, kTol);
  EXPECT_EQ(total_variation({2, 2}, {5, 5}), 0.0);
  EXPECT_EQ(total_variation({1, 0}, {0, 3}), 1.0);
  EXPECT_TRUE(std::isnan(total_variation({0, 0}, {1, 2})));
  EXPECT_TRUE(std::isnan(total_variation({1, 2}, {})));
}

TEST(Metrics, PearsonMatchesScipy) {
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5.5}, {2, 1, 4, 3, 7}), 0.8580868382401788, kTol);
  EXPECT_NEAR(pearson({1, 2}, {5, 3}), -1.0, kTol);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));  // constant
  EXPECT_TRUE(std::isnan(pearson({0.1, 0.1, 0.1}, {3, 1, 2})));
  EXPECT_TRUE(std::isnan(pearson({1}, {2})));  // fewer than 2 points
  EXPECT_TRUE(std::isnan(pearson({1, kNaN, 3}, {1, 2, 4})));
  EXPECT_THROW(pearson({1, 2}, {1, 2, 3}), std::invalid_argument);
}

TEST(Metrics, PairwiseCorrelationIsPairwiseComplete) {
  const std::vector<std::vector<double>> cols = {
      {1.0, 2.0, kNaN, 4.0, 5.0, 6.0},   {2.0, 1.0, 3.0, kNaN, 7.0, 5.0},
      {kNaN, kNaN, 1.0, 2.0, kNaN, 9.0},  // 2 rows shared with columns 0 and 1
      {3.0, 3.0, 3.0, 3.0, 3.0, 3.0},     // constant
      {0.5, kNaN, 0.1, 0.9, 0.2, kNaN},
  };
  const auto r = pairwise_correlation(cols);
  ASSERT_EQ(r.size(), 5u);
  std::vector<double> flat;
  for (const auto& row : r) flat.insert(flat.end(), row.begin(), row.end());
  // "pairwise"
  expect_all_near(flat, {1.0,
                         0.8390131796985203,
                         kNaN,
                         kNaN,
                         -0.15958626340564358,
                         0.8390131796985204,
                         0.9999999999999998,
                         kNaN,
                         kNaN,
                         -0.45392064950160177,
                         kNaN,
                         kNaN,
                         0.9999999999999998,
                         kNaN,
                         kNaN,
                         kNaN,
                         kNaN,
                         kNaN,
                         kNaN,
                         kNaN,
                         -0.15958626340564358,
                         -0.45392064950160177,
                         kNaN,
                         kNaN,
                         1.0});
  EXPECT_TRUE(pairwise_correlation({}).empty());
}

TEST(Metrics, DetrendMatchesScipyAndPolyfit) {
  // scipy.signal.detrend on equally spaced points.
  expect_all_near(detrend_linear({0, 1, 2, 3, 4, 5}, {1, 4, 2, 8, 5, 7}),
                  {-0.7142857142857129, 1.171428571428573, -1.9428571428571413, 2.942857142857145,
                   -1.1714285714285708, -0.2857142857142847});
  // Residuals of np.polyfit(t, y, 1) at uneven positions.
  expect_all_near(
      detrend_linear({0, 1, 3, 4, 7}, {2.0, 2.5, 1.0, 6.0, 4.0}),
      {0.0, 0.13333333333333242, -2.1000000000000005, 2.533333333333333, -0.5666666666666664});
  expect_all_near(detrend_linear({3}, {7}), {0.0});
  expect_all_near(detrend_linear({2, 2}, {1, 3}), {-1.0, 1.0});  // one position: the mean
  EXPECT_TRUE(detrend_linear({}, {}).empty());
  EXPECT_THROW(detrend_linear({1, 2}, {1}), std::invalid_argument);
}

TEST(Metrics, FisherZ) {
  EXPECT_NEAR(fisher_z(0.5), 0.5493061443340549, kTol);
  EXPECT_NEAR(fisher_z(1.0), 7.254328619247669, 1e-9);  // clipped to 0.999999
  EXPECT_NEAR(fisher_z(-1.0), -7.254328619247669, 1e-9);
  EXPECT_NEAR(fisher_z(-0.3), -0.3095196042031117, kTol);
  EXPECT_NEAR(fisher_z_inverse(0.7), 0.6043677771171634, kTol);
  EXPECT_NEAR(fisher_z_inverse(fisher_z(0.42)), 0.42, kTol);
  EXPECT_TRUE(std::isnan(fisher_z(kNaN)));
}

TEST(Metrics, AutocorrelationMatchesStatsmodelsFormula) {
  const std::vector<double> x = {1, 3, 2, 5, 4, 6, 8, 7};
  EXPECT_NEAR(autocorrelation(x, 0), 1.0, kTol);
  EXPECT_NEAR(autocorrelation(x, 1), 0.49404761904761907, kTol);
  EXPECT_NEAR(autocorrelation(x, 2), 0.2857142857142857, kTol);
  EXPECT_NEAR(autocorrelation(x, 3), -0.10119047619047619, kTol);
  EXPECT_TRUE(std::isnan(autocorrelation(x, 8)));
  EXPECT_TRUE(std::isnan(autocorrelation(x, -1)));
  EXPECT_TRUE(std::isnan(autocorrelation({2, 2, 2, 2}, 1)));
  EXPECT_TRUE(std::isnan(autocorrelation({1, kNaN, 2, 3}, 1)));
  EXPECT_TRUE(std::isnan(autocorrelation({}, 0)));
}

TEST(Metrics, AurocCountsTiesAsHalf) {
  const std::vector<double> scores = {0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1, 0.35};
  const std::vector<int> labels = {0, 0, 1, 1, 1, 0, 1, 1, 0};
  EXPECT_NEAR(auroc(scores, labels), 0.65, kTol);
  EXPECT_EQ(auroc({1, 2, 3}, {0, 1, 1}), 1.0);
  EXPECT_EQ(auroc({1, 2, 3}, {1, 0, 0}), 0.0);
  EXPECT_EQ(auroc({5, 5, 5, 5}, {0, 1, 0, 1}), 0.5);
  EXPECT_TRUE(std::isnan(auroc({1, 2}, {1, 1})));  // one class only
  EXPECT_TRUE(std::isnan(auroc({1, kNaN}, {0, 1})));
  EXPECT_THROW(auroc({1, 2}, {0}), std::invalid_argument);
}

TEST(Metrics, AurocTestGivesDeLongErrorAndMannWhitneyP) {
  // scripts/metrics_reference.py: DeLong from the pairwise kernel, p from scipy.
  const std::vector<double> scores = {0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1, 0.35};
  const std::vector<int> labels = {0, 0, 1, 1, 1, 0, 1, 1, 0};
  const AurocTest t = auroc_test(scores, labels);
  EXPECT_NEAR(t.auc, 0.65, kTol);
  EXPECT_NEAR(t.se, 0.19869365029277275, kTol);
  EXPECT_NEAR(t.p_greater, 0.22544351551258518, kTol);
  // Perfect separation: no spread in either class's components.
  const AurocTest perfect = auroc_test({1, 2, 3, 4, 5, 6}, {0, 0, 0, 1, 1, 1});
  EXPECT_EQ(perfect.auc, 1.0);
  EXPECT_EQ(perfect.se, 0.0);
  EXPECT_LT(perfect.p_greater, 0.05);
  // Swapping the classes mirrors the AUC, keeps the error and mirrors the p-value.
  std::vector<int> flipped(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) flipped[i] = 1 - labels[i];
  const AurocTest f = auroc_test(scores, flipped);
  EXPECT_NEAR(f.auc, 0.35, kTol);
  EXPECT_NEAR(f.se, t.se, kTol);
  EXPECT_NEAR(f.p_greater, 1.0 - t.p_greater, kTol);
  // Undefined cases.
  EXPECT_TRUE(std::isnan(auroc_test({5, 5, 5, 5}, {0, 1, 0, 1}).p_greater));  // all tied
  EXPECT_TRUE(std::isnan(auroc_test({1, 2, 3}, {0, 1, 1}).se));               // one negative
  const AurocTest one_class = auroc_test({1, 2}, {1, 1});
  EXPECT_TRUE(std::isnan(one_class.auc) && std::isnan(one_class.se) &&
              std::isnan(one_class.p_greater));
  EXPECT_THROW(auroc_test({1, 2}, {0}), std::invalid_argument);
}

TEST(Metrics, MeanAbsDiffSkipsNonFinite) {
  EXPECT_NEAR(
      mean_abs_diff({{1.0, 0.5, kNaN}, {0.5, 1.0, -0.2}}, {{1.0, 0.1, 0.3}, {kNaN, 1.0, 0.4}}),
      0.25, kTol);
  EXPECT_TRUE(std::isnan(mean_abs_diff({{kNaN}}, {{1.0}})));
  EXPECT_TRUE(std::isnan(mean_abs_diff({}, {})));
}

TEST(Metrics, MeanCi95MatchesScipyT) {
  MeanCi c = mean_ci95({0.12, 0.08, 0.15, 0.11, 0.05});
  EXPECT_NEAR(c.mean, 0.10200000000000001, kTol);
  EXPECT_NEAR(c.ci95, 0.04760611664607799, kTol);
  // df = 1: scipy's stdtrit is good to ~2e-11 relative here; ours is the exact
  // closed form 0.5 * tan(0.475 pi) = 6.3531023680873...
  c = mean_ci95({1.0, 2.0});
  EXPECT_NEAR(c.mean, 1.5, kTol);
  EXPECT_NEAR(c.ci95, 6.353102368216048, 1e-9);
  std::vector<double> x;
  for (int i = 0; i <= 30; ++i) x.push_back((i / 10.0) * (i / 10.0));
  c = mean_ci95(x);
  EXPECT_NEAR(c.mean, 3.05, kTol);
  EXPECT_NEAR(c.ci95, 1.0353602974967298, kTol);
  c = mean_ci95({4.0});
  EXPECT_EQ(c.mean, 4.0);
  EXPECT_TRUE(std::isnan(c.ci95));
  c = mean_ci95({});
  EXPECT_TRUE(std::isnan(c.mean));
  EXPECT_TRUE(std::isnan(c.ci95));
}

TEST(Metrics, HistogramDensityMatchesNumpyWithClamping) {
  // Values on interior edges go to the bin above; -3 and 5 are clamped into the end bins.
  const std::vector<double> x = {0, 0.1, 0.25, 0.5, 0.5, 0.99, 1, -3, 5, kNaN};
  expect_all_near(histogram_density(x, 0, 1, 4),
                  {1.3333333333333333, 0.4444444444444444, 0.8888888888888888, 1.3333333333333333});
  expect_all_near(histogram_edges(0, 1, 4), {0.0, 0.25, 0.5, 0.75, 1.0});
  // Edges from np.linspace, and a value (0.9) that lands on the rounded edge 0.8999999999999999.
  expect_all_near(histogram_density({0.3, 0.6, 0.9, 1.2, 0.45}, 0.3, 1.2, 3),
                  {1.3333333333333335, 0.6666666666666667, 1.3333333333333333});
  EXPECT_EQ(histogram_edges(0.3, 1.2, 3), (std::vector<double>{0.3, 0.6, 0.8999999999999999, 1.2}));
  // An empty range widens by 0.5 each side, as numpy does.
  expect_all_near(histogram_density({2.0, 2.0}, 2.0, 2.0, 2), {0.0, 2.0});
  expect_all_near(histogram_edges(2.0, 2.0, 2), {1.5, 2.0, 2.5});
  // No data: undefined densities.
  expect_all_near(histogram_density({kNaN}, 0, 1, 2), {kNaN, kNaN});
  EXPECT_TRUE(histogram_density({1.0}, 0, 1, 0).empty());
}
