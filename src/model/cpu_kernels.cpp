#include "healthgym/cpu_kernels.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "healthgym/error.hpp"

// The loops below are plain C++ that the compiler vectorises; on x86-64 Linux
// with GCC each is also built for AVX2 and AVX-512 and picked at load time, so
// one binary runs everywhere and uses the widest vectors the CPU has.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    defined(__GLIBC__)
#define HEALTHGYM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HEALTHGYM_CLONES
#endif

namespace healthgym {

using torch::Tensor;

namespace {

// bf16 <-> fp32 by bits, as c10::BFloat16 does: the upper half of an fp32,
// rounded to nearest even, NaN kept a quiet NaN.
HEALTHGYM_CLONES void bf16_to_float(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(in[i]) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    out[i] = f;
  }
}

HEALTHGYM_CLONES void float_to_bf16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &in[i], sizeof u);
    const auto r = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    out[i] = in[i] != in[i] ? uint16_t{0x7fc0} : r;
  }
}

// e^x without a library call, so the sigmoid loops vectorise: Cephes' expf
// (range reduction by ln 2, degree-6 polynomial), within a few ulp of
// std::exp; saturates below -87 and above 88, where the sigmoid is 0 or 1 anyway.
#if defined(__GNUC__)
#define HEALTHGYM_INLINE inline __attribute__((always_inline))
#else
#define HEALTHGYM_INLINE inline
#endif
HEALTHGYM_INLINE float exp_approx(float x) {
  // Written as max and min (vmaxps/vminps operand order): one compare each,
  // no second division for the clamped lanes. NaN becomes -87 here; callers
  // keep NaN in the numerator.
  x = x > -87.0f ? x : -87.0f;
  x = x < 88.0f ? x : 88.0f;
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23 trick
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const auto bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// silu(a) and sigmoid(a) given ex = exp_approx(-a). Below -88, where
// exp_approx saturates, they are 0 (times a: silu(-inf) is NaN, as LibTorch's);
// NaN stays NaN through a.
HEALTHGYM_INLINE float silu_from(float a, float ex) {
  const float v = a / (1.0f + ex);
  return a < -88.0f ? 0.0f * a : v;
}

HEALTHGYM_INLINE float sigmoid_from(float a, float ex) {
  const float s = 1.0f / (1.0f + ex);
  return a < -88.0f ? 0.0f : s;
}

// Per-channel sums over one sample's rows, then per group: mean and
// 1 / sqrt(biased variance + eps), the variance from centred squares.
HEALTHGYM_CLONES void group_stats(const float* x, int64_t length, int64_t channels, int64_t groups,
                                  double eps, float* acc, float* mean_c, float* mean, float* rstd) {
  const int64_t cg = channels / groups;
  const double count = static_cast<double>(cg * length);
  std::fill(acc, acc + channels, 0.0f);
  for (int64_t l = 0; l < length; ++l) {
    const float* row = x + l * channels;
    for (int64_t c = 0; c < channels; ++c) acc[c] += row[c];
  }
  for (int64_t g = 0; g < groups; ++g) {
    double s = 0;
    for (int64_t j = 0; j < cg; ++j) s += acc[g * cg + j];
    mean[g] = static_cast<float>(s / count);
    std::fill(mean_c + g * cg, mean_c + (g + 1) * cg, mean[g]);
  }
  std::fill(acc, acc + channels, 0.0f);
  for (int64_t l = 0; l < length; ++l) {
    const float* row = x + l * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float d = row[c] - mean_c[c];
      acc[c] += d * d;
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    double s = 0;
    for (int64_t j = 0; j < cg; ++j) s += acc[g * cg + j];
    rstd[g] = static_cast<float>(1.0 / std::sqrt(s / count + eps));
  }
}

// e^-a goes through `ex` (C floats) in a loop of its own: inlined into the
// division, the compiler folds e^-a of the clamped lanes into a constant and
// divides twice per vector, which costs more than the rest of the loop.
HEALTHGYM_CLONES void silu_affine_rows(const float* x, float* y, int64_t length, int64_t channels,
                                       const float* scale, const float* shift, float* ex) {
  for (int64_t l = 0; l < length; ++l) {
    const float* in = x + l * channels;
    float* out = y + l * channels;
    for (int64_t c = 0; c < channels; ++c) ex[c] = exp_approx(-(in[c] * scale[c] + shift[c]));
    for (int64_t c = 0; c < channels; ++c) out[c] = silu_from(in[c] * scale[c] + shift[c], ex[c]);
  }
}

// da = dy * silu'(a) into `da`, with the per-channel sums of da and da * xhat.
HEALTHGYM_CLONES void silu_affine_backward_rows(
    const float* __restrict x, const float* __restrict dy, float* __restrict da, int64_t length,
    int64_t channels, const float* scale, const float* shift, const float* mean_c,
    const float* rstd_c, float* __restrict s1, float* __restrict s2, float* __restrict ex) {
  std::fill(s1, s1 + channels, 0.0f);
  std::fill(s2, s2 + channels, 0.0f);
  for (int64_t l = 0; l < length; ++l) {
    const float* xr = x + l * channels;
    const float* dyr = dy + l * channels;
    float* dar = da + l * channels;
    for (int64_t c = 0; c < channels; ++c) ex[c] = exp_approx(-(xr[c] * scale[c] + shift[c]));
    for (int64_t c = 0; c < channels; ++c) {
      const float a = xr[c] * scale[c] + shift[c];
      const float s = sigmoid_from(a, ex[c]);
      const float d = dyr[c] * s * (1.0f + a * (1.0f - s));
      dar[c] = d;
      s1[c] += d;
      s2[c] += d * (xr[c] - mean_c[c]) * rstd_c[c];
    }
  }
}

// out = a * in + b * x + d, per channel coefficients (out may be in).
HEALTHGYM_CLONES void affine3_rows(const float* in, const float* x, float* out, int64_t length,
                                   int64_t channels, const float* a, const float* b,
                                   const float* d) {
  for (int64_t l = 0; l < length; ++l) {
    const float* ir = in + l * channels;
    const float* xr = x + l * channels;
    float* o = out + l * channels;
    for (int64_t c = 0; c < channels; ++c) o[c] = a[c] * ir[c] + b[c] * xr[c] + d[c];
  }
}

// silu over n values, and its backward dx = dy silu'(a); ex as in silu_affine_rows.
HEALTHGYM_CLONES void silu_values(const float* a, float* y, int64_t n, float* ex) {
  for (int64_t i = 0; i < n; ++i) ex[i] = exp_approx(-a[i]);
  for (int64_t i = 0; i < n; ++i) y[i] = silu_from(a[i], ex[i]);
}

HEALTHGYM_CLONES void silu_backward_values(const float* a, const float* dy, float* dx, int64_t n,
                                           float* ex) {
  for (int64_t i = 0; i < n; ++i) ex[i] = exp_approx(-a[i]);
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid_from(a[i], ex[i]);
    dx[i] = dy[i] * s * (1.0f + a[i] * (1.0f - s));
  }
}

// The affine inputs of one call; weight and bias rows are per sample when
// their stride is C (an inference affine with FiLM folded in), shared when 0.
struct Affine {
  const float* weight = nullptr;
  int64_t weight_stride = 0;
  const float* bias = nullptr;
  int64_t bias_stride = 0;
  const float* gamma = nullptr;  // [B, C] or null
  const float* beta = nullptr;   // [B, C] or null
};

struct Shape {
  int64_t batch, length, channels, groups;
  double eps;
};

// scale and shift of x per channel for sample b: y = silu(x * scale + shift).
void sample_affine(const Affine& af, const Shape& s, int64_t b, const float* mean,
                   const float* rstd, float* scale, float* shift, float* k) {
  const int64_t cg = s.channels / s.groups;
  for (int64_t c = 0; c < s.channels; ++c) {
    const int64_t g = c / cg;
    const float one_gamma = af.gamma ? 1.0f + af.gamma[b * s.channels + c] : 1.0f;
    const float beta = af.beta ? af.beta[b * s.channels + c] : 0.0f;
    const float w = af.weight[b * af.weight_stride + c];
    const float bn = af.bias[b * af.bias_stride + c];
    k[c] = w * one_gamma;
    scale[c] = rstd[g] * k[c];
    shift[c] = bn * one_gamma + beta - mean[g] * scale[c];
  }
}

// Sample b's rows as fp32: the tensor's own memory, or converted into buf.
const float* rows_as_float(const Tensor& t, int64_t offset, int64_t n, float* buf) {
  if (t.scalar_type() == torch::kFloat) return t.data_ptr<float>() + offset;
  bf16_to_float(reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()) + offset, buf, n);
  return buf;
}

// Writes fp32 rows into sample b of out (fp32: in place already, when
// `rows` is out's memory; bf16: rounded).
void store_rows(const float* rows, Tensor& out, int64_t offset, int64_t n) {
  if (out.scalar_type() == torch::kFloat) {
    float* dst = out.data_ptr<float>() + offset;
    if (dst != rows) std::memcpy(dst, rows, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  float_to_bf16(rows, reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()) + offset, n);
}

float* out_rows(Tensor& out, int64_t offset, float* buf) {
  return out.scalar_type() == torch::kFloat ? out.data_ptr<float>() + offset : buf;
}

// y for every sample; mean and rstd [B, G] when given (for the backward).
void run_forward(const Tensor& x, const Affine& af, const Shape& s, Tensor& y, float* mean_out,
                 float* rstd_out) {
  const int64_t n = s.length * s.channels;
  at::parallel_for(0, s.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xbuf(static_cast<size_t>(n)), ybuf(static_cast<size_t>(n));
    std::vector<float> acc(static_cast<size_t>(s.channels)), mean_c(acc.size()), scale(acc.size()),
        shift(acc.size()), k(acc.size()), ex(acc.size()), mean(static_cast<size_t>(s.groups)),
        rstd(mean.size());
    for (int64_t b = b0; b < b1; ++b) {
      const float* xf = rows_as_float(x, b * n, n, xbuf.data());
      group_stats(xf, s.length, s.channels, s.groups, s.eps, acc.data(), mean_c.data(), mean.data(),
                  rstd.data());
      sample_affine(af, s, b, mean.data(), rstd.data(), scale.data(), shift.data(), k.data());
      float* yf = out_rows(y, b * n, ybuf.data());
      silu_affine_rows(xf, yf, s.length, s.channels, scale.data(), shift.data(), ex.data());
      store_rows(yf, y, b * n, n);
      if (mean_out) {
        std::copy(mean.begin(), mean.end(), mean_out + b * s.groups);
        std::copy(rstd.begin(), rstd.end(), rstd_out + b * s.groups);
      }
    }
  });
}

// dx (x's type) and the per-(sample, channel) sums s1 = sum_l da and
// s2 = sum_l da * xhat, from which the affine's gradients follow.
void run_backward(const Tensor& x, const Tensor& dy, const Affine& af, const Shape& s,
                  const float* mean_all, const float* rstd_all, Tensor& dx, float* s1_all,
                  float* s2_all) {
  const int64_t n = s.length * s.channels, cg = s.channels / s.groups;
  const double count = static_cast<double>(cg * s.length);
  at::parallel_for(0, s.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xbuf(static_cast<size_t>(n)), dybuf(xbuf.size()), da(xbuf.size());
    const auto nc = static_cast<size_t>(s.channels);
    std::vector<float> mean_c(nc), rstd_c(nc), scale(nc), shift(nc), k(nc), ca(nc), cb(nc), cd(nc),
        ex(nc);
    for (int64_t b = b0; b < b1; ++b) {
      const float* mean = mean_all + b * s.groups;
      const float* rstd = rstd_all + b * s.groups;
      for (int64_t c = 0; c < s.channels; ++c) {
        mean_c[static_cast<size_t>(c)] = mean[c / cg];
        rstd_c[static_cast<size_t>(c)] = rstd[c / cg];
      }
      const float* xf = rows_as_float(x, b * n, n, xbuf.data());
      const float* dyf = rows_as_float(dy, b * n, n, dybuf.data());
      sample_affine(af, s, b, mean, rstd, scale.data(), shift.data(), k.data());
      float* s1 = s1_all + b * s.channels;
      float* s2 = s2_all + b * s.channels;
      silu_affine_backward_rows(xf, dyf, da.data(), s.length, s.channels, scale.data(),
                                shift.data(), mean_c.data(), rstd_c.data(), s1, s2, ex.data());
      // GroupNorm's backward with dxhat = da * k: dx = rstd (dxhat - mean(dxhat)
      // - xhat mean(dxhat xhat)), the means over the group.
      for (int64_t g = 0; g < s.groups; ++g) {
        double m1 = 0, m2 = 0;
        for (int64_t j = g * cg; j < (g + 1) * cg; ++j) {
          m1 += static_cast<double>(k[static_cast<size_t>(j)]) * s1[j];
          m2 += static_cast<double>(k[static_cast<size_t>(j)]) * s2[j];
        }
        const float r = rstd[g], mu = mean[g];
        const auto f1 = static_cast<float>(m1 / count), f2 = static_cast<float>(m2 / count);
        for (int64_t j = g * cg; j < (g + 1) * cg; ++j) {
          const auto u = static_cast<size_t>(j);
          ca[u] = r * k[u];
          cb[u] = -r * r * f2;
          cd[u] = -r * f1 + r * r * f2 * mu;
        }
      }
      float* dxf = out_rows(dx, b * n, da.data());
      affine3_rows(da.data(), xf, dxf, s.length, s.channels, ca.data(), cb.data(), cd.data());
      store_rows(dxf, dx, b * n, n);
    }
  });
}

std::string shape_of(const Tensor& t) {
  if (!t.defined()) return "none";
  std::string r = "[";
  for (int64_t d = 0; d < t.dim(); ++d) r += (d ? ", " : "") + std::to_string(t.size(d));
  return r + "] " + std::string(t.dtype().name()) + " on " + t.device().str();
}

Shape check_x(const std::string& fn, const Tensor& x, int64_t groups, double eps) {
  if (!x.defined() || x.dim() != 3 || !x.device().is_cpu() ||
      (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16))
    throw UsageError(fn + ": x must be [batch, length, channels] fp32 or bf16 on the CPU, got " +
                     shape_of(x));
  const int64_t channels = x.size(2);
  if (groups < 1 || channels < 1 || channels % groups != 0)
    throw UsageError(fn + ": " + std::to_string(channels) + " channels do not split into " +
                     std::to_string(groups) + " groups");
  if (!(eps >= 0)) throw UsageError(fn + ": eps must be >= 0");
  return {x.size(0), x.size(1), channels, groups, eps};
}

// fp32 CPU, [C] (shared) or, when per_sample is allowed, [B, C].
bool affine_shape_ok(const Tensor& t, const Shape& s, bool per_sample) {
  return t.defined() && t.scalar_type() == torch::kFloat && t.device().is_cpu() &&
         ((t.dim() == 1 && t.size(0) == s.channels) ||
          (per_sample && t.dim() == 2 && t.size(0) == s.batch && t.size(1) == s.channels));
}

class GroupNormFilmSiluFunction : public torch::autograd::Function<GroupNormFilmSiluFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, const Tensor& gamma,
                        const Tensor& beta, bool film, int64_t groups, double eps,
                        torch::ScalarType out_dtype) {
    const std::string fn = "group_norm_film_silu";
    const Shape s = check_x(fn, x, groups, eps);
    if (!affine_shape_ok(weight, s, false) || !affine_shape_ok(bias, s, false))
      throw UsageError(fn + ": weight and bias must be [" + std::to_string(s.channels) +
                       "] fp32 on the CPU, got " + shape_of(weight) + " and " + shape_of(bias));
    if (film && (!affine_shape_ok(gamma, s, true) || gamma.dim() != 2 ||
                 !affine_shape_ok(beta, s, true) || beta.dim() != 2))
      throw UsageError(fn + ": gamma and beta must both be [" + std::to_string(s.batch) + ", " +
                       std::to_string(s.channels) + "] fp32 on the CPU or both absent, got " +
                       shape_of(gamma) + " and " + shape_of(beta));
    if (out_dtype != torch::kFloat && out_dtype != torch::kBFloat16)
      throw UsageError(fn + ": the result must be fp32 or bf16");
    auto xc = x.contiguous();
    auto w = weight.contiguous(), bn = bias.contiguous();
    Tensor g = film ? gamma.contiguous() : Tensor();
    Tensor be = film ? beta.contiguous() : Tensor();
    auto y = torch::empty(xc.sizes(), xc.options().dtype(out_dtype));
    auto stats = torch::empty({2, s.batch, s.groups}, xc.options().dtype(torch::kFloat));
    Affine af{w.data_ptr<float>(),
              0,
              bn.data_ptr<float>(),
              0,
              g.defined() ? g.data_ptr<float>() : nullptr,
              be.defined() ? be.data_ptr<float>() : nullptr};
    if (s.batch > 0)
      run_forward(xc, af, s, y, stats[0].data_ptr<float>(), stats[1].data_ptr<float>());
    ctx->save_for_backward({xc, w, bn, g, be, stats});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1], &bn = saved[2], &gamma = saved[3], &beta = saved[4],
                 &stats = saved[5];
    const Shape s{x.size(0), x.size(1), x.size(2), ctx->saved_data["groups"].toInt(),
                  ctx->saved_data["eps"].toDouble()};
    Tensor dy = grads[0];
    if (!dy.defined()) dy = torch::zeros(x.sizes(), x.options().dtype(torch::kFloat));
    if (dy.scalar_type() != torch::kFloat && dy.scalar_type() != torch::kBFloat16)
      dy = dy.to(torch::kFloat);
    dy = dy.contiguous();
    auto dx = torch::empty_like(x);
    auto sums = torch::zeros({2, s.batch, s.channels}, x.options().dtype(torch::kFloat));
    Affine af{w.data_ptr<float>(),
              0,
              bn.data_ptr<float>(),
              0,
              gamma.defined() ? gamma.data_ptr<float>() : nullptr,
              beta.defined() ? beta.data_ptr<float>() : nullptr};
    if (s.batch > 0)
      run_backward(x, dy, af, s, stats[0].data_ptr<float>(), stats[1].data_ptr<float>(), dx,
                   sums[0].data_ptr<float>(), sums[1].data_ptr<float>());
    const auto s1 = sums[0], s2 = sums[1];
    Tensor dgamma, dbeta, dw, dbn;
    if (gamma.defined()) {
      // z = xhat w + bn, a = z (1 + gamma) + beta.
      dgamma = s2 * w + s1 * bn;
      dbeta = s1;
      dw = ((1 + gamma) * s2).sum(0);
      dbn = ((1 + gamma) * s1).sum(0);
    } else {
      dw = s2.sum(0);
      dbn = s1.sum(0);
    }
    return {dx, dw, dbn, dgamma, dbeta, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// Elementwise over a contiguous fp32 or bf16 tensor in blocks that stay in
// cache: f(in as fp32 [, dy as fp32], out as fp32, n, scratch).
template <typename F>
void map_blocks(const Tensor& in, const Tensor& dy, Tensor& out, F f) {
  constexpr int64_t kBlock = 4096;
  at::parallel_for(0, (in.numel() + kBlock - 1) / kBlock, 4, [&](int64_t k0, int64_t k1) {
    std::vector<float> a(kBlock), g(kBlock), y(kBlock), ex(kBlock);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t off = k * kBlock, n = std::min(kBlock, in.numel() - off);
      const float* af = rows_as_float(in, off, n, a.data());
      const float* gf = dy.defined() ? rows_as_float(dy, off, n, g.data()) : nullptr;
      float* yf = out_rows(out, off, y.data());
      f(af, gf, yf, n, ex.data());
      store_rows(yf, out, off, n);
    }
  });
}

class SiluFunction : public torch::autograd::Function<SiluFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x) {
    auto xc = x.contiguous();
    auto y = torch::empty_like(xc);
    map_blocks(xc, Tensor(), y, [](const float* a, const float*, float* out, int64_t n, float* ex) {
      silu_values(a, out, n, ex);
    });
    ctx->save_for_backward({xc});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    Tensor dy = grads[0];
    if (!dy.defined()) return {Tensor()};
    if (dy.scalar_type() != torch::kFloat && dy.scalar_type() != torch::kBFloat16)
      dy = dy.to(torch::kFloat);
    dy = dy.contiguous();
    auto dx = torch::empty_like(x);
    map_blocks(x, dy, dx, [](const float* a, const float* g, float* out, int64_t n, float* ex) {
      silu_backward_values(a, g, out, n, ex);
    });
    return {dx};
  }
};

}  // namespace

Tensor group_norm_film_silu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                            torch::ScalarType out_dtype) {
  if (gamma.defined() != beta.defined())
    throw UsageError(
        "group_norm_film_silu: gamma and beta must both be given or both absent, got " +
        shape_of(gamma) + " and " + shape_of(beta));
  // A custom autograd function takes no undefined tensors: without FiLM, empty stand-ins.
  const bool film = gamma.defined();
  const auto none = torch::empty({0}, torch::kFloat);
  return GroupNormFilmSiluFunction::apply(x, weight, bias, film ? gamma : none, film ? beta : none,
                                          film, groups, eps, out_dtype);
}

Tensor group_norm_silu_cpu(const Tensor& x, int64_t groups, const Tensor& scale,
                           const Tensor& shift, double eps) {
  const std::string fn = "group_norm_silu_channels_last";
  const Shape s = check_x(fn, x, groups, eps);
  if (!affine_shape_ok(scale, s, true) || !affine_shape_ok(shift, s, true))
    throw UsageError(fn + ": scale and shift must be fp32 on the CPU, [" +
                     std::to_string(s.channels) + "] or [" + std::to_string(s.batch) + ", " +
                     std::to_string(s.channels) + "], got " + shape_of(scale) + " and " +
                     shape_of(shift));
  auto xc = x.contiguous();
  auto sc = scale.contiguous(), sh = shift.contiguous();
  auto y = torch::empty_like(xc);
  Affine af{sc.data_ptr<float>(),
            sc.dim() == 2 ? s.channels : 0,
            sh.data_ptr<float>(),
            sh.dim() == 2 ? s.channels : 0,
            nullptr,
            nullptr};
  if (s.batch > 0) run_forward(xc, af, s, y, nullptr, nullptr);
  return y;
}

}  // namespace healthgym

namespace healthgym {

Tensor silu_cpu(const Tensor& x) {
  if (!x.defined() || !x.device().is_cpu() ||
      (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16))
    throw UsageError("silu_cpu: x must be fp32 or bf16 on the CPU, got " + shape_of(x));
  return SiluFunction::apply(x);
}

}  // namespace healthgym
