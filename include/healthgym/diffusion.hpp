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

// A Gaussian stand-in for the training design tensor x [N, C, L], to start
// sampling from: the original's schedule leaves sqrt(abar_T) = 28% of x0 in
// x_T, and what a patient keeps over all its steps (age, sex, a level of
// creatinine) is then shared by them. Drawn per cell alone, as the marginal
// start does, that shared part has 1/L of its variance, and the chain made
// statics with half the real spread (PhysioNet age: SD 8.6 years against 17.5).
// basis [K, C, L]: the top K principal directions of x - mean, each scaled to
// its standard deviation; resid_std [C, L]: the per-cell standard deviation
// they leave, so every cell keeps its variance.
struct StartBasis {
  torch::Tensor basis, resid_std;
};
// Fitted on at most kStartFitPatients patients (evenly strided) for the
// directions, on all of them for the variances; K = min(max_components, N / 8)
// so that no direction rests on a handful of patients.
constexpr int64_t kStartFitPatients = 4096;
constexpr int64_t kStartComponents = 32;
StartBasis fit_start_basis(const torch::Tensor& x, const torch::Tensor& mean,
                           int64_t max_components = kStartComponents);
// x_T draws [B, C, L] on mean's device: sqrt(abar_T) g + sqrt(1 - abar_T) eps
// with g ~ N(mean, basis'basis + diag(resid_std^2)); the cells' normal draws
// come first, then the components', from the global generator.
torch::Tensor draw_start(const StartBasis& start, const torch::Tensor& mean, double alpha_bar_T,
                         int64_t b);

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
