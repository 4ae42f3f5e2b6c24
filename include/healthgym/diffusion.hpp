#pragma once
// The DDPM forward process and training objective, kept apart from the
// network and from the samplers.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "healthgym/unet.hpp"

namespace healthgym {

struct DiffusionConfig {
  int64_t n_steps = 500;  // T
  double beta_min = 1e-4;
  double beta_max = 0.01;
  double recon_weight = 20.0;
  bool noise_blend = true;  // x0-hat uses a U(0,1) blend of true and predicted noise

  void validate() const;  // throws UsageError
  nlohmann::json to_json() const;
  static DiffusionConfig from_json(const nlohmann::json& j);
};

// Linear beta schedule, alphas and cumulative products as registered buffers
// (so they move with .to(device) and are saved with the weights).
class NoiseScheduleImpl : public torch::nn::Module {
 public:
  explicit NoiseScheduleImpl(const DiffusionConfig& config);
  // x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, for t: [B] int64.
  torch::Tensor q_sample(const torch::Tensor& x0, const torch::Tensor& t,
                         const torch::Tensor& eps) const;
  int64_t n_steps() const { return betas.size(0); }

  torch::Tensor betas, alphas, alpha_bar;
};
TORCH_MODULE(NoiseSchedule);

// sum(((a - b)^2) * mask) / max(sum(mask), 1): padding and unobserved cells count for nothing.
torch::Tensor masked_mse(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask);

struct LossTerms {
  torch::Tensor total, diffusion, recon;
};

// One training objective evaluation on a batch x0 [B, C, L] with mask [B, C, L]:
// draws t and eps, predicts eps, reconstructs x0-hat, and weighs the two MSEs.
// cond: the network's condition rows [B, k] (already dropped where training
// drops them), or undefined.
LossTerms diffusion_loss(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                         const torch::Tensor& x0, const torch::Tensor& mask,
                         const torch::Tensor& cond = {});

// The random draws one objective evaluation uses, made for a whole batch up
// front: data-parallel ranks each take their rows of one global draw, so N
// processes see exactly the noise one process would.
struct LossDraws {
  torch::Tensor t;      // [B] int64
  torch::Tensor eps;    // [B, C, L]
  torch::Tensor blend;  // [B, C, L], or undefined without the noise blend
  LossDraws rows(const torch::Tensor& index) const;
};
// Draws in diffusion_loss's order (t, eps, blend) on the CPU generator.
LossDraws draw_loss_noise(const DiffusionConfig& config, int64_t n_steps,
                          torch::IntArrayRef x0_sizes);

// As above with given draws, and the masked means divided by `denominator`
// (a scalar) instead of this batch's mask sum: ranks holding parts of one
// global batch divide by the global sum, so their terms add up to the loss.
LossTerms diffusion_loss(UNet& model, const NoiseSchedule& schedule, const DiffusionConfig& config,
                         const torch::Tensor& x0, const torch::Tensor& mask,
                         const torch::Tensor& cond, const LossDraws& draws,
                         const torch::Tensor& denominator);

}  // namespace healthgym
