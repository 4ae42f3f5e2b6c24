#pragma once
// Every difference between LibTorch versions lives here: Debian's 1.13 (CPU)
// and PyTorch's own 2.x builds with CUDA must compile the same sources.
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#define HEALTHGYM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace healthgym::compat {

// Turns autocast on or off for one device type with the given lower precision.
inline void set_autocast(torch::DeviceType device, bool enabled, torch::ScalarType dtype) {
#if HEALTHGYM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  if (enabled) at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == torch::kCUDA) {
    at::autocast::set_enabled(enabled);
    if (enabled) at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    if (enabled) at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
  if (!enabled) at::autocast::clear_cache();
}

// Whether autocast is on for a device type, and its lower precision.
inline bool autocast_enabled(torch::DeviceType device) {
#if HEALTHGYM_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline torch::ScalarType autocast_dtype(torch::DeviceType device) {
#if HEALTHGYM_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                                : at::autocast::get_autocast_cpu_dtype();
#endif
}

// CPU autocast in 1.13 accepts only bfloat16; fp16 autocast needs CUDA there.
inline bool cpu_autocast_supports(torch::ScalarType dtype) {
#if HEALTHGYM_TORCH_AT_LEAST(2, 0)
  return dtype == torch::kBFloat16 || dtype == torch::kHalf;
#else
  return dtype == torch::kBFloat16;
#endif
}

// RAII scope: autocast on for the scope's lifetime when enabled is true.
class AutocastScope {
 public:
  AutocastScope(torch::DeviceType device, bool enabled, torch::ScalarType dtype)
      : device_(device), enabled_(enabled) {
    if (enabled_) set_autocast(device_, true, dtype);
  }
  ~AutocastScope() {
    if (enabled_) set_autocast(device_, false, torch::kFloat);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  torch::DeviceType device_;
  bool enabled_;
};

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace healthgym::compat
