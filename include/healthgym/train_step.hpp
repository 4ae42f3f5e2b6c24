#pragma once
// A training step that never waits for the GPU: gradient clipping and Adam in
// tensor arithmetic with the step count on the device, parameters and gradients
// in two flat buffers (a handful of kernels for the whole model instead of a few
// per tensor), the loss terms summed on the device. Nothing in it reads a value
// back to the host, so on CUDA it is captured once as a CUDA graph and replayed.
// On CPU it computes what the plain path (torch::optim::Adam after
// clip_grad_norm_) computes; tests hold the two together.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "healthgym/diffusion.hpp"
#include "healthgym/unet.hpp"

namespace healthgym {

class GraphedCall;

// Rebinds each parameter as a view into one contiguous buffer and gives it a
// gradient that is a view into a second: backward accumulates into `grads` in
// place. Call after the model is on its device and its weights are loaded.
struct FlatParameters {
  // with_grads false: values only (e.g. EMA weights, which get no gradients).
  explicit FlatParameters(const std::vector<torch::Tensor>& params, bool with_grads = true);
  std::vector<torch::Tensor> params;
  torch::Tensor values, grads;
};

// Adam (no weight decay, no AMSGrad) with clipping of the global gradient norm,
// as torch::optim::Adam after torch::nn::utils::clip_grad_norm_ computes them.
class SyncFreeAdam {
 public:
  SyncFreeAdam(FlatParameters& flat, double lr, double beta1, double beta2, double eps = 1e-8);
  void step(double max_norm);  // max_norm <= 0: no clipping
  // Moves the moments and the step count to and from torch::optim::Adam's
  // state, so checkpoints keep one format.
  void load_state_from(torch::optim::Adam& opt);
  void store_state_into(torch::optim::Adam& opt) const;

  torch::Tensor exp_avg, exp_avg_sq;
  torch::Tensor step_count;  // 0-dim double on the device

 private:
  FlatParameters& flat_;
  double lr_, beta1_, beta2_, eps_;
};

// torch::optim::Adam's state for parameter p, or nullptr before its first step.
torch::optim::AdamParamState* find_adam_state(torch::optim::Adam& opt, const torch::Tensor& p);

struct FusedStepConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999;
  double clip = 1.0;
  bool autocast = false;
  torch::ScalarType amp_dtype = torch::kBFloat16;
  bool cuda_graph = true;  // on CUDA; ignored elsewhere
  double cond_drop = 0.0;  // conditional models: rows whose conditions are dropped
};

// Trains on rows of a data set kept on the device: step(index) gathers the rows,
// draws t, noise and blend there, and runs objective, backward, clipping and
// Adam. Batches must all have `batch` rows (a graph has fixed shapes).
class FusedTrainStep {
 public:
  FusedTrainStep(UNet net, NoiseSchedule schedule, DiffusionConfig diffusion, torch::Tensor x_all,
                 torch::Tensor mask_all, int64_t batch, const FusedStepConfig& config,
                 torch::Tensor cond_all = {}, torch::Tensor null_row = {});
  ~FusedTrainStep();
  void step(const torch::Tensor& index);  // [batch] int64 rows of x_all
  // Sums of (total, diffusion, recon) since the last reset, on the device.
  torch::Tensor loss_sums() const { return sums_; }
  void reset_sums() { sums_.zero_(); }
  SyncFreeAdam& optimizer() { return *adam_; }
  FlatParameters& parameters() { return *flat_; }
  bool graphed() const;
  std::string fallback_reason() const;
  int64_t batch() const { return batch_; }

 private:
  void body();
  UNet net_;
  NoiseSchedule schedule_;
  DiffusionConfig diffusion_;
  torch::Tensor x_all_, mask_all_, cond_all_, null_row_;
  int64_t batch_;
  FusedStepConfig config_;
  std::unique_ptr<FlatParameters> flat_;
  std::unique_ptr<SyncFreeAdam> adam_;
  torch::Tensor index_, sums_;
  std::unique_ptr<GraphedCall> call_;
};

}  // namespace healthgym
