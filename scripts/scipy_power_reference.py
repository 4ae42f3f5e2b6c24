#!/usr/bin/python3
"""Reference values for tests/test_power_transform.cpp.

Run with the Debian interpreter, which has scipy 1.10.1 and mpmath:

    /usr/bin/python3 scripts/scipy_power_reference.py

For each fixed data set it prints, as C++ literals with full double precision:
  * scipy.stats.boxcox(x)[1] / scipy.stats.yeojohnson(x)[1] (the MLE lambda, found
    by scipy's Brent with its default bracket (-2, 2) and xtol 1.48e-8),
  * boxcox_llf / yeojohnson_llf at that lambda (and its 50-digit mpmath value:
    scipy's float64 data**lmb/lmb cancels when lmb is near 0) and at a few fixed
    lambdas,
  * a 50-digit mpmath MLE lambda, to show how close scipy's own answer is,
  * mpmath llf values at extreme lambdas where scipy 1.10's naive
    data**lmb overflows (its llf is then inf/nan), to check the log-space path.
"""
import mpmath as mp
import numpy as np
import scipy
from scipy import stats

mp.mp.dps = 50

DATA = {
    # lognormal-like, right-skewed positive values.
    "lognormal": [2.721, 3.4521, 2.183, 1.3331, 1.8894, 1.2296, 2.8523, 7.9421, 1.8335,
                  1.6547, 4.0224, 3.6165, 2.9575, 1.2913, 2.6554, 4.741, 0.9274, 1.885,
                  0.5939, 0.9689, 0.6229, 2.2522, 0.9861, 3.3771],
    # Poisson counts with many zeros; Box-Cox is fitted on counts + 1e-3.
    "counts": [0, 1, 3, 0, 0, 0, 1, 1, 1, 0, 3, 1, 2, 1, 0, 1, 0, 3, 2, 0],
    # Pareto-like, more skewed than lognormal: negative Box-Cox lambda.
    "pareto": [3.2961, 7.7763, 3.748, 25.7192, 1.0492, 9.0244, 1.7899, 5.6722, 1.2184,
               1.8276, 17.3897, 1.2802, 1.0867, 1.1599, 2.2737, 15.2587],
    # Left-skewed positive values: lambda far outside scipy's starting bracket.
    "leftskew": [9.1, 9.8, 9.95, 8.2, 9.99, 7.5, 9.6, 9.3, 9.7, 8.9],
    # n = 3.
    "small": [1.5, 2.0, 7.25],
    # Nearly symmetric logs: Box-Cox lambda close to 0.
    "near0": [0.135335, 0.272532, 0.496585, 0.818731, 1.0, 1.221403, 2.013753, 3.669297,
              7.403849, 1.568312, 0.637628],
    # Mixed signs, left-skewed: Yeo-Johnson only.
    "negative": [-24.113, -0.027, -0.622, -5.149, -1.628, -1.187, 2.289, -2.313, 0.043,
                 -16.105, -8.3, -2.23, -8.485, -0.442, -14.047, -2.353, -7.491, 2.688],
}
SHIFT = {"counts": 1e-3}
BOXCOX_SETS = ["lognormal", "counts", "pareto", "leftskew", "small", "near0"]
YJ_SETS = ["lognormal", "counts", "pareto", "small", "negative"]
FIXED_LAMBDAS = [-2.0, -0.5, 0.0, 0.5, 1.0, 2.5]
# (data set, lambda): values where float64 data**lmb overflows or loses everything.
BOXCOX_EXTREME = [("pareto", 250.0), ("pareto", -300.0), ("near0", 1e-9), ("lognormal", -1e-7)]
YJ_EXTREME = [("negative", -250.0), ("negative", 280.0), ("counts", 700.0)]


def lit(v):
    return repr(float(v))


def mp_boxcox_llf(lmb, x):
    x = [mp.mpf(v) for v in x]
    n = len(x)
    logs = [mp.log(v) for v in x]
    if lmb == 0:
        y = logs
    else:
        lmb = mp.mpf(lmb)
        y = [mp.expm1(lmb * v) / lmb for v in logs]
    mean = sum(y) / n
    var = sum((v - mean) ** 2 for v in y) / n
    return (lmb - 1) * sum(logs) - mp.mpf(n) / 2 * mp.log(var)


def mp_yj(v, lmb):
    if v >= 0:
        return mp.log1p(v) if lmb == 0 else mp.expm1(lmb * mp.log1p(v)) / lmb
    return -mp.log1p(-v) if lmb == 2 else -mp.expm1((2 - lmb) * mp.log1p(-v)) / (2 - lmb)


def mp_yeojohnson_llf(lmb, x):
    lmb = mp.mpf(lmb)
    x = [mp.mpf(v) for v in x]
    n = len(x)
    y = [mp_yj(v, lmb) for v in x]
    mean = sum(y) / n
    var = sum((v - mean) ** 2 for v in y) / n
    jac = sum(mp.sign(v) * mp.log1p(abs(v)) for v in x)
    return -mp.mpf(n) / 2 * mp.log(var) + (lmb - 1) * jac


def mp_argmax(f, start):
    # Stationary point of the llf, polished from scipy's answer.
    return mp.findroot(lambda l: mp.diff(f, l), mp.mpf(start))


def main():
    print("// scipy %s, numpy %s, mpmath %s" % (scipy.__version__, np.__version__,
                                               mp.__version__))
    for name in BOXCOX_SETS:
        x = np.asarray(DATA[name], dtype=float) + SHIFT.get(name, 0.0)
        lmb = stats.boxcox(x)[1]
        hp = mp_argmax(lambda l: mp_boxcox_llf(l, x), lmb)
        print("// boxcox %s (shift %s)" % (name, SHIFT.get(name, 0.0)))
        print("  lambda_scipy = %s; lambda_mpmath = %s;" % (lit(lmb), lit(hp)))
        print("  llf(lambda_scipy) = %s; mpmath %s;" % (lit(stats.boxcox_llf(lmb, x)),
                                                      lit(mp_boxcox_llf(lmb, x))))
        print("  llf at %s = {%s};" % (FIXED_LAMBDAS, ", ".join(
            lit(stats.boxcox_llf(l, x)) for l in FIXED_LAMBDAS)))
    for name in YJ_SETS:
        x = np.asarray(DATA[name], dtype=float)
        lmb = stats.yeojohnson(x)[1]
        hp = mp_argmax(lambda l: mp_yeojohnson_llf(l, x), lmb)
        print("// yeojohnson %s" % name)
        print("  lambda_scipy = %s; lambda_mpmath = %s;" % (lit(lmb), lit(hp)))
        print("  llf(lambda_scipy) = %s; mpmath %s;" % (lit(stats.yeojohnson_llf(lmb, x)),
                                                      lit(mp_yeojohnson_llf(lmb, x))))
        print("  llf at %s = {%s};" % (FIXED_LAMBDAS, ", ".join(
            lit(stats.yeojohnson_llf(l, x)) for l in FIXED_LAMBDAS)))
    with np.errstate(all="ignore"):
        for name, lmb in BOXCOX_EXTREME:
            x = np.asarray(DATA[name], dtype=float) + SHIFT.get(name, 0.0)
            print("// boxcox_llf(%r, %s): mpmath %s, scipy %s" % (
                lmb, name, lit(mp_boxcox_llf(lmb, x)), lit(stats.boxcox_llf(lmb, x))))
        for name, lmb in YJ_EXTREME:
            x = np.asarray(DATA[name], dtype=float)
            print("// yeojohnson_llf(%r, %s): mpmath %s, scipy %s" % (
                lmb, name, lit(mp_yeojohnson_llf(lmb, x)),
                lit(stats.yeojohnson_llf(lmb, x))))


if __name__ == "__main__":
    main()
