#pragma once
// Reverse-diffusion samplers, kept apart from the network: DDPM ancestral
// sampling over all T steps (the original) and DDIM over K of them, each with
// optional clamping of the predicted x0 to the data range [-1, 1].
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "healthgym/diffusion.hpp"
#include "healthgym/prepared_unet.hpp"
#include "healthgym/unet.hpp"

namespace healthgym {

enum class SamplerKind { kDdpm, kDdim };
std::string to_string(SamplerKind k);
SamplerKind sampler_kind_from_string(const std::string& s);  // throws UsageError

struct SamplerOptions {
  SamplerKind kind = SamplerKind::kDdpm;
  int64_t steps = 0;  // DDIM: denoising steps K (0 = T); DDPM always takes T
  double eta = 0.0;   // DDIM: 0 deterministic, 1 the DDPM posterior variance
  // Clamp x0-hat to [-1, 1] at every step, so values never leave the data's
  // range and the guardrail has nothing to reject. Off in the original.
  bool clip_x0 = false;
  // Applied to x0-hat after the clamp (e.g. Encoder::project_fill); the step
  // then goes through the projected x0, as with clip_x0.
  std::function<torch::Tensor(const torch::Tensor&)> project_x0;
  bool add_noise = true;   // false follows the mean path (for tests)
  int64_t stop_after = 0;  // > 0: stop after this many steps (benchmarks time part of a chain)
  // On CUDA: each denoising step is one CUDA graph replay, with the step's
  // coefficients read from tables on the device (no host work per kernel).
  bool cuda_graph = true;
  // Take that table-driven path on any device (tests compare it with the plain one).
  bool device_tables = false;

  void validate(int64_t n_steps) const;  // throws UsageError
};

// The K timesteps DDIM visits, evenly spread over [0, T-1], in descending order
// and always ending at 0.
std::vector<int64_t> ddim_timesteps(int64_t n_steps, int64_t k);

// Runs the reverse chain from x_T ~ N(0, I) with `shape`. DDPM without
// clipping is exactly the original: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t)
// eps_hat) / sqrt(alpha_t) + sqrt(beta_t) z, no noise at t = 0. With clipping it
// uses the posterior mean through the clamped x0-hat. `on_step(k, K)` is called
// after each step. Runs without autograd.
torch::Tensor reverse_diffusion(UNet& net, const NoiseSchedule& schedule,
                                const std::vector<int64_t>& shape, const SamplerOptions& options,
                                const std::function<void(int64_t, int64_t)>& on_step = {});

// What the chain asks at each step: the noise predicted for x_t at step t
// ([B] int64). Lets the caller add guidance without the sampler knowing.
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

torch::Tensor reverse_diffusion(const Denoiser& denoise, const NoiseSchedule& schedule,
                                const std::vector<int64_t>& shape, const SamplerOptions& options,
                                const std::function<void(int64_t, int64_t)>& on_step = {});

// Classifier-free guidance: eps_u + w (eps_c - eps_u), with eps_c for the
// condition rows `cond` [B, k] and eps_u for the dropped row `null_row` [k].
// w = 1 is the plain conditional model (one network call per step).
Denoiser guided_denoiser(UNet& net, const torch::Tensor& cond, const torch::Tensor& null_row,
                         double guidance);
// The same through a PreparedUNet computing in dtype: the weights are prepared
// once for the whole chain (a snapshot of net's), and no autocast is needed.
Denoiser prepared_denoiser(UNet& net, torch::ScalarType dtype, const torch::Tensor& cond,
                           const torch::Tensor& null_row, double guidance,
                           const PreparedOptions& options = {});

// Starts the chain from a given x_T instead of fresh noise (tests, bench).
torch::Tensor reverse_diffusion_from(UNet& net, const NoiseSchedule& schedule, torch::Tensor x,
                                     const SamplerOptions& options,
                                     const std::function<void(int64_t, int64_t)>& on_step = {});
torch::Tensor reverse_diffusion_from(const Denoiser& denoise, const NoiseSchedule& schedule,
                                     torch::Tensor x, const SamplerOptions& options,
                                     const std::function<void(int64_t, int64_t)>& on_step = {});

// How the last chain on this thread ran: "eager", "tables" or "cuda-graph", and
// why a capture fell back, if it did (bench reports it).
std::string last_chain_mode();

// Exponential moving average of a network's weights, used for sampling.
// decay_n = min(decay, (1 + n) / (10 + n)) after n updates, so early averages
// are not dominated by the random initialisation.
class Ema {
 public:
  Ema(UNet& net, double decay);
  void update(UNet& net);  // after each optimizer step
  UNet& averaged() { return shadow_; }
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }
  double current_decay() const;

 private:
  UNet shadow_{nullptr};
  double decay_;
  int64_t updates_ = 0;
};

}  // namespace healthgym
