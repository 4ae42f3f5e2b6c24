#pragma once
// healthgym's own CUDA kernels (src/cuda/*.cu), for what library kernels do
// slowly at the sampling shapes. Built when CMake finds a CUDA compiler beside
// a LibTorch with CUDA; elsewhere each function computes the same with LibTorch
// operations (its reference, which tests compare the kernel with).
#include <torch/torch.h>

namespace healthgym {

// Whether this build has the kernels below (CMake defines HEALTHGYM_CUDA_KERNELS).
bool built_with_cuda_kernels();

// silu(group_norm(x) * scale + shift) with `groups` groups, for x [B, L, C]
// stored channels-last (row l of sample b holds its C channels) in fp32, fp16
// or bf16; scale and shift fp32 on x's device, [C] (shared) or [B, C] (per
// sample: a GroupNorm's affine with FiLM folded in). Statistics in fp32, as
// torch::group_norm's (biased variance, eps inside the root); the result in
// x's type, [B, L, C] contiguous. One kernel on CUDA with the kernels built;
// on the CPU, fp32 and bf16 go through healthgym's CPU kernel (cpu_kernels.hpp).
torch::Tensor group_norm_silu_channels_last(const torch::Tensor& x, int64_t groups,
                                            const torch::Tensor& scale, const torch::Tensor& shift,
                                            double eps);
// The same through LibTorch operations, on any device.
torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& scale, const torch::Tensor& shift,
                                        double eps);

}  // namespace healthgym
