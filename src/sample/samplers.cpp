#include "healthgym/samplers.hpp"

#include <cmath>
#include <memory>

#include "healthgym/cuda_graph.hpp"
#include "healthgym/error.hpp"
#include "healthgym/prepared_unet.hpp"

namespace healthgym {

std::string to_string(SamplerKind k) { return k == SamplerKind::kDdim ? "ddim" : "ddpm"; }

SamplerKind sampler_kind_from_string(const std::string& s) {
  if (s == "ddpm") return SamplerKind::kDdpm;
  if (s == "ddim") return SamplerKind::kDdim;
  throw UsageError("unknown sampler '" + s + "' (expected ddpm or ddim)");
}

void SamplerOptions::validate(int64_t n_steps) const {
  if (steps < 0 || steps > n_steps)
    throw UsageError("--sample-steps must be in 0.." + std::to_string(n_steps) +
                     " (the model's T; 0 = all), is " + std::to_string(steps));
  if (kind == SamplerKind::kDdpm && steps != 0 && steps != n_steps)
    throw UsageError("the DDPM sampler takes all " + std::to_string(n_steps) +
                     " steps; use --sampler ddim for fewer");
  if (!(eta >= 0.0 && eta <= 1.0)) throw UsageError("--eta must be in [0, 1]");
}

std::vector<int64_t> ddim_timesteps(int64_t n_steps, int64_t k) {
  if (k <= 0 || k > n_steps) k = n_steps;
  std::vector<int64_t> ts;
  ts.reserve(static_cast<size_t>(k));
  for (int64_t i = k - 1; i >= 0; --i) {
    // Evenly spread, rounded, and distinct because k <= n_steps.
    const double pos = k == 1 ? 0.0 : static_cast<double>(i) * (n_steps - 1) / (k - 1);
    ts.push_back(static_cast<int64_t>(std::llround(pos)));
  }
  return ts;
}

namespace {
thread_local std::string chain_mode = "eager";

Denoiser plain(UNet& net) {
  return
      [net](const torch::Tensor& x, const torch::Tensor& t) mutable { return net->forward(x, t); };
}
}  // namespace

Denoiser guided_denoiser(UNet& net, const torch::Tensor& cond, const torch::Tensor& null_row,
                         double guidance) {
  if (!cond.defined()) return plain(net);
  auto c = cond.to(net->parameters().front().device());
  if (guidance == 1.0) {
    return [net, c](const torch::Tensor& x, const torch::Tensor& t) mutable {
      return net->forward(x, t, c);
    };
  }
  // Both halves in one call: one larger batch beats two small ones.
  auto both = torch::cat({c, null_row.to(c.device()).unsqueeze(0).expand_as(c)}, 0);
  return [net, both, guidance](const torch::Tensor& x, const torch::Tensor& t) mutable {
    auto e = net->forward(torch::cat({x, x}, 0), torch::cat({t, t}, 0), both).to(torch::kFloat);
    auto parts = e.chunk(2, 0);
    return parts[1] + guidance * (parts[0] - parts[1]);
  };
}

Denoiser prepared_denoiser(UNet& net, torch::ScalarType dtype, const torch::Tensor& cond,
                           const torch::Tensor& null_row, double guidance,
                           const PreparedOptions& options) {
  torch::Tensor rows = cond;
  const bool guided = cond.defined() && guidance != 1.0;
  if (guided) rows = torch::cat({cond, null_row.to(cond.device()).unsqueeze(0).expand_as(cond)}, 0);
  auto prepared = std::make_shared<PreparedUNet>(net, dtype, rows, options);
  if (!guided)
    return [prepared](const torch::Tensor& x, const torch::Tensor& t) {
      return prepared->forward(x, t, /*any_layout=*/true);
    };
  return [prepared, guidance](const torch::Tensor& x, const torch::Tensor& t) {
    auto parts = prepared->forward(torch::cat({x, x}, 0), torch::cat({t, t}, 0)).chunk(2, 0);
    return parts[1] + guidance * (parts[0] - parts[1]);
  };
}

torch::Tensor reverse_diffusion(UNet& net, const NoiseSchedule& schedule,
                                const std::vector<int64_t>& shape, const SamplerOptions& options,
                                const std::function<void(int64_t, int64_t)>& on_step) {
  return reverse_diffusion(plain(net), schedule, shape, options, on_step);
}

torch::Tensor reverse_diffusion(const Denoiser& denoise, const NoiseSchedule& schedule,
                                const std::vector<int64_t>& shape, const SamplerOptions& options,
                                const std::function<void(int64_t, int64_t)>& on_step) {
  auto x = torch::randn(shape, torch::TensorOptions().device(schedule->betas.device()));
  return reverse_diffusion_from(denoise, schedule, x, options, on_step);
}

torch::Tensor reverse_diffusion_from(UNet& net, const NoiseSchedule& schedule, torch::Tensor x,
                                     const SamplerOptions& options,
                                     const std::function<void(int64_t, int64_t)>& on_step) {
  return reverse_diffusion_from(plain(net), schedule, std::move(x), options, on_step);
}

std::string last_chain_mode() { return chain_mode; }

namespace {

// The chain as a fixed-shape step over device tables: step k reads its t and
// coefficients from row k, so the same kernels run at every step and can be
// replayed as one CUDA graph. Per step, with x0 = P0 x + P1 eps:
//   without x0 projection  x' = Cx x + Ce eps + S z
//   with it                x' = Cx x + C0 proj(x0) + S z
// which is DDPM's and DDIM's update rewritten; the plain path below is the
// reference the tests hold it to.
torch::Tensor chain_with_tables(const Denoiser& denoise, const std::vector<int64_t>& ts,
                                const std::vector<int64_t>& prev, const double* bp,
                                const double* ap, const double* abp, torch::Tensor x0_in,
                                const SamplerOptions& options,
                                const std::function<void(int64_t, int64_t)>& on_step) {
  const auto k_steps = static_cast<int64_t>(ts.size());
  const bool project = options.clip_x0 || static_cast<bool>(options.project_x0);
  const bool ddpm = options.kind == SamplerKind::kDdpm;
  std::vector<double> rows;
  rows.reserve(static_cast<size_t>(k_steps) * 5);
  bool any_noise = false;
  for (int64_t i = 0; i < k_steps; ++i) {
    const int64_t t = ts[static_cast<size_t>(i)];
    const double ab = abp[t];
    const double ab_prev =
        prev[static_cast<size_t>(i)] >= 0 ? abp[prev[static_cast<size_t>(i)]] : 1.0;
    const double p0 = 1.0 / std::sqrt(ab), p1 = -std::sqrt(1.0 - ab) / std::sqrt(ab);
    double cx = 0, c = 0, sn = 0;
    if (ddpm) {
      sn = t > 0 ? std::sqrt(bp[t]) : 0.0;
      if (!project) {
        cx = 1.0 / std::sqrt(ap[t]);
        c = -(bp[t] / std::sqrt(1.0 - ab)) / std::sqrt(ap[t]);
      } else {
        c = std::sqrt(ab_prev) * bp[t] / (1.0 - ab);
        cx = std::sqrt(ap[t]) * (1.0 - ab_prev) / (1.0 - ab);
      }
    } else {
      sn = options.eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) *
           std::sqrt(std::max(0.0, 1.0 - ab / ab_prev));
      const double dir = std::sqrt(std::max(0.0, 1.0 - ab_prev - sn * sn));
      if (!project) {  // sqrt(ab_prev) x0 + dir eps
        cx = std::sqrt(ab_prev) * p0;
        c = std::sqrt(ab_prev) * p1 + dir;
      } else {  // eps' = (x - sqrt(ab) x0) / sqrt(1 - ab)
        cx = dir / std::sqrt(1.0 - ab);
        c = std::sqrt(ab_prev) - dir * std::sqrt(ab) / std::sqrt(1.0 - ab);
      }
    }
    if (!options.add_noise) sn = 0;
    any_noise = any_noise || sn > 0;
    rows.insert(rows.end(), {p0, p1, cx, c, sn});
  }
  const auto device = x0_in.device();
  auto table = torch::tensor(rows, torch::kDouble).view({k_steps, 5}).to(torch::kFloat).to(device);
  auto x = x0_in.clone();
  const int64_t b = x.size(0);
  // Row k: step k's t for every sequence, so that a step's t is one gather.
  auto t_rows = torch::tensor(ts, torch::kLong).to(device).unsqueeze(1).expand({k_steps, b});
  t_rows = t_rows.contiguous();
  // The step counter lives on the device and each step advances it: a replay
  // then needs nothing launched around it.
  auto k_now = torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto body = [&] {
    auto row = table.index_select(0, k_now).view({5, 1, 1, 1});
    auto tt = t_rows.index_select(0, k_now).view({b});
    // eps as the denoiser gives it (maybe bf16, maybe a strided view): the
    // update's first pass reads it in fp32 anyway. In place, as few passes as
    // the update allows (each is a kernel per step); a denoiser that returns x
    // itself or a view of it keeps its values.
    auto eps = denoise(x, tt);
    if (eps.is_alias_of(x)) eps = eps.clone();
    if (!project) {
      x.mul_(row[2]).addcmul_(eps, row[3]);
    } else {
      auto x0 = torch::addcmul(row[0] * x, eps, row[1]);  // fp32: x's type leads
      if (options.clip_x0) x0.clamp_(-1.0, 1.0);
      if (options.project_x0) x0 = options.project_x0(x0);
      x.mul_(row[2]).addcmul_(x0, row[3]);
    }
    if (any_noise) x.addcmul_(torch::randn_like(x), row[4]);
    k_now.add_(1);
  };
  GraphedCall call(device, body, options.cuda_graph && device.is_cuda());
  for (int64_t i = 0; i < k_steps; ++i) {
    call();
    if (on_step) on_step(i + 1, k_steps);
    if (options.stop_after > 0 && i + 1 >= options.stop_after) break;
  }
  chain_mode = call.graphed() ? "cuda-graph" : "tables";
  if (!call.fallback_reason().empty()) chain_mode += " (" + call.fallback_reason() + ")";
  return x;
}

}  // namespace

torch::Tensor reverse_diffusion_from(const Denoiser& denoise, const NoiseSchedule& schedule,
                                     torch::Tensor x, const SamplerOptions& options,
                                     const std::function<void(int64_t, int64_t)>& on_step) {
  torch::NoGradGuard no_grad;
  const int64_t t_max = schedule->n_steps();
  options.validate(t_max);
  const auto device = x.device();
  chain_mode = "eager";
  // Coefficients on the host: reading them per step would sync a GPU.
  auto betas = schedule->betas.to(torch::kCPU, torch::kDouble);
  auto alphas = schedule->alphas.to(torch::kCPU, torch::kDouble);
  auto abar = schedule->alpha_bar.to(torch::kCPU, torch::kDouble);
  const double* bp = betas.data_ptr<double>();
  const double* ap = alphas.data_ptr<double>();
  const double* abp = abar.data_ptr<double>();
  if (options.device_tables || (device.is_cuda() && options.cuda_graph)) {
    std::vector<int64_t> ts, prev;
    if (options.kind == SamplerKind::kDdpm) {
      for (int64_t t = t_max - 1; t >= 0; --t) ts.push_back(t);
      for (int64_t t : ts) prev.push_back(t - 1);
    } else {
      ts = ddim_timesteps(t_max, options.steps);
      for (size_t i = 0; i < ts.size(); ++i) prev.push_back(i + 1 < ts.size() ? ts[i + 1] : -1);
    }
    return chain_with_tables(denoise, ts, prev, bp, ap, abp, x, options, on_step);
  }
  const int64_t b = x.size(0);
  auto eps_at = [&](const torch::Tensor& xt, int64_t t) {
    auto tt = torch::full({b}, t, torch::TensorOptions().dtype(torch::kLong).device(device));
    return denoise(xt, tt).to(torch::kFloat);
  };

  if (options.kind == SamplerKind::kDdpm) {
    for (int64_t t = t_max - 1; t >= 0; --t) {
      auto eps = eps_at(x, t);
      torch::Tensor mean;
      if (!options.clip_x0 && !options.project_x0) {
        mean = (x - (bp[t] / std::sqrt(1.0 - abp[t])) * eps) / std::sqrt(ap[t]);
      } else {
        auto x0 = (x - std::sqrt(1.0 - abp[t]) * eps) / std::sqrt(abp[t]);
        if (options.clip_x0) x0 = x0.clamp(-1.0, 1.0);
        if (options.project_x0) x0 = options.project_x0(x0);
        const double abar_prev = t > 0 ? abp[t - 1] : 1.0;
        const double c0 = std::sqrt(abar_prev) * bp[t] / (1.0 - abp[t]);
        const double ct = std::sqrt(ap[t]) * (1.0 - abar_prev) / (1.0 - abp[t]);
        mean = c0 * x0 + ct * x;
      }
      x = (t > 0 && options.add_noise) ? mean + std::sqrt(bp[t]) * torch::randn_like(x) : mean;
      if (on_step) on_step(t_max - t, t_max);
      if (options.stop_after > 0 && t_max - t >= options.stop_after) break;
    }
    return x;
  }

  const auto ts = ddim_timesteps(t_max, options.steps);
  const auto k = static_cast<int64_t>(ts.size());
  for (int64_t i = 0; i < k; ++i) {
    const int64_t t = ts[i];
    const double abar_t = abp[t];
    const double abar_prev = i + 1 < k ? abp[ts[i + 1]] : 1.0;
    auto eps = eps_at(x, t);
    auto x0 = (x - std::sqrt(1.0 - abar_t) * eps) / std::sqrt(abar_t);
    if (options.clip_x0 || options.project_x0) {
      if (options.clip_x0) x0 = x0.clamp(-1.0, 1.0);
      if (options.project_x0) x0 = options.project_x0(x0);
      // The noise consistent with the changed x0 keeps the step on the data's side.
      eps = (x - std::sqrt(abar_t) * x0) / std::sqrt(1.0 - abar_t);
    }
    const double sigma = options.eta * std::sqrt((1.0 - abar_prev) / (1.0 - abar_t)) *
                         std::sqrt(std::max(0.0, 1.0 - abar_t / abar_prev));
    const double dir = std::sqrt(std::max(0.0, 1.0 - abar_prev - sigma * sigma));
    x = std::sqrt(abar_prev) * x0 + dir * eps;
    if (sigma > 0 && options.add_noise) x = x + sigma * torch::randn_like(x);
    if (on_step) on_step(i + 1, k);
    if (options.stop_after > 0 && i + 1 >= options.stop_after) break;
  }
  return x;
}

Ema::Ema(UNet& net, double decay) : decay_(decay) {
  if (!(decay > 0.0 && decay < 1.0)) throw UsageError("--ema-decay must be in (0, 1)");
  shadow_ = UNet(net->config());
  shadow_->to(net->parameters().front().device());
  torch::NoGradGuard ng;
  auto src = net->named_parameters();
  for (auto& kv : shadow_->named_parameters()) kv.value().copy_(src[kv.key()]);
  auto srcb = net->named_buffers();
  for (auto& kv : shadow_->named_buffers()) kv.value().copy_(srcb[kv.key()]);
  shadow_->eval();
  for (auto& p : shadow_->parameters()) p.set_requires_grad(false);
}

double Ema::current_decay() const {
  return std::min(decay_,
                  (1.0 + static_cast<double>(updates_)) / (10.0 + static_cast<double>(updates_)));
}

void Ema::update(UNet& net) {
  torch::NoGradGuard ng;
  const double d = current_decay();
  auto src = net->named_parameters();
  for (auto& kv : shadow_->named_parameters()) kv.value().mul_(d).add_(src[kv.key()], 1.0 - d);
  ++updates_;
}

}  // namespace healthgym
