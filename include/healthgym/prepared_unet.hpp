#pragma once
// The U-Net prepared for denoising: the same function as UNetImpl::forward, with
// everything that does not change between denoising steps done once. The
// weights are cast to the compute precision once (autocast casts them again at
// every call, and inside a CUDA graph at every replay); every FiLM is folded
// into its GroupNorm's affine per (sample, channel), so a block's
// normalisation and modulation are one group_norm over the batch seen as one
// sample with B x groups groups; without conditions those affines are a table
// over the T time steps (one gather per call), with conditions the FiLM MLPs'
// first layers are tables and their second layers one batched matmul; the
// transposed convolutions' kernels are rebuilt once; the output convolution
// and the linear layer after it are composed into one convolution. On a GPU
// with healthgym's CUDA kernels built, activations are kept channels-last
// ([B, L, C]): each normalisation with its SiLU is one kernel of ours, the
// convolutions run as cuDNN's channels-last ones (faster than [B, C, L] at
// these shapes) and the per-time linears as plain matrix products.
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "healthgym/cuda_graph.hpp"
#include "healthgym/unet.hpp"

namespace healthgym {

// How activations are laid out. kAuto: channels-last on a CUDA device when
// healthgym's CUDA kernels are built and on the CPU in bf16 (healthgym's CPU
// kernel; oneDNN's bf16 convolutions run channels-last without reordering),
// channels-first otherwise (fp32 on the CPU measured no faster channels-last).
enum class PreparedLayout { kAuto, kChannelsFirst, kChannelsLast };
// Whether `layout` means channels-last for a network on `device` computing in `dtype`.
bool prepared_channels_last(PreparedLayout layout, const torch::Device& device,
                            torch::ScalarType dtype);
PreparedLayout prepared_layout_from_string(
    const std::string& s);  // auto | channels-first | channels-last

// How the prepared network computes (each choice computes the same function).
struct PreparedOptions {
  PreparedLayout layout = PreparedLayout::kAuto;
  // Channels-last on CUDA: the batch split across this many streams.
  int64_t streams = 1;
  // Channels-last only: convolutions run without bias, each bias added by the
  // kernel that reads their output next (cuda_kernels.hpp). Unset: on a CUDA
  // device with healthgym's kernels built, where it saves a pass per
  // convolution; elsewhere the same function, one extra pass each.
  std::optional<bool> fold_biases;
  // Channels-last only: each residual block's convolutions as one matrix
  // product, over the three taps that the normalisation before it writes
  // (group_norm_silu_channels_last's taps3), instead of a library
  // convolution; with fold_biases, the pooling (at even lengths; its kernel 4
  // as 6 taps, two of them zero), upsampling and output convolutions too,
  // over taps that the sum before each writes (add_aligned_with_taps3).
  // Unset: off (measured no faster on the CPU).
  std::optional<bool> gemm_convs;
  void validate() const;  // throws UsageError
};

class PreparedUNet {
 public:
  // A snapshot of net's weights (later training does not reach it) on net's
  // device, computing in dtype (kFloat, kBFloat16 or kHalf). cond: [B, k] row
  // indices that every call uses (forward's batch must then be B), or
  // undefined for each conditioning variable's last row, as UNet::forward.
  PreparedUNet(UNet& net, torch::ScalarType dtype, const torch::Tensor& cond = {},
               const PreparedOptions& options = {});

  // eps-hat [B, features, L] in fp32 for x [B, features, L] (any floating
  // type) at steps t [B] int64. Runs without autograd and without autocast.
  // any_layout: the same values in whatever type and layout they come out
  // (the compute type, channels-last a transposed view of [B, L, features];
  // fp32 when the batch is split across streams): for a caller whose next
  // operation reads them anyway (a pass and a buffer fewer).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        bool any_layout = false) const;

  torch::ScalarType dtype() const { return dtype_; }
  bool channels_last() const { return channels_last_; }
  bool folds_biases() const { return fused_; }
  bool gemm_convs() const { return gemm_convs_; }

 private:
  struct Block {
    // conv weights as conv_w's layout, or with gemm_convs_ as [3 Cin, Cout].
    torch::Tensor conv1_w, conv1_b, conv2_w, conv2_b, norm2_w, norm2_b;
    // Folding biases (fused_): biases in fp32 that the kernels add
    // instead of the convolutions. conv1's goes into norm2's input; the input's
    // own (a pooling convolution's, or none) into norm1's input; res_bias =
    // conv2's + the input's, added with the residual.
    torch::Tensor conv1_bias, in_bias, res_bias;
  };
  torch::Tensor block(const Block& b, int64_t index, const torch::Tensor& x,
                      const torch::Tensor& affine) const;
  // taps (all_gemm_ only): also the output's taps3, for a convolution reading it.
  torch::Tensor block_cl(const Block& b, int64_t index, const torch::Tensor& x,
                         const torch::Tensor& affine, torch::Tensor* taps = nullptr) const;
  torch::Tensor affine(const torch::Tensor& t, int64_t batch) const;
  torch::Tensor forward_cl(const torch::Tensor& x, const torch::Tensor& affine,
                           bool any_layout) const;

  UNetConfig config_;
  torch::ScalarType dtype_;
  torch::ScalarType norm_dtype_;  // GroupNorm's: dtype on CUDA, fp32 elsewhere and channels-last
  // Channels-last: convolution weights [Cout, Cin, 1, K] in channels-last
  // memory, linears as [Cin, Cout]; otherwise [Cout, Cin, K] (linears K = 1).
  bool channels_last_ = false;
  // Channels-last with biases folded (by default on CUDA with healthgym's
  // kernels): convolutions without bias, each bias added by the kernel that
  // reads the convolution's output next.
  bool fused_ = false;
  bool gemm_convs_ = false;  // PreparedOptions::gemm_convs, resolved
  // gemm_convs_ with folded biases: the pooling, upsampling and output
  // convolutions too, over taps that the sums before them write.
  bool all_gemm_ = false;
  // Channels-last on CUDA with streams > 1: the batch split across them.
  std::shared_ptr<ParallelStreams> parallel_;
  int64_t groups_ = 1;
  double eps_ = 1e-5;
  int64_t cond_batch_ = 0;  // rows of cond (0: none given)
  torch::Tensor in1_w_, in1_b_, in2_w_, in2_b_, out2_w_, out2_b_;
  torch::Tensor out_conv_w_, out_conv_b_;  // the output convolution composed with out1
  std::vector<torch::Tensor> pool_w_, pool_b_, up_w_, up_b_;
  std::vector<torch::Tensor> up_bias_;  // fused_: each upsampling's bias, fp32 [C]
  // all_gemm_: those convolutions' weights as matrices over taps: [6 Cin,
  // Cout] for the poolings (two taps rows at once), [3 Cin, Cout] the others.
  std::vector<torch::Tensor> pool_w6_, up_w3_;
  torch::Tensor out_conv_w3_;
  std::vector<Block> blocks_;  // down levels, mid1, mid2, up levels
  // FiLM, with films ordered down levels, mid, up levels (F of them), output
  // width 2C as (1 + gamma, beta):
  torch::Tensor affine_table_;       // [2, blocks, T, C] GroupNorm scale, shift (no conditions)
  torch::Tensor film_a_;             // [T, F * 2C] first layer of the time row (conditions)
  torch::Tensor film_c_;             // [1 or B, F * 2C] first layer of the condition embedding
  torch::Tensor film_w2_;            // [F, 2C, 2C] second layers, transposed
  torch::Tensor film_b2_;            // [F, 1, 2C]
  torch::Tensor block_film_;         // [blocks] int64: the FiLM each block takes
  torch::Tensor norm1_w_, norm1_b_;  // [blocks, 1, C] fp32
};

}  // namespace healthgym
