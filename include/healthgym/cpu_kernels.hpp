#pragma once
// healthgym's own CPU kernels: GroupNorm, its affine, FiLM and SiLU in one pass
// over channels-last activations [B, L, C], forward and backward. LibTorch 1.13
// runs these as five or six memory-bound passes (and its bf16 GroupNorm and
// SiLU are scalar code), which cost more than the convolutions around them at
// the reference shapes; here each sample's rows stay in cache between passes.
// Statistics, as torch::group_norm's: fp32, biased variance, eps inside the root.
#include <torch/torch.h>

namespace healthgym {

// y = silu((group_norm(x) * weight + bias) * (1 + gamma) + beta), differentiable
// in every tensor argument. x: [B, L, C] contiguous on the CPU, fp32 or bf16;
// weight, bias: [C] fp32 (the GroupNorm's affine); gamma, beta: [B, C] fp32
// (FiLM), or both undefined for none. The result is [B, L, C] in out_dtype
// (fp32 or bf16); x's gradient comes back in x's type. Throws UsageError on
// shapes, types or devices it does not take.
torch::Tensor group_norm_film_silu(const torch::Tensor& x, const torch::Tensor& weight,
                                   const torch::Tensor& bias, const torch::Tensor& gamma,
                                   const torch::Tensor& beta, int64_t groups, double eps,
                                   torch::ScalarType out_dtype);

// silu(x) for x fp32 or bf16 on the CPU, differentiable, in x's type
// (LibTorch 1.13's bf16 SiLU is scalar code).
torch::Tensor silu_cpu(const torch::Tensor& x);

// Inference only: silu(group_norm(x) * scale + shift), scale and shift fp32,
// [C] or [B, C]; the result in x's type. group_norm_silu_channels_last's CPU
// kernel (cuda_kernels.hpp), with its argument checks.
torch::Tensor group_norm_silu_cpu(const torch::Tensor& x, int64_t groups,
                                  const torch::Tensor& scale, const torch::Tensor& shift,
                                  double eps);

}  // namespace healthgym
