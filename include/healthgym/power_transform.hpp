#pragma once
// Power transforms for real variables, with lambda fitted by maximum likelihood
// exactly as scipy.stats.boxcox / scipy.stats.yeojohnson do (same objective,
// maximised to high precision), so results can be checked against scipy.
#include <string>
#include <vector>

namespace healthgym {

enum class PowerKind { kNone, kBoxCox, kYeoJohnson };

std::string to_string(PowerKind k);
PowerKind power_kind_from_string(
    const std::string& s);  // "none"|"boxcox"|"yeojohnson"; throws InputError

// Box-Cox of x > 0. lambda == 0 is log(x). Throws InputError for x <= 0.
// All four functions pass NaN through; the inverses return finite values for any
// other y (beyond the invertible range, the range's end: 0 or +-DBL_MAX).
double box_cox(double x, double lambda);
double inv_box_cox(double y, double lambda);  // clamps y into the transform's range first
// Yeo-Johnson of any real x.
double yeo_johnson(double x, double lambda);
double inv_yeo_johnson(double y, double lambda);

// Profile log-likelihoods, as scipy.stats.boxcox_llf / yeojohnson_llf: NaN for no
// data or (Box-Cox) a value <= 0, +inf for zero variance.
double box_cox_llf(double lambda, const std::vector<double>& x);
double yeo_johnson_llf(double lambda, const std::vector<double>& x);

// Maximum-likelihood lambda. x must be non-empty; Box-Cox needs every x > 0.
// Throws InputError when the data cannot be fitted. Constant data has no MLE
// (the llf is +inf at every lambda); those return 1.
double box_cox_mle(const std::vector<double>& x);
double yeo_johnson_mle(const std::vector<double>& x);

// The transform of one real variable: power transform then min-max to [0,1].
// Box-Cox applies to x + shift (shift = eps, default 1e-3, as in the original).
struct RealTransform {
  PowerKind kind = PowerKind::kBoxCox;
  double lambda = 1.0;
  double shift = 1e-3;
  double min = 0.0;    // of the power-transformed training values
  double range = 1.0;  // max - min; 1 when the variable is constant
  // Robust spread (tail 0: plain min-max, the original). The training values'
  // central part, between quantiles kBulkQuantile and 1 - kBulkQuantile (at
  // bulk_lo and bulk_hi in min-max units), maps linearly onto [tail, 1 - tail],
  // the values below and above onto the outer `tail` at each end. Monotone and
  // piecewise linear, so exactly invertible, but a few outliers (a pH of 100
  // in PhysioNet) no longer squeeze every other value into a sliver of [0,1].
  double tail = 0.0;
  double bulk_lo = 0.0;
  double bulk_hi = 1.0;
  static constexpr double kBulkQuantile = 0.005;

  // Fits lambda (unless kind is kNone), then min and range on the given values.
  // kind kBoxCox with any x + shift <= 0 throws InputError: the caller picks
  // Yeo-Johnson for such variables (see choose_power_kind). lambda is the MLE,
  // unless the MLE's transform would not survive a round trip in double (nearly
  // constant data, whose llf is flat out to huge |lambda|); then it is the
  // nearest lambda towards a log-like one whose transform does.
  static RealTransform fit(const std::vector<double>& x, PowerKind kind, double shift,
                           double tail = 0.0);

  double forward(double x) const;  // -> [0,1] for training-range values
  double inverse(double u) const;  // u is clamped to [0,1] first; NaN stays NaN
  // The robust map from min-max units to [0,1] and back (identity when tail 0).
  double spread(double v) const;
  double unspread(double u) const;
};

// Box-Cox when every value is > -shift, otherwise Yeo-Johnson.
PowerKind choose_power_kind(const std::vector<double>& x, double shift);

}  // namespace healthgym
