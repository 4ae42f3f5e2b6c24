// The Gaussian start: what a patient shares across its steps keeps its spread.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "healthgym/diffusion.hpp"
#include "healthgym/error.hpp"

using namespace healthgym;

namespace {

// N patients, 2 channels, L steps: channel 0 a per-patient level constant over
// time, channel 1 independent noise per cell.
torch::Tensor levels_and_noise(int64_t n, int64_t len, double level_sd) {
  torch::manual_seed(3);
  auto x = torch::empty({n, 2, len});
  x.select(1, 0).copy_((level_sd * torch::randn({n, 1})).expand({n, len}));
  x.select(1, 1).copy_(0.3 * torch::randn({n, len}));
  return x;
}

}  // namespace

TEST(StartBasis, KeepsEveryCellsVarianceAndTheSharedLevel) {
  const int64_t n = 400, len = 12;
  auto x = levels_and_noise(n, len, 0.5);
  auto mean = x.mean(0);
  const StartBasis s = fit_start_basis(x, mean, 4);
  ASSERT_EQ(s.basis.size(0), 4);
  EXPECT_EQ(s.basis.sizes().slice(1).vec(), (std::vector<int64_t>{2, len}));
  // Per cell, directions and residual add up to the data's variance.
  auto var = (x - mean).square().mean(0);
  auto total = s.basis.square().sum(0) + s.resid_std.square();
  EXPECT_TRUE(torch::allclose(total, var, 1e-4, 1e-5));
  // The first direction is the level: constant over time in channel 0, its
  // spread the levels' (the sign is arbitrary), and it leaves almost nothing there
  // (the noise channel's directions pick up sampling correlations with it).
  auto first = s.basis[0][0].abs();
  auto level_sd = (x.select(1, 0).select(1, 0) - mean[0][0]).square().mean().sqrt();
  EXPECT_NEAR(first.min().item<double>(), level_sd.item<double>(), 1e-3);
  EXPECT_NEAR(first.max().item<double>(), level_sd.item<double>(), 1e-3);
  EXPECT_LT(s.resid_std[0].max().item<double>(), 0.01);
}

TEST(StartBasis, DrawsPatientsWhoseLevelsSpreadAsTheData) {
  const int64_t n = 400, len = 12;
  auto x = levels_and_noise(n, len, 0.5);
  auto mean = x.mean(0);
  const StartBasis s = fit_start_basis(x, mean, 4);
  torch::manual_seed(7);
  // abar_T = 1: the draw is g itself.
  auto g = draw_start(s, mean, 1.0, 4000);
  ASSERT_EQ(g.sizes().vec(), (std::vector<int64_t>{4000, 2, len}));
  auto level = g.select(1, 0);
  EXPECT_LT((level - level.select(1, 0).unsqueeze(1)).abs().max().item<double>(), 0.05);
  EXPECT_NEAR(level.select(1, 0).std().item<double>(), 0.5, 0.03);
  EXPECT_NEAR(g.select(1, 1).std().item<double>(), 0.3, 0.02);
  // The per-cell marginal start would spread the level's time mean by 1/sqrt(L) of it.
  auto marginal = mean + x.std(0, false) * torch::randn({4000, 2, len});
  EXPECT_LT(marginal.select(1, 0).mean(1).std().item<double>(), 0.2);
  EXPECT_NEAR(level.mean(1).std().item<double>(), 0.5, 0.03);
  // abar_T < 1: every cell's variance is abar (var of g) + 1 - abar.
  auto xt = draw_start(s, mean, 0.25, 4000);
  EXPECT_NEAR(xt.select(1, 1).var().item<double>(), 0.25 * 0.09 + 0.75, 0.03);
}

TEST(StartBasis, FewPatientsGiveNoDirections) {
  auto x = levels_and_noise(7, 5, 0.5);
  auto mean = x.mean(0);
  const StartBasis s = fit_start_basis(x, mean);
  EXPECT_EQ(s.basis.size(0), 0);  // K = min(32, 7 / 8) = 0
  EXPECT_TRUE(torch::allclose(s.resid_std, x.std(0, false), 1e-5, 1e-6));
  EXPECT_EQ(draw_start(s, mean, 0.5, 3).sizes().vec(), (std::vector<int64_t>{3, 2, 5}));
  EXPECT_EQ(fit_start_basis(levels_and_noise(16, 5, 0.5), mean).basis.size(0), 2);
  EXPECT_THROW(fit_start_basis(torch::zeros({4, 2}), mean), UsageError);
  EXPECT_THROW(draw_start(s, mean, 0.0, 3), UsageError);
}
