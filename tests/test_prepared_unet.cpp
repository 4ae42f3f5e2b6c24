// The prepared U-Net (weights cast once, FiLM tables, GroupNorm and FiLM in one
// op) against the training module it stands in for when sampling.
#include <gtest/gtest.h>

#include "healthgym/compat.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/cuda_kernels.hpp"
#include "healthgym/diffusion.hpp"
#include "healthgym/error.hpp"
#include "healthgym/prepared_unet.hpp"
#include "healthgym/samplers.hpp"

using namespace healthgym;

namespace {

// Random weights everywhere, GroupNorm's affine included (it starts at 1 and 0,
// which would hide a wrong fold of the norm into FiLM).
UNet random_net(UNetConfig uc, uint64_t seed = 11) {
  torch::manual_seed(seed);
  UNet net(uc);
  torch::NoGradGuard ng;
  for (auto& kv : net->named_parameters())
    if (kv.key().find("norm") != std::string::npos)
      kv.value().copy_(torch::randn_like(kv.value()) * 0.5 +
                       (kv.key().find("weight") != std::string::npos ? 1.0 : 0.0));
  net->eval();
  // The reference is LibTorch's path, independent of the CPU kernel that the
  // prepared network's channels-last path shares with the module's.
  net->set_cpu_kernels(false);
  return net;
}

UNetConfig small_config(int64_t levels = 3) {
  UNetConfig uc;
  uc.features = 5;
  uc.hidden = 32;
  uc.groups = 8;
  uc.levels = levels;
  uc.n_steps = 50;
  uc.time_dim = 16;
  uc.dropout = 0.1;  // eval mode: none, as in sampling
  return uc;
}

float max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item<float>();
}

PreparedOptions with(PreparedLayout layout, int64_t streams = 1,
                     std::optional<bool> fold_biases = std::nullopt) {
  PreparedOptions o;
  o.layout = layout;
  o.streams = streams;
  o.fold_biases = fold_biases;
  return o;
}

// Both layouts on the CPU (channels-last there normalises through healthgym's
// CPU kernel, itself tested against the LibTorch reference the CUDA kernel is).
const PreparedLayout kLayouts[] = {PreparedLayout::kChannelsFirst, PreparedLayout::kChannelsLast};

}  // namespace

TEST(PreparedUNet, MatchesTheModuleInFp32) {
  for (int64_t levels : {0, 1, 3}) {
    auto net = random_net(small_config(levels));
    torch::manual_seed(2);
    // Odd length: the up path crops and pads to the skips' lengths.
    auto x = torch::randn({6, 5, 37});
    auto t = torch::randint(0, 50, {6}, torch::kLong);
    torch::Tensor expected;
    {
      torch::NoGradGuard ng;
      expected = net->forward(x, t);
    }
    for (auto layout : kLayouts) {
      PreparedUNet p(net, torch::kFloat, {}, with(layout));
      EXPECT_EQ(p.channels_last(), layout == PreparedLayout::kChannelsLast);
      auto got = p.forward(x, t);
      EXPECT_EQ(got.scalar_type(), torch::kFloat);
      EXPECT_EQ(got.sizes(), expected.sizes());
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_LT(max_rel_diff(got, expected), 1e-5)
          << "levels " << levels << ", channels-last " << p.channels_last();
    }
  }
  // On the CPU the default is channels-first.
  auto net = random_net(small_config());
  EXPECT_FALSE(PreparedUNet(net, torch::kFloat).channels_last());
}

// Biases folded into the kernels that read the convolutions' outputs (the
// default on a GPU with healthgym's kernels), and the convolutions as matrix
// products over taps, compute the same function: on the CPU through those
// functions' CPU versions, at 0, 1 and 3 levels, with the up path's padding
// (length 37 pools to 18, 9, 4; upsampling gives 8, padded to 9, 18, then 36
// padded to 37; at 37 and 9 the pooling is the library's, at 18 over taps)
// and at a length whose every pooling reads taps (40, 20, 10).
TEST(PreparedUNet, FoldedBiasesMatchTheModule) {
  for (int64_t levels : {0, 1, 3})
    for (int64_t length : {37, 40}) {
      auto uc = small_config(levels);
      uc.cond_sizes = {3};
      auto net = random_net(uc);
      // Non-zero biases everywhere, so that a bias dropped or added twice shows.
      {
        torch::NoGradGuard ng;
        for (auto& kv : net->named_parameters())
          if (kv.key().find("bias") != std::string::npos &&
              kv.key().find("norm") == std::string::npos)
            kv.value().copy_(torch::randn_like(kv.value()) * 0.3);
      }
      torch::manual_seed(4);
      auto x = torch::randn({6, 5, length});
      auto t = torch::randint(0, 50, {6}, torch::kLong);
      auto cond = torch::randint(0, 3, {6, 1}, torch::kLong);
      torch::Tensor expected;
      {
        torch::NoGradGuard ng;
        expected = net->forward(x, t, cond);
      }
      // Folded; folded with every convolution as a matrix product over taps;
      // only the block convolutions so (not folded).
      for (auto [fold, gemm] : {std::pair{true, false}, {true, true}, {false, true}}) {
        auto o = with(PreparedLayout::kChannelsLast, 1, fold);
        o.gemm_convs = gemm;
        PreparedUNet fp32(net, torch::kFloat, cond, o);
        EXPECT_EQ(fp32.folds_biases(), fold);
        EXPECT_EQ(fp32.gemm_convs(), gemm);
        EXPECT_LT(max_rel_diff(fp32.forward(x, t), expected), 1e-5)
            << "levels " << levels << ", length " << length << ", fold " << fold << ", gemm "
            << gemm;
        PreparedUNet bf16(net, torch::kBFloat16, cond, o);
        EXPECT_LT(max_rel_diff(bf16.forward(x, t), expected), 0.05)
            << "levels " << levels << ", length " << length << ", fold " << fold << ", gemm "
            << gemm;
      }
    }
  // Neither by default on the CPU, nor ever channels-first.
  auto net = random_net(small_config());
  PreparedUNet plain(net, torch::kFloat, {}, with(PreparedLayout::kChannelsLast));
  EXPECT_FALSE(plain.folds_biases());
  EXPECT_FALSE(plain.gemm_convs());
  auto o = with(PreparedLayout::kChannelsFirst, 1, true);
  o.gemm_convs = true;
  PreparedUNet first(net, torch::kFloat, {}, o);
  EXPECT_FALSE(first.folds_biases());
  EXPECT_FALSE(first.gemm_convs());
}

// Width 8 in 8 groups down to length 1 (a sample test's model): convolution
// outputs there need not be contiguous, which a view in the block once missed.
TEST(PreparedUNet, MatchesTheModuleAtTinyShapes) {
  auto uc = small_config();
  uc.hidden = 8;
  uc.features = 3;
  auto net = random_net(uc);
  torch::manual_seed(3);
  for (int64_t batch : {1, 4}) {
    auto x = torch::randn({batch, 3, 8});
    auto t = torch::randint(0, 50, {batch}, torch::kLong);
    torch::NoGradGuard ng;
    for (auto layout : kLayouts)
      EXPECT_LT(max_rel_diff(PreparedUNet(net, torch::kFloat, {}, with(layout)).forward(x, t),
                             net->forward(x, t)),
                1e-5)
          << "batch " << batch << ", layout " << static_cast<int>(layout);
  }
}

TEST(PreparedUNet, MatchesTheModuleWithConditions) {
  auto uc = small_config();
  uc.cond_sizes = {3, 4};
  auto net = random_net(uc);
  torch::manual_seed(4);
  auto x = torch::randn({5, 5, 24});
  auto t = torch::randint(0, 50, {5}, torch::kLong);
  auto cond = torch::stack(
      {torch::randint(0, 3, {5}, torch::kLong), torch::randint(0, 4, {5}, torch::kLong)}, 1);
  torch::NoGradGuard ng;
  for (auto layout : kLayouts) {
    EXPECT_LT(max_rel_diff(PreparedUNet(net, torch::kFloat, cond, with(layout)).forward(x, t),
                           net->forward(x, t, cond)),
              1e-5);
    // No conditions given: each variable's last (dropped) row, as the module.
    EXPECT_LT(max_rel_diff(PreparedUNet(net, torch::kFloat, {}, with(layout)).forward(x, t),
                           net->forward(x, t)),
              1e-5);
  }
}

TEST(PreparedUNet, Bf16StaysCloseToFp32) {
  auto net = random_net(small_config());
  torch::manual_seed(6);
  auto x = torch::randn({4, 5, 32});
  auto t = torch::randint(0, 50, {4}, torch::kLong);
  auto fp32 = PreparedUNet(net, torch::kFloat).forward(x, t);
  for (auto layout : kLayouts) {
    auto bf16 = PreparedUNet(net, torch::kBFloat16, {}, with(layout)).forward(x, t);
    EXPECT_EQ(bf16.scalar_type(), torch::kFloat);
    // bf16 keeps 8 bits of mantissa; a dozen layers deep the error stays a few percent.
    EXPECT_LT(max_rel_diff(bf16, fp32), 0.05);
  }
}

// any_layout hands back the same values before the final cast and transpose:
// in the compute type, channels-last as a view of [B, L, F].
TEST(PreparedUNet, AnyLayoutGivesTheSameValues) {
  auto net = random_net(small_config());
  torch::manual_seed(8);
  auto x = torch::randn({3, 5, 24});
  auto t = torch::randint(0, 50, {3}, torch::kLong);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (auto layout : kLayouts) {
      PreparedUNet p(net, dtype, {}, with(layout));
      auto raw = p.forward(x, t, true);
      EXPECT_EQ(raw.scalar_type(), dtype);
      EXPECT_EQ(raw.sizes(), x.sizes());
      EXPECT_EQ(raw.is_contiguous(), !p.channels_last());
      EXPECT_TRUE(torch::equal(raw.to(torch::kFloat), p.forward(x, t)));
    }
  }
}

TEST(PreparedUNet, IgnoresAnActiveAutocast) {
  auto net = random_net(small_config());
  torch::manual_seed(7);
  auto x = torch::randn({3, 5, 16});
  auto t = torch::randint(0, 50, {3}, torch::kLong);
  PreparedUNet p(net, torch::kFloat);
  auto plain = p.forward(x, t);
  compat::AutocastScope amp(torch::kCPU, true, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(p.forward(x, t), plain));
}

TEST(PreparedUNet, IsASnapshot) {
  auto net = random_net(small_config());
  auto x = torch::randn({2, 5, 16});
  auto t = torch::zeros({2}, torch::kLong);
  PreparedUNet p(net, torch::kFloat);
  auto before = p.forward(x, t);
  {
    torch::NoGradGuard ng;
    for (auto& w : net->parameters()) w.add_(1.0);
  }
  EXPECT_TRUE(torch::equal(p.forward(x, t), before));
}

TEST(PreparedUNet, RejectsWhatTheModuleRejects) {
  auto uc = small_config();
  uc.cond_sizes = {3};
  auto net = random_net(uc);
  PreparedUNet p(net, torch::kFloat, torch::zeros({4, 1}, torch::kLong));
  auto t = torch::zeros({4}, torch::kLong);
  EXPECT_THROW(p.forward(torch::randn({4, 6, 16}), t), UsageError);  // features
  EXPECT_THROW(p.forward(torch::randn({4, 5, 4}), t), UsageError);   // shorter than 2^levels
  EXPECT_THROW(p.forward(torch::randn({3, 5, 16}), torch::zeros({3}, torch::kLong)),
               UsageError);  // conditions for 4
  EXPECT_THROW(PreparedUNet(net, torch::kFloat, torch::zeros({4, 2}, torch::kLong)), UsageError);
  EXPECT_THROW(PreparedUNet(net, torch::kInt), UsageError);
  EXPECT_THROW(PreparedUNet(net, torch::kFloat, {}, with(PreparedLayout::kAuto, 0)), UsageError);
  auto plain = random_net(small_config());
  EXPECT_THROW(PreparedUNet(plain, torch::kFloat, torch::zeros({4, 1}, torch::kLong)), UsageError);
}

// The default layout on the CPU: channels-last in bf16 (healthgym's kernel and
// oneDNN's channels-last convolutions), channels-first in fp32.
TEST(PreparedUNet, AutoLayoutOnTheCpu) {
  auto net = random_net(small_config());
  EXPECT_TRUE(PreparedUNet(net, torch::kBFloat16).channels_last());
  EXPECT_FALSE(PreparedUNet(net, torch::kFloat).channels_last());
  EXPECT_FALSE(PreparedUNet(net, torch::kBFloat16, {}, with(PreparedLayout::kChannelsFirst))
                   .channels_last());
}

// The chain through the prepared network equals the chain through the module,
// with classifier-free guidance, on the plain and the table-driven path.
TEST(PreparedUNet, GuidedChainMatchesTheModulesChain) {
  auto uc = small_config();
  uc.cond_sizes = {3};
  uc.n_steps = 20;
  auto net = random_net(uc);
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  auto cond = torch::tensor({0, 1, 2}, torch::kLong).view({3, 1});
  auto null_row = torch::tensor({2}, torch::kLong);
  torch::manual_seed(8);
  auto x_t = torch::randn({3, 5, 16});
  for (bool tables : {false, true}) {
    SamplerOptions o;
    o.kind = SamplerKind::kDdim;
    o.steps = 8;
    o.clip_x0 = true;
    o.device_tables = tables;
    auto module =
        reverse_diffusion_from(guided_denoiser(net, cond, null_row, 2.0), schedule, x_t.clone(), o);
    auto prepared = reverse_diffusion_from(
        prepared_denoiser(net, torch::kFloat, cond, null_row, 2.0), schedule, x_t.clone(), o);
    EXPECT_TRUE(torch::allclose(prepared, module, 1e-4, 1e-4))
        << "tables " << tables << ": " << (prepared - module).abs().max().item<float>();
  }
}

// Unguided, the prepared denoiser hands the chain eps as it comes out (bf16,
// channels-last: a strided view); the table chain reads it as such, the plain
// chain casts it first: the same chain either way.
TEST(PreparedUNet, TableChainReadsEpsAsItComesOut) {
  auto uc = small_config();
  uc.n_steps = 20;
  auto net = random_net(uc);
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  torch::manual_seed(9);
  auto x_t = torch::randn({3, 5, 16});
  for (auto layout : kLayouts) {
    auto denoise = prepared_denoiser(net, torch::kBFloat16, {}, {}, 1.0, with(layout));
    for (bool clip : {false, true}) {
      SamplerOptions o;
      o.kind = SamplerKind::kDdpm;
      o.clip_x0 = clip;
      torch::manual_seed(3);
      auto plain = reverse_diffusion_from(denoise, schedule, x_t.clone(), o);
      o.device_tables = true;
      torch::manual_seed(3);
      auto tables = reverse_diffusion_from(denoise, schedule, x_t.clone(), o);
      EXPECT_EQ(tables.scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::allclose(tables, plain, 1e-4, 1e-4))
          << "clip " << clip << ": " << (tables - plain).abs().max().item<float>();
    }
  }
}

// On a GPU: the prepared network's chain, replayed as CUDA graphs, in fp32 and
// in bf16 (GroupNorm in bf16 there), against the module's eager fp32 chain.
TEST(PreparedUNetCuda, GraphedChainTracksTheModule) {
  if (!built_with_cuda() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto uc = small_config();
  uc.n_steps = 40;
  auto net = random_net(uc);
  net->to(torch::kCUDA);
  DiffusionConfig dc;
  dc.n_steps = 40;
  NoiseSchedule schedule(dc);
  schedule->to(torch::kCUDA);
  torch::manual_seed(12);
  auto x_t = torch::randn({4, 5, 24}).to(torch::kCUDA);
  SamplerOptions o;
  o.kind = SamplerKind::kDdim;
  o.steps = 10;
  o.clip_x0 = true;
  o.add_noise = false;
  o.cuda_graph = false;
  auto module = reverse_diffusion_from(net, schedule, x_t.clone(), o);
  o.cuda_graph = true;
  // cuDNN may run fp32 convolutions in TF32 on either path: 1e-2, not 1e-5.
  const std::pair<torch::ScalarType, double> cases[] = {{torch::kFloat, 1e-2},
                                                        {torch::kBFloat16, 0.1}};
  for (const auto& [dtype, tol] : cases) {
    for (auto layout : {PreparedLayout::kAuto, PreparedLayout::kChannelsFirst})
      for (int64_t streams : {1, 2})
        for (bool gemm : {false, true}) {
          if (gemm && layout == PreparedLayout::kChannelsFirst) continue;  // channels-last only
          auto po = with(layout, streams);
          po.gemm_convs = gemm;
          auto got = reverse_diffusion_from(prepared_denoiser(net, dtype, {}, {}, 1.0, po),
                                            schedule, x_t.clone(), o);
          EXPECT_EQ(last_chain_mode(), "cuda-graph");
          EXPECT_LT((got - module).abs().max().item<float>(), tol)
              << c10::toString(dtype) << ", layout " << static_cast<int>(layout) << ", streams "
              << streams << ", gemm " << gemm;
        }
  }
}

// On a GPU, one call: the default layout is channels-last with the kernels
// built, and the prepared network equals the module there (odd length,
// conditions, fp32; cuDNN may use TF32 on both sides).
TEST(PreparedUNetCuda, ChannelsLastMatchesTheModule) {
  if (!built_with_cuda() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto uc = small_config();
  uc.cond_sizes = {3};
  auto net = random_net(uc);
  net->to(torch::kCUDA);
  torch::manual_seed(13);
  auto x = torch::randn({6, 5, 37}).to(torch::kCUDA);
  auto t = torch::randint(0, 50, {6}, torch::kLong).to(torch::kCUDA);
  auto cond = torch::randint(0, 3, {6, 1}, torch::kLong).to(torch::kCUDA);
  PreparedUNet p(net, torch::kFloat, cond);
  EXPECT_EQ(p.channels_last(), built_with_cuda_kernels());
  EXPECT_EQ(p.folds_biases(), built_with_cuda_kernels());
  torch::NoGradGuard ng;
  auto expected = net->forward(x, t, cond);
  EXPECT_LT(max_rel_diff(p.forward(x, t), expected), 1e-2);
  // The batch split across 4 streams (6 = 2 + 2 + 2 + 0 rows).
  PreparedUNet split(net, torch::kFloat, cond, with(PreparedLayout::kAuto, 4));
  EXPECT_LT(max_rel_diff(split.forward(x, t), expected), 1e-2);
  // The block convolutions as matrix products over the normalisations' taps.
  auto go = with(PreparedLayout::kAuto);
  go.gemm_convs = true;
  PreparedUNet gemm(net, torch::kFloat, cond, go);
  EXPECT_EQ(gemm.gemm_convs(), built_with_cuda_kernels());
  EXPECT_LT(max_rel_diff(gemm.forward(x, t), expected), 1e-2);
  EXPECT_LT(max_rel_diff(PreparedUNet(net, torch::kBFloat16, cond, go).forward(x, t), expected),
            0.05);
  EXPECT_LT(max_rel_diff(PreparedUNet(net, torch::kBFloat16, cond).forward(x, t), expected), 0.05);
}
