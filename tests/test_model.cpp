#include <gtest/gtest.h>

#include "healthgym/diffusion.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/error.hpp"
#include "healthgym/unet.hpp"

using namespace healthgym;

namespace {

UNetConfig small_config(int64_t features) {
  UNetConfig c;
  c.features = features;
  c.hidden = 32;
  c.n_steps = 50;
  return c;
}

}  // namespace

TEST(UNet, ShapeContractAtReferenceShapes) {
  // 22 features, 60 steps padded to 100, back to the same shape.
  torch::manual_seed(0);
  UNetConfig c = small_config(22);
  UNet net(c);
  auto x = torch::randn({4, 22, 60});
  auto padded = align_length(x, 100);
  EXPECT_EQ(padded.sizes(), (std::vector<int64_t>{4, 22, 100}));
  EXPECT_TRUE(torch::equal(padded.slice(2, 0, 60), x));
  EXPECT_EQ(padded.slice(2, 60).abs().sum().item<float>(), 0.f);
  auto t = torch::randint(0, 50, {4}, torch::kLong);
  auto y = net->forward(padded, t);
  EXPECT_EQ(y.sizes(), padded.sizes());
  EXPECT_EQ(align_length(y, 60).sizes(), x.sizes());
}

TEST(UNet, OddLengthsAlign) {
  torch::manual_seed(0);
  UNet net(small_config(5));
  for (int64_t len : {8, 9, 13, 25, 49, 61}) {
    auto x = torch::randn({2, 5, len});
    auto y = net->forward(x, torch::tensor({0, 49}, torch::kLong));
    EXPECT_EQ(y.sizes(), x.sizes()) << "length " << len;
  }
  // Shorter than 2^levels: a clear error, not a convolution failure.
  EXPECT_THROW(net->forward(torch::randn({2, 5, 7}), torch::tensor({0, 1}, torch::kLong)),
               healthgym::UsageError);
}

TEST(UNet, ReferenceParameterCount) {
  // The reference network (hidden 256, 22 features, T 500) as built by the
  // PyTorch original counts these trainable parameters.
  UNetConfig c;
  c.features = 22;
  UNet net(c);
  int64_t film = (128 * 512 + 512) + (512 * 512 + 512);
  int64_t res = 2 * (256 * 256 * 3 + 256) + 2 * (2 * 256);
  int64_t conv4 = 256 * 256 * 4 + 256;
  int64_t expected = (22 * 256 + 256) + (256 * 256 + 256) + (256 * 256 + 256) + (256 * 22 + 22) +
                     7 * film + 8 * res + 6 * conv4 + (256 * 256 * 3 + 256);
  EXPECT_EQ(count_parameters(*net), expected);
}

TEST(UNet, SinusoidTable) {
  auto t = sinusoid_table(10, 8);
  EXPECT_FLOAT_EQ(t[0][0].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(t[0][1].item<float>(), 1.f);
  EXPECT_NEAR(t[3][2].item<float>(), std::sin(3.0 * std::exp(-std::log(10000.0) * 2 / 8)), 1e-6);
  EXPECT_NEAR(t[3][3].item<float>(), std::cos(3.0 * std::exp(-std::log(10000.0) * 2 / 8)), 1e-6);
}

TEST(Diffusion, ScheduleBuffers) {
  DiffusionConfig c;
  NoiseSchedule s(c);
  EXPECT_EQ(s->betas.size(0), 500);
  EXPECT_NEAR(s->betas[0].item<float>(), 1e-4, 1e-9);
  EXPECT_NEAR(s->betas[499].item<float>(), 0.01, 1e-9);
  EXPECT_NEAR(s->alphas[10].item<float>(), 1 - s->betas[10].item<float>(), 1e-7);
  double prod = 1;
  for (int i = 0; i <= 100; ++i) prod *= 1.0 - (1e-4 + (0.01 - 1e-4) * i / 499.0);
  EXPECT_NEAR(s->alpha_bar[100].item<float>(), prod, 1e-6);
  // Buffers are part of the module's state.
  EXPECT_EQ(s->buffers().size(), 3u);
}

TEST(Diffusion, ClosedFormXt) {
  NoiseSchedule s(DiffusionConfig{});
  auto x0 = torch::randn({3, 4, 8});
  auto eps = torch::randn({3, 4, 8});
  auto t = torch::tensor({0, 250, 499}, torch::kLong);
  auto xt = s->q_sample(x0, t, eps);
  for (int i = 0; i < 3; ++i) {
    const double ab = s->alpha_bar[t[i].item<int64_t>()].item<double>();
    auto expect = std::sqrt(ab) * x0[i] + std::sqrt(1 - ab) * eps[i];
    EXPECT_TRUE(torch::allclose(xt[i], expect, 1e-5, 1e-6));
  }
}

TEST(Diffusion, MaskedMseIgnoresMaskedCells) {
  auto a = torch::zeros({2, 3, 4});
  auto b = torch::ones({2, 3, 4});
  auto m = torch::zeros({2, 3, 4});
  m[0][1][2] = 1;
  m[1][0][0] = 1;
  EXPECT_FLOAT_EQ(masked_mse(a, b, m).item<float>(), 1.f);
  b[1][2][3] = 100;  // masked out: no effect
  EXPECT_FLOAT_EQ(masked_mse(a, b, m).item<float>(), 1.f);
  EXPECT_FLOAT_EQ(masked_mse(a, b, torch::zeros_like(m)).item<float>(), 0.f);
}

TEST(Diffusion, LossIgnoresPaddingAndUnobservedCells) {
  torch::manual_seed(0);
  UNet net(small_config(3));
  NoiseSchedule s(DiffusionConfig{});
  DiffusionConfig cfg;
  cfg.n_steps = 50;
  NoiseSchedule s50(cfg);
  auto x0 = torch::rand({4, 3, 16}) * 2 - 1;
  auto mask = torch::ones({4, 3, 16});
  mask.slice(2, 10).zero_();  // padding
  mask[1][2].zero_();         // an unobserved channel
  auto x0_changed = x0.clone();
  x0_changed.slice(2, 10).fill_(0.9);
  x0_changed[1][2].fill_(-0.7);
  // The network sees x_t everywhere, so compare losses with the network
  // fixed to zero output: then only masked cells of x0 could matter.
  for (auto& p : net->parameters()) p.data().zero_();
  torch::manual_seed(5);
  auto l1 = diffusion_loss(net, s50, cfg, x0, mask);
  torch::manual_seed(5);
  auto l2 = diffusion_loss(net, s50, cfg, x0_changed, mask);
  EXPECT_FLOAT_EQ(l1.total.item<float>(), l2.total.item<float>());
  EXPECT_FLOAT_EQ(l1.diffusion.item<float>(), l2.diffusion.item<float>());
  EXPECT_NEAR(l1.total.item<float>(), l1.diffusion.item<float>() + 20 * l1.recon.item<float>(),
              1e-4);
}

TEST(UNet, UpsampleEqualsTransposedConvolutionValuesAndGradients) {
  torch::manual_seed(3);
  for (int64_t len : {1, 5, 8, 13}) {
    torch::nn::ConvTranspose1d ref(torch::nn::ConvTranspose1dOptions(6, 4, 4).stride(2).padding(1));
    auto x = torch::randn({3, 6, len}, torch::requires_grad());
    auto y_ref = ref->forward(x);
    auto y = upsample_k4s2p1(x, ref->weight, ref->bias);
    ASSERT_EQ(y.sizes(), y_ref.sizes());
    EXPECT_TRUE(torch::allclose(y, y_ref, 1e-5, 1e-6)) << "length " << len;
    auto g = torch::randn_like(y);
    auto grads_ref = torch::autograd::grad({y_ref}, {x, ref->weight, ref->bias}, {g});
    auto grads = torch::autograd::grad({y}, {x, ref->weight, ref->bias}, {g});
    for (size_t i = 0; i < 3; ++i)
      EXPECT_TRUE(torch::allclose(grads[i], grads_ref[i], 1e-5, 1e-5))
          << "length " << len << " grad " << i;
  }
}
