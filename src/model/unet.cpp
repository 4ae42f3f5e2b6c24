#include "healthgym/unet.hpp"

#include <cmath>

#include "healthgym/compat.hpp"
#include "healthgym/cpu_kernels.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

namespace F = torch::nn::functional;
using nlohmann::json;

void UNetConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError(msg);
  };
  need(features >= 1, "features must be >= 1");
  need(hidden >= 1, "--hidden must be >= 1, is " + std::to_string(hidden));
  need(levels >= 0 && levels <= 8, "--levels must be in 0..8, is " + std::to_string(levels));
  need(groups >= 1, "--groups must be >= 1, is " + std::to_string(groups));
  need(hidden % std::min(groups, hidden) == 0, "--hidden (" + std::to_string(hidden) +
                                                   ") must be divisible by --groups (" +
                                                   std::to_string(groups) + ")");
  need(dropout >= 0.0 && dropout < 1.0, "--dropout must be in [0, 1)");
  need(n_steps >= 1, "--n-steps must be >= 1");
  need(time_dim >= 2 && time_dim % 2 == 0, "time embedding width must be even and >= 2");
  for (int64_t s : cond_sizes) need(s >= 2, "a conditioning embedding needs at least 2 rows");
}

json UNetConfig::to_json() const {
  return {{"features", features}, {"hidden", hidden},        {"levels", levels},
          {"groups", groups},     {"dropout", dropout},      {"n_steps", n_steps},
          {"time_dim", time_dim}, {"cond_sizes", cond_sizes}};
}

UNetConfig UNetConfig::from_json(const json& j) {
  UNetConfig c;
  c.features = j.at("features").get<int64_t>();
  c.hidden = j.at("hidden").get<int64_t>();
  c.levels = j.at("levels").get<int64_t>();
  c.groups = j.at("groups").get<int64_t>();
  c.dropout = j.at("dropout").get<double>();
  c.n_steps = j.at("n_steps").get<int64_t>();
  c.time_dim = j.at("time_dim").get<int64_t>();
  if (j.contains("cond_sizes")) c.cond_sizes = j.at("cond_sizes").get<std::vector<int64_t>>();
  return c;
}

torch::Tensor sinusoid_table(int64_t n, int64_t dim) {
  auto pe = torch::zeros({n, dim});
  auto pos = torch::arange(n, torch::kFloat).unsqueeze(1);
  auto div = torch::exp(torch::arange(0, dim, 2, torch::kFloat) * (-std::log(10000.0) / dim));
  using torch::indexing::None;
  using torch::indexing::Slice;
  pe.index_put_({Slice(), Slice(0, None, 2)}, torch::sin(pos * div));
  pe.index_put_({Slice(), Slice(1, None, 2)}, torch::cos(pos * div));
  return pe;
}

FiLMImpl::FiLMImpl(int64_t n_steps, int64_t dim, int64_t channels) {
  table_ = register_buffer("table", sinusoid_table(n_steps, dim));
  fc1_ = register_module("fc1", torch::nn::Linear(dim, 2 * channels));
  fc2_ = register_module("fc2", torch::nn::Linear(2 * channels, 2 * channels));
}

std::pair<torch::Tensor, torch::Tensor> FiLMImpl::forward(const torch::Tensor& t,
                                                          const torch::Tensor& c) {
  auto e = table_.index_select(0, t);
  if (c.defined()) e = e + c;
  auto h = fc2_(torch::silu(fc1_(e)));
  auto parts = h.chunk(2, -1);
  return {parts[0], parts[1]};
}

ResBlockImpl::ResBlockImpl(int64_t channels, int64_t groups, double dropout) {
  const int64_t g = std::max<int64_t>(1, std::min(groups, channels));
  norm1_ = register_module("norm1", torch::nn::GroupNorm(g, channels));
  conv1_ = register_module(
      "conv1", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, channels, 3).padding(1)));
  norm2_ = register_module("norm2", torch::nn::GroupNorm(g, channels));
  conv2_ = register_module(
      "conv2", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, channels, 3).padding(1)));
  drop_ = register_module("drop", torch::nn::Dropout(dropout));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& gamma,
                                    const torch::Tensor& beta) {
  // GroupNorm runs in fp32: LibTorch 1.13's CPU autocast fails on bf16 inputs
  // to group_norm, and normalisation statistics want the precision anyway.
  auto y = norm1_(x.to(torch::kFloat));
  y = torch::addcmul(beta.to(torch::kFloat).unsqueeze(-1), y,
                     1 + gamma.to(torch::kFloat).unsqueeze(-1));
  y = conv1_(torch::silu(y));
  y = conv2_(drop_(torch::silu(norm2_(y.to(torch::kFloat)))));
  return y + x;
}

torch::Tensor conv1d_channels_last(const torch::Tensor& x, const torch::Tensor& weight,
                                   const torch::Tensor& bias, int64_t stride, int64_t padding) {
  const int64_t b = x.size(0), l = x.size(1), c = x.size(2);
  const std::vector<int64_t> strides{1, stride}, pads{0, padding};
  auto y = torch::conv2d(x.contiguous().view({b, 1, l, c}).permute({0, 3, 1, 2}),
                         weight.unsqueeze(2), bias, strides, pads);
  return y.permute({0, 2, 3, 1}).reshape({b, y.size(3), y.size(1)});
}

torch::Tensor ResBlockImpl::forward_channels_last(const torch::Tensor& x,
                                                  const torch::Tensor& gamma,
                                                  const torch::Tensor& beta,
                                                  torch::ScalarType act) {
  const auto& o = norm1_->options;
  auto y = group_norm_film_silu(x, norm1_->weight, norm1_->bias, gamma.to(torch::kFloat),
                                beta.to(torch::kFloat), o.num_groups(), o.eps(), act);
  y = conv1d_channels_last(y, conv1_->weight, conv1_->bias, 1, 1);
  y = group_norm_film_silu(y, norm2_->weight, norm2_->bias, {}, {}, o.num_groups(), o.eps(), act);
  y = conv1d_channels_last(drop_(y), conv2_->weight, conv2_->bias, 1, 1);
  return y + x;
}

std::pair<torch::Tensor, torch::Tensor> upsample_k4s2p1_kernel(const torch::Tensor& weight,
                                                               const torch::Tensor& bias) {
  // Output position o gets x[i] w[k] for o = 2i + k - 1, so even outputs
  // y[2m] = W1' x[m] + W3' x[m-1] and odd ones y[2m+1] = W0' x[m+1] + W2' x[m]:
  // both phases are taps over (x[m-1], x[m], x[m+1]), one stride-1 conv with
  // 2C outputs, interleaved after.
  auto w = weight.permute({1, 0, 2});  // [Cout, Cin, 4]
  auto zero = torch::zeros_like(w.select(2, 0));
  auto even = torch::stack({w.select(2, 3), w.select(2, 1), zero}, 2);
  auto odd = torch::stack({zero, w.select(2, 2), w.select(2, 0)}, 2);
  return {torch::cat({even, odd}, 0),  // [2 Cout, Cin, 3]
          bias.defined() ? torch::cat({bias, bias}) : torch::Tensor()};
}

torch::Tensor upsample_k4s2p1_apply(const torch::Tensor& x, const torch::Tensor& kernel,
                                    const torch::Tensor& bias2) {
  auto y = F::conv1d(x, kernel, F::Conv1dFuncOptions().bias(bias2).padding(1));
  const int64_t b = x.size(0), c = kernel.size(0) / 2, l = x.size(2);
  return y.view({b, 2, c, l}).permute({0, 2, 3, 1}).reshape({b, c, 2 * l});
}

torch::Tensor upsample_k4s2p1(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias) {
  auto [kernel, bias2] = upsample_k4s2p1_kernel(weight, bias);
  return upsample_k4s2p1_apply(x, kernel, bias2);
}

torch::Tensor align_length(const torch::Tensor& x, int64_t n) {
  const int64_t l = x.size(-1);
  if (l > n) return x.narrow(-1, 0, n);
  if (l < n) return F::pad(x, F::PadFuncOptions({0, n - l}));
  return x;
}

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  const int64_t c = config_.hidden, f = config_.features;
  in1_ = register_module("in1", torch::nn::Linear(f, c));
  in2_ = register_module("in2", torch::nn::Linear(c, c));
  out1_ = register_module("out1", torch::nn::Linear(c, c));
  out2_ = register_module("out2", torch::nn::Linear(c, f));
  for (int64_t i = 0; i < config_.levels; ++i) {
    film_down_->push_back(FiLM(config_.n_steps, config_.time_dim, c));
    film_up_->push_back(FiLM(config_.n_steps, config_.time_dim, c));
    down_->push_back(ResBlock(c, config_.groups, config_.dropout));
    pool_->push_back(torch::nn::Conv1d(torch::nn::Conv1dOptions(c, c, 4).stride(2).padding(1)));
    unpool_->push_back(torch::nn::ConvTranspose1d(
        torch::nn::ConvTranspose1dOptions(c, c, 4).stride(2).padding(1)));
    up_->push_back(ResBlock(c, config_.groups, config_.dropout));
  }
  register_module("film_down", film_down_);
  register_module("film_up", film_up_);
  register_module("down", down_);
  register_module("pool", pool_);
  register_module("unpool", unpool_);
  register_module("up", up_);
  film_mid_ = register_module("film_mid", FiLM(config_.n_steps, config_.time_dim, c));
  mid1_ = register_module("mid1", ResBlock(c, config_.groups, config_.dropout));
  mid2_ = register_module("mid2", ResBlock(c, config_.groups, config_.dropout));
  out_conv_ =
      register_module("out_conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(c, c, 3).padding(1)));
  if (!config_.cond_sizes.empty()) {
    for (int64_t rows : config_.cond_sizes) {
      torch::nn::Embedding emb(rows, config_.time_dim);
      // Small start: the condition nudges the time embedding rather than swamping it.
      torch::nn::init::normal_(emb->weight, 0.0, 0.1);
      cond_emb_->push_back(emb);
    }
    register_module("cond_emb", cond_emb_);
  }
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x_in, const torch::Tensor& t,
                                const torch::Tensor& cond) {
  if (x_in.dim() != 3 || x_in.size(1) != config_.features)
    throw UsageError("U-Net input must be [batch, " + std::to_string(config_.features) +
                     ", length]");
  if (x_in.size(2) < min_length())
    throw UsageError("sequence length " + std::to_string(x_in.size(2)) + " is too short for " +
                     std::to_string(config_.levels) +
                     " U-Net levels (needs >= " + std::to_string(min_length()) + ")");
  torch::Tensor ce;  // condition embedding [B, time_dim]
  const auto n_cond = static_cast<int64_t>(config_.cond_sizes.size());
  if (n_cond > 0) {
    if (cond.defined() &&
        (cond.dim() != 2 || cond.size(0) != x_in.size(0) || cond.size(1) != n_cond))
      throw UsageError("U-Net conditions must be [batch, " + std::to_string(n_cond) + "]");
    for (int64_t k = 0; k < n_cond; ++k) {
      auto idx =
          cond.defined()
              ? cond.select(1, k)
              : torch::full({x_in.size(0)}, config_.cond_sizes[k] - 1,
                            torch::TensorOptions().dtype(torch::kLong).device(x_in.device()));
      auto e = cond_emb_[k]->as<torch::nn::Embedding>()->forward(idx);
      ce = ce.defined() ? ce + e : e;
    }
  }
  // The kernels take fp32 and bf16: under fp16 autocast (LibTorch 2.x) the plain path.
  if (cpu_kernels_ && x_in.device().is_cpu() &&
      (!compat::autocast_enabled(torch::kCPU) ||
       compat::autocast_dtype(torch::kCPU) == torch::kBFloat16))
    return forward_channels_last(x_in, t, ce);
  // Per-time MLP: features -> C -> C, applied along the channel axis.
  auto x = in2_(torch::silu(in1_(x_in.transpose(1, 2)))).transpose(1, 2).contiguous();
  std::vector<torch::Tensor> skips;
  for (int64_t i = 0; i < config_.levels; ++i) {
    auto [g, b] = film_down_[i]->as<FiLM>()->forward(t, ce);
    x = down_[i]->as<ResBlock>()->forward(x, g, b);
    skips.push_back(x);
    x = pool_[i]->as<torch::nn::Conv1d>()->forward(x);
  }
  auto [gm, bm] = film_mid_(t, ce);
  x = mid2_(mid1_(x, gm, bm), gm, bm);
  for (int64_t i = 0; i < config_.levels; ++i) {
    auto* up = unpool_[i]->as<torch::nn::ConvTranspose1d>();
    x = upsample_k4s2p1(x, up->weight, up->bias);
    auto s = skips.back();
    skips.pop_back();
    x = align_length(x, s.size(-1));
    auto [g, b] = film_up_[i]->as<FiLM>()->forward(t, ce);
    x = up_[i]->as<ResBlock>()->forward(x + s, g, b);
  }
  x = out_conv_(x);
  return out2_(torch::silu(out1_(x.transpose(1, 2)))).transpose(1, 2).contiguous();
}

torch::Tensor UNetImpl::forward_channels_last(const torch::Tensor& x_in, const torch::Tensor& t,
                                              const torch::Tensor& ce) {
  // The kernel writes bf16 activations under bf16 autocast (the convolutions
  // would cast them anyway), fp32 otherwise.
  const auto act = compat::autocast_enabled(torch::kCPU) &&
                           compat::autocast_dtype(torch::kCPU) == torch::kBFloat16
                       ? torch::kBFloat16
                       : torch::kFloat;
  const int64_t batch = x_in.size(0);
  auto x = in2_(silu_cpu(in1_(x_in.transpose(1, 2))));  // [B, L, C]
  std::vector<torch::Tensor> skips;
  for (int64_t i = 0; i < config_.levels; ++i) {
    auto [g, b] = film_down_[i]->as<FiLM>()->forward(t, ce);
    x = down_[i]->as<ResBlock>()->forward_channels_last(x, g, b, act);
    skips.push_back(x);
    auto* pool = pool_[i]->as<torch::nn::Conv1d>();
    x = conv1d_channels_last(x, pool->weight, pool->bias, 2, 1);
  }
  auto [gm, bm] = film_mid_(t, ce);
  x = mid1_->forward_channels_last(x, gm, bm, act);
  x = mid2_->forward_channels_last(x, gm, bm, act);
  for (int64_t i = 0; i < config_.levels; ++i) {
    auto* up = unpool_[i]->as<torch::nn::ConvTranspose1d>();
    // The transposed convolution as one conv with outputs (even, odd) per
    // position: channels-last, [B, L, 2C] is already the interleaved [B, 2L, C].
    auto [kernel, bias2] = upsample_k4s2p1_kernel(up->weight, up->bias);
    auto y = conv1d_channels_last(x, kernel, bias2, 1, 1);
    y = y.reshape({batch, 2 * y.size(1), y.size(2) / 2});
    auto s = skips.back();
    skips.pop_back();
    const int64_t n = s.size(1), l = y.size(1);
    if (l > n) y = y.narrow(1, 0, n);
    if (l < n) y = torch::constant_pad_nd(y, {0, 0, 0, n - l});
    auto [g, b] = film_up_[i]->as<FiLM>()->forward(t, ce);
    x = up_[i]->as<ResBlock>()->forward_channels_last(y + s, g, b, act);
  }
  x = conv1d_channels_last(x, out_conv_->weight, out_conv_->bias, 1, 1);
  return out2_(silu_cpu(out1_(x))).transpose(1, 2).contiguous();
}

int64_t count_parameters(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

double unet_forward_flops(const UNetConfig& c, int64_t length) {
  const double ch = static_cast<double>(c.hidden), f = static_cast<double>(c.features);
  const double cc = ch * ch;
  auto conv = [&](double k, double out_len) { return 2.0 * k * cc * out_len; };
  double flops = 2.0 * (f * ch + cc) * length + 2.0 * (cc + ch * f) * length;  // MLPs in/out
  std::vector<double> lens{static_cast<double>(length)};
  for (int64_t i = 0; i < c.levels; ++i) lens.push_back(std::floor(lens.back() / 2.0));
  for (int64_t i = 0; i < c.levels; ++i) {
    flops += 2 * conv(3, lens[i]) * 2;  // down and up residual blocks, two convs each
    flops += conv(4, lens[i + 1]);      // stride-2 down-sampling
    flops += conv(4, lens[i + 1]);      // transposed conv: 4 taps per input step
  }
  flops += 4 * conv(3, lens[c.levels]);           // two mid blocks
  flops += conv(3, static_cast<double>(length));  // out conv
  const double film = 2.0 * (c.time_dim * 2 * ch + 4 * cc);
  flops += film * static_cast<double>(2 * c.levels + 1);
  return flops;
}

}  // namespace healthgym
