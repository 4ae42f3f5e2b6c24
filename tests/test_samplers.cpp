#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "healthgym/compat.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/samplers.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

struct TinyNet {
  DiffusionConfig dc;
  UNet net{nullptr};
  NoiseSchedule schedule{nullptr};
  explicit TinyNet(int64_t t = 50) {
    torch::manual_seed(11);
    dc.n_steps = t;
    UNetConfig uc;
    uc.features = 4;
    uc.hidden = 16;
    uc.n_steps = t;
    net = UNet(uc);
    net->eval();
    schedule = NoiseSchedule(dc);
  }
};

}  // namespace

TEST(Samplers, DdimTimesteps) {
  auto ts = ddim_timesteps(500, 10);
  ASSERT_EQ(ts.size(), 10u);
  EXPECT_EQ(ts.front(), 499);
  EXPECT_EQ(ts.back(), 0);
  for (size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i], ts[i - 1]);
  auto all = ddim_timesteps(50, 50);
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(all[i], 49 - i);
  EXPECT_EQ(ddim_timesteps(50, 0).size(), 50u);
  EXPECT_EQ(ddim_timesteps(50, 1), std::vector<int64_t>{0});
}

TEST(Samplers, DdimWithKEqualsTReproducesDdpmMeanPath) {
  TinyNet s;
  auto x_t = torch::randn({3, 4, 16});
  SamplerOptions ddpm;
  ddpm.add_noise = false;
  SamplerOptions ddim;
  ddim.kind = SamplerKind::kDdim;
  ddim.steps = 50;
  ddim.eta = 1.0;  // sigma_t^2 is then the DDPM posterior variance
  ddim.add_noise = false;
  auto a = reverse_diffusion_from(s.net, s.schedule, x_t.clone(), ddpm);
  auto b = reverse_diffusion_from(s.net, s.schedule, x_t.clone(), ddim);
  EXPECT_TRUE(torch::allclose(a, b, 1e-3, 1e-4)) << (a - b).abs().max().item<float>();
}

TEST(Samplers, ClampedX0StaysInTheDataRange) {
  TinyNet s;
  for (auto kind : {SamplerKind::kDdpm, SamplerKind::kDdim}) {
    SamplerOptions o;
    o.kind = kind;
    o.steps = kind == SamplerKind::kDdim ? 10 : 0;
    o.clip_x0 = true;
    auto x = reverse_diffusion(s.net, s.schedule, {4, 4, 16}, o);
    EXPECT_LE(x.abs().max().item<float>(), 1.0f + 1e-5f) << to_string(kind);
  }
}

TEST(Samplers, StepCountsAndValidation) {
  TinyNet s;
  SamplerOptions o;
  o.kind = SamplerKind::kDdim;
  o.steps = 7;
  int64_t calls = 0, total = 0;
  reverse_diffusion(s.net, s.schedule, {2, 4, 16}, o, [&](int64_t, int64_t k) {
    ++calls;
    total = k;
  });
  EXPECT_EQ(calls, 7);
  EXPECT_EQ(total, 7);
  o.steps = 51;
  EXPECT_THROW(reverse_diffusion(s.net, s.schedule, {2, 4, 16}, o), UsageError);
  SamplerOptions ddpm;
  ddpm.steps = 10;
  EXPECT_THROW(ddpm.validate(50), UsageError);
  EXPECT_THROW(sampler_kind_from_string("euler"), UsageError);
}

TEST(Ema, UpdateArithmetic) {
  TinyNet s;
  Ema ema(s.net, 0.9);
  auto p0 = s.net->parameters().front().detach().clone();
  EXPECT_TRUE(torch::equal(ema.averaged()->parameters().front(), p0));
  {
    torch::NoGradGuard ng;
    for (auto& p : s.net->parameters()) p.add_(1.0);
  }
  // First update: decay min(0.9, 1/10) = 0.1.
  EXPECT_DOUBLE_EQ(ema.current_decay(), 0.1);
  ema.update(s.net);
  EXPECT_TRUE(torch::allclose(ema.averaged()->parameters().front(), p0 + 0.9, 1e-6, 1e-6));
  // Second: min(0.9, 2/11).
  EXPECT_DOUBLE_EQ(ema.current_decay(), 2.0 / 11.0);
  {
    torch::NoGradGuard ng;
    for (auto& p : s.net->parameters()) p.add_(1.0);
  }
  ema.update(s.net);
  const double d = 2.0 / 11.0;
  EXPECT_TRUE(torch::allclose(ema.averaged()->parameters().front(),
                              d * (p0 + 0.9) + (1 - d) * (p0 + 2.0), 1e-5, 1e-5));
  EXPECT_EQ(ema.updates(), 2);
  // Long run: the decay settles at the configured value.
  ema.set_updates(10000);
  EXPECT_DOUBLE_EQ(ema.current_decay(), 0.9);
  EXPECT_THROW(Ema(s.net, 1.0), UsageError);
}

TEST(Samplers, DefaultPresetSamplesWithoutRejections) {
  TempDir dir;
  TrainConfig c = healthgym::testing::small_config(dir, default_preset(), "pbcseq", 40);
  train(c);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 16;
  s.max_attempts = 16;  // no room for a single rejection
  auto r = sample_to_csv(s);
  EXPECT_EQ(r.accepted, 16);
  EXPECT_DOUBLE_EQ(r.acceptance_rate, 1.0);
  // DDIM with few steps through the whole path.
  s.sampler = SamplerKind::kDdim;
  s.sample_steps = 5;
  s.out_path = dir.file("ddim.csv");
  EXPECT_EQ(sample_to_csv(s).accepted, 16);
  // A checkpoint trained with EMA carries the averaged weights, and the
  // per-cell statistics the marginal start of the chain needs.
  auto ck = load_checkpoint(c.out_path);
  EXPECT_EQ(ck.model.x0_mean.sizes().vec(),
            (std::vector<int64_t>{ck.model.encoder.channels(), ck.model.encoder.working_length()}));
  EXPECT_TRUE(torch::all(ck.model.x0_std >= 0).item<bool>());
  s.start = StartMode::kNoise;  // pure noise, as the original
  s.out_path = dir.file("noise.csv");
  EXPECT_EQ(sample_to_csv(s).accepted, 16);
  s.start = StartMode::kMarginal;
  s.out_path = dir.file("marginal.csv");
  EXPECT_EQ(sample_to_csv(s).accepted, 16);
  // The Gaussian start's basis: [K, C, L] with K at most N / 8, saved and read back.
  ASSERT_TRUE(ck.model.start.basis.defined());
  EXPECT_EQ(ck.model.start.basis.size(1), ck.model.encoder.channels());
  EXPECT_EQ(ck.model.start.resid_std.sizes(), ck.model.x0_mean.sizes());
  EXPECT_TRUE(static_cast<bool>(ck.model.ema));
  EXPECT_GT(ck.meta.value("ema_updates", 0), 0);
}

// The bf16 path may not change results silently: the network's prediction, a
// training loss and a short deterministic DDIM chain under bf16 autocast stay
// within stated tolerances of the fp32 path.
TEST(Precision, Bf16MatchesFp32WithinTolerance) {
  torch::manual_seed(2);
  UNetConfig uc;
  uc.features = 22;
  uc.hidden = 64;
  uc.n_steps = 50;
  UNet net(uc);
  net->eval();
  DiffusionConfig dc;
  dc.n_steps = 50;
  NoiseSchedule schedule(dc);
  auto x = torch::randn({8, 22, 64});
  auto t = torch::randint(0, 50, {8}, torch::kLong);
  torch::NoGradGuard ng;
  auto y32 = net->forward(x, t);
  torch::Tensor y16;
  {
    compat::AutocastScope amp(torch::kCPU, true, torch::kBFloat16);
    y16 = net->forward(x, t).to(torch::kFloat);
  }
  // bf16 keeps 8 bits of mantissa: relative error of the whole output ~1e-2.
  const double rel = ((y16 - y32).norm() / y32.norm()).item<double>();
  EXPECT_LT(rel, 0.03) << "bf16 forward drifted from fp32";

  SamplerOptions o;
  o.kind = SamplerKind::kDdim;
  o.steps = 10;
  o.clip_x0 = true;
  auto x_t = torch::randn({4, 22, 64});
  auto a = reverse_diffusion_from(net, schedule, x_t.clone(), o);
  torch::Tensor b;
  {
    compat::AutocastScope amp(torch::kCPU, true, torch::kBFloat16);
    b = reverse_diffusion_from(net, schedule, x_t.clone(), o);
  }
  EXPECT_LT((a - b).abs().max().item<double>(), 0.1) << "bf16 DDIM chain drifted from fp32";
  EXPECT_LT(((a - b).norm() / a.norm()).item<double>(), 0.03);
}

TEST(Samplers, ProjectedX0IsWhereTheChainEnds) {
  // The last step returns x0-hat itself, so a projection that zeroes half the
  // channels leaves them exactly 0, and an identity projection changes nothing
  // against clip_x0 alone.
  TinyNet s;
  for (auto kind : {SamplerKind::kDdpm, SamplerKind::kDdim}) {
    SamplerOptions o;
    o.kind = kind;
    o.steps = kind == SamplerKind::kDdim ? 10 : 0;
    o.clip_x0 = true;
    o.project_x0 = [](const torch::Tensor& x0) {
      auto y = x0.clone();
      y.slice(1, 0, 2).zero_();
      return y;
    };
    torch::manual_seed(5);
    auto x = reverse_diffusion(s.net, s.schedule, {3, 4, 16}, o);
    EXPECT_EQ(x.slice(1, 0, 2).abs().max().item<float>(), 0.f) << to_string(kind);
    EXPECT_GT(x.slice(1, 2, 4).abs().max().item<float>(), 0.f) << to_string(kind);
    o.project_x0 = [](const torch::Tensor& x0) { return x0; };
    torch::manual_seed(5);
    auto a = reverse_diffusion(s.net, s.schedule, {3, 4, 16}, o);
    o.project_x0 = nullptr;
    torch::manual_seed(5);
    auto b = reverse_diffusion(s.net, s.schedule, {3, 4, 16}, o);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << to_string(kind);
  }
}
