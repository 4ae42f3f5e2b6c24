#include "healthgym/diffusion.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

void DiffusionConfig::validate() const {
  if (n_steps < 1) throw UsageError("--n-steps must be >= 1, is " + std::to_string(n_steps));
  if (!(beta_min > 0.0 && beta_max < 1.0 && beta_min <= beta_max))
    throw UsageError("betas must satisfy 0 < --beta-min <= --beta-max < 1 (got " +
                     std::to_string(beta_min) + ", " + std::to_string(beta_max) + ")");
  if (!(recon_weight >= 0.0)) throw UsageError("--recon-weight must be >= 0");
}

json DiffusionConfig::to_json() const {
  return {{"n_steps", n_steps},
          {"beta_min", beta_min},
          {"beta_max", beta_max},
          {"recon_weight", recon_weight},
          {"noise_blend", noise_blend}};
}

DiffusionConfig DiffusionConfig::from_json(const json& j) {
  DiffusionConfig c;
  c.n_steps = j.at("n_steps").get<int64_t>();
  c.beta_min = j.at("beta_min").get<double>();
  c.beta_max = j.at("beta_max").get<double>();
  c.recon_weight = j.at("recon_weight").get<double>();
  c.noise_blend = j.at("noise_blend").get<bool>();
  return c;
}

NoiseScheduleImpl::NoiseScheduleImpl(const DiffusionConfig& config) {
  config.validate();
  // Computed in double and stored as float, like torch.linspace in fp32 but
  // without its accumulated rounding in the cumulative product.
  auto b = torch::linspace(config.beta_min, config.beta_max, config.n_steps, torch::kDouble);
  auto a = 1.0 - b;
  betas = register_buffer("betas", b.to(torch::kFloat));
  alphas = register_buffer("alphas", a.to(torch::kFloat));
  alpha_bar = register_buffer("alpha_bar", torch::cumprod(a, 0).to(torch::kFloat));
}

torch::Tensor NoiseScheduleImpl::q_sample(const torch::Tensor& x0, const torch::Tensor& t,
                                          const torch::Tensor& eps) const {
  auto ab = alpha_bar.index_select(0, t).view({-1, 1, 1});
  return ab.sqrt() * x0 + (1 - ab).sqrt() * eps;
}

torch::Tensor masked_mse(const torch::Tensor& a, const torch::Tensor& b,
                         const torch::Tensor& mask) {
  return ((a - b).pow(2) * mask).sum() / mask.sum().clamp_min(1.0);
}

LossTerms diffusion_loss(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                         const torch::Tensor& x0, const torch::Tensor& mask,
                         const torch::Tensor& cond) {
  const int64_t b = x0.size(0);
  auto t = torch::randint(0, schedule->n_steps(), {b}, x0.options().dtype(torch::kLong));
  auto eps = torch::randn_like(x0);
  auto xt = schedule->q_sample(x0, t, eps);
  auto pred = model->forward(xt, t, cond).to(torch::kFloat);
  auto ab = schedule->alpha_bar.index_select(0, t).view({-1, 1, 1});
  torch::Tensor noise = pred;
  if (config.noise_blend) {
    auto blend = torch::rand_like(eps);
    noise = blend * eps + (1 - blend) * pred;
  }
  auto x0_hat = (xt - (1 - ab).sqrt() * noise) / (ab.sqrt() + 1e-8);
  LossTerms out;
  out.diffusion = masked_mse(pred, eps, mask);
  out.recon = masked_mse(x0_hat, x0, mask);
  out.total = out.diffusion + config.recon_weight * out.recon;
  return out;
}

}  // namespace healthgym
