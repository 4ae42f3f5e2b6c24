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

namespace {

// blend() is called after the forward pass, where the original draws it.
template <typename BlendFn>
LossTerms loss_with(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                    const torch::Tensor& x0, const torch::Tensor& mask, const torch::Tensor& cond,
                    const torch::Tensor& t, const torch::Tensor& eps, BlendFn&& blend,
                    const torch::Tensor& denominator) {
  auto xt = schedule->q_sample(x0, t, eps);
  auto pred = model->forward(xt, t, cond).to(torch::kFloat);
  auto ab = schedule->alpha_bar.index_select(0, t).view({-1, 1, 1});
  torch::Tensor noise = pred;
  if (config.noise_blend) {
    auto b = blend();
    noise = b * eps + (1 - b) * pred;
  }
  auto x0_hat = (xt - (1 - ab).sqrt() * noise) / (ab.sqrt() + 1e-8);
  LossTerms out;
  if (denominator.defined()) {
    out.diffusion = ((pred - eps).pow(2) * mask).sum() / denominator;
    out.recon = ((x0_hat - x0).pow(2) * mask).sum() / denominator;
  } else {
    out.diffusion = masked_mse(pred, eps, mask);
    out.recon = masked_mse(x0_hat, x0, mask);
  }
  out.total = out.diffusion + config.recon_weight * out.recon;
  return out;
}

}  // namespace

LossTerms diffusion_loss(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                         const torch::Tensor& x0, const torch::Tensor& mask,
                         const torch::Tensor& cond) {
  const int64_t b = x0.size(0);
  auto t = torch::randint(0, schedule->n_steps(), {b}, x0.options().dtype(torch::kLong));
  auto eps = torch::randn_like(x0);
  return loss_with(model, schedule, config, x0, mask, cond, t, eps,
                   [&] { return torch::rand_like(eps); }, {});
}

LossDraws LossDraws::rows(const torch::Tensor& index) const {
  LossDraws r;
  r.t = t.index_select(0, index);
  r.eps = eps.index_select(0, index);
  if (blend.defined()) r.blend = blend.index_select(0, index);
  return r;
}

LossDraws draw_loss_noise(const DiffusionConfig& config, int64_t n_steps,
                          torch::IntArrayRef x0_sizes) {
  LossDraws d;
  d.t = torch::randint(0, n_steps, {x0_sizes[0]}, torch::kLong);
  d.eps = torch::randn(x0_sizes, torch::kFloat);
  if (config.noise_blend) d.blend = torch::rand(x0_sizes, torch::kFloat);
  return d;
}

LossTerms diffusion_loss(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                         const torch::Tensor& x0, const torch::Tensor& mask,
                         const torch::Tensor& cond, const LossDraws& draws,
                         const torch::Tensor& denominator) {
  const auto dev = x0.device();
  auto blend = draws.blend.defined() ? draws.blend.to(dev) : torch::Tensor();
  return loss_with(
      model, schedule, config, x0, mask, cond, draws.t.to(dev), draws.eps.to(dev),
      [&] { return blend; }, denominator.defined() ? denominator.to(dev) : denominator);
}

}  // namespace healthgym
