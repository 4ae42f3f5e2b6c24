// healthgym's fused CPU kernels against LibTorch's own operations, values and
// gradients, and the U-Net's channels-last CPU path against the plain one.
#include <gtest/gtest.h>

#include <limits>

#include "healthgym/compat.hpp"
#include "healthgym/cpu_kernels.hpp"
#include "healthgym/cuda_kernels.hpp"
#include "healthgym/error.hpp"
#include "healthgym/unet.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;
using torch::Tensor;

namespace {

// silu((group_norm(x) w + b)(1 + gamma) + beta) through LibTorch operations.
Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gamma,
                 const Tensor& beta, int64_t groups) {
  auto z = torch::group_norm(x.transpose(1, 2), groups, w, b, 1e-5).transpose(1, 2);
  if (gamma.defined()) z = z * (1 + gamma.unsqueeze(1)) + beta.unsqueeze(1);
  return torch::silu(z);
}

struct Inputs {
  Tensor x, w, b, gamma, beta, dy;
  Inputs(int64_t batch, int64_t length, int64_t channels, uint64_t seed) {
    torch::manual_seed(seed);
    x = torch::randn({batch, length, channels}) * 3 + 1;
    w = torch::randn({channels});
    b = torch::randn({channels});
    gamma = torch::randn({batch, channels}) * 0.5;
    beta = torch::randn({batch, channels}) * 0.5;
    dy = torch::randn({batch, length, channels});
  }
};

std::vector<Tensor> leaves(const std::vector<Tensor>& ts, torch::ScalarType type) {
  std::vector<Tensor> r;
  for (const auto& t : ts) r.push_back(t.to(type).detach().requires_grad_());
  return r;
}

double max_abs(const Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

// fp32 against the double-precision reference: values and every gradient.
TEST(CpuKernels, GroupNormFilmSiluMatchesLibTorchInFp32) {
  for (int64_t length : {1, 7, 100}) {
    Inputs in(3, length, 32, 11);
    auto k = leaves({in.x, in.w, in.b, in.gamma, in.beta}, torch::kFloat);
    auto r = leaves({in.x, in.w, in.b, in.gamma, in.beta}, torch::kDouble);
    auto y = group_norm_film_silu(k[0], k[1], k[2], k[3], k[4], 4, 1e-5, torch::kFloat);
    auto yr = reference(r[0], r[1], r[2], r[3], r[4], 4);
    ASSERT_EQ(y.scalar_type(), torch::kFloat);
    EXPECT_LT(max_abs(y.to(torch::kDouble) - yr), 2e-5) << "length " << length;
    (y * in.dy).sum().backward();
    (yr * in.dy.to(torch::kDouble)).sum().backward();
    const char* names[] = {"x", "weight", "bias", "gamma", "beta"};
    for (size_t i = 0; i < k.size(); ++i) {
      ASSERT_TRUE(k[i].grad().defined()) << names[i];
      const double scale = std::max(1.0, max_abs(r[i].grad()));
      EXPECT_LT(max_abs(k[i].grad().to(torch::kDouble) - r[i].grad()) / scale, 1e-4)
          << names[i] << ", length " << length;
    }
  }
}

// Without FiLM it is GroupNorm, its affine and SiLU.
TEST(CpuKernels, GroupNormSiluWithoutFilm) {
  Inputs in(2, 9, 16, 12);
  auto k = leaves({in.x, in.w, in.b}, torch::kFloat);
  auto r = leaves({in.x, in.w, in.b}, torch::kDouble);
  auto y = group_norm_film_silu(k[0], k[1], k[2], {}, {}, 8, 1e-5, torch::kFloat);
  auto yr = reference(r[0], r[1], r[2], {}, {}, 8);
  EXPECT_LT(max_abs(y.to(torch::kDouble) - yr), 2e-5);
  (y * in.dy).sum().backward();
  (yr * in.dy.to(torch::kDouble)).sum().backward();
  for (size_t i = 0; i < k.size(); ++i)
    EXPECT_LT(
        max_abs(k[i].grad().to(torch::kDouble) - r[i].grad()) / std::max(1.0, max_abs(r[i].grad())),
        1e-4);
}

// bf16 in and out: the reference sees the same rounded input; the result is
// within bf16's rounding (2^-8 relative) of it, and x's gradient comes back bf16.
TEST(CpuKernels, GroupNormFilmSiluInBf16) {
  Inputs in(4, 50, 64, 13);
  auto xb = in.x.to(torch::kBFloat16).detach().requires_grad_();
  auto y = group_norm_film_silu(xb, in.w, in.b, in.gamma, in.beta, 8, 1e-5, torch::kBFloat16);
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  auto yr =
      reference(xb.detach().to(torch::kDouble), in.w.to(torch::kDouble), in.b.to(torch::kDouble),
                in.gamma.to(torch::kDouble), in.beta.to(torch::kDouble), 8);
  const auto err = (y.to(torch::kDouble) - yr).abs();
  EXPECT_TRUE((err <= yr.abs() * (1.0 / 256) + 1e-6).all().item<bool>())
      << "max error " << max_abs(err);
  y.backward(in.dy.to(torch::kBFloat16));
  ASSERT_EQ(xb.grad().scalar_type(), torch::kBFloat16);
  auto xr = xb.detach().to(torch::kDouble).requires_grad_();
  reference(xr, in.w.to(torch::kDouble), in.b.to(torch::kDouble), in.gamma.to(torch::kDouble),
            in.beta.to(torch::kDouble), 8)
      .backward(in.dy.to(torch::kBFloat16).to(torch::kDouble));
  EXPECT_LT(max_abs(xb.grad().to(torch::kDouble) - xr.grad()) / max_abs(xr.grad()), 1e-2);
}

// Saturated pre-activations stay finite: silu(-a) -> 0 and silu(a) -> a,
// up to |a| of 1e34 (weight 1e33 on a normalised input).
TEST(CpuKernels, SaturatedActivationsStayFinite) {
  auto x = torch::tensor({-1e4f, -50.0f, 0.0f, 50.0f, 1e4f, 1.0f, 2.0f, 3.0f}).view({1, 8, 1});
  for (float weight : {1e3f, 1e33f}) {
    auto w = torch::full({1}, weight), b = torch::zeros({1});
    auto y = group_norm_film_silu(x, w, b, {}, {}, 1, 1e-5, torch::kFloat);
    auto yr =
        reference(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble), {}, {}, 1);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    EXPECT_TRUE(torch::allclose(y.to(torch::kDouble), yr, 1e-5, 1e-5)) << y << yr;
  }
}

// Mixed types (bf16 in, fp32 out and back), a non-contiguous input, an empty
// batch, and the affine's gradients with a bf16 input.
TEST(CpuKernels, MixedTypesNonContiguousAndEmpty) {
  Inputs in(3, 6, 16, 16);
  auto ref = [&](const Tensor& x) {
    return reference(x.to(torch::kDouble), in.w.to(torch::kDouble), in.b.to(torch::kDouble),
                     in.gamma.to(torch::kDouble), in.beta.to(torch::kDouble), 4);
  };
  auto xb = in.x.to(torch::kBFloat16);
  auto y = group_norm_film_silu(xb, in.w, in.b, in.gamma, in.beta, 4, 1e-5, torch::kFloat);
  ASSERT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_LT(max_abs(y.to(torch::kDouble) - ref(xb)), 1e-5);  // only the input was rounded
  auto y16 = group_norm_film_silu(in.x, in.w, in.b, in.gamma, in.beta, 4, 1e-5, torch::kBFloat16);
  EXPECT_LT(max_abs(y16.to(torch::kDouble) - ref(in.x)) / max_abs(ref(in.x)), 1.0 / 128);
  // A transposed view: the kernel reads it as the logical [B, L, C].
  auto xt = in.x.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(xt.is_contiguous());
  auto yt = group_norm_film_silu(xt, in.w, in.b, in.gamma, in.beta, 4, 1e-5, torch::kFloat);
  EXPECT_LT(max_abs(yt.to(torch::kDouble) - ref(in.x)), 2e-5);
  auto empty = group_norm_film_silu(torch::zeros({0, 6, 16}), in.w, in.b, torch::zeros({0, 16}),
                                    torch::zeros({0, 16}), 4, 1e-5, torch::kFloat);
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 6, 16}));
  // The affine's gradients from a bf16 input and bf16 upstream gradient.
  auto k = leaves({in.w, in.b, in.gamma, in.beta}, torch::kFloat);
  auto r = leaves({in.w, in.b, in.gamma, in.beta}, torch::kDouble);
  auto dy = in.dy.to(torch::kBFloat16);
  group_norm_film_silu(xb, k[0], k[1], k[2], k[3], 4, 1e-5, torch::kBFloat16).backward(dy);
  reference(xb.to(torch::kDouble), r[0], r[1], r[2], r[3], 4).backward(dy.to(torch::kDouble));
  const char* names[] = {"weight", "bias", "gamma", "beta"};
  for (size_t i = 0; i < k.size(); ++i)
    EXPECT_LT(max_abs(k[i].grad().to(torch::kDouble) - r[i].grad()) / max_abs(r[i].grad()), 2e-2)
        << names[i];
}

// silu_cpu against torch::silu: fp32 to rounding, bf16 to bf16's rounding;
// NaN stays NaN, saturation stays finite; an odd size crosses block edges.
TEST(CpuKernels, SiluMatchesLibTorch) {
  torch::manual_seed(15);
  auto base = torch::cat({torch::randn({9001}) * 4, torch::tensor({-1e4f, -90.0f, 90.0f, 1e4f})});
  for (auto type : {torch::kFloat, torch::kBFloat16}) {
    auto x = base.to(type).detach().requires_grad_();
    auto xr = base.to(type).to(torch::kDouble).detach().requires_grad_();
    auto y = silu_cpu(x);
    auto yr = torch::silu(xr);
    ASSERT_EQ(y.scalar_type(), type);
    const double tol = type == torch::kFloat ? 1e-6 : 1.0 / 128;
    EXPECT_TRUE(torch::allclose(y.to(torch::kDouble), yr, tol, tol));
    auto dy = torch::linspace(-1, 1, base.numel());
    y.backward(dy.to(type));
    yr.backward(dy.to(type).to(torch::kDouble));
    EXPECT_TRUE(torch::allclose(x.grad().to(torch::kDouble), xr.grad(), tol, tol));
  }
  // NaN and -inf give NaN (as LibTorch's), huge negatives 0, huge positives themselves.
  const float inf = std::numeric_limits<float>::infinity();
  auto edge = silu_cpu(torch::tensor({std::nanf(""), -inf, -1e30f, 1e30f, inf}));
  EXPECT_TRUE(std::isnan(edge[0].item<float>()));
  EXPECT_TRUE(std::isnan(edge[1].item<float>()));
  EXPECT_EQ(edge[2].item<float>(), 0.0f);
  EXPECT_EQ(edge[3].item<float>(), 1e30f);
  EXPECT_EQ(edge[4].item<float>(), inf);
  EXPECT_NE(message_of([&] { silu_cpu(torch::ones({2}, torch::kDouble)); }).find("fp32 or bf16"),
            std::string::npos);
}

TEST(CpuKernels, NamesBadArguments) {
  auto x = torch::randn({2, 5, 8});
  auto w = torch::ones({8}), b = torch::zeros({8});
  auto g = torch::zeros({2, 8});
  auto call = [&](const Tensor& xx, const Tensor& ww, const Tensor& gg, const Tensor& bb,
                  int64_t groups) {
    return group_norm_film_silu(xx, ww, b, gg, bb, groups, 1e-5, torch::kFloat);
  };
  EXPECT_NE(message_of([&] {
              call(x.view({10, 8}), w, g, g, 2);
            }).find("[batch, length, channels]"),
            std::string::npos);
  EXPECT_NE(message_of([&] { call(x.to(torch::kDouble), w, g, g, 2); }).find("fp32 or bf16"),
            std::string::npos);
  EXPECT_NE(message_of([&] { call(x, w, g, g, 3); }).find("8 channels do not split into 3 groups"),
            std::string::npos);
  EXPECT_NE(
      message_of([&] { call(x, torch::ones({7}), g, g, 2); }).find("weight and bias must be [8]"),
      std::string::npos);
  EXPECT_NE(message_of([&] { call(x, w, g, {}, 2); }).find("both be given or both absent"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              call(x, w, torch::zeros({3, 8}), g, 2);
            }).find("[2, 8]"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              group_norm_silu_cpu(x, 2, torch::ones({8}), torch::ones({3}), 1e-5);
            }).find("scale and shift"),
            std::string::npos);
}

// The inference kernel (the prepared network's, on the CPU) against the
// LibTorch reference, shared and per-sample affines, fp32 and bf16.
TEST(CpuKernels, InferenceKernelMatchesTheReference) {
  torch::manual_seed(14);
  auto x = torch::randn({3, 13, 32}) * 2;
  for (auto type : {torch::kFloat, torch::kBFloat16}) {
    for (bool per_sample : {false, true}) {
      auto scale = per_sample ? torch::randn({3, 32}) : torch::randn({32});
      auto shift = per_sample ? torch::randn({3, 32}) : torch::randn({32});
      auto xt = x.to(type);
      auto y = group_norm_silu_cpu(xt, 4, scale, shift, 1e-5);
      auto yr = group_norm_silu_reference(xt, 4, scale, shift, 1e-5);
      ASSERT_EQ(y.scalar_type(), type);
      const double tol = type == torch::kFloat ? 1e-5 : 2.0 / 256;
      EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), yr.to(torch::kFloat), tol, tol))
          << "bf16 " << (type == torch::kBFloat16) << ", per sample " << per_sample;
    }
  }
}

namespace {

UNet small_net(std::vector<int64_t> cond_sizes = {}) {
  torch::manual_seed(21);
  UNetConfig uc;
  uc.features = 5;
  uc.hidden = 32;
  uc.n_steps = 50;
  uc.cond_sizes = std::move(cond_sizes);
  return UNet(uc);
}

struct Pass {
  Tensor y;
  std::vector<Tensor> grads;
};

Pass run(UNet& net, bool kernels, const Tensor& x, const Tensor& t, const Tensor& cond, bool bf16) {
  net->set_cpu_kernels(kernels);
  net->zero_grad();
  Tensor y;
  {
    compat::AutocastScope amp(torch::kCPU, bf16, torch::kBFloat16);
    y = net->forward(x, t, cond);
  }
  y = y.to(torch::kFloat);
  (y * torch::linspace(-1, 1, y.numel()).view(y.sizes())).sum().backward();
  Pass p{y.detach(), {}};
  for (auto& param : net->parameters()) p.grads.push_back(param.grad().detach().clone());
  return p;
}

}  // namespace

// The channels-last CPU path computes the plain path's function: in fp32 the
// same values and parameter gradients up to rounding (1e-4 of each tensor's
// largest entry), for even and odd lengths and with conditions.
TEST(CpuKernels, UNetChannelsLastPathMatchesPlainPathInFp32) {
  for (int64_t length : {16, 13}) {
    auto net = small_net({3, 4});
    torch::manual_seed(22);
    auto x = torch::randn({4, 5, length});
    auto t = torch::randint(0, 50, {4}, torch::kLong);
    auto cond = torch::tensor({0, 1, 2, 0, 1, 3, 2, 2}, torch::kLong).view({4, 2});
    auto fast = run(net, true, x, t, cond, false);
    auto plain = run(net, false, x, t, cond, false);
    EXPECT_LT(max_abs(fast.y - plain.y) / max_abs(plain.y), 1e-5) << "length " << length;
    ASSERT_EQ(fast.grads.size(), plain.grads.size());
    auto names = net->named_parameters().keys();
    for (size_t i = 0; i < fast.grads.size(); ++i) {
      const double scale = std::max(1e-6, max_abs(plain.grads[i]));
      EXPECT_LT(max_abs(fast.grads[i] - plain.grads[i]) / scale, 1e-4)
          << names[i] << ", length " << length;
    }
  }
}

// Under bf16 autocast both paths round differently from fp32: the
// channels-last path's outputs and parameter gradients stay within 5% of each
// tensor's largest fp32 entry, or within twice the plain bf16 path's own error.
TEST(CpuKernels, UNetChannelsLastPathMatchesPlainPathInBf16) {
  auto net = small_net({3});
  torch::manual_seed(23);
  auto x = torch::randn({4, 5, 21});
  auto t = torch::randint(0, 50, {4}, torch::kLong);
  auto cond = torch::tensor({0, 2, 1, 2}, torch::kLong).view({4, 1});
  auto fast = run(net, true, x, t, cond, true);
  auto plain = run(net, false, x, t, cond, true);
  auto exact = run(net, false, x, t, cond, false);
  auto rel = [](const Tensor& a, const Tensor& ref) {
    return max_abs(a - ref) / std::max(1e-6, max_abs(ref));
  };
  EXPECT_LT(rel(fast.y, exact.y), std::max(0.05, 2 * rel(plain.y, exact.y)));
  auto names = net->named_parameters().keys();
  for (size_t i = 0; i < fast.grads.size(); ++i)
    EXPECT_LT(rel(fast.grads[i], exact.grads[i]),
              std::max(0.05, 2 * rel(plain.grads[i], exact.grads[i])))
        << names[i] << ": the plain bf16 path's error " << rel(plain.grads[i], exact.grads[i]);
}
