#include "healthgym/cuda_kernels.hpp"

#include <climits>
#include <string>

#include "healthgym/cpu_kernels.hpp"
#include "healthgym/error.hpp"

#ifdef HEALTHGYM_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda_kernels_launch.h"
#endif

namespace healthgym {

bool built_with_cuda_kernels() {
#ifdef HEALTHGYM_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

namespace {

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

// Throws UsageError naming what is wrong with group_norm_silu's arguments.
void check_group_norm_args(const torch::Tensor& x, int64_t groups, const torch::Tensor& scale,
                           const torch::Tensor& shift) {
  const std::string fn = "group_norm_silu_channels_last: ";
  if (!x.defined() || x.dim() != 3)
    throw UsageError(fn + "x must be [batch, length, channels], got " +
                     (x.defined() ? shape_of(x) : std::string("none")));
  const auto type = x.scalar_type();
  if (type != torch::kFloat && type != torch::kHalf && type != torch::kBFloat16)
    throw UsageError(fn + "x must be fp32, fp16 or bf16");
  const int64_t batch = x.size(0), length = x.size(1), channels = x.size(2);
  if (groups < 1 || channels % groups != 0)
    throw UsageError(fn + std::to_string(channels) + " channels do not split into " +
                     std::to_string(groups) + " groups");
  if (length < 1 || length * (channels / groups) > INT_MAX)
    throw UsageError(fn + "length " + std::to_string(length) + " out of range");
  for (const auto* t : {&scale, &shift}) {
    const bool ok = t->defined() && t->scalar_type() == torch::kFloat &&
                    t->device() == x.device() &&
                    ((t->dim() == 1 && t->size(0) == channels) ||
                     (t->dim() == 2 && t->size(0) == batch && t->size(1) == channels));
    if (!ok)
      throw UsageError(fn + "scale and shift must be fp32 on " + x.device().str() + ", [" +
                       std::to_string(channels) + "] or [" + std::to_string(batch) + ", " +
                       std::to_string(channels) + "], got " +
                       (t->defined() ? shape_of(*t) + " " + std::string(t->dtype().name()) +
                                           " on " + t->device().str()
                                     : std::string("none")));
  }
}

}  // namespace

torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& scale, const torch::Tensor& shift,
                                        double eps) {
  check_group_norm_args(x, groups, scale, shift);
  const int64_t batch = x.size(0), channels = x.size(2);
  auto y = torch::group_norm(x.to(torch::kFloat).transpose(1, 2), groups, {}, {}, eps)
               .transpose(1, 2);  // [B, L, C]
  auto per_sample = [&](const torch::Tensor& t) {
    return t.dim() == 1 ? t.view({1, 1, channels}) : t.view({batch, 1, channels});
  };
  y = torch::silu(y * per_sample(scale) + per_sample(shift));
  return y.to(x.scalar_type()).contiguous();
}

torch::Tensor group_norm_silu_channels_last(const torch::Tensor& x, int64_t groups,
                                            const torch::Tensor& scale, const torch::Tensor& shift,
                                            double eps) {
  if (x.defined() && x.device().is_cpu() &&
      (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16)) {
    check_group_norm_args(x, groups, scale, shift);
    return group_norm_silu_cpu(x, groups, scale, shift, eps);
  }
#ifdef HEALTHGYM_CUDA_KERNELS
  if (!x.defined() || !x.is_cuda()) return group_norm_silu_reference(x, groups, scale, shift, eps);
  check_group_norm_args(x, groups, scale, shift);
  const int64_t batch = x.size(0), channels = x.size(2);
  auto in = x.contiguous();
  auto out = torch::empty_like(in, torch::MemoryFormat::Contiguous);
  if (batch == 0) return out;
  auto sc = scale.contiguous();
  auto sh = shift.contiguous();
  if (sc.dim() != sh.dim()) {  // one shared, one per sample: rows for both
    sc = sc.expand({batch, channels}).contiguous();
    sh = sh.expand({batch, channels}).contiguous();
  }
  cuda::GroupNormSiluArgs a;
  const auto type = x.scalar_type();
  a.dtype = type == torch::kFloat  ? cuda::KernelDtype::kFloat
            : type == torch::kHalf ? cuda::KernelDtype::kHalf
                                   : cuda::KernelDtype::kBFloat16;
  a.batch = batch;
  a.length = x.size(1);
  a.channels = channels;
  a.groups = groups;
  a.scale = sc.data_ptr<float>();
  a.shift = sh.data_ptr<float>();
  a.affine_stride = sc.dim() == 2 ? channels : 0;
  a.eps = static_cast<float>(eps);
  c10::cuda::CUDAGuard guard(x.device());
  const int rc = cuda::group_norm_silu_launch(in.data_ptr(), out.data_ptr(), a,
                                              c10::cuda::getCurrentCUDAStream().stream());
  if (rc != 0)
    throw std::runtime_error(std::string("group_norm_silu_channels_last: CUDA launch failed: ") +
                             cuda::error_string(rc));
  return out;
#else
  return group_norm_silu_reference(x, groups, scale, shift, eps);
#endif
}

}  // namespace healthgym
