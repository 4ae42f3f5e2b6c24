// Tests for the Box-Cox / Yeo-Johnson transforms and their maximum-likelihood
// lambda, checked against scipy.
//
// Every reference number below came from scipy 1.10.1 (Debian python3-scipy,
// numpy 1.24.2) and mpmath 1.2.1 (50 digits), printed by
//   /usr/bin/python3 scripts/scipy_power_reference.py
// which holds the same data sets. "scipy" lambdas are scipy.stats.boxcox(x)[1] /
// scipy.stats.yeojohnson(x)[1] (Brent from the bracket (-2, 2), xtol 1.48e-8);
// "mpmath" lambdas are the exact maximisers, to show how close each side gets.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "healthgym/error.hpp"
#include "healthgym/power_transform.hpp"

namespace hg = healthgym;

namespace {

constexpr std::array<double, 6> kFixedLambdas = {-2.0, -0.5, 0.0, 0.5, 1.0, 2.5};

struct Case {
  const char* name;
  std::vector<double> x;  // shift already applied where the script applies one
  double lambda_scipy;
  double lambda_mpmath;
  double llf_at_scipy_lambda;       // scipy.stats.boxcox_llf / yeojohnson_llf
  double llf_mpmath;                // the same llf at the same lambda, in mpmath
  std::array<double, 6> llf_fixed;  // at kFixedLambdas
};

// Lognormal-like, right-skewed positive values.
const std::vector<double> kLognormal = {
    2.721,  3.4521, 2.183,  1.3331, 1.8894, 1.2296, 2.8523, 7.9421, 1.8335, 1.6547, 4.0224, 3.6165,
    2.9575, 1.2913, 2.6554, 4.741,  0.9274, 1.885,  0.5939, 0.9689, 0.6229, 2.2522, 0.9861, 3.3771};
// Poisson counts with many zeros.
const std::vector<double> kCounts = {0, 1, 3, 0, 0, 0, 1, 1, 1, 0, 3, 1, 2, 1, 0, 1, 0, 3, 2, 0};
// Pareto-like, more skewed than lognormal: negative Box-Cox lambda.
const std::vector<double> kPareto = {3.2961, 7.7763, 3.748,  25.7192, 1.0492,  9.0244,
                                     1.7899, 5.6722, 1.2184, 1.8276,  17.3897, 1.2802,
                                     1.0867, 1.1599, 2.2737, 15.2587};
// Left-skewed positive values: lambda far outside scipy's starting bracket.
const std::vector<double> kLeftSkew = {9.1, 9.8, 9.95, 8.2, 9.99, 7.5, 9.6, 9.3, 9.7, 8.9};
const std::vector<double> kSmall = {1.5, 2.0, 7.25};
// Nearly symmetric logs: Box-Cox lambda close to 0.
const std::vector<double> kNear0 = {0.135335, 0.272532, 0.496585, 0.818731, 1.0,     1.221403,
                                    2.013753, 3.669297, 7.403849, 1.568312, 0.637628};
// Mixed signs, left-skewed: Yeo-Johnson only.
const std::vector<double> kNegative = {-24.113, -0.027, -0.622,  -5.149,  -1.628, -1.187,
                                       2.289,   -2.313, 0.043,   -16.105, -8.3,   -2.23,
                                       -8.485,  -0.442, -14.047, -2.353,  -7.491, 2.688};

std::vector<double> shifted(std::vector<double> x, double shift) {
  for (double& v : x) v += shift;
  return x;
}

// clang-format off
const std::vector<Case>& box_cox_cases() {
  static const std::vector<Case> cases = {
      {"lognormal", kLognormal, 0.03910078247351685, 0.03910078579303852,
       -5.507928920250533, -5.507928920250605,
       {-25.298784353328273, -7.1546408471565535, -5.516979964366234, -6.802010596840482,
        -11.17229940483239, -38.904094684435194}},
      {"counts+1e-3", shifted(kCounts, 1e-3), 0.13917214207445883, 0.1391721417676215,
       25.9193326812045, 25.919332681204494,
       {-96.46334620378795, 7.72792528702054, 24.981171195037927, 20.166740552100336,
        -0.9531017980432495, -91.36066656913155}},
      {"pareto", kPareto, -0.3421568942603215, -0.3421568878062323,
       -20.183056350774578, -20.18305635077458,
       {-31.19248649163597, -20.31906590351676, -20.87349316686661, -24.5387002501137,
        -31.241277610146337, -63.09845231554469}},
      {"leftskew", kLeftSkew, 7.793002614647518, 7.793001814961193,
       3.95313822298084, 3.9531382229808214,
       {0.973981562668925, 1.8662816475284245, 2.1262628830695256, 2.3676393751138196,
        2.590560529084818, 3.1507997888659673}},
      {"small", kSmall, -1.0072939211324103, -1.0072939210182856,
       -1.6265521652178805, -1.6265521652178825,
       {-1.911403998486163, -1.7068985707910915, -1.94482445113219, -2.3356207399972724,
        -2.8673970060998015, -5.143091772101431}},
      {"near0", kNear0, -0.00045660147422154994, -0.0004566302670007001,
       -0.8582525089614418, -0.8582525089627544,
       {-22.501233659521787, -2.7617480321980037, -0.8582541695730754, -2.7693353178250555,
        -7.755538793402697, -31.13244213939122}},
  };
  return cases;
}

const std::vector<Case>& yeo_johnson_cases() {
  static const std::vector<Case> cases = {
      {"lognormal", kLognormal, -0.3882831508147394, -0.38828311322074255,
       -5.800423775901777, -5.800423775901783,
       {-11.035298935169479, -5.830472224294802, -6.184857865340653, -7.916519404097162,
        -11.17229940483239, -29.53409825281033}},
      {"counts", kCounts, -0.3177105833222372, -0.31771056140221376,
       2.327276716113923, 2.3272767161139236,
       {-1.7824240216761638, 2.269915389536809, 2.1452372501394716, 1.0836804006418221,
        -0.9531017980432495, -12.147738169657181}},
      {"pareto", kPareto, -0.5889025847593189, -0.5889025586391157,
       -21.34285174156489, -21.342851741564896,
       {-26.50104847116978, -21.369658388838417, -22.6078011500839, -25.888896451000576,
        -31.241277610146337, -56.55050081765215}},
      {"small", kSmall, -1.4557193858117623, -1.4557194073834825,
       -1.8255842447152766, -1.8255842447152764,
       {-1.8741258590752672, -1.9829625934880628, -2.1928935577864874, -2.489047277502037,
        -2.8673970060998015, -4.432944675172037}},
      {"negative", kNegative, 1.4820276103736514, 1.4820276099044933,
       -30.184888915390328, -30.184888915390328,
       {-118.07178393541655, -71.51231211490213, -57.47921353794598, -44.85147464865497,
        -34.692421099156434, -51.709831012208824}},
  };
  return cases;
}

// scipy's llf is float64 throughout; ours agrees to a few ulps of the result.
double llf_tol(double ref) { return 1e-12 * std::max(1.0, std::fabs(ref)); }

template <class F>
void expect_throws_input_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing '" << needle << "'";
  } catch (const hg::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(PowerTransform, BoxCoxLlfMatchesScipy) {
  for (const Case& c : box_cox_cases()) {
    SCOPED_TRACE(c.name);
    for (std::size_t k = 0; k < kFixedLambdas.size(); ++k) {
      EXPECT_NEAR(hg::box_cox_llf(kFixedLambdas[k], c.x), c.llf_fixed[k], llf_tol(c.llf_fixed[k]))
          << "lambda " << kFixedLambdas[k];
    }
    // At lambda ~ -5e-4 (near0) scipy's data**lmb/lmb has lost ~1e-12 to
    // cancellation; mpmath holds the exact value, which ours matches.
    EXPECT_NEAR(hg::box_cox_llf(c.lambda_scipy, c.x), c.llf_at_scipy_lambda, 2e-12);
    EXPECT_NEAR(hg::box_cox_llf(c.lambda_scipy, c.x), c.llf_mpmath, llf_tol(c.llf_mpmath) / 4);
  }
}

TEST(PowerTransform, YeoJohnsonLlfMatchesScipy) {
  for (const Case& c : yeo_johnson_cases()) {
    SCOPED_TRACE(c.name);
    for (std::size_t k = 0; k < kFixedLambdas.size(); ++k) {
      EXPECT_NEAR(hg::yeo_johnson_llf(kFixedLambdas[k], c.x), c.llf_fixed[k],
                  llf_tol(c.llf_fixed[k]))
          << "lambda " << kFixedLambdas[k];
    }
    EXPECT_NEAR(hg::yeo_johnson_llf(c.lambda_scipy, c.x), c.llf_at_scipy_lambda,
                llf_tol(c.llf_at_scipy_lambda));
    EXPECT_NEAR(hg::yeo_johnson_llf(c.lambda_scipy, c.x), c.llf_mpmath,
                llf_tol(c.llf_mpmath) / 4);
  }
}

TEST(PowerTransform, BoxCoxMleMatchesScipy) {
  for (const Case& c : box_cox_cases()) {
    SCOPED_TRACE(c.name);
    const double lambda = hg::box_cox_mle(c.x);
    EXPECT_NEAR(lambda, c.lambda_scipy, 1e-5);
    // Closer still to the exact maximiser; flat llfs (leftskew) limit both sides.
    EXPECT_NEAR(lambda, c.lambda_mpmath, 1e-7);
    // At least as good a maximum as scipy's, both evaluated exactly.
    EXPECT_GE(hg::box_cox_llf(lambda, c.x), c.llf_mpmath - 1e-13);
  }
}

TEST(PowerTransform, YeoJohnsonMleMatchesScipy) {
  for (const Case& c : yeo_johnson_cases()) {
    SCOPED_TRACE(c.name);
    const double lambda = hg::yeo_johnson_mle(c.x);
    EXPECT_NEAR(lambda, c.lambda_scipy, 1e-5);
    EXPECT_NEAR(lambda, c.lambda_mpmath, 1e-7);
    EXPECT_GE(hg::yeo_johnson_llf(lambda, c.x), c.llf_mpmath - 1e-13);
  }
}

TEST(PowerTransform, LlfNearZeroLambdaIsExact) {
  // scipy 1.10 evaluates var(x**lmb / lmb), which cancels for tiny lmb (it gives
  // -0.8582538852470847 and -5.516980001555927 here); mpmath is the reference.
  EXPECT_NEAR(hg::box_cox_llf(1e-9, kNear0), -0.8582541695803495, 1e-13);
  EXPECT_NEAR(hg::box_cox_llf(-1e-7, kLognormal), -5.516980010594623, 1e-13);
  // Continuous through 0, where scipy switches to var(log x).
  EXPECT_NEAR(hg::box_cox_llf(1e-300, kNear0), hg::box_cox_llf(0.0, kNear0), 1e-14);
  EXPECT_NEAR(hg::yeo_johnson_llf(1e-300, kCounts), hg::yeo_johnson_llf(0.0, kCounts), 1e-14);
  EXPECT_NEAR(hg::yeo_johnson_llf(2.0 + 1e-15, kNegative), hg::yeo_johnson_llf(2.0, kNegative),
              1e-12);
}

TEST(PowerTransform, LlfExtremeLambdaStaysFinite) {
  // mpmath values where scipy 1.10's float64 power overflows (it returns nan or
  // -inf, noted after each) or is left with a few digits.
  struct Extreme {
    bool box_cox;
    const std::vector<double>* x;
    double lambda;
    double llf;
  };
  const std::vector<Extreme> cases = {
      {true, &kPareto, 250.0, -7883.1072973033015},         // scipy nan
      {true, &kPareto, -300.0, -5693.403163308778},          // scipy agrees
      {false, &kNegative, -250.0, -9255.226604941985},       // scipy nan
      {false, &kNegative, 280.0, -12274.205150992255},       // scipy -inf
      {false, &kCounts, 700.0, -11422.014650527524},         // scipy nan
  };
  for (const Extreme& e : cases) {
    const double got =
        e.box_cox ? hg::box_cox_llf(e.lambda, *e.x) : hg::yeo_johnson_llf(e.lambda, *e.x);
    EXPECT_NEAR(got, e.llf, 1e-13 * std::fabs(e.llf)) << "lambda " << e.lambda;
  }
}

TEST(PowerTransform, LlfOutOfDomainIsNan) {
  // As scipy: no data, or log of a non-positive value, gives nan.
  EXPECT_TRUE(std::isnan(hg::box_cox_llf(0.5, {})));
  EXPECT_TRUE(std::isnan(hg::yeo_johnson_llf(0.5, {})));
  EXPECT_TRUE(std::isnan(hg::box_cox_llf(0.5, {1.0, -2.0, 3.0})));
  EXPECT_TRUE(std::isnan(hg::box_cox_llf(0.5, {1.0, 0.0, 3.0})));
  // Zero variance: -n/2 log(0) = +inf, as scipy.
  EXPECT_EQ(hg::box_cox_llf(0.5, {2.0, 2.0}), std::numeric_limits<double>::infinity());
}

TEST(PowerTransform, ScalarTransformsInvert) {
  const std::vector<double> lambdas = {-3.0, -1.0, -0.5, -1e-12, 0.0, 1e-12, 0.3, 1.0,
                                       2.0,  2.0 + 1e-12, 2.7, 5.0};
  const std::vector<double> positives = {1e-3, 0.05, 0.9, 1.0, 1.7, 42.0, 1e4};
  const std::vector<double> reals = {-1e4, -42.0, -1.0, -0.3, -1e-9, 0.0,
                                     1e-9, 0.3,    1.0,  42.0, 1e4};
  // A round trip loses what the forward value y cannot hold: y's rounding moves x
  // by about eps * |y| / (dy/dx), large where x^lambda is tiny next to 1 (e.g.
  // x = 1e-3, lambda = 5). The tolerance allows that, and little else.
  auto tol = [](double x, double y, double slope) {
    return 1e-14 * (std::fabs(x) + std::fabs(y) / slope) + 1e-300;
  };
  for (double l : lambdas) {
    for (double x : positives) {
      const double y = hg::box_cox(x, l);
      EXPECT_NEAR(hg::inv_box_cox(y, l), x, tol(x, y, std::pow(x, l - 1))) << "l=" << l;
    }
    for (double x : reals) {
      const double y = hg::yeo_johnson(x, l);
      const double slope = std::pow(1 + std::fabs(x), (x >= 0 ? l : 2 - l) - 1);
      EXPECT_NEAR(hg::inv_yeo_johnson(y, l), x, tol(x, y, slope)) << "l=" << l << " x=" << x;
    }
  }
  EXPECT_DOUBLE_EQ(hg::box_cox(std::exp(1.5), 0.0), 1.5);
  EXPECT_DOUBLE_EQ(hg::box_cox(4.0, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(hg::yeo_johnson(3.0, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(hg::yeo_johnson(-3.0, 1.5), -2.0);  // mirrored, with 2 - lambda
  EXPECT_DOUBLE_EQ(hg::yeo_johnson(-7.5, 1.0), -7.5);  // lambda 1 is the identity
}

TEST(PowerTransform, InverseClampsIntoRange) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> ys = {-inf, -1e308, -1e6, -10.0, -2.0, -1.0, -0.5, 0.0,
                                  0.5,  1.0,    2.0,  10.0,  1e6,  1e308, inf};
  for (double l : {-4.0, -1.0, -0.25, 0.0, 0.25, 1.0, 2.0, 3.5}) {
    for (double y : ys) {
      const double xb = hg::inv_box_cox(y, l);
      EXPECT_TRUE(std::isfinite(xb)) << "boxcox l=" << l << " y=" << y;
      EXPECT_GE(xb, 0.0);
      const double xy = hg::inv_yeo_johnson(y, l);
      EXPECT_TRUE(std::isfinite(xy)) << "yeojohnson l=" << l << " y=" << y;
      EXPECT_EQ(xy >= 0, y >= 0) << "sign kept, l=" << l << " y=" << y;
    }
  }
  // Beyond -1/lambda the inverse sits at the range's end.
  EXPECT_EQ(hg::inv_box_cox(-3.0, 0.5), 0.0);
  EXPECT_EQ(hg::inv_box_cox(3.0, -0.5), std::numeric_limits<double>::max());
  EXPECT_EQ(hg::inv_yeo_johnson(3.0, -0.5), std::numeric_limits<double>::max());
  EXPECT_EQ(hg::inv_yeo_johnson(-3.0, 2.5), -std::numeric_limits<double>::max());
  EXPECT_TRUE(std::isnan(hg::inv_box_cox(std::nan(""), 0.5)));  // NaN is passed through
}

TEST(PowerTransform, RealTransformRoundTrips) {
  struct Fit {
    hg::PowerKind kind;
    std::vector<double> x;
  };
  const std::vector<Fit> fits = {
      {hg::PowerKind::kBoxCox, kLognormal}, {hg::PowerKind::kBoxCox, kCounts},
      {hg::PowerKind::kBoxCox, kPareto},    {hg::PowerKind::kBoxCox, kLeftSkew},
      {hg::PowerKind::kBoxCox, kSmall},     {hg::PowerKind::kYeoJohnson, kNegative},
      {hg::PowerKind::kYeoJohnson, kCounts}, {hg::PowerKind::kYeoJohnson, kLognormal},
      {hg::PowerKind::kNone, kNegative},    {hg::PowerKind::kNone, kPareto},
  };
  for (const Fit& f : fits) {
    SCOPED_TRACE(hg::to_string(f.kind));
    const hg::RealTransform t = hg::RealTransform::fit(f.x, f.kind, 1e-3);
    EXPECT_EQ(t.kind, f.kind);
    EXPECT_EQ(t.shift, 1e-3);
    double lo = 1.0, hi = 0.0;
    for (double x : f.x) {
      const double u = t.forward(x);
      lo = std::min(lo, u);
      hi = std::max(hi, u);
      // Relative to |x| + shift: a zero count comes back through x + shift.
      EXPECT_NEAR(t.inverse(u), x, 1e-9 * (std::fabs(x) + 1e-3)) << "x=" << x;
    }
    EXPECT_EQ(lo, 0.0);
    EXPECT_EQ(hi, 1.0);
  }
  const hg::RealTransform bc = hg::RealTransform::fit(kPareto, hg::PowerKind::kBoxCox, 1e-3);
  EXPECT_NEAR(bc.lambda, hg::box_cox_mle(shifted(kPareto, 1e-3)), 1e-12);
  const hg::RealTransform yj = hg::RealTransform::fit(kNegative, hg::PowerKind::kYeoJohnson, 1e-3);
  EXPECT_NEAR(yj.lambda, 1.4820276103736514, 1e-5);
}

TEST(PowerTransform, RealTransformKeepsFlatLikelihoodsInvertible) {
  // A tiny relative spread leaves the llf flat out to huge |lambda|: the MLE is at
  // the search's -1000 cap, where every value would map to the same double. fit
  // pulls lambda back until the round trip holds.
  const std::vector<double> near_const = {1000, 1000.0001, 1000.0002, 1000.00005};
  const std::vector<double> huge = {1e300, 2e300, 5e300, 1.5e301};
  EXPECT_LT(hg::yeo_johnson_mle(near_const), -100.0);
  for (const auto* x : {&near_const, &huge}) {
    for (hg::PowerKind kind : {hg::PowerKind::kBoxCox, hg::PowerKind::kYeoJohnson}) {
      SCOPED_TRACE(hg::to_string(kind));
      const hg::RealTransform t = hg::RealTransform::fit(*x, kind, 1e-3);
      std::vector<double> u;
      for (double v : *x) {
        u.push_back(t.forward(v));
        EXPECT_NEAR(t.inverse(u.back()), v, 1e-9 * std::fabs(v));
      }
      std::sort(u.begin(), u.end());
      EXPECT_EQ(std::unique(u.begin(), u.end()), u.end()) << "distinct values stay distinct";
    }
  }
}

TEST(PowerTransform, RealTransformInverseClampsU) {
  for (hg::PowerKind kind :
       {hg::PowerKind::kNone, hg::PowerKind::kBoxCox, hg::PowerKind::kYeoJohnson}) {
    const std::vector<double>& x = kind == hg::PowerKind::kYeoJohnson ? kNegative : kPareto;
    const hg::RealTransform t = hg::RealTransform::fit(x, kind, 1e-3);
    const double x_min = *std::min_element(x.begin(), x.end());
    const double x_max = *std::max_element(x.begin(), x.end());
    for (double u : {-1e300, -3.0, -1e-9, 0.0, 0.25, 0.5, 1.0, 1.0 + 1e-9, 7.0, 1e300}) {
      const double v = t.inverse(u);
      EXPECT_FALSE(std::isnan(v)) << "u=" << u;
      EXPECT_GE(v, x_min - 1e-9 * std::fabs(x_min));
      EXPECT_LE(v, x_max + 1e-9 * std::fabs(x_max));
    }
    EXPECT_EQ(t.inverse(-5.0), t.inverse(0.0));
    EXPECT_EQ(t.inverse(5.0), t.inverse(1.0));
    EXPECT_EQ(t.inverse(-std::numeric_limits<double>::infinity()), t.inverse(0.0));
    EXPECT_EQ(t.inverse(std::numeric_limits<double>::infinity()), t.inverse(1.0));
  }
}

TEST(PowerTransform, ConstantVariable) {
  const std::vector<double> x(7, 3.25);
  // No MLE exists (zero variance at every lambda); lambda 1 is returned.
  EXPECT_EQ(hg::box_cox_mle(x), 1.0);
  EXPECT_EQ(hg::yeo_johnson_mle(x), 1.0);
  for (hg::PowerKind kind :
       {hg::PowerKind::kNone, hg::PowerKind::kBoxCox, hg::PowerKind::kYeoJohnson}) {
    const hg::RealTransform t = hg::RealTransform::fit(x, kind, 1e-3);
    EXPECT_EQ(t.range, 1.0);
    EXPECT_EQ(t.forward(3.25), 0.0);
    EXPECT_NEAR(t.inverse(0.0), 3.25, 1e-12);
  }
  EXPECT_EQ(hg::RealTransform::fit(x, hg::PowerKind::kNone, 1e-3).min, 3.25);
}

TEST(PowerTransform, MleRejectsBadInput) {
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  expect_throws_input_error([] { hg::box_cox_mle({}); }, "no values");
  expect_throws_input_error([] { hg::yeo_johnson_mle({}); }, "no values");
  expect_throws_input_error([&] { hg::box_cox_mle({1.0, nan}); }, "not finite");
  expect_throws_input_error([&] { hg::yeo_johnson_mle({inf, 1.0}); }, "not finite");
  expect_throws_input_error([] { hg::box_cox_mle({1.0, 0.0, 2.0}); }, "yeojohnson");
  expect_throws_input_error([] { hg::box_cox_mle({1.0, -0.5, 2.0}); }, "-0.5");
  expect_throws_input_error([] { hg::box_cox(0.0, 0.5); }, "> 0");
}

TEST(PowerTransform, FitRejectsBadInput) {
  // Box-Cox with a value at or below -shift: the message names it and the fix.
  expect_throws_input_error(
      [] { hg::RealTransform::fit({3.0, -2.5, 1.0}, hg::PowerKind::kBoxCox, 1e-3); }, "-2.5");
  expect_throws_input_error(
      [] { hg::RealTransform::fit({3.0, -2.5, 1.0}, hg::PowerKind::kBoxCox, 1e-3); },
      "use yeojohnson");
  expect_throws_input_error(
      [] { hg::RealTransform::fit({3.0, -1e-3, 1.0}, hg::PowerKind::kBoxCox, 1e-3); },
      "yeojohnson");
  expect_throws_input_error([] { hg::RealTransform::fit({}, hg::PowerKind::kNone, 1e-3); },
                            "no values");
  expect_throws_input_error(
      [] { hg::RealTransform::fit({1.0, std::nan("")}, hg::PowerKind::kYeoJohnson, 1e-3); },
      "not finite");
  // Zeros are fine once shifted.
  EXPECT_NO_THROW(hg::RealTransform::fit(kCounts, hg::PowerKind::kBoxCox, 1e-3));
}

TEST(PowerTransform, ChoosePowerKind) {
  EXPECT_EQ(hg::choose_power_kind(kLognormal, 1e-3), hg::PowerKind::kBoxCox);
  EXPECT_EQ(hg::choose_power_kind(kCounts, 1e-3), hg::PowerKind::kBoxCox);  // 0 + shift > 0
  EXPECT_EQ(hg::choose_power_kind({1.0, -5e-4}, 1e-3), hg::PowerKind::kBoxCox);
  EXPECT_EQ(hg::choose_power_kind({1.0, -1e-3}, 1e-3), hg::PowerKind::kYeoJohnson);
  EXPECT_EQ(hg::choose_power_kind(kNegative, 1e-3), hg::PowerKind::kYeoJohnson);
  EXPECT_EQ(hg::choose_power_kind(kCounts, 0.0), hg::PowerKind::kYeoJohnson);
  // Whatever it picks, fit accepts.
  for (const auto* x : {&kLognormal, &kCounts, &kNegative}) {
    EXPECT_NO_THROW(hg::RealTransform::fit(*x, hg::choose_power_kind(*x, 1e-3), 1e-3));
  }
}

TEST(PowerTransform, KindStrings) {
  for (hg::PowerKind k :
       {hg::PowerKind::kNone, hg::PowerKind::kBoxCox, hg::PowerKind::kYeoJohnson}) {
    EXPECT_EQ(hg::power_kind_from_string(hg::to_string(k)), k);
  }
  EXPECT_EQ(hg::to_string(hg::PowerKind::kBoxCox), "boxcox");
  EXPECT_EQ(hg::to_string(hg::PowerKind::kYeoJohnson), "yeojohnson");
  EXPECT_EQ(hg::to_string(hg::PowerKind::kNone), "none");
  try {
    hg::power_kind_from_string("BoxCox");
    ADD_FAILURE() << "expected InputError";
  } catch (const hg::InputError& e) {
    EXPECT_STREQ(e.what(), "unknown transform 'BoxCox' (expected none, boxcox or yeojohnson)");
    EXPECT_EQ(e.exit_code(), 3);
  }
}

TEST(PowerTransform, RangeTailSpreadsTheBulkAndStaysInvertible) {
  // 400 values around 7.4 and two gross outliers, like PhysioNet's pH.
  std::vector<double> x;
  for (int i = 0; i < 400; ++i) x.push_back(7.0 + 0.8 * i / 399.0);
  x.push_back(0.5);
  x.push_back(100.0);
  const auto plain = hg::RealTransform::fit(x, hg::PowerKind::kNone, 1e-3);
  const auto robust = hg::RealTransform::fit(x, hg::PowerKind::kNone, 1e-3, 0.05);
  EXPECT_EQ(plain.tail, 0.0);
  EXPECT_EQ(robust.tail, 0.05);
  // Min-max squeezes the bulk into under 1% of [0,1]; the spread gives it 90%.
  EXPECT_LT(plain.forward(7.8) - plain.forward(7.0), 0.01);
  EXPECT_GT(robust.forward(7.8) - robust.forward(7.0), 0.85);
  EXPECT_DOUBLE_EQ(robust.forward(0.5), 0.0);
  EXPECT_DOUBLE_EQ(robust.forward(100.0), 1.0);
  double last = -1;
  for (double v : {0.5, 3.0, 7.0, 7.4, 7.8, 50.0, 100.0}) {
    const double u = robust.forward(v);
    EXPECT_GT(u, last) << v;  // monotone
    last = u;
    EXPECT_NEAR(robust.inverse(u), v, 1e-12 * std::max(1.0, v)) << v;
  }
  // Without tails on one side that side gets no share; a bulk of one value
  // keeps plain min-max.
  std::vector<double> left(x.begin(), x.end() - 1);
  const auto one_sided = hg::RealTransform::fit(left, hg::PowerKind::kNone, 1e-3, 0.05);
  EXPECT_NEAR(one_sided.forward(7.8), 1.0, 1e-12);
  // Values beyond the training range extend the outer lines, finite and monotone.
  EXPECT_GT(one_sided.forward(9.0), 1.0);
  EXPECT_LT(one_sided.forward(0.1), 0.0);
  EXPECT_TRUE(std::isfinite(one_sided.spread(-0.5)) && std::isfinite(one_sided.spread(1.5)));
  EXPECT_NEAR(one_sided.unspread(one_sided.spread(1.5)), 1.5, 1e-12);
  EXPECT_NEAR(one_sided.unspread(one_sided.spread(-0.5)), -0.5, 1e-12);
  std::vector<double> flat(100, 3.0);
  flat.push_back(9.0);
  EXPECT_EQ(hg::RealTransform::fit(flat, hg::PowerKind::kNone, 1e-3, 0.05).tail, 0.0);
  EXPECT_THROW(hg::RealTransform::fit(x, hg::PowerKind::kNone, 1e-3, 0.5), hg::UsageError);
}
