#pragma once
// healthgym's own CUDA kernels (src/cuda/*.cu), for what library kernels do
// slowly at the sampling shapes. Built when CMake finds a CUDA compiler beside
// a LibTorch with CUDA; elsewhere each function computes the same with LibTorch
// operations (its reference, which tests compare the kernel with).
#include <torch/torch.h>

#include <utility>

namespace healthgym {

// Whether this build has the kernels below (CMake defines HEALTHGYM_CUDA_KERNELS).
bool built_with_cuda_kernels();

// silu(group_norm(x + in_bias) * scale + shift) with `groups` groups, for x
// [B, L, C] stored channels-last (row l of sample b holds its C channels) in
// fp32, fp16 or bf16; scale and shift fp32 on x's device, [C] (shared) or
// [B, C] (per sample: a GroupNorm's affine with FiLM folded in); in_bias
// (optional) fp32 [C], a convolution's bias added on the way in. Statistics in
// fp32, as torch::group_norm's (biased variance, eps inside the root); the
// result in x's type, [B, L, C] contiguous. One kernel on CUDA with the kernels
// built; on the CPU, fp32 and bf16 go through healthgym's CPU kernel
// (cpu_kernels.hpp). taps3: the result as [B, L, 3C] instead, row l holding
// y[l - 1], y[l], y[l + 1] (zeros past the ends; taps3_of(y)): a kernel-3,
// padding-1 convolution of y is then one matrix product with its weights as
// [3C, Cout] (conv3_weight_as_matrix).
torch::Tensor group_norm_silu_channels_last(const torch::Tensor& x, int64_t groups,
                                            const torch::Tensor& scale, const torch::Tensor& shift,
                                            double eps, const torch::Tensor& in_bias = {},
                                            bool taps3 = false);
// The same through LibTorch operations, on any device.
torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& scale, const torch::Tensor& shift,
                                        double eps, const torch::Tensor& in_bias = {},
                                        bool taps3 = false);
// [B, L, C] -> [B, L, 3C]: row l is (y[l - 1], y[l], y[l + 1]), zeros past the ends.
torch::Tensor taps3_of(const torch::Tensor& y);
// A Conv1d weight [Cout, Cin, 3] as the [3 Cin, Cout] matrix that multiplies taps3 rows.
torch::Tensor conv3_weight_as_matrix(const torch::Tensor& w);

// (a + bias) cut or zero-padded to L rows, plus r, for r [B, L, C] and a
// [B, La, C] of r's type (the U-Net's upsampling output with its bias, aligned
// to the skip's length); bias fp32 [C] or undefined. Summed in fp32 and rounded once; [B, L, C]
// contiguous in r's type. One kernel on CUDA with the kernels built: a convolution's bias, a
// residual or skip connection and the alignment in one pass.
torch::Tensor add_aligned_channels_last(const torch::Tensor& a, const torch::Tensor& bias,
                                        const torch::Tensor& r);
// The same, and the sum's taps3 ([B, L, 3C], as taps3_of(sum)) written in the same pass.
std::pair<torch::Tensor, torch::Tensor> add_aligned_with_taps3(const torch::Tensor& a,
                                                               const torch::Tensor& bias,
                                                               const torch::Tensor& r);
// The same through LibTorch operations, on any device.
torch::Tensor add_aligned_reference(const torch::Tensor& a, const torch::Tensor& bias,
                                    const torch::Tensor& r);

}  // namespace healthgym
