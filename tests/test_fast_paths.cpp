// The fast paths (sync-free fused training step, table-driven denoising step,
// CUDA graphs) against the plain fp32 path they replace.
#include <gtest/gtest.h>

#include "healthgym/bench.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/diffusion.hpp"
#include "healthgym/samplers.hpp"
#include "healthgym/train_step.hpp"

using namespace healthgym;

namespace {

UNet tiny_net(int64_t t, uint64_t seed = 5) {
  torch::manual_seed(seed);
  UNetConfig uc;
  uc.features = 4;
  uc.hidden = 16;
  uc.n_steps = t;
  return UNet(uc);
}

float max_param_diff(UNet& a, UNet& b) {
  float m = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) m = std::max(m, (pa[i] - pb[i]).abs().max().item<float>());
  return m;
}

struct Data {
  torch::Tensor x, mask;
  Data() {
    torch::manual_seed(3);
    x = torch::rand({12, 4, 16}) * 2 - 1;
    mask = (torch::rand({12, 4, 16}) > 0.2).to(torch::kFloat);
  }
};

}  // namespace

TEST(FastPaths, GraphedCallRunsEagerlyOffCuda) {
  int calls = 0;
  GraphedCall call(
      torch::kCPU, [&] { ++calls; }, true);
  for (int i = 0; i < 5; ++i) call();
  EXPECT_EQ(calls, 5);
  EXPECT_FALSE(call.graphed());
}

TEST(FastPaths, FlatParametersAreViewsAndKeepValues) {
  auto net = tiny_net(20);
  std::vector<torch::Tensor> before;
  for (auto& p : net->parameters()) before.push_back(p.detach().clone());
  FlatParameters flat(net->parameters());
  auto ps = net->parameters();
  int64_t n = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(torch::equal(ps[i].detach(), before[i]));
    n += ps[i].numel();
  }
  EXPECT_EQ(flat.values.numel(), n);
  flat.values.add_(1.0);  // the module sees a change of the buffer
  EXPECT_TRUE(torch::allclose(ps[0].detach(), before[0] + 1.0));
  // backward accumulates into the flat gradient buffer
  auto x = torch::randn({2, 4, 16});
  auto t = torch::randint(0, 20, {2}, torch::kLong);
  net->forward(x, t).pow(2).sum().backward();
  EXPECT_GT(flat.grads.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(ps[0].grad().data_ptr(), flat.grads.data_ptr());
}

// Five steps of the fused step (sync-free Adam, clipping on the device) land on
// the weights torch::optim::Adam after clip_grad_norm_ gives, with the same draws.
TEST(FastPaths, FusedStepMatchesPlainAdamWithClipping) {
  Data d;
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  auto plain = tiny_net(20);
  auto fused_net = tiny_net(20);
  const double clip = 0.05;  // small, so clipping is active
  torch::optim::Adam opt(plain->parameters(), torch::optim::AdamOptions(1e-3));
  FusedStepConfig fc;
  fc.clip = clip;
  FusedTrainStep fused(fused_net, schedule, dc, d.x, d.mask, 6, fc);
  const auto rows = torch::arange(3, 9, torch::kLong);
  double plain_loss_sum = 0;
  for (int s = 0; s < 5; ++s) {
    torch::manual_seed(100 + s);
    auto loss = diffusion_loss(plain, schedule, dc, d.x.index_select(0, rows),
                               d.mask.index_select(0, rows));
    opt.zero_grad();
    loss.total.backward();
    torch::nn::utils::clip_grad_norm_(plain->parameters(), clip);
    opt.step();
    plain_loss_sum += loss.total.item<double>();
    torch::manual_seed(100 + s);
    fused.step(rows);
  }
  EXPECT_LT(max_param_diff(plain, fused_net), 2e-5);
  EXPECT_NEAR(fused.loss_sums()[0].item<double>(), plain_loss_sum, 1e-4 * plain_loss_sum);
  EXPECT_NEAR(fused.optimizer().step_count.item<double>(), 5.0, 0);

  // The moments travel through torch::optim::Adam's state (checkpoints): they
  // are the plain run's, and load back into a fresh optimiser unchanged.
  torch::optim::Adam holder(fused_net->parameters(), torch::optim::AdamOptions(1e-3));
  fused.optimizer().store_state_into(holder);
  auto pp = plain->parameters(), fp = fused_net->parameters();
  for (size_t i = 0; i < pp.size(); ++i) {
    auto* a = find_adam_state(opt, pp[i]);
    auto* b = find_adam_state(holder, fp[i]);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->step(), 5);
    EXPECT_TRUE(torch::allclose(a->exp_avg(), b->exp_avg(), 1e-4, 1e-7));
    EXPECT_TRUE(torch::allclose(a->exp_avg_sq(), b->exp_avg_sq(), 1e-4, 1e-10));
  }
  FlatParameters flat2(fused_net->parameters());
  SyncFreeAdam fresh(flat2, 1e-3, 0.9, 0.999);
  fresh.load_state_from(holder);
  EXPECT_EQ(fresh.step_count.item<double>(), 5.0);
  EXPECT_TRUE(torch::equal(fresh.exp_avg, fused.optimizer().exp_avg));
  EXPECT_TRUE(torch::equal(fresh.exp_avg_sq, fused.optimizer().exp_avg_sq));
}

TEST(FastPaths, FusedStepRejectsAWrongBatch) {
  Data d;
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  FusedTrainStep fused(tiny_net(20), schedule, dc, d.x, d.mask, 4, FusedStepConfig());
  EXPECT_THROW(fused.step(torch::arange(0, 3, torch::kLong)), std::exception);
  EXPECT_THROW(FusedTrainStep(tiny_net(20), schedule, dc, d.x, d.mask, 13, FusedStepConfig()),
               std::exception);
}

// The table-driven chain (what a CUDA graph replays) against the plain chain,
// with the same noise: DDPM and DDIM, with and without the x0 clamp and a projection.
TEST(FastPaths, TableChainMatchesPlainChain) {
  DiffusionConfig dc;
  dc.n_steps = 40;
  NoiseSchedule schedule(dc);
  auto net = tiny_net(40);
  net->eval();
  torch::manual_seed(9);
  auto x_t = torch::randn({3, 4, 16});
  auto halve = [](const torch::Tensor& x0) { return x0 * 0.5; };
  struct Case {
    SamplerKind kind;
    int64_t steps;
    double eta;
    bool clip;
    bool project;
  };
  const Case cases[] = {{SamplerKind::kDdpm, 0, 0, false, false},
                        {SamplerKind::kDdpm, 0, 0, true, true},
                        {SamplerKind::kDdim, 10, 0, false, false},
                        {SamplerKind::kDdim, 10, 0, true, false},
                        {SamplerKind::kDdim, 7, 1.0, true, true}};
  for (const auto& c : cases) {
    SamplerOptions o;
    o.kind = c.kind;
    o.steps = c.steps;
    o.eta = c.eta;
    o.clip_x0 = c.clip;
    if (c.project) o.project_x0 = halve;
    torch::manual_seed(21);
    auto plain = reverse_diffusion_from(net, schedule, x_t.clone(), o);
    EXPECT_EQ(last_chain_mode(), "eager");
    o.device_tables = true;
    torch::manual_seed(21);
    auto tables = reverse_diffusion_from(net, schedule, x_t.clone(), o);
    EXPECT_EQ(last_chain_mode(), "tables");
    EXPECT_TRUE(torch::allclose(plain, tables, 1e-4, 1e-4))
        << to_string(c.kind) << " steps " << c.steps << " eta " << c.eta << " clip " << c.clip
        << " project " << c.project << ": " << (plain - tables).abs().max().item<float>();
  }
}

// The table chain keeps its step counter on the device and advances it in
// each step: a chain stopped early, and each step's t, are the plain chain's.
TEST(FastPaths, TableChainStepsThroughItsTimesteps) {
  DiffusionConfig dc;
  dc.n_steps = 30;
  NoiseSchedule schedule(dc);
  for (auto kind : {SamplerKind::kDdpm, SamplerKind::kDdim}) {
    std::vector<std::vector<int64_t>> seen[2];
    for (int tables = 0; tables < 2; ++tables) {
      Denoiser record = [&](const torch::Tensor& x, const torch::Tensor& t) {
        EXPECT_EQ(t.sizes(), torch::IntArrayRef({x.size(0)}));
        seen[tables].emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
        return x * 0.1;
      };
      SamplerOptions o;
      o.kind = kind;
      o.steps = kind == SamplerKind::kDdim ? 9 : 0;
      o.stop_after = 6;
      o.device_tables = tables == 1;
      torch::manual_seed(4);
      auto x = reverse_diffusion_from(record, schedule, torch::randn({3, 2, 8}), o);
      EXPECT_EQ(last_chain_mode(), tables ? "tables" : "eager");
    }
    ASSERT_EQ(seen[0].size(), 6u);
    EXPECT_EQ(seen[0], seen[1]) << to_string(kind);
    EXPECT_EQ(seen[1].front(), std::vector<int64_t>(3, 29));
  }
}

// A denoiser may hand back x itself (or a view of it): the table chain updates
// x in place and must still use the values it was given.
TEST(FastPaths, TableChainTakesADenoiserThatReturnsItsInput) {
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  Denoiser identity = [](const torch::Tensor& x, const torch::Tensor&) { return x; };
  Denoiser view = [](const torch::Tensor& x, const torch::Tensor&) { return x.view(x.sizes()); };
  torch::manual_seed(10);
  auto x_t = torch::randn({2, 3, 8});
  for (const auto& denoise : {identity, view}) {
    SamplerOptions o;
    o.kind = SamplerKind::kDdim;
    o.steps = 5;
    torch::manual_seed(22);
    auto plain = reverse_diffusion_from(denoise, schedule, x_t.clone(), o);
    o.device_tables = true;
    torch::manual_seed(22);
    auto tables = reverse_diffusion_from(denoise, schedule, x_t.clone(), o);
    EXPECT_EQ(last_chain_mode(), "tables");
    EXPECT_TRUE(torch::allclose(plain, tables, 1e-4, 1e-4))
        << (plain - tables).abs().max().item<float>();
  }
}

TEST(FastPaths, BenchFusedPathOnCpu) {
  BenchConfig c;
  c.hidden = 16;
  c.features = 4;
  c.seq_len = 12;
  c.target_len = 16;
  c.batch = 4;
  c.n_steps = 10;
  c.train_steps = 2;
  c.sample_batch = 2;
  c.threads = 1;
  c.graph = "on";
  auto j = run_bench(c);
  EXPECT_EQ(j.at("train_mode").get<std::string>(), "fused");
  EXPECT_EQ(j.at("sample_mode").get<std::string>(), "tables");
  EXPECT_GT(j.at("train_seq_per_s").get<double>(), 0.0);
  c.graph = "sometimes";
  EXPECT_THROW(run_bench(c), std::exception);
}

// On a GPU: the captured chain replays what the eager table chain computes
// (no noise, so both are deterministic), and the training step is captured.
TEST(FastPathsCuda, GraphedChainMatchesEagerChain) {
  if (!built_with_cuda() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  DiffusionConfig dc;
  dc.n_steps = 40;
  NoiseSchedule schedule(dc);
  auto net = tiny_net(40);
  net->eval();
  net->to(torch::kCUDA);
  schedule->to(torch::kCUDA);
  auto x_t = torch::randn({3, 4, 16}).to(torch::kCUDA);
  for (auto kind : {SamplerKind::kDdpm, SamplerKind::kDdim}) {
    SamplerOptions o;
    o.kind = kind;
    o.steps = kind == SamplerKind::kDdim ? 10 : 0;
    o.clip_x0 = true;
    o.add_noise = false;
    o.cuda_graph = false;
    o.device_tables = true;
    auto eager = reverse_diffusion_from(net, schedule, x_t.clone(), o);
    o.cuda_graph = true;
    auto graphed = reverse_diffusion_from(net, schedule, x_t.clone(), o);
    EXPECT_EQ(last_chain_mode(), "cuda-graph");
    EXPECT_TRUE(torch::allclose(eager, graphed, 1e-5, 1e-5))
        << (eager - graphed).abs().max().item<float>();
  }
}

// On a GPU: the step counter advances on the device through the eager
// warm-up calls, the capture (which runs nothing) and the replays, and through
// the eager fallback when a capture fails: every step's t is seen once.
TEST(FastPathsCuda, GraphedChainVisitsEachStepOnce) {
  if (!built_with_cuda() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  DiffusionConfig dc;
  dc.n_steps = 12;
  NoiseSchedule schedule(dc);
  schedule->to(torch::kCUDA);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (bool fail_capture : {false, true}) {
    auto seen = torch::zeros({12}, cuda);
    int calls = 0;
    Denoiser count = [&](const torch::Tensor& x, const torch::Tensor& t) {
      // The third call is the one being captured.
      if (fail_capture && ++calls == 3) throw std::runtime_error("not during a capture");
      seen.index_add_(0, t, torch::ones(t.sizes(), cuda));
      return x * 0.1;
    };
    SamplerOptions o;
    o.kind = SamplerKind::kDdpm;
    o.cuda_graph = true;
    reverse_diffusion_from(count, schedule, torch::randn({3, 2, 8}, cuda), o);
    if (fail_capture)
      EXPECT_NE(last_chain_mode().find("capture failed"), std::string::npos) << last_chain_mode();
    else
      EXPECT_EQ(last_chain_mode(), "cuda-graph");
    EXPECT_TRUE(torch::equal(seen.cpu(), torch::full({12}, 3.0))) << seen.cpu();
  }
}

TEST(FastPathsCuda, FusedStepIsCapturedAndTrains) {
  if (!built_with_cuda() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Data d;
  DiffusionConfig dc;
  dc.n_steps = 20;
  NoiseSchedule schedule(dc);
  schedule->to(torch::kCUDA);
  auto net = tiny_net(20);
  net->to(torch::kCUDA);
  std::vector<torch::Tensor> before;
  for (auto& p : net->parameters()) before.push_back(p.detach().clone());
  FusedStepConfig fc;
  fc.autocast = true;
  fc.amp_dtype = torch::kBFloat16;
  FusedTrainStep fused(net, schedule, dc, d.x.to(torch::kCUDA), d.mask.to(torch::kCUDA), 6, fc);
  auto rows = torch::arange(0, 6, torch::kLong).to(torch::kCUDA);
  for (int s = 0; s < 6; ++s) fused.step(rows);
  torch::cuda::synchronize();
  EXPECT_TRUE(fused.graphed()) << fused.fallback_reason();
  EXPECT_EQ(fused.optimizer().step_count.item<double>(), 6.0);
  auto sums = fused.loss_sums().to(torch::kCPU);
  EXPECT_TRUE(torch::isfinite(sums).all().item<bool>());
  EXPECT_GT(sums[0].item<float>(), 0.0f);
  auto ps = net->parameters();
  EXPECT_FALSE(torch::equal(ps[0].detach(), before[0]));
}
