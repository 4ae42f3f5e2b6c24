// healthgym's CUDA kernels against their LibTorch references, and the
// reference itself against a hand computation (on any machine).
#include <gtest/gtest.h>

#include <limits>

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

// An empty batch passes through, with per-sample affines of no rows too.
TEST(GroupNormSilu, TakesAnEmptyBatch) {
  auto x = torch::zeros({0, 5, 8});
  auto y = group_norm_silu_channels_last(x, 2, torch::zeros({0, 8}), torch::zeros({8}), 1e-5);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(group_norm_silu_reference(x, 2, torch::ones({8}), torch::zeros({0, 8}), 1e-5).sizes(),
            x.sizes());
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

// A convolution's bias folded into the normalisation's input: the same as
// adding it first (reference and, on the CPU, healthgym's CPU kernel).
TEST(GroupNormSilu, InputBiasIsAddedBeforeTheStatistics) {
  torch::manual_seed(3);
  auto x = torch::randn({3, 7, 8});
  auto bias = torch::randn({8}) * 4;
  auto scale = torch::randn({3, 8}), shift = torch::randn({8});
  auto want = group_norm_silu_reference(x + bias, 2, scale, shift, 1e-5);
  EXPECT_TRUE(
      torch::allclose(group_norm_silu_reference(x, 2, scale, shift, 1e-5, bias), want, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(group_norm_silu_channels_last(x, 2, scale, shift, 1e-5, bias), want,
                              1e-5, 1e-5));
  auto xb = x.to(torch::kBFloat16);
  auto got = group_norm_silu_channels_last(xb, 2, scale, shift, 1e-5, bias);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(
      got.to(torch::kFloat),
      group_norm_silu_reference(xb.to(torch::kFloat) + bias, 2, scale, shift, 1e-5), 2e-2, 2e-2));
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(x, 2, scale, shift, 1e-5, torch::ones({3, 8}));
            }).find("in_bias must be fp32 on cpu, [8], got [3, 8]"),
            std::string::npos);
}

// taps3: row l holds the results at l - 1, l, l + 1 (zeros past the ends), so
// that one matrix product with the weights as [3C, Cout] is Conv1d(k 3, pad 1).
TEST(GroupNormSilu, Taps3HoldNeighboursForAConvolution) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 5, 8});
  auto scale = torch::randn({2, 8}), shift = torch::randn({8}), bias = torch::randn({8});
  auto y = group_norm_silu_reference(x, 4, scale, shift, 1e-5, bias);
  for (bool cpu_kernel : {false, true}) {
    auto taps = cpu_kernel ? group_norm_silu_channels_last(x, 4, scale, shift, 1e-5, bias, true)
                           : group_norm_silu_reference(x, 4, scale, shift, 1e-5, bias, true);
    ASSERT_EQ(taps.sizes(), torch::IntArrayRef({2, 5, 24}));
    for (int64_t l = 0; l < 5; ++l) {
      auto left = l > 0 ? y.select(1, l - 1) : torch::zeros({2, 8});
      auto right = l < 4 ? y.select(1, l + 1) : torch::zeros({2, 8});
      auto row = taps.select(1, l);
      EXPECT_TRUE(torch::allclose(row.narrow(1, 0, 8), left, 1e-5, 1e-6)) << "l " << l;
      EXPECT_TRUE(torch::allclose(row.narrow(1, 8, 8), y.select(1, l), 1e-5, 1e-6)) << "l " << l;
      EXPECT_TRUE(torch::allclose(row.narrow(1, 16, 8), right, 1e-5, 1e-6)) << "l " << l;
    }
  }
  auto w = torch::randn({6, 8, 3});
  auto conv = torch::conv1d(y.transpose(1, 2), w, {}, 1, 1).transpose(1, 2);  // [2, 5, 6]
  auto gemm = torch::matmul(taps3_of(y), conv3_weight_as_matrix(w));
  EXPECT_TRUE(torch::allclose(gemm, conv, 1e-5, 1e-5));
  EXPECT_NE(message_of([] {
              conv3_weight_as_matrix(torch::zeros({6, 8, 5}));
            }).find("[out, in, 3]"),
            std::string::npos);
}

// a plus bias, cut or zero-padded to r's length, plus r: worked by hand.
TEST(AddAligned, ReferenceMatchesAHandComputation) {
  auto a = torch::arange(12, torch::kFloat).view({2, 3, 2});  // a[b, l, c] = 6b + 2l + c
  auto r = torch::full({2, 4, 2}, 100.f);
  auto bias = torch::tensor({0.5f, -0.5f});
  auto padded = add_aligned_channels_last(a, bias, r);  // l = 3: no row of a, no bias
  ASSERT_EQ(padded.sizes(), r.sizes());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t l = 0; l < 4; ++l)
      for (int64_t c = 0; c < 2; ++c) {
        const double want = 100 + (l < 3 ? 6 * b + 2 * l + c + (c == 0 ? 0.5 : -0.5) : 0);
        EXPECT_FLOAT_EQ(padded[b][l][c].item<float>(), want) << b << " " << l << " " << c;
      }
  auto cut = add_aligned_channels_last(a, {}, torch::zeros({2, 2, 2}));
  EXPECT_TRUE(torch::equal(cut, a.narrow(1, 0, 2)));
  auto rb = r.to(torch::kBFloat16);
  EXPECT_EQ(add_aligned_channels_last(a.to(torch::kBFloat16), bias, rb).scalar_type(),
            torch::kBFloat16);
  EXPECT_NE(message_of([&] {
              add_aligned_channels_last(a.to(torch::kBFloat16), bias, r);
            }).find("a must be [2, length, 2] float on cpu (r's), got [2, 3, 2] c10::BFloat16"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              add_aligned_channels_last(torch::zeros({2, 3, 3}), bias, r);
            }).find("a must be [2, length, 2]"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              add_aligned_channels_last(a, torch::ones({3}), r);
            }).find("bias must be fp32 on cpu, [2]"),
            std::string::npos);
  // With taps: the same sum, and its taps3 beside it.
  auto [sum, taps] = add_aligned_with_taps3(a, bias, r);
  EXPECT_TRUE(torch::equal(sum, add_aligned_reference(a, bias, r)));
  EXPECT_TRUE(torch::equal(taps, taps3_of(sum)));
}

// The kernel against the reference: shapes with groups of one channel, odd
// widths, a single step, the reference shapes; shared, per-sample and mixed
// affines; inputs far from zero (the statistics' cancellation); three types.
TEST(GroupNormSiluCuda, KernelMatchesTheReference) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA kernels or no CUDA device";
  struct Shape {
    int64_t b, l, c, g;
  };
  const Shape shapes[] = {{3, 7, 12, 4},   {2, 1, 8, 8},   {4, 33, 6, 3},   {100, 100, 256, 8},
                          {1, 300, 64, 1}, {5, 12, 64, 4}, {2, 50, 256, 8}, {2, 13, 256, 8}};
  const std::pair<torch::ScalarType, double> types[] = {
      {torch::kFloat, 1e-4}, {torch::kHalf, 4e-3}, {torch::kBFloat16, 3e-2}};
  torch::manual_seed(5);
  for (const auto& s : shapes)
    for (const auto& [type, tol] : types)
      for (int affine = 0; affine < 4; ++affine)
        for (double offset : {0.0, 50.0}) {
          auto opts = torch::TensorOptions().device(torch::kCUDA);
          auto x = (torch::randn({s.b, s.l, s.c}, opts) * 3 + offset).to(type);
          auto per_sample = torch::randn({s.b, s.c}, opts);
          auto shared = torch::randn({s.c}, opts);
          auto scale = affine == 1 ? shared : per_sample;
          auto shift = affine == 0 ? per_sample.flip(0) : shared;
          // affine 3: as 2, with an input bias.
          auto in_bias = affine == 3 ? torch::randn({s.c}, opts) * 2 : torch::Tensor();
          for (bool taps3 : {false, true}) {
            auto want = group_norm_silu_reference(x, s.g, scale, shift, 1e-5, in_bias, taps3);
            // The block the kernel's output will likely get, filled with NaN
            // first: an element it fails to write shows.
            torch::full_like(want, std::numeric_limits<float>::quiet_NaN());
            auto got = group_norm_silu_channels_last(x, s.g, scale, shift, 1e-5, in_bias, taps3);
            ASSERT_EQ(got.scalar_type(), type);
            ASSERT_EQ(got.sizes(), want.sizes());
            const double err = ((got.to(torch::kFloat) - want.to(torch::kFloat)).abs() /
                                (want.to(torch::kFloat).abs() + 1))
                                   .max()
                                   .item<double>();
            EXPECT_LT(err, tol) << "shape " << s.b << "x" << s.l << "x" << s.c << " groups " << s.g
                                << ", " << c10::toString(type) << ", affine " << affine
                                << ", offset " << offset << ", taps3 " << taps3;
          }
        }
  // A non-contiguous input is read as its values.
  auto x = torch::randn({3, 16, 10}, torch::TensorOptions().device(torch::kCUDA));
  auto xt = x.transpose(1, 2);  // [3, 10, 16] strided
  auto ones = torch::ones({16}, xt.options()), zeros = torch::zeros({16}, xt.options());
  EXPECT_TRUE(torch::allclose(group_norm_silu_channels_last(xt, 4, ones, zeros, 1e-5),
                              group_norm_silu_reference(xt, 4, ones, zeros, 1e-5), 1e-5, 1e-5));
  // Rows that are not 16-byte aligned (the storage starts one element in)
  // take the kernel that reads any layout.
  for (const auto& [type, tol] : types) {
    auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(type);
    auto odd = torch::randn({1 + 4 * 20 * 64}, opts).narrow(0, 1, 4 * 20 * 64).view({4, 20, 64});
    auto sc = torch::randn({4, 64}, opts.dtype(torch::kFloat)),
         sh = torch::randn({64}, sc.options());
    for (bool taps3 : {false, true}) {
      const double err =
          (group_norm_silu_channels_last(odd, 4, sc, sh, 1e-5, {}, taps3).to(torch::kFloat) -
           group_norm_silu_reference(odd, 4, sc, sh, 1e-5, {}, taps3).to(torch::kFloat))
              .abs()
              .max()
              .item<double>();
      EXPECT_LT(err, tol * 4) << c10::toString(type) << ", taps3 " << taps3;
    }
  }
  // An affine on another device is refused by name.
  EXPECT_NE(message_of([&] {
              group_norm_silu_channels_last(xt, 4, torch::ones({16}), zeros, 1e-5);
            }).find("must be fp32 on cuda"),
            std::string::npos);
}

// The sum kernel against the reference: a as long as r, longer (cut) and
// shorter (zero rows); widths that take 16-byte accesses and one that does not;
// a misaligned start; with and without bias; three types.
TEST(AddAlignedCuda, KernelMatchesTheReference) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA kernels or no CUDA device";
  torch::manual_seed(8);
  const std::pair<torch::ScalarType, double> types[] = {
      {torch::kFloat, 1e-6}, {torch::kHalf, 1e-3}, {torch::kBFloat16, 8e-3}};
  for (const auto& [type, tol] : types)
    for (int64_t c : {256, 6})
      for (int64_t la : {25, 26, 24})
        for (int variant = 0; variant < 3; ++variant) {
          auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(type);
          const int64_t b = 3, l = 25;
          auto a = torch::randn({b, la, c}, opts);
          if (variant == 2)  // storage one element in: not 16-byte aligned
            a = torch::randn({1 + b * la * c}, opts).narrow(0, 1, b * la * c).view({b, la, c});
          auto r = torch::randn({b, l, c}, opts);
          auto bias = variant == 1 ? torch::Tensor() : torch::randn({c}, opts.dtype(torch::kFloat));
          auto want = add_aligned_reference(a, bias, r);
          auto rel_err = [&](const torch::Tensor& got, const torch::Tensor& want) {
            return ((got.to(torch::kFloat) - want.to(torch::kFloat)).abs() /
                    (want.to(torch::kFloat).abs() + 1))
                .max()
                .item<double>();
          };
          auto got = add_aligned_channels_last(a, bias, r);
          ASSERT_EQ(got.sizes(), r.sizes());
          ASSERT_EQ(got.scalar_type(), type);
          EXPECT_LT(rel_err(got, want), tol)
              << c10::toString(type) << " c " << c << " la " << la << " variant " << variant;
          // With taps. NaN first in the memory that the sum and the taps will
          // likely get (allocated in their order, released together), so that
          // an element the kernel fails to write shows.
          const auto taps_want = taps3_of(want);
          {
            const float nan = std::numeric_limits<float>::quiet_NaN();
            auto sum_block = torch::full_like(want, nan);
            auto taps_block = torch::full_like(taps_want, nan);
          }
          auto [sum, taps] = add_aligned_with_taps3(a, bias, r);
          EXPECT_LT(rel_err(sum, want), tol) << "with taps, variant " << variant;
          ASSERT_EQ(taps.sizes(), torch::IntArrayRef({b, l, 3 * c}));
          EXPECT_LT(rel_err(taps, taps_want), tol)
              << c10::toString(type) << " c " << c << " la " << la << " variant " << variant;
        }
}
