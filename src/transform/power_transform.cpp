// Box-Cox and Yeo-Johnson transforms with maximum-likelihood lambda, matching
// scipy.stats.boxcox_llf / yeojohnson_llf (scipy 1.10) and the lambda that
// scipy.stats.boxcox / yeojohnson find, but evaluated more carefully:
//  * every power is written as expm1(a*L)/a (L a logarithm), exact near a = 0,
//    where scipy 1.10's data**lmb/lmb cancels (it loses ~1e-12 at lmb ~ 5e-4);
//  * L is split into a per-data reference plus a difference taken straight from
//    the data, so large |a| does not bury the spread under a constant;
//  * log sums are compensated and the variance is a corrected two-pass one in
//    long double;
//  * where a value would overflow, the variance is taken in log space (scaled by
//    the largest value), so the llf stays finite where scipy 1.10 gives inf/nan.
// scipy 1.10 only drops the 1/lmb offset (gh-10072); its logsumexp log-space
// variance and its clamp of lambda to non-overflowing transforms arrived later
// (gh-19604). Where 1.10's float64 arithmetic is accurate, the two agree to
// ~1e-12 relative; the MLE search is likewise kept to non-overflowing lambdas.
#include "healthgym/power_transform.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "healthgym/error.hpp"

namespace healthgym {
namespace {

using Real = long double;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMaxDouble = std::numeric_limits<double>::max();

// Exponents the MLE search keeps every transformed value below: exp(700) ~ 1e304
// leaves room for min-max differences in double. scipy 1.10 overflows there too.
constexpr double kMaxExponent = 700.0;
// |lambda| never usefully exceeds this; it stops the outward bracket search on
// nearly constant data, whose likelihood keeps rising very slowly.
constexpr double kLambdaCap = 1000.0;
// Initial grid, wider than scipy's (-2, 2) starting bracket so Brent starts next
// to the global maximum rather than wherever a downhill walk ends.
constexpr double kGridLo = -10.0;
constexpr double kGridHi = 10.0;
constexpr int kGridIntervals = 20;  // step 1: the llf is smooth and, in practice, unimodal
constexpr double kRelTol = 1e-10;
constexpr double kAbsTol = 1e-12;

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

// Neumaier-compensated sum: llf terms mix signs and magnitudes.
class Sum {
 public:
  void add(Real v) {
    Real t = sum_ + v;
    if (std::fabs(sum_) >= std::fabs(v)) {
      comp_ += (sum_ - t) + v;
    } else {
      comp_ += (v - t) + sum_;
    }
    sum_ = t;
  }
  Real value() const { return sum_ + comp_; }

 private:
  Real sum_ = 0.0L;
  Real comp_ = 0.0L;
};

// expm1(a*L)/a, whose a -> 0 limit is L; the series keeps tiny a exact where
// a*L would lose digits (or underflow).
template <class T>
T pow_term(T log_value, T a) {
  if (a == 0) return log_value;
  T t = a * log_value;
  if (std::fabs(t) < T(1e-10)) return log_value * (T(1) + T(0.5) * t);
  return std::expm1(t) / a;
}

// log|expm1(t)| without overflow for large t.
Real log_abs_expm1(Real t) {
  if (t > 40.0L) return t + std::log1p(-std::exp(-t));
  if (t < -1.0L) return std::log1p(-std::exp(t));
  return std::log(std::fabs(std::expm1(t)));  // -inf at t == 0, as y == 0 there
}

// Population variance (divides by n, as numpy's var) of value(0..n-1), by the
// corrected two-pass algorithm in long double.
template <class F>
Real variance_of(std::size_t n, F value) {
  Real sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += value(i);
  const Real mean = sum / static_cast<Real>(n);
  Real sq = 0, dev = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Real d = value(i) - mean;
    sq += d * d;
    dev += d;
  }
  return std::max(Real(0), (sq - dev * dev / static_cast<Real>(n)) / static_cast<Real>(n));
}

// Largest exponent for which values formed in long double, and their squares
// summed, cannot overflow (long double is plain double on some targets), and
// the largest one for a power formed in double.
const Real kLongLimit = 0.2L * std::numeric_limits<Real>::max_exponent * std::log(2.0L);
const double kDoubleLimit = std::min(kMaxExponent, static_cast<double>(kLongLimit));

// One side of the data: Box-Cox has one, Yeo-Johnson x >= 0 and x < 0. Its
// values transform to sign * expm1(a*L)/a, with L = log(v) (v = x for Box-Cox,
// 1 + |x| for Yeo-Johnson) and a = lambda, or 2 - lambda on the negative side.
// Writing L = ref + d, with d taken straight from the data as the log1p of a
// relative difference, y = sign * (exp(a*ref) * expm1(a*d)/a + expm1(a*ref)/a):
// the first term carries all the spread at full relative precision, where
// expm1(a*L)/a (or scipy's v**a/a) buries it under a large constant when
// |a*L| is large, and log(v) itself rounds away the spread of near-constant v.
struct Branch {
  bool present = false;
  double sign = 1.0;
  Real ref = 0;  // log of the reference value, the geometric midrange of v
  double d_min = 0.0, d_max = 0.0;
};

// An llf's data, prepared once so the optimiser's evaluations only redo powers.
struct Prepared {
  bool valid = false;               // false: the llf is NaN (no values, or values out of domain)
  std::vector<double> d;            // L_i - ref of its branch
  std::vector<unsigned char> side;  // branch index: 1 for Yeo-Johnson x < 0
  Branch branch[2];
  Real log_sum = 0;  // sum L_i (Box-Cox), or Yeo-Johnson's Jacobian sum sign(x_i) L_i
};

// log(v / r) from the difference v - r, exact when v is close to r.
double rel_log(double v, double r, double one_plus) {
  const double q = (v - r) / (r + one_plus);
  if (std::isfinite(q)) return std::log1p(q);
  return static_cast<double>(std::log(static_cast<Real>(v) + one_plus) -
                             std::log(static_cast<Real>(r) + one_plus));
}

// Shared by both: v_i = |x_i| (plus 1 when one_plus), side_i = x_i < 0.
Prepared prepare(const std::vector<double>& v, const std::vector<unsigned char>& side,
                 double one_plus) {
  Prepared p;
  double l_min[2] = {kInf, kInf}, l_max[2] = {-kInf, -kInf};
  Sum sum;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double l = one_plus != 0 ? std::log1p(v[i]) : std::log(v[i]);
    const int b = side[i];
    l_min[b] = std::min(l_min[b], l);
    l_max[b] = std::max(l_max[b], l);
    sum.add(b ? -l : l);
  }
  p.log_sum = sum.value();
  double ref_value[2] = {0.0, 0.0};
  for (int b = 0; b < 2; ++b) {
    Branch& br = p.branch[b];
    br.present = l_min[b] <= l_max[b];
    br.sign = b ? -1.0 : 1.0;
    if (!br.present) continue;
    const double mid = 0.5 * (l_min[b] + l_max[b]);
    ref_value[b] = one_plus != 0 ? std::expm1(mid) : std::exp(mid);
    br.ref = one_plus != 0 ? std::log1p(static_cast<Real>(ref_value[b]))
                           : std::log(static_cast<Real>(ref_value[b]));
    br.d_min = kInf;
    br.d_max = -kInf;
  }
  p.d.resize(v.size());
  p.side = side;
  for (std::size_t i = 0; i < v.size(); ++i) {
    Branch& br = p.branch[side[i]];
    p.d[i] = rel_log(v[i], ref_value[side[i]], one_plus);
    br.d_min = std::min(br.d_min, p.d[i]);
    br.d_max = std::max(br.d_max, p.d[i]);
  }
  p.valid = !v.empty();
  return p;
}

Prepared prepare_box_cox(const std::vector<double>& x) {
  for (double v : x) {
    if (!(v > 0) || !std::isfinite(v)) return Prepared{};  // scipy: log(x <= 0) is nan
  }
  return prepare(x, std::vector<unsigned char>(x.size(), 0), 0.0);
}

Prepared prepare_yeo_johnson(const std::vector<double>& x) {
  std::vector<double> v(x.size());
  std::vector<unsigned char> side(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return Prepared{};
    // As scipy: x >= 0 uses ((1+x)^lmb - 1)/lmb, x < 0 -((1-x)^(2-lmb) - 1)/(2-lmb).
    v[i] = std::fabs(x[i]);
    side[i] = x[i] < 0;
  }
  return prepare(v, side, 1.0);
}

// log of the population variance of the transformed values; -inf when it is 0.
// `w` is scratch space, reused across evaluations.
Real log_variance(const Prepared& p, double lambda, std::vector<double>& w) {
  const std::size_t n = p.d.size();
  const double a[2] = {lambda, 2.0 - lambda};
  bool direct = true;
  int present = 0;
  for (int b = 0; b < 2; ++b) {
    const Branch& br = p.branch[b];
    if (!br.present) continue;
    ++present;
    if (std::max(a[b] * br.d_min, a[b] * br.d_max) > kDoubleLimit) direct = false;
  }
  if (direct) {
    w.resize(n);
    for (std::size_t i = 0; i < n; ++i) w[i] = pow_term(p.d[i], a[p.side[i]]);
    if (present == 1) {
      // One branch: the constant drops out and exp(a*ref) factors out of the variance.
      const int b = p.branch[0].present ? 0 : 1;
      const Real v = variance_of(n, [&](std::size_t i) { return static_cast<Real>(w[i]); });
      return 2 * (a[b] * p.branch[b].ref) + std::log(v);
    }
    // Both branches (Yeo-Johnson, mixed signs): form the values in long double.
    Real scale[2], offset[2];
    for (int b = 0; b < 2; ++b) {
      const Real t = a[b] * p.branch[b].ref;
      if (std::fabs(t) > kLongLimit) direct = false;
      scale[b] = p.branch[b].sign * std::exp(t);
      offset[b] = p.branch[b].sign * pow_term(p.branch[b].ref, static_cast<Real>(a[b]));
    }
    if (direct) {
      const Real v = variance_of(n, [&](std::size_t i) {
        return offset[p.side[i]] + scale[p.side[i]] * static_cast<Real>(w[i]);
      });
      return std::log(v);
    }
  }
  // Some value would overflow: scale all by exp(-M), M the largest log|y|, so
  // var(y) = exp(2M) var(z). sign(expm1(a*L)/a) == sign(L), so signs need no power.
  std::vector<Real> log_abs(n);
  Real m = -std::numeric_limits<Real>::infinity();
  for (std::size_t i = 0; i < n; ++i) {
    const Real ai = a[p.side[i]];
    const Real l = p.branch[p.side[i]].ref + p.d[i];
    log_abs[i] = ai == 0 ? std::log(std::fabs(l)) : log_abs_expm1(ai * l) - std::log(std::fabs(ai));
    m = std::max(m, log_abs[i]);
  }
  const Real v = variance_of(n, [&](std::size_t i) {
    const Real l = p.branch[p.side[i]].ref + p.d[i];
    const Real s = (l < 0 ? -1 : 1) * p.branch[p.side[i]].sign;
    return s * std::exp(log_abs[i] - m);
  });
  return 2 * m + std::log(v);
}

// The llfs in long double, so the optimiser sees as smooth a function as we can.
Real box_cox_llf_ld(const Prepared& p, double lambda, std::vector<double>& w) {
  if (!p.valid || !std::isfinite(lambda)) return kNaN;
  const Real n = static_cast<Real>(p.d.size());
  return (static_cast<Real>(lambda) - 1) * p.log_sum - n / 2 * log_variance(p, lambda, w);
}

Real yeo_johnson_llf_ld(const Prepared& p, double lambda, std::vector<double>& w) {
  if (!p.valid || !std::isfinite(lambda)) return kNaN;
  const Real n = static_cast<Real>(p.d.size());
  return -n / 2 * log_variance(p, lambda, w) + (static_cast<Real>(lambda) - 1) * p.log_sum;
}

// Brent's localmin (as scipy's fminbound / Brent 1973) maximising f on [a, b],
// started from x0, a point in [a, b] with the best value seen so far.
template <class F>
double brent_max(F f, double a, double b, double x0, Real fx0) {
  const double golden = 0.5 * (3.0 - std::sqrt(5.0));
  double x = x0, w = x0, v = x0;
  Real fx = -fx0, fw = fx, fv = fx;  // minimise -f
  double d = 0.0, e = 0.0;
  for (int iter = 0; iter < 500; ++iter) {
    const double m = 0.5 * (a + b);
    const double tol1 = kRelTol * std::fabs(x) + kAbsTol;
    const double tol2 = 2.0 * tol1;
    if (std::fabs(x - m) <= tol2 - 0.5 * (b - a)) break;
    bool golden_step = true;
    if (std::fabs(e) > tol1) {
      // Parabola through x, w, v; NaN from infinite values fails every test below.
      double r = (x - w) * static_cast<double>(fx - fv);
      double q = (x - v) * static_cast<double>(fx - fw);
      double p = (x - v) * q - (x - w) * r;
      q = 2.0 * (q - r);
      if (q > 0) {
        p = -p;
      } else {
        q = -q;
      }
      const double e_prev = e;
      e = d;
      if (std::fabs(p) < std::fabs(0.5 * q * e_prev) && p > q * (a - x) && p < q * (b - x)) {
        d = p / q;
        const double u = x + d;
        if (u - a < tol2 || b - u < tol2) d = x < m ? tol1 : -tol1;
        golden_step = false;
      }
    }
    if (golden_step) {
      e = x < m ? b - x : a - x;
      d = golden * e;
    }
    const double u = x + (std::fabs(d) >= tol1 ? d : (d > 0 ? tol1 : -tol1));
    const Real fu = -f(u);
    if (fu <= fx) {
      if (u < x) {
        b = x;
      } else {
        a = x;
      }
      v = w;
      fv = fw;
      w = x;
      fw = fx;
      x = u;
      fx = fu;
    } else {
      if (u < x) {
        a = u;
      } else {
        b = u;
      }
      if (fu <= fw || w == x) {
        v = w;
        fv = fw;
        w = u;
        fw = fu;
      } else if (fu <= fv || v == x || v == w) {
        v = u;
        fv = fu;
      }
    }
  }
  return x;
}

// Global-ish maximiser of an llf over [lo, hi] (lo <= 1 <= hi): a grid over
// [-10, 10] picks the best cell, an outward walk extends it if the best point
// is on the grid's edge, and Brent polishes within the neighbouring cells.
// Non-finite llf values (zero variance) count as -inf, as in scipy's
// yeojohnson_normmax.
template <class Llf>
double maximise(Llf llf, double lo, double hi, const char* who) {
  auto f = [&](double lam) -> Real {
    const Real v = llf(lam);
    return std::isfinite(static_cast<double>(v)) ? v : -std::numeric_limits<Real>::infinity();
  };
  const double g_lo = std::max(lo, kGridLo), g_hi = std::min(hi, kGridHi);
  std::vector<double> grid(kGridIntervals + 1);
  std::vector<Real> val(grid.size());
  std::size_t best = 0;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    const double frac = static_cast<double>(i) / kGridIntervals;
    grid[i] = i + 1 == grid.size() ? g_hi : g_lo + (g_hi - g_lo) * frac;
    val[i] = f(grid[i]);
    if (val[i] > val[best]) best = i;
  }
  if (!std::isfinite(static_cast<double>(val[best]))) {
    throw InputError(std::string(who) + ": the log-likelihood is not finite for any lambda");
  }
  double mid = grid[best];
  Real f_mid = val[best];
  double left = best > 0 ? grid[best - 1] : grid[best];
  double right = best + 1 < grid.size() ? grid[best + 1] : grid[best];
  double step = (g_hi - g_lo) / kGridIntervals;
  // Walk outward, doubling the step, while the llf keeps rising towards a bound.
  if (best == 0 && mid > lo) {
    for (;;) {
      const double next = std::max(lo, mid - step);
      const Real f_next = f(next);
      if (f_next < f_mid) {
        left = next;
        break;
      }
      right = mid;
      mid = next;
      f_mid = f_next;
      left = next;
      if (next <= lo) break;
      step *= 2;
    }
  } else if (best + 1 == grid.size() && mid < hi) {
    for (;;) {
      const double next = std::min(hi, mid + step);
      const Real f_next = f(next);
      if (f_next < f_mid) {
        right = next;
        break;
      }
      left = mid;
      mid = next;
      f_mid = f_next;
      right = next;
      if (next >= hi) break;
      step *= 2;
    }
  }
  return brent_max(f, left, right, mid, f_mid);
}

void check_fit_input(const std::vector<double>& x, const char* who) {
  if (x.empty()) throw InputError(std::string(who) + ": no values to fit lambda on");
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      throw InputError(std::string(who) + ": value " + std::to_string(i) + " is not finite (" +
                       fmt(x[i]) + ")");
    }
  }
}

bool all_equal(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [&](double v) { return v == x.front(); });
}

// log1p(a*y)/a, the log of the inverse power; +-inf outside the invertible range
// (a*y <= -1), which callers clamp. Series for tiny a*y, where a*y may underflow.
double inv_log(double y, double a) {
  const double ay = a * y;
  if (!(ay > -1.0)) return a > 0 ? -kInf : kInf;
  if (std::fabs(ay) < 1e-8) return y * (1.0 - ay * (0.5 - ay / 3.0));
  return std::log1p(ay) / a;
}

// Results beyond the largest double are clamped so inverses never return inf.
double finite_or_max(double v) {
  if (v > kMaxDouble) return kMaxDouble;
  if (v < -kMaxDouble) return -kMaxDouble;
  return v;
}

// The data's extent for the conditioning check: log v at the ends of each
// branch, v = x + shift (Box-Cox, branch 0) or 1 + |x| (Yeo-Johnson, branch 1
// for x < 0), and the log of the spread max x - min x.
struct Extent {
  struct Side {
    bool present = false;
    Real log_lo = 0, log_hi = 0;
  } side[2];
  Real log_spread = 0;
};

// log of the worst rounding amplification in a round trip through the fitted
// transform. Min-max scaling leaves y with an error of ~eps * max|y|; the
// inverse turns that into an error in x of eps * max|y| / (dy/dx), dy/dx =
// v^(a-1). Measured against v (v^a) and against the data's spread, whichever
// is worse. All extremes sit at the ends of a branch, y and v^a being monotone.
Real log_condition(const Extent& e, double lambda) {
  const Real a[2] = {lambda, 2.0L - lambda};
  Real log_y = -std::numeric_limits<Real>::infinity();
  Real log_rel = std::numeric_limits<Real>::infinity();    // min log(v * dy/dx)
  Real log_slope = std::numeric_limits<Real>::infinity();  // min log(dy/dx)
  for (int b = 0; b < 2; ++b) {
    if (!e.side[b].present) continue;
    for (Real l : {e.side[b].log_lo, e.side[b].log_hi}) {
      const Real ly =
          a[b] == 0 ? std::log(std::fabs(l)) : log_abs_expm1(a[b] * l) - std::log(std::fabs(a[b]));
      log_y = std::max(log_y, ly);
      log_rel = std::min(log_rel, a[b] * l);
      log_slope = std::min(log_slope, (a[b] - 1) * l);
    }
  }
  return log_y - std::min(log_rel, log_slope + e.log_spread);
}

// The MLE can sit where the transform is useless in double: data with a small
// relative spread have an llf that is flat out to large |lambda|, where every
// value maps to nearly the same double (about -1/lambda). Such a lambda is
// pulled back towards the best conditioned of `safe` (lambdas that are log-like
// or the identity) until a round trip loses at most ~1e6 eps, or no more than
// at that safe lambda; the llf rises towards the MLE, so that boundary is the
// constrained maximum. Typical data (even pH-like 7.4 +- 0.05) stay at the MLE.
double invertible_lambda(const Extent& e, double lambda, std::initializer_list<double> safe) {
  const Real log_max_condition = std::log(1e6L);
  if (!std::isfinite(static_cast<double>(e.log_spread))) return lambda;  // constant data
  const Real at_mle = log_condition(e, lambda);
  if (at_mle <= log_max_condition) return lambda;
  double good = *safe.begin();
  Real at_good = log_condition(e, good);
  for (double s : safe) {
    const Real c = log_condition(e, s);
    if (c < at_good) {
      good = s;
      at_good = c;
    }
  }
  const Real bound = std::max(log_max_condition, at_good);
  if (at_mle <= bound) return lambda;
  double bad = lambda;
  for (int iter = 0; iter < 200; ++iter) {
    const double mid = 0.5 * (good + bad);
    if (mid == good || mid == bad) break;
    if (log_condition(e, mid) <= bound) {
      good = mid;
    } else {
      bad = mid;
    }
  }
  return good;
}

}  // namespace

std::string to_string(PowerKind k) {
  switch (k) {
    case PowerKind::kNone:
      return "none";
    case PowerKind::kBoxCox:
      return "boxcox";
    case PowerKind::kYeoJohnson:
      return "yeojohnson";
  }
  return "none";
}

PowerKind power_kind_from_string(const std::string& s) {
  if (s == "none") return PowerKind::kNone;
  if (s == "boxcox") return PowerKind::kBoxCox;
  if (s == "yeojohnson") return PowerKind::kYeoJohnson;
  throw InputError("unknown transform '" + s + "' (expected none, boxcox or yeojohnson)");
}

double box_cox(double x, double lambda) {
  if (std::isnan(x)) return kNaN;  // as yeo_johnson: a missing value stays missing
  if (!(x > 0)) throw InputError("box_cox: value must be > 0 (got " + fmt(x) + ")");
  return pow_term(std::log(x), lambda);
}

double inv_box_cox(double y, double lambda) {
  if (std::isnan(y) || std::isnan(lambda)) return kNaN;
  // y beyond the range (y <= -1/lambda for lambda > 0, y >= -1/lambda for
  // lambda < 0) maps to the range's end: 0 or the largest double.
  const double log_x = lambda == 0 ? y : inv_log(y, lambda);
  return finite_or_max(std::exp(log_x));
}

double yeo_johnson(double x, double lambda) {
  if (std::isnan(x)) return kNaN;
  // The negative branch is the positive one mirrored, with 2 - lambda.
  if (x >= 0) return pow_term(std::log1p(x), lambda);
  return -pow_term(std::log1p(-x), 2.0 - lambda);
}

double inv_yeo_johnson(double y, double lambda) {
  if (std::isnan(y) || std::isnan(lambda)) return kNaN;
  if (y >= 0) {
    const double log1p_x = lambda == 0 ? y : inv_log(y, lambda);
    return finite_or_max(std::expm1(log1p_x));
  }
  const double a = 2.0 - lambda;
  const double log1p_neg_x = a == 0 ? -y : inv_log(-y, a);
  return -finite_or_max(std::expm1(log1p_neg_x));
}

double box_cox_llf(double lambda, const std::vector<double>& x) {
  std::vector<double> scratch;
  return static_cast<double>(box_cox_llf_ld(prepare_box_cox(x), lambda, scratch));
}

double yeo_johnson_llf(double lambda, const std::vector<double>& x) {
  std::vector<double> scratch;
  return static_cast<double>(yeo_johnson_llf_ld(prepare_yeo_johnson(x), lambda, scratch));
}

double box_cox_mle(const std::vector<double>& x) {
  check_fit_input(x, "box_cox_mle");
  double log_min = kInf, log_max = -kInf;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0)) {
      throw InputError("box_cox_mle: Box-Cox needs every value > 0, but value " +
                       std::to_string(i) + " is " + fmt(x[i]) + "; use yeojohnson");
    }
    log_min = std::min(log_min, std::log(x[i]));
    log_max = std::max(log_max, std::log(x[i]));
  }
  // Constant data: the variance is 0 and the llf +inf for every lambda, so there
  // is no MLE. lambda = 1 makes the transform x - 1, harmless for min-max scaling.
  if (all_equal(x)) return 1.0;
  // Search only lambdas whose transform stays representable (lambda*log x <=
  // 700); lambda = 0 and 1 are always safe.
  double hi = log_max > 0 ? kMaxExponent / log_max : kLambdaCap;
  double lo = log_min < 0 ? kMaxExponent / log_min : -kLambdaCap;
  hi = std::max(1.0, std::min(kLambdaCap, hi));
  lo = std::min(0.0, std::max(-kLambdaCap, lo));
  const Prepared p = prepare_box_cox(x);
  std::vector<double> scratch;
  return maximise([&](double lam) { return box_cox_llf_ld(p, lam, scratch); }, lo, hi,
                  "box_cox_mle");
}

double yeo_johnson_mle(const std::vector<double>& x) {
  check_fit_input(x, "yeo_johnson_mle");
  if (all_equal(x)) return 1.0;         // no MLE, as for Box-Cox; lambda = 1 is the identity
  double log_pos = 0.0, log_neg = 0.0;  // log1p of the largest |x| on each side
  for (double v : x) {
    if (v >= 0) {
      log_pos = std::max(log_pos, std::log1p(v));
    } else {
      log_neg = std::max(log_neg, std::log1p(-v));
    }
  }
  // As for Box-Cox: lambda*log1p(x) <= 700 for x >= 0 and (2 - lambda)*log1p(-x)
  // <= 700 for x < 0; lambda = 1 (the identity) is always safe.
  double hi = log_pos > 0 ? kMaxExponent / log_pos : kLambdaCap;
  double lo = log_neg > 0 ? 2.0 - kMaxExponent / log_neg : -kLambdaCap;
  hi = std::max(1.0, std::min(kLambdaCap, hi));
  lo = std::min(1.0, std::max(-kLambdaCap, lo));
  const Prepared p = prepare_yeo_johnson(x);
  std::vector<double> scratch;
  return maximise([&](double lam) { return yeo_johnson_llf_ld(p, lam, scratch); }, lo, hi,
                  "yeo_johnson_mle");
}

RealTransform RealTransform::fit(const std::vector<double>& x, PowerKind kind, double shift,
                                 double tail) {
  if (x.empty()) throw InputError("cannot fit a transform on no values");
  if (!(tail >= 0.0 && tail < 0.5)) throw UsageError("range tail must be in [0, 0.5)");
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      throw InputError("cannot fit a transform: value " + std::to_string(i) + " is not finite (" +
                       fmt(x[i]) + ")");
    }
  }
  RealTransform t;
  t.kind = kind;
  t.shift = shift;
  t.lambda = 1.0;
  switch (kind) {
    case PowerKind::kNone:
      break;
    case PowerKind::kBoxCox: {
      if (!std::isfinite(shift)) throw InputError("boxcox shift must be finite");
      std::vector<double> shifted(x.size());
      double min_x = x.front();
      for (std::size_t i = 0; i < x.size(); ++i) {
        shifted[i] = x[i] + shift;
        min_x = std::min(min_x, x[i]);
      }
      if (!(min_x + shift > 0)) {
        throw InputError("boxcox needs every value + shift > 0, but the minimum value is " +
                         fmt(min_x) + " (shift " + fmt(shift) +
                         "); use yeojohnson for this variable");
      }
      const auto [lo_it, hi_it] = std::minmax_element(shifted.begin(), shifted.end());
      Extent e;
      e.side[0] = {true, std::log(static_cast<Real>(*lo_it)), std::log(static_cast<Real>(*hi_it))};
      e.log_spread = std::log(static_cast<Real>(*hi_it) - *lo_it);
      t.lambda = invertible_lambda(e, box_cox_mle(shifted), {0.0, 1.0});
      break;
    }
    case PowerKind::kYeoJohnson: {
      Extent e;
      for (double v : x) {
        Extent::Side& side = e.side[v < 0 ? 1 : 0];
        const Real l = std::log1p(static_cast<Real>(std::fabs(v)));
        side.log_lo = side.present ? std::min(side.log_lo, l) : l;
        side.log_hi = side.present ? std::max(side.log_hi, l) : l;
        side.present = true;
      }
      const auto [lo_it, hi_it] = std::minmax_element(x.begin(), x.end());
      e.log_spread = std::log(static_cast<Real>(*hi_it) - *lo_it);
      t.lambda = invertible_lambda(e, yeo_johnson_mle(x), {0.0, 1.0, 2.0});
      break;
    }
  }
  t.min = 0.0;
  t.range = 1.0;
  double lo = kInf, hi = -kInf;
  for (double v : x) {
    const double y = t.forward(v);  // min 0 / range 1: the bare power transform
    lo = std::min(lo, y);
    hi = std::max(hi, y);
  }
  const double range = hi - lo;
  if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(range)) {
    if (kind == PowerKind::kNone) throw InputError("the values' range overflows a double");
    throw InputError("the " + to_string(kind) + " transform (lambda " + fmt(t.lambda) +
                     ") of these values overflows; use none for this variable");
  }
  t.min = lo;
  t.range = range > 0 ? range : 1.0;  // constant variable: forward maps it to 0
  if (tail > 0 && range > 0) {
    std::vector<double> v(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) v[i] = t.forward(x[i]);
    std::sort(v.begin(), v.end());
    const auto at = [&](double q) {
      return v[static_cast<std::size_t>(std::floor(q * static_cast<double>(v.size() - 1)))];
    };
    const double a = at(kBulkQuantile), b = at(1.0 - kBulkQuantile);
    // A bulk of (nearly) one value has no spread to rescale: keep min-max.
    if (b - a > 1e-9) {
      t.tail = tail;
      t.bulk_lo = a;
      t.bulk_hi = b;
    }
  }
  return t;
}

namespace {

// The line through (0,0), (a1,b1), (a2,b2), (1,1), piece by piece. Beyond
// [0,1] the outer pieces extend; an empty outer piece (a1 = 0 or a2 = 1) leaves
// it to the middle one. Swapping a and b gives the inverse.
double piecewise(double x, double a1, double a2, double b1, double b2) {
  if (x < a1 && a1 > 0) return b1 * x / a1;
  if (x > a2 && a2 < 1) return b2 + (1.0 - b2) * (x - a2) / (1.0 - a2);
  return b1 + (b2 - b1) * (x - a1) / (a2 - a1);
}

}  // namespace

// A tail with nothing in it (bulk_lo 0 or bulk_hi 1) gets no share of [0,1].
double RealTransform::spread(double v) const {
  if (tail <= 0) return v;
  return piecewise(v, bulk_lo, bulk_hi, bulk_lo > 0 ? tail : 0.0, bulk_hi < 1 ? 1.0 - tail : 1.0);
}

double RealTransform::unspread(double u) const {
  if (tail <= 0) return u;
  return piecewise(u, bulk_lo > 0 ? tail : 0.0, bulk_hi < 1 ? 1.0 - tail : 1.0, bulk_lo, bulk_hi);
}

double RealTransform::forward(double x) const {
  double y = x;
  if (kind == PowerKind::kBoxCox) {
    y = box_cox(x + shift, lambda);
  } else if (kind == PowerKind::kYeoJohnson) {
    y = yeo_johnson(x, lambda);
  }
  return spread((y - min) / range);
}

double RealTransform::inverse(double u) const {
  if (std::isnan(u)) return kNaN;  // a broken sample should stay visible, not become min
  u = std::min(1.0, std::max(0.0, u));
  const double y = min + unspread(u) * range;
  if (kind == PowerKind::kBoxCox) return inv_box_cox(y, lambda) - shift;
  if (kind == PowerKind::kYeoJohnson) return inv_yeo_johnson(y, lambda);
  return y;
}

PowerKind choose_power_kind(const std::vector<double>& x, double shift) {
  // Same test as RealTransform::fit, so the chosen kind always fits.
  const bool positive = std::all_of(x.begin(), x.end(), [&](double v) { return v + shift > 0; });
  return positive ? PowerKind::kBoxCox : PowerKind::kYeoJohnson;
}

}  // namespace healthgym
