#pragma once
// Loss scaling for fp16 training with torch.cuda.amp.GradScaler's semantics,
// written with plain tensor ops (LibTorch 1.13 has the fused _amp_* kernels
// only for CUDA): scale the loss, unscale the gradients before clipping, skip
// the optimizer step when any gradient is inf/NaN, then grow or back off.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace healthgym {

struct GradScalerConfig {
  bool enabled = true;
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;

  void validate() const;  // throws UsageError
};

class GradScaler {
 public:
  explicit GradScaler(const GradScalerConfig& config = {});

  // loss * scale (identity when disabled).
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides every gradient by the scale in place and records whether any is
  // not finite. At most once between update() calls.
  void unscale(torch::optim::Optimizer& optimizer);
  // Unscales if not done yet, then steps unless a gradient was not finite.
  // Returns true if the optimizer stepped.
  bool step(torch::optim::Optimizer& optimizer);
  // Backs off after a skipped step; grows after growth_interval good steps.
  void update();

  bool enabled() const { return config_.enabled; }
  double current_scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool found_inf() const { return found_inf_; }

  nlohmann::json state() const;
  void load_state(const nlohmann::json& j);

 private:
  GradScalerConfig config_;
  double scale_;
  int64_t growth_tracker_ = 0;
  bool found_inf_ = false;
  bool unscaled_ = false;
};

}  // namespace healthgym
