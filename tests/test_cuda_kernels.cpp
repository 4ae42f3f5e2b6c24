// healthgym's CUDA kernels against their LibTorch references, and the
// reference itself against a hand computation (on any machine).
#include <gtest/gtest.h>

#include "healthgym/cuda_graph.hpp"
#include "healthgym/cuda_kernels.hpp"
#include "healthgym/error.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;

namespace {

bool have_kernels() { return built_with_cuda_kernels() && torch::cuda::is_available(); }

}  // namespace

// Two groups of two channels over three steps, worked by hand.
TEST(GroupNormSilu, ReferenceMatchesAHandComputation) {
  // x[0, l, :] = (l, 2l, 10 + l, 10 - l) for l = 0, 1, 2.
  auto x = torch::tensor({0.f, 0.f, 10.f, 10.f, 1.f, 2.f, 11.f, 9.f, 2.f, 4.f, 12.f, 8.f})
               .view({1, 3, 4});
  auto scale = torch::tensor({1.f, 2.f, 1.f, 0.5f});
  auto shift = torch::tensor({0.f, 0.f, 1.f, 0.f});
  auto y = group_norm_silu_reference(x, 2, scale, shift, 0.0);
  auto expect = [&](const std::vector<float>& g, int64_t ch0) {
    double mean = 0, var = 0;
    for (float v : g) mean += v;
    mean /= static_cast<double>(g.size());
    for (float v : g) var += (v - mean) * (v - mean);
    var /= static_cast<double>(g.size());
    for (int64_t l = 0; l < 3; ++l)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t ch = ch0 + j;
        const double z =
            (x[0][l][ch].item<double>() - mean) / std::sqrt(var) * scale[ch].item<double>() +
            shift[ch].item<double>();
        EXPECT_NEAR(y[0][l][ch].item<double>(), z / (1 + std::exp(-z)), 1e-5)
            << "l " << l << ", channel " << ch;
      }
  };
  expect({0, 0, 1, 2, 2, 4}, 0);
  expect({10, 10, 11, 9, 12, 8}, 2);
  // On the CPU: healthgym's CPU kernel, the same values up to rounding.
  EXPECT_TRUE(
      torch::allclose(group_norm_silu_channels_last(x, 2, scale, shift, 0.0), y, 1e-5, 1e-6));
}

TEST(GroupNormSilu, NamesBadArguments) {
  auto x = torch::randn({2, 5, 6});
  auto c6 = torch::ones({6});
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x, 4, c6, c6, 1e-5);
            }).find("6 channels do not split into 4 groups"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x, 3, torch::ones({5}), c6, 1e-5);
            }).find("got [5]"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x, 3, c6, torch::ones({6}, torch::kDouble), 1e-5);
            }).find("must be fp32"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x[0], 3, c6, c6, 1e-5);
            }).find("[batch, length, channels]"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x.to(torch::kInt), 3, c6, c6, 1e-5);
            }).find("fp32, fp16 or bf16"),
            std::string::npos);
}

// The kernel against the reference: shapes with groups of one channel, odd
// widths, a single step, the reference shapes; shared, per-sample and mixed
// affines; inputs far from zero (the statistics' cancellation); three types.
TEST(GroupNormSiluCuda, KernelMatchesTheReference) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA kernels or no CUDA device";
  struct Shape {
    int64_t b, l, c, g;
  };
  const Shape shapes[] = {
      {3, 7, 12, 4}, {2, 1, 8, 8}, {4, 33, 6, 3}, {100, 100, 256, 8}, {1, 300, 64, 1}};
  const std::pair<torch::ScalarType, double> types[] = {
      {torch::kFloat, 1e-4}, {torch::kHalf, 4e-3}, {torch::kBFloat16, 3e-2}};
  torch::manual_seed(5);
  for (const auto& s : shapes)
    for (const auto& [type, tol] : types)
      for (int affine = 0; affine < 3; ++affine)
        for (double offset : {0.0, 50.0}) {
          auto opts = torch::TensorOptions().device(torch::kCUDA);
          auto x = (torch::randn({s.b, s.l, s.c}, opts) * 3 + offset).to(type);
          auto per_sample = torch::randn({s.b, s.c}, opts);
          auto shared = torch::randn({s.c}, opts);
          auto scale = affine == 1 ? shared : per_sample;
          auto shift = affine == 0 ? per_sample.flip(0) : shared;
          auto got = group_norm_silu_channels_last(x, s.g, scale, shift, 1e-5);
          auto want = group_norm_silu_reference(x, s.g, scale, shift, 1e-5);
          ASSERT_EQ(got.scalar_type(), type);
          ASSERT_EQ(got.sizes(), x.sizes());
          const double err = ((got.to(torch::kFloat) - want.to(torch::kFloat)).abs() /
                              (want.to(torch::kFloat).abs() + 1))
                                 .max()
                                 .item<double>();
          EXPECT_LT(err, tol) << "shape " << s.b << "x" << s.l << "x" << s.c << " groups " << s.g
                              << ", " << c10::toString(type) << ", affine " << affine << ", offset "
                              << offset;
        }
  // A non-contiguous input is read as its values.
  auto x = torch::randn({3, 16, 10}, torch::TensorOptions().device(torch::kCUDA));
  auto xt = x.transpose(1, 2);  // [3, 10, 16] strided
  auto ones = torch::ones({16}, xt.options()), zeros = torch::zeros({16}, xt.options());
  EXPECT_TRUE(torch::allclose(group_norm_silu_channels_last(xt, 4, ones, zeros, 1e-5),
                              group_norm_silu_reference(xt, 4, ones, zeros, 1e-5), 1e-5, 1e-5));
  // An affine on another device is refused by name.
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(xt, 4, torch::ones({16}), zeros, 1e-5);
            }).find("must be fp32 on cuda"),
            std::string::npos);
}
