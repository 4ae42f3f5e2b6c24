// GroupNorm, its per-(sample, channel) affine and SiLU in one kernel, on
// activations stored channels-last ([B, L, C]); and the residual/skip sum
// with a convolution's bias. A denoising step at the reference shapes runs 16
// normalisations; as library calls each was a GroupNorm kernel, a SiLU kernel
// and a cast, 12-19 us together, and every convolution's bias was one more
// pass over its output.
// This file sees only the CUDA runtime: src/cuda/cuda_kernels.cpp checks the
// tensors and passes raw pointers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda_kernels_launch.h"

namespace healthgym::cuda {
namespace {

constexpr int kThreads = 256;
// The cached kernel holds a group in registers: up to kMaxItems vectors per
// thread (instantiated for 1, 2 and 4: fewer registers, more blocks per SM).
constexpr int kMaxItems = 4;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void from_float(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void from_float(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
template <typename T>
__device__ __forceinline__ float load(const T* p) {
  return to_float(__ldg(p));
}

// VEC consecutive elements moved as one 16-byte access (the caller checks the
// alignment).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};
template <typename T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, float* out) {
  const Vec<T, VEC> raw = *reinterpret_cast<const Vec<T, VEC>*>(p);
#pragma unroll
  for (int k = 0; k < VEC; ++k) out[k] = to_float(raw.v[k]);
}
template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const float* in) {
  Vec<T, VEC> raw;
#pragma unroll
  for (int k = 0; k < VEC; ++k) from_float(&raw.v[k], in[k]);
  *reinterpret_cast<Vec<T, VEC>*>(p) = raw;
}

__device__ __forceinline__ float silu(float z) { return z / (1.f + __expf(-z)); }

// Writes v, VEC channels of position l, into taps [.., length, 3 * channels]
// (row l holds the values at l - 1, l, l + 1; zeros past the ends), row_l
// pointing at row l's first tap at these channels: the centre of row l, the
// left of row l + 1, the right of row l - 1, and the zeros at the two ends.
// Values are chosen per element and only addresses per store: choosing
// between arrays would put them in local memory.
template <typename T, int VEC>
__device__ __forceinline__ void store_taps3(T* row_l, const float* v, int64_t l, int64_t length,
                                            int64_t channels) {
  float next[VEC], prev[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    next[k] = l + 1 < length ? v[k] : 0.f;
    prev[k] = l > 0 ? v[k] : 0.f;
  }
  const int64_t w = 3 * channels;
  store_vec<T, VEC>(row_l + channels, v);
  store_vec<T, VEC>(l + 1 < length ? row_l + w : row_l + 2 * channels, next);
  store_vec<T, VEC>(l > 0 ? row_l - w + 2 * channels : row_l, prev);
}

// The sum over the block, returned to every thread. `scratch` holds one float
// per warp; the trailing barrier lets the caller reuse it at once.
__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

// One block per (sample, group), the batch on the grid's x (room for any).
// The group is read once into registers, VEC channels per access; statistics
// in fp32 over two passes over those registers (mean, then the squared
// deviations: no cancellation for large means), as torch.group_norm's biased
// variance; the output is rounded once. Needs length * per_group / VEC <=
// kItems * kThreads and 16-byte aligned rows (checked by the launcher).
template <typename T, int VEC, int kItems>
__global__ void __launch_bounds__(kThreads)
    group_norm_silu_cached(const T* __restrict__ x, T* __restrict__ y,
                           const float* __restrict__ in_bias, const float* __restrict__ scale,
                           const float* __restrict__ shift, int64_t affine_stride, int length,
                           int channels, int per_group, float eps, bool taps3) {
  __shared__ float scratch[kThreads / 32];
  const int64_t b = blockIdx.x;
  const int g = blockIdx.y;
  const int64_t base = b * length * channels + static_cast<int64_t>(g) * per_group;
  const int per_row = per_group / VEC, n_vec = length * per_row;
  const float* bias_g = in_bias ? in_bias + static_cast<int64_t>(g) * per_group : nullptr;
  float v[kItems][VEC];
  float s = 0.f;
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    const int i = threadIdx.x + it * kThreads;
    if (i < n_vec) {
      const int l = i / per_row, j = (i - l * per_row) * VEC;
      load_vec<T, VEC>(x + base + static_cast<int64_t>(l) * channels + j, v[it]);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        if (bias_g) v[it][k] += __ldg(bias_g + j + k);
        s += v[it][k];
      }
    }
  }
  const float n = static_cast<float>(length) * static_cast<float>(per_group);
  const float mean = block_sum(s, scratch) / n;
  float q = 0.f;
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    if (threadIdx.x + it * kThreads < n_vec) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float d = v[it][k] - mean;
        q += d * d;
      }
    }
  }
  const float rstd = rsqrtf(block_sum(q, scratch) / n + eps);
  const float* sc = scale + b * affine_stride + static_cast<int64_t>(g) * per_group;
  const float* sh = shift + b * affine_stride + static_cast<int64_t>(g) * per_group;
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    const int i = threadIdx.x + it * kThreads;
    if (i < n_vec) {
      const int l = i / per_row, j = (i - l * per_row) * VEC;
      float out[VEC];
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        out[k] = silu((v[it][k] - mean) * (__ldg(sc + j + k) * rstd) + __ldg(sh + j + k));
      if (!taps3) {
        store_vec<T, VEC>(y + base + static_cast<int64_t>(l) * channels + j, out);
        continue;
      }
      store_taps3<T, VEC>(
          y + (b * length + l) * 3 * channels + static_cast<int64_t>(g) * per_group + j, out, l,
          length, channels);
    }
  }
}

// Any shape, any alignment: the group read three times from memory.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    group_norm_silu_generic(const T* __restrict__ x, T* __restrict__ y,
                            const float* __restrict__ in_bias, const float* __restrict__ scale,
                            const float* __restrict__ shift, int64_t affine_stride, int length,
                            int channels, int per_group, float eps, bool taps3) {
  __shared__ float scratch[kThreads / 32];
  const int64_t b = blockIdx.x;
  const int g = blockIdx.y;
  const int64_t base = b * length * channels + static_cast<int64_t>(g) * per_group;
  const int n = length * per_group;
  const T* xb = x + base;
  const float* bias_g = in_bias ? in_bias + static_cast<int64_t>(g) * per_group : nullptr;
  auto value = [&](int i) {
    const int l = i / per_group, j = i - l * per_group;
    const float v = load(xb + static_cast<int64_t>(l) * channels + j);
    return bias_g ? v + __ldg(bias_g + j) : v;
  };
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += value(i);
  const float mean = block_sum(s, scratch) / static_cast<float>(n);
  float q = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = value(i) - mean;
    q += d * d;
  }
  const float rstd = rsqrtf(block_sum(q, scratch) / static_cast<float>(n) + eps);
  const float* sc = scale + b * affine_stride + static_cast<int64_t>(g) * per_group;
  const float* sh = shift + b * affine_stride + static_cast<int64_t>(g) * per_group;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int l = i / per_group, j = i - l * per_group;
    const float out = silu((value(i) - mean) * (__ldg(sc + j) * rstd) + __ldg(sh + j));
    if (!taps3) {
      from_float(y + base + static_cast<int64_t>(l) * channels + j, out);
      continue;
    }
    store_taps3<T, 1>(y + (b * length + l) * 3 * channels + static_cast<int64_t>(g) * per_group + j,
                      &out, l, length, channels);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
int launch_group_norm(const void* x, void* y, const GroupNormSiluArgs& a, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const int per_group = static_cast<int>(a.channels / a.groups);
  const dim3 grid(static_cast<unsigned>(a.batch), static_cast<unsigned>(a.groups));
  const auto* xt = static_cast<const T*>(x);
  auto* yt = static_cast<T*>(y);
  const int64_t n_vec = a.length * (per_group / kVec);
  const bool cached = per_group % kVec == 0 && aligned16(x) && aligned16(y) &&
                      n_vec <= int64_t{kMaxItems} * kThreads;
  const auto length = static_cast<int>(a.length), channels = static_cast<int>(a.channels);
  if (cached && n_vec <= kThreads)
    group_norm_silu_cached<T, kVec, 1>
        <<<grid, kThreads, 0, stream>>>(xt, yt, a.in_bias, a.scale, a.shift, a.affine_stride,
                                        length, channels, per_group, a.eps, a.taps3);
  else if (cached && n_vec <= 2 * kThreads)
    group_norm_silu_cached<T, kVec, 2>
        <<<grid, kThreads, 0, stream>>>(xt, yt, a.in_bias, a.scale, a.shift, a.affine_stride,
                                        length, channels, per_group, a.eps, a.taps3);
  else if (cached)
    group_norm_silu_cached<T, kVec, kMaxItems>
        <<<grid, kThreads, 0, stream>>>(xt, yt, a.in_bias, a.scale, a.shift, a.affine_stride,
                                        length, channels, per_group, a.eps, a.taps3);
  else
    group_norm_silu_generic<T><<<grid, kThreads, 0, stream>>>(
        xt, yt, a.in_bias, a.scale, a.shift, a.affine_stride, static_cast<int>(a.length),
        static_cast<int>(a.channels), per_group, a.eps, a.taps3);
  return static_cast<int>(cudaGetLastError());
}

// out[b, l, :] = a[b, l, :] + bias (zero for l >= a_length) + r[b, l, :], in
// fp32, rounded once, and (taps not null) also as a k3 convolution's taps;
// VEC channels per thread (VEC = 1 when rows are not 16-byte aligned).
template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    add_aligned_kernel(const T* __restrict__ a, const float* __restrict__ bias,
                       const T* __restrict__ r, T* __restrict__ out, T* __restrict__ taps,
                       int64_t batch, int64_t length, int64_t a_length, int64_t channels) {
  const int64_t per_row = channels / VEC, total = batch * length * per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / per_row, c = (i - row * per_row) * VEC;
    const int64_t b = row / length, l = row - b * length;
    float acc[VEC], add[VEC];
    load_vec<T, VEC>(r + row * channels + c, acc);
    if (l < a_length) {
      load_vec<T, VEC>(a + (b * a_length + l) * channels + c, add);
#pragma unroll
      for (int k = 0; k < VEC; ++k) acc[k] += bias ? add[k] + __ldg(bias + c + k) : add[k];
    }
    store_vec<T, VEC>(out + row * channels + c, acc);
    if (taps) store_taps3<T, VEC>(taps + row * 3 * channels + c, acc, l, length, channels);
  }
}

template <typename T>
int launch_add(const void* a, const void* r, void* out, void* taps, const AddAlignedArgs& p,
               cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = p.channels % kVec == 0 && aligned16(a) && aligned16(r) && aligned16(out) &&
                   (!taps || aligned16(taps));
  const int64_t work = p.batch * p.length * (vec ? p.channels / kVec : p.channels);
  if (work == 0) return 0;
  const auto blocks =
      static_cast<unsigned>(std::min<int64_t>((work + kThreads - 1) / kThreads, 65535));
  const auto* at = static_cast<const T*>(a);
  const auto* rt = static_cast<const T*>(r);
  auto* ot = static_cast<T*>(out);
  auto* tt = static_cast<T*>(taps);
  if (vec)
    add_aligned_kernel<T, kVec><<<blocks, kThreads, 0, stream>>>(at, p.bias, rt, ot, tt, p.batch,
                                                                 p.length, p.a_length, p.channels);
  else
    add_aligned_kernel<T, 1><<<blocks, kThreads, 0, stream>>>(at, p.bias, rt, ot, tt, p.batch,
                                                              p.length, p.a_length, p.channels);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int group_norm_silu_launch(const void* x, void* y, const GroupNormSiluArgs& args, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (args.dtype) {
    case KernelDtype::kFloat:
      return launch_group_norm<float>(x, y, args, s);
    case KernelDtype::kHalf:
      return launch_group_norm<__half>(x, y, args, s);
    case KernelDtype::kBFloat16:
      return launch_group_norm<__nv_bfloat16>(x, y, args, s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int add_aligned_launch(const void* a, const void* r, void* out, void* taps,
                       const AddAlignedArgs& args, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (args.dtype) {
    case KernelDtype::kFloat:
      return launch_add<float>(a, r, out, taps, args, s);
    case KernelDtype::kHalf:
      return launch_add<__half>(a, r, out, taps, args, s);
    case KernelDtype::kBFloat16:
      return launch_add<__nv_bfloat16>(a, r, out, taps, args, s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace healthgym::cuda
