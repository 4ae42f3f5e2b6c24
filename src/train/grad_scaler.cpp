#include "healthgym/grad_scaler.hpp"

#include "healthgym/error.hpp"

namespace healthgym {

void GradScalerConfig::validate() const {
  if (!(init_scale > 0.0)) throw UsageError("gradient scaler: init_scale must be > 0");
  if (!(growth_factor > 1.0)) throw UsageError("gradient scaler: growth_factor must be > 1");
  if (!(backoff_factor > 0.0 && backoff_factor < 1.0))
    throw UsageError("gradient scaler: backoff_factor must be in (0, 1)");
  if (growth_interval < 1) throw UsageError("gradient scaler: growth_interval must be >= 1");
}

GradScaler::GradScaler(const GradScalerConfig& config) : config_(config) {
  config_.validate();
  scale_ = config_.init_scale;
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const {
  if (!config_.enabled) return loss;
  return loss * scale_;
}

void GradScaler::unscale(torch::optim::Optimizer& optimizer) {
  if (!config_.enabled) return;
  if (unscaled_) throw RuntimeError("GradScaler::unscale called twice before update()");
  const double inv = 1.0 / scale_;
  // One device-side flag accumulated over all gradients, read once at the end.
  torch::Tensor bad;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) {
      auto& g = p.mutable_grad();
      if (!g.defined()) continue;
      auto nonfinite = torch::logical_not(torch::isfinite(g)).any();
      bad = bad.defined() ? torch::logical_or(bad, nonfinite) : nonfinite;
      g.mul_(inv);
    }
  found_inf_ = bad.defined() && bad.item<bool>();
  unscaled_ = true;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  if (!config_.enabled) {
    optimizer.step();
    return true;
  }
  if (!unscaled_) unscale(optimizer);
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void GradScaler::update() {
  if (!config_.enabled) return;
  if (found_inf_) {
    scale_ *= config_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == config_.growth_interval) {
    scale_ *= config_.growth_factor;
    growth_tracker_ = 0;
  }
  found_inf_ = false;
  unscaled_ = false;
}

nlohmann::json GradScaler::state() const {
  return {{"enabled", config_.enabled},
          {"scale", scale_},
          {"growth_tracker", growth_tracker_},
          {"init_scale", config_.init_scale},
          {"growth_factor", config_.growth_factor},
          {"backoff_factor", config_.backoff_factor},
          {"growth_interval", config_.growth_interval}};
}

void GradScaler::load_state(const nlohmann::json& j) {
  config_.enabled = j.at("enabled").get<bool>();
  config_.init_scale = j.at("init_scale").get<double>();
  config_.growth_factor = j.at("growth_factor").get<double>();
  config_.backoff_factor = j.at("backoff_factor").get<double>();
  config_.growth_interval = j.at("growth_interval").get<int64_t>();
  config_.validate();
  scale_ = j.at("scale").get<double>();
  growth_tracker_ = j.at("growth_tracker").get<int64_t>();
  found_inf_ = false;
  unscaled_ = false;
}

}  // namespace healthgym
