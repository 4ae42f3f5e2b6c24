#pragma once
// The Health Gym v3 network: a 1-D U-Net over time with FiLM time conditioning
// at every scale. Input and output are [batch, features, length].
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace healthgym {

struct UNetConfig {
  int64_t features = 22;  // channels of the design tensor
  int64_t hidden = 256;   // width C at every scale
  int64_t levels = 3;     // down/up stages
  int64_t groups = 8;     // GroupNorm groups (capped at C)
  double dropout = 0.0;
  int64_t n_steps = 500;   // diffusion steps T: rows of the time table
  int64_t time_dim = 128;  // width of the fixed sinusoidal table
  // Conditioning: rows of one learned embedding (width time_dim) per variable,
  // summed and added to the time embedding of every FiLM. Empty: unconditional
  // (the original network, parameter for parameter).
  std::vector<int64_t> cond_sizes;

  void validate() const;  // throws UsageError
  nlohmann::json to_json() const;
  static UNetConfig from_json(const nlohmann::json& j);
};

// Fixed sinusoidal table [n, dim] (sin on even columns, cos on odd).
torch::Tensor sinusoid_table(int64_t n, int64_t dim);

// Time step -> (gamma, beta) per channel, through a fixed table and an MLP.
class FiLMImpl : public torch::nn::Module {
 public:
  FiLMImpl(int64_t n_steps, int64_t dim, int64_t channels);
  // c: [B, dim] condition embedding added to the time embedding, or undefined.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& t,
                                                  const torch::Tensor& c = {});

 private:
  torch::Tensor table_;  // buffer, not trained
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(FiLM);

// GroupNorm -> FiLM -> SiLU -> Conv(k3) -> GroupNorm -> SiLU -> Dropout -> Conv(k3), + skip.
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t channels, int64_t groups, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gamma,
                        const torch::Tensor& beta);
  // The same on channels-last activations x [B, L, C] on the CPU, through
  // healthgym's fused GroupNorm-FiLM-SiLU kernel; its normalised activations
  // come out in `act` (fp32, or bf16 under bf16 autocast).
  torch::Tensor forward_channels_last(const torch::Tensor& x, const torch::Tensor& gamma,
                                      const torch::Tensor& beta, torch::ScalarType act);

 private:
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv1d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(ResBlock);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);
  // x: [B, features, L] with any L >= 1; t: [B] int64 in [0, n_steps).
  // cond: [B, cond_sizes.size()] int64 row indices; undefined means every
  // variable's last row (the "dropped" one the network learns unconditionally).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& cond = {});
  const UNetConfig& config() const { return config_; }
  // On the CPU, forward runs channels-last through healthgym's own kernels
  // (the same function of the same parameters, about twice as fast at the
  // reference shapes); off, through LibTorch's channels-first modules, the
  // path every device shares. Tests compare the two.
  void set_cpu_kernels(bool on) { cpu_kernels_ = on; }
  bool cpu_kernels() const { return cpu_kernels_; }
  // Shortest length every down-sampling stage can take: 2^levels.
  int64_t min_length() const { return int64_t{1} << config_.levels; }

 private:
  torch::Tensor forward_channels_last(const torch::Tensor& x, const torch::Tensor& t,
                                      const torch::Tensor& ce);

  UNetConfig config_;
  bool cpu_kernels_ = true;
  torch::nn::Linear in1_{nullptr}, in2_{nullptr}, out1_{nullptr}, out2_{nullptr};
  torch::nn::ModuleList film_down_, film_up_, down_, pool_, unpool_, up_, cond_emb_;
  FiLM film_mid_{nullptr};
  ResBlock mid1_{nullptr}, mid2_{nullptr};
  torch::nn::Conv1d out_conv_{nullptr};
};
TORCH_MODULE(UNet);

// ConvTranspose1d(kernel 4, stride 2, padding 1) with its weight [Cin, Cout, 4]
// and bias, computed as one stride-1 convolution and an interleave: the same
// values as LibTorch's transposed convolution, whose CPU kernel (im2col, no
// oneDNN) took 0.3-1 s per forward and backward at the reference shapes.
torch::Tensor upsample_k4s2p1(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias);
// Its two halves, for callers that build the kernel once: the stride-1 kernel
// [2 Cout, Cin, 3] and bias [2 Cout] (undefined without one), then the conv and interleave.
std::pair<torch::Tensor, torch::Tensor> upsample_k4s2p1_kernel(const torch::Tensor& weight,
                                                               const torch::Tensor& bias);
torch::Tensor upsample_k4s2p1_apply(const torch::Tensor& x, const torch::Tensor& kernel,
                                    const torch::Tensor& bias2);

// Crops or right-pads the last dimension of x to length n.
torch::Tensor align_length(const torch::Tensor& x, int64_t n);

// A convolution over channels-last activations x [B, L, Cin] with a Conv1d
// weight [Cout, Cin, K]: [B, L, C] is the memory of [B, C, 1, L] in channels-last,
// which oneDNN and cuDNN convolve without reordering; returns [B, L', Cout].
torch::Tensor conv1d_channels_last(const torch::Tensor& x, const torch::Tensor& weight,
                                   const torch::Tensor& bias, int64_t stride, int64_t padding);

int64_t count_parameters(torch::nn::Module& module);

// Floating-point operations (2 per multiply-add) of one forward pass over one
// sequence of `length` steps: the convolutions, linear layers and FiLM MLPs
// (normalisation and activations are left out: they are memory-bound).
// A training step costs about three forward passes.
double unet_forward_flops(const UNetConfig& config, int64_t length);

}  // namespace healthgym
