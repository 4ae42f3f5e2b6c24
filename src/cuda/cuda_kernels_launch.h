#pragma once
// The boundary between healthgym's CUDA kernels (.cu, compiled by nvcc with
// only the CUDA runtime) and the C++ that checks tensors (cuda_kernels.cpp):
// plain types only, so that neither side sees the other's headers.
#include <cstdint>

namespace healthgym::cuda {

enum class KernelDtype { kFloat, kHalf, kBFloat16 };

struct GroupNormSiluArgs {
  KernelDtype dtype = KernelDtype::kFloat;
  int64_t batch = 0, length = 0, channels = 0, groups = 1;
  const float* in_bias = nullptr;  // [channels], added to x before the statistics (or none)
  const float* scale = nullptr;    // [batch or 1, channels]
  const float* shift = nullptr;
  int64_t affine_stride = 0;  // between samples' rows of scale/shift (0: shared)
  float eps = 1e-5f;
  // y as [batch, length, 3 * channels]: row l holds the results at l - 1, l
  // and l + 1 (zeros past the ends), a k3 convolution's input as one matrix.
  bool taps3 = false;
};

// y = silu(group_norm(x + in_bias) * scale + shift), x and y [batch, length,
// channels] contiguous (y three times as wide with taps3); enqueued on
// `stream` (a cudaStream_t). Returns a cudaError_t.
int group_norm_silu_launch(const void* x, void* y, const GroupNormSiluArgs& args, void* stream);

struct AddAlignedArgs {
  KernelDtype dtype = KernelDtype::kFloat;
  int64_t batch = 0, length = 0, a_length = 0, channels = 0;
  const float* bias = nullptr;  // [channels] (or none)
};

// out[b, l] = a[b, l] + bias (zero for l >= a_length) + r[b, l]: a [batch,
// a_length, channels], r and out [batch, length, channels], all contiguous;
// taps (or null) [batch, length, 3 * channels] gets out as a k3 convolution's
// taps (GroupNormSiluArgs::taps3).
int add_aligned_launch(const void* a, const void* r, void* out, void* taps,
                       const AddAlignedArgs& args, void* stream);

const char* error_string(int code);

}  // namespace healthgym::cuda
