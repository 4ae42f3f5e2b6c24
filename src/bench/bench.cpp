#include "healthgym/bench.hpp"

#include <sys/resource.h>

#include <chrono>

#include "healthgym/compat.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/diffusion.hpp"
#include "healthgym/error.hpp"
#include "healthgym/grad_scaler.hpp"
#include "healthgym/prepared_unet.hpp"
#include "healthgym/train_step.hpp"
#include "healthgym/unet.hpp"

namespace healthgym {

using nlohmann::json;

void BenchConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError(msg);
  };
  need(hidden >= 1 && features >= 1, "--hidden and --features must be >= 1");
  need(seq_len >= 1 && target_len >= seq_len, "need 1 <= --seq-len <= --target-len");
  need(batch >= 1 && sample_batch >= 1, "--batch and --sample-batch must be >= 1");
  need(n_steps >= 1, "--n-steps must be >= 1");
  need(train_steps >= 1, "--train-steps must be >= 1");
  need(sample_steps >= 0 && sample_steps <= n_steps, "--sample-steps must be in 0..--n-steps");
  need(threads >= 0, "--threads must be >= 0");
  need(ddim_steps >= 0 && ddim_steps <= n_steps, "--ddim-steps must be in 0..--n-steps");
  need(graph == "auto" || graph == "on" || graph == "off",
       "--graph must be auto, on or off, is '" + graph + "'");
  prepared_layout_from_string(layout);  // throws UsageError naming it
  need(streams >= 1 && streams <= 64, "--streams must be in 1..64");
  need(convs == "library" || convs == "gemm",
       "--convs must be library or gemm, is '" + convs + "'");
}

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The machine's measured matrix-multiply rate in `dtype`: the floor's yardstick.
double peak_matmul_gflops(const torch::Device& device, torch::ScalarType dtype) {
  torch::NoGradGuard ng;
  const int64_t n = 1024;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  auto r = torch::mm(a, b);
  sync(device);
  using Clock = std::chrono::steady_clock;
  int64_t reps = 0;
  const auto t0 = Clock::now();
  double s = 0;
  do {
    r = torch::mm(a, b);
    ++reps;
    if (reps % 4 == 0) sync(device);
    s = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (s < 0.5 || reps % 4 != 0);
  sync(device);
  s = std::chrono::duration<double>(Clock::now() - t0).count();
  return 2.0 * n * n * n * static_cast<double>(reps) / s / 1e9;
}

}  // namespace

json run_bench(const BenchConfig& config) {
  config.validate();
  torch::Device device(config.device);
  BenchConfig c = config;
  c.precision = resolve_precision(c.precision, device);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw UsageError("--device " + c.device + " asked for, but no CUDA device is available");
  if (c.precision == Precision::kFp16 && !device.is_cuda() &&
      !compat::cpu_autocast_supports(torch::kHalf))
    throw UsageError("--precision fp16 needs a CUDA device with this LibTorch; use bf16 or fp32");
  prepare_device(device);
  torch::manual_seed(0);
  UNetConfig uc;
  uc.features = c.features;
  uc.hidden = c.hidden;
  uc.n_steps = c.n_steps;
  DiffusionConfig dc;
  dc.n_steps = c.n_steps;
  UNet net(uc);
  net->set_cpu_kernels(c.cpu_kernels);
  NoiseSchedule schedule(dc);
  net->to(device);
  schedule->to(device);
  const bool amp = c.precision != Precision::kFp32;
  const auto amp_dtype = c.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kHalf;
  // The fused step has no loss scaler: fp16 keeps the plain path.
  const bool fused = c.precision != Precision::kFp16 &&
                     (c.graph == "on" || (c.graph == "auto" && device.is_cuda()));

  // Four batches of data and their mask, made once: the timed loop only indexes.
  auto data = (torch::rand({c.batch * 4, c.features, c.seq_len}) * 2 - 1).to(device);
  data = align_length(data, c.target_len);
  auto mask = torch::zeros({c.batch, c.features, c.target_len}, data.options());
  mask.narrow(2, 0, c.seq_len).fill_(1.0);
  std::function<void(int64_t)> step;
  std::unique_ptr<torch::optim::Adam> opt;
  std::unique_ptr<GradScaler> scaler;
  std::unique_ptr<FusedTrainStep> fused_step;
  std::vector<torch::Tensor> batch_index;
  if (fused) {
    FusedStepConfig fc;
    fc.clip = 1.0;
    fc.autocast = amp;
    fc.amp_dtype = amp_dtype;
    fc.cuda_graph = c.graph != "off";
    auto mask_all = mask.repeat({4, 1, 1});
    fused_step = std::make_unique<FusedTrainStep>(net, schedule, dc, data, mask_all, c.batch, fc);
    for (int64_t i = 0; i < 4; ++i)
      batch_index.push_back(
          torch::arange(i * c.batch, (i + 1) * c.batch, torch::TensorOptions().dtype(torch::kLong))
              .to(device));
    step = [&](int64_t i) { fused_step->step(batch_index[static_cast<size_t>(i % 4)]); };
  } else {
    opt = std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
    GradScalerConfig sc;
    sc.enabled = c.precision == Precision::kFp16;
    scaler = std::make_unique<GradScaler>(sc);
    step = [&](int64_t i) {
      auto x = data.narrow(0, (i % 4) * c.batch, c.batch);
      LossTerms loss;
      {
        compat::AutocastScope scope(device.type(), amp, amp_dtype);
        loss = diffusion_loss(net, schedule, dc, x, mask);
      }
      opt->zero_grad();
      scaler->scale(loss.total).backward();
      scaler->unscale(*opt);
      torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
      scaler->step(*opt);
      scaler->update();
    };
  }
  using Clock = std::chrono::steady_clock;
  net->train();
  for (int i = 0; i < 3; ++i) step(i);
  sync(device);
  auto t0 = Clock::now();
  for (int64_t i = 0; i < c.train_steps; ++i) step(i);
  sync(device);
  const double train_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::string train_mode = "plain";
  if (fused) {
    train_mode = fused_step->graphed() ? "fused+cuda-graph" : "fused";
    if (!fused_step->fallback_reason().empty())
      train_mode += " (" + fused_step->fallback_reason() + ")";
  }

  net->eval();
  SamplerOptions so;
  so.kind = c.sampler;
  so.steps = c.sampler == SamplerKind::kDdim ? c.ddim_steps : 0;
  so.cuda_graph = c.graph != "off";
  so.device_tables = c.graph == "on";
  const int64_t chain = c.sampler == SamplerKind::kDdim
                            ? static_cast<int64_t>(ddim_timesteps(c.n_steps, c.ddim_steps).size())
                            : c.n_steps;
  const int64_t timed = c.sample_steps > 0 ? std::min(c.sample_steps, chain) : chain;
  auto x = torch::randn({c.sample_batch, c.features, c.target_len}, data.options());
  const auto compute_dtype = amp ? amp_dtype : torch::kFloat;
  const auto layout = prepared_layout_from_string(c.layout);
  // Preparing belongs to the chain's time: sample prepares once per batch.
  auto denoiser = [&] {
    PreparedOptions po;
    po.layout = layout;
    po.streams = c.streams;
    po.gemm_convs = c.convs == "gemm";
    return c.prepared ? prepared_denoiser(net, compute_dtype, {}, {}, 1.0, po)
                      : guided_denoiser(net, {}, {}, 1.0);
  };
  const bool sample_amp = amp && !c.prepared;
  {
    // Warm-up: two steps.
    SamplerOptions warm = so;
    warm.stop_after = 2;
    compat::AutocastScope scope(device.type(), sample_amp, amp_dtype);
    reverse_diffusion_from(denoiser(), schedule, x.clone(), warm);
  }
  sync(device);
  so.stop_after = timed;
  t0 = Clock::now();
  {
    compat::AutocastScope scope(device.type(), sample_amp, amp_dtype);
    reverse_diffusion_from(denoiser(), schedule, x, so);
  }
  sync(device);
  const std::string sample_mode = last_chain_mode();
  const double sample_s =
      std::chrono::duration<double>(Clock::now() - t0).count() * static_cast<double>(chain) / timed;

  const double fwd = unet_forward_flops(uc, c.target_len);
  const double peak = peak_matmul_gflops(
      device, c.precision == Precision::kFp32
                  ? torch::kFloat
                  : (c.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kHalf));
  const double train_gflop = 3.0 * fwd / 1e9;
  const std::string sample_layout =
      c.prepared && prepared_channels_last(layout, device,
                                           c.precision == Precision::kFp32   ? torch::kFloat
                                           : c.precision == Precision::kBf16 ? torch::kBFloat16
                                                                             : torch::kHalf)
          ? "channels-last"
          : "channels-first";
  return {{"impl", "healthgym"},
          {"forward_gflop_per_seq", fwd / 1e9},
          {"train_gflop_per_seq", train_gflop},
          {"peak_matmul_gflops", peak},
          // The floor: no implementation trains faster than the FLOPs allow at peak.
          {"train_seq_per_s_ceiling", peak / train_gflop},
          {"sample_seq_step_per_s_ceiling", peak / (fwd / 1e9)},
          {"torch", compat::torch_version()},
          {"device", c.device},
          {"threads", torch::get_num_threads()},
          {"precision", to_string(c.precision)},
          {"sampler", to_string(c.sampler)},
          {"train_mode", train_mode},
          {"train_net", device.is_cpu() && c.cpu_kernels ? "channels-last-kernels" : "modules"},
          {"sample_mode", sample_mode},
          {"sample_net", c.prepared ? "prepared" : "module"},
          {"sample_layout", sample_layout},
          {"sample_streams", c.streams},
          {"sample_convs", sample_layout == "channels-last" ? c.convs : "library"},
          {"chain_steps", chain},
          {"hidden", c.hidden},
          {"features", c.features},
          {"seq_len", c.seq_len},
          {"target_len", c.target_len},
          {"batch", c.batch},
          {"n_steps", c.n_steps},
          {"train_seq_per_s", static_cast<double>(c.batch * c.train_steps) / train_s},
          {"sample_seq_per_s", static_cast<double>(c.sample_batch) / sample_s},
          {"params", count_parameters(*net)},
          {"peak_rss_mb", peak_rss_mb()}};
}

}  // namespace healthgym
