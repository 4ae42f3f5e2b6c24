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

std::string described(const torch::Tensor& t) {
  return t.defined() ? shape_of(t) + " " + std::string(t.dtype().name()) + " on " + t.device().str()
                     : std::string("none");
}

constexpr int64_t kShared = -1;  // check_affine: no per-sample form

// Throws UsageError unless t is fp32 on x's device and [channels] (or, unless
// per_sample_rows is kShared, [per_sample_rows, channels]).
void check_affine(const std::string& fn, const std::string& what, const torch::Tensor& t,
                  const torch::Tensor& x, int64_t channels, int64_t per_sample_rows) {
  const bool ok = t.defined() && t.scalar_type() == torch::kFloat && t.device() == x.device() &&
                  ((t.dim() == 1 && t.size(0) == channels) ||
                   (per_sample_rows >= 0 && t.dim() == 2 && t.size(0) == per_sample_rows &&
                    t.size(1) == channels));
  if (ok) return;
  std::string shapes = "[" + std::to_string(channels) + "]";
  if (per_sample_rows >= 0)
    shapes += " or [" + std::to_string(per_sample_rows) + ", " + std::to_string(channels) + "]";
  throw UsageError(fn + what + " must be fp32 on " + x.device().str() + ", " + shapes + ", got " +
                   described(t));
}

bool floating_type(torch::ScalarType type) {
  return type == torch::kFloat || type == torch::kHalf || type == torch::kBFloat16;
}

// Throws UsageError naming what is wrong with group_norm_silu's arguments.
void check_group_norm_args(const torch::Tensor& x, int64_t groups, const torch::Tensor& scale,
                           const torch::Tensor& shift, const torch::Tensor& in_bias) {
  const std::string fn = "group_norm_silu_channels_last: ";
  if (!x.defined() || x.dim() != 3)
    throw UsageError(fn + "x must be [batch, length, channels], got " +
                     (x.defined() ? shape_of(x) : std::string("none")));
  if (!floating_type(x.scalar_type())) throw UsageError(fn + "x must be fp32, fp16 or bf16");
  const int64_t batch = x.size(0), length = x.size(1), channels = x.size(2);
  if (groups < 1 || channels % groups != 0)
    throw UsageError(fn + std::to_string(channels) + " channels do not split into " +
                     std::to_string(groups) + " groups");
  if (length < 1 || length * (channels / groups) > INT_MAX)
    throw UsageError(fn + "length " + std::to_string(length) + " out of range");
  check_affine(fn, "scale and shift", scale, x, channels, batch);
  check_affine(fn, "scale and shift", shift, x, channels, batch);
  if (in_bias.defined()) check_affine(fn, "in_bias", in_bias, x, channels, kShared);
}

void check_add_args(const torch::Tensor& a, const torch::Tensor& bias, const torch::Tensor& r) {
  const std::string fn = "add_aligned_channels_last: ";
  if (!r.defined() || r.dim() != 3 || !floating_type(r.scalar_type()))
    throw UsageError(fn + "r must be fp32, fp16 or bf16 [batch, length, channels], got " +
                     described(r));
  if (!a.defined() || a.dim() != 3 || a.size(0) != r.size(0) || a.size(2) != r.size(2) ||
      a.scalar_type() != r.scalar_type() || a.device() != r.device())
    throw UsageError(fn + "a must be [" + std::to_string(r.size(0)) + ", length, " +
                     std::to_string(r.size(2)) + "] " + std::string(r.dtype().name()) + " on " +
                     r.device().str() + " (r's), got " + described(a));
  if (bias.defined()) check_affine(fn, "bias", bias, r, r.size(2), kShared);
}

#ifdef HEALTHGYM_CUDA_KERNELS
cuda::KernelDtype kernel_dtype(torch::ScalarType type) {
  return type == torch::kFloat  ? cuda::KernelDtype::kFloat
         : type == torch::kHalf ? cuda::KernelDtype::kHalf
                                : cuda::KernelDtype::kBFloat16;
}

void check_launch(const char* fn, int rc) {
  if (rc != 0)
    throw std::runtime_error(std::string(fn) + ": CUDA launch failed: " + cuda::error_string(rc));
}
#endif

}  // namespace

torch::Tensor taps3_of(const torch::Tensor& y) {
  if (!y.defined() || y.dim() != 3)
    throw UsageError("taps3_of: y must be [batch, length, channels], got " + described(y));
  const int64_t l = y.size(1);
  auto padded = torch::constant_pad_nd(y, {0, 0, 1, 1});
  return torch::cat({padded.narrow(1, 0, l), padded.narrow(1, 1, l), padded.narrow(1, 2, l)}, 2);
}

torch::Tensor conv3_weight_as_matrix(const torch::Tensor& w) {
  if (!w.defined() || w.dim() != 3 || w.size(2) != 3)
    throw UsageError("conv3_weight_as_matrix: w must be [out, in, 3], got " + described(w));
  return w.permute({2, 1, 0}).reshape({3 * w.size(1), w.size(0)}).contiguous();
}

torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& scale, const torch::Tensor& shift,
                                        double eps, const torch::Tensor& in_bias, bool taps3) {
  if (taps3) return taps3_of(group_norm_silu_reference(x, groups, scale, shift, eps, in_bias));
  check_group_norm_args(x, groups, scale, shift, in_bias);
  const int64_t batch = x.size(0), channels = x.size(2);
  auto xf = x.to(torch::kFloat);
  if (in_bias.defined()) xf = xf + in_bias;
  auto y = torch::group_norm(xf.transpose(1, 2), groups, {}, {}, eps).transpose(1, 2);  // [B, L, C]
  auto per_sample = [&](const torch::Tensor& t) {
    return t.dim() == 1 ? t.view({1, 1, channels}) : t.view({batch, 1, channels});
  };
  y = torch::silu(y * per_sample(scale) + per_sample(shift));
  return y.to(x.scalar_type()).contiguous();
}

torch::Tensor group_norm_silu_channels_last(const torch::Tensor& x, int64_t groups,
                                            const torch::Tensor& scale, const torch::Tensor& shift,
                                            double eps, const torch::Tensor& in_bias, bool taps3) {
  if (x.defined() && x.device().is_cpu() &&
      (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16)) {
    if (taps3)
      return taps3_of(group_norm_silu_channels_last(x, groups, scale, shift, eps, in_bias));
    check_group_norm_args(x, groups, scale, shift, in_bias);
    if (!in_bias.defined()) return group_norm_silu_cpu(x, groups, scale, shift, eps);
    return group_norm_silu_cpu(x.to(torch::kFloat) + in_bias, groups, scale, shift, eps)
        .to(x.scalar_type());
  }
#ifdef HEALTHGYM_CUDA_KERNELS
  if (!x.defined() || !x.is_cuda())
    return group_norm_silu_reference(x, groups, scale, shift, eps, in_bias, taps3);
  check_group_norm_args(x, groups, scale, shift, in_bias);
  const int64_t batch = x.size(0), channels = x.size(2);
  auto in = x.contiguous();
  auto out = torch::empty({batch, x.size(1), taps3 ? 3 * channels : channels}, in.options());
  if (batch == 0) return out;
  auto sc = scale.contiguous();
  auto sh = shift.contiguous();
  if (sc.dim() != sh.dim()) {  // one shared, one per sample: rows for both
    sc = sc.expand({batch, channels}).contiguous();
    sh = sh.expand({batch, channels}).contiguous();
  }
  auto bias = in_bias.defined() ? in_bias.contiguous() : in_bias;
  cuda::GroupNormSiluArgs a;
  a.dtype = kernel_dtype(x.scalar_type());
  a.batch = batch;
  a.length = x.size(1);
  a.channels = channels;
  a.groups = groups;
  a.in_bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  a.scale = sc.data_ptr<float>();
  a.shift = sh.data_ptr<float>();
  a.affine_stride = sc.dim() == 2 ? channels : 0;
  a.eps = static_cast<float>(eps);
  a.taps3 = taps3;
  c10::cuda::CUDAGuard guard(x.device());
  check_launch("group_norm_silu_channels_last",
               cuda::group_norm_silu_launch(in.data_ptr(), out.data_ptr(), a,
                                            c10::cuda::getCurrentCUDAStream().stream()));
  return out;
#else
  return group_norm_silu_reference(x, groups, scale, shift, eps, in_bias, taps3);
#endif
}

torch::Tensor add_aligned_reference(const torch::Tensor& a, const torch::Tensor& bias,
                                    const torch::Tensor& r) {
  check_add_args(a, bias, r);
  const int64_t la = a.size(1), l = r.size(1);
  auto af = a.to(torch::kFloat);
  if (bias.defined()) af = af + bias;
  if (la > l) af = af.narrow(1, 0, l);
  if (la < l) af = torch::constant_pad_nd(af, {0, 0, 0, l - la});
  return (af + r.to(torch::kFloat)).to(r.scalar_type()).contiguous();
}

namespace {

// add_aligned_channels_last, and with taps3 the sum's taps too (else undefined).
std::pair<torch::Tensor, torch::Tensor> add_aligned(const torch::Tensor& a,
                                                    const torch::Tensor& bias,
                                                    const torch::Tensor& r, bool taps3) {
#ifdef HEALTHGYM_CUDA_KERNELS
  if (r.defined() && r.is_cuda()) {
    check_add_args(a, bias, r);
    auto ac = a.contiguous(), rc = r.contiguous();
    auto out = torch::empty_like(rc, torch::MemoryFormat::Contiguous);
    torch::Tensor taps;
    if (taps3) taps = torch::empty({r.size(0), r.size(1), 3 * r.size(2)}, rc.options());
    auto bc = bias.defined() ? bias.contiguous() : bias;
    cuda::AddAlignedArgs p;
    p.dtype = kernel_dtype(r.scalar_type());
    p.batch = r.size(0);
    p.length = r.size(1);
    p.a_length = a.size(1);
    p.channels = r.size(2);
    p.bias = bc.defined() ? bc.data_ptr<float>() : nullptr;
    c10::cuda::CUDAGuard guard(r.device());
    check_launch("add_aligned_channels_last",
                 cuda::add_aligned_launch(ac.data_ptr(), rc.data_ptr(), out.data_ptr(),
                                          taps3 ? taps.data_ptr() : nullptr, p,
                                          c10::cuda::getCurrentCUDAStream().stream()));
    return {out, taps};
  }
#endif
  auto out = add_aligned_reference(a, bias, r);
  return {out, taps3 ? taps3_of(out) : torch::Tensor()};
}

}  // namespace

torch::Tensor add_aligned_channels_last(const torch::Tensor& a, const torch::Tensor& bias,
                                        const torch::Tensor& r) {
  return add_aligned(a, bias, r, false).first;
}

std::pair<torch::Tensor, torch::Tensor> add_aligned_with_taps3(const torch::Tensor& a,
                                                               const torch::Tensor& bias,
                                                               const torch::Tensor& r) {
  return add_aligned(a, bias, r, true);
}

}  // namespace healthgym
