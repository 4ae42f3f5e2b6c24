#include "healthgym/prepared_unet.hpp"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <string>

#include "healthgym/cuda_kernels.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

namespace F = torch::nn::functional;
using torch::Tensor;

namespace {

// A per-time linear layer as a kernel-1 convolution, so activations stay [B, C, L].
Tensor as_conv1(const Tensor& linear_weight) { return linear_weight.unsqueeze(-1); }

// The pooling convolution (kernel 4, stride 2, padding 1; weight [Cout, Cin,
// 4]) as the [6 Cin, Cout] matrix that multiplies taps3 rows 2i and 2i + 1 side
// by side: x[2i-1], x[2i], x[2i+1], then x[2i], x[2i+1], x[2i+2]; the repeated
// two get zero weights.
Tensor pool_weight_as_matrix(const Tensor& w) {
  auto zero = torch::zeros_like(w.select(2, 0));
  auto six =
      torch::stack({w.select(2, 0), w.select(2, 1), w.select(2, 2), zero, zero, w.select(2, 3)}, 2);
  return six.permute({2, 1, 0}).reshape({6 * w.size(1), w.size(0)}).contiguous();
}

}  // namespace

bool prepared_channels_last(PreparedLayout layout, const torch::Device& device,
                            torch::ScalarType dtype) {
  if (layout != PreparedLayout::kAuto) return layout == PreparedLayout::kChannelsLast;
  return device.is_cuda() ? built_with_cuda_kernels()
                          : device.is_cpu() && dtype == torch::kBFloat16;
}

PreparedLayout prepared_layout_from_string(const std::string& s) {
  if (s == "auto") return PreparedLayout::kAuto;
  if (s == "channels-first") return PreparedLayout::kChannelsFirst;
  if (s == "channels-last") return PreparedLayout::kChannelsLast;
  throw UsageError("layout must be auto, channels-first or channels-last, is '" + s + "'");
}

void PreparedOptions::validate() const {
  if (streams < 1) throw UsageError("a prepared U-Net needs streams >= 1");
}

PreparedUNet::PreparedUNet(UNet& net, torch::ScalarType dtype, const Tensor& cond,
                           const PreparedOptions& options)
    : config_(net->config()), dtype_(dtype) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && dtype != torch::kHalf)
    throw UsageError("a prepared U-Net computes in fp32, bf16 or fp16");
  options.validate();
  torch::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  auto params = net->named_parameters();
  auto buffers = net->named_buffers();
  const auto device = params.begin()->value().device();
  channels_last_ = prepared_channels_last(options.layout, device, dtype);
  fused_ =
      channels_last_ && options.fold_biases.value_or(device.is_cuda() && built_with_cuda_kernels());
  gemm_convs_ = channels_last_ && options.gemm_convs.value_or(false);
  all_gemm_ = gemm_convs_ && fused_;
  if (channels_last_ && device.is_cuda() && options.streams > 1)
    parallel_ = std::make_shared<ParallelStreams>(device, options.streams);
  norm_dtype_ = device.is_cuda() && !channels_last_ ? dtype : torch::kFloat;
  const int64_t c = config_.hidden, levels = config_.levels;
  groups_ = std::max<int64_t>(1, std::min(config_.groups, c));
  for (const auto& m : net->modules(/*include_self=*/false)) {
    if (const auto* gn = m->as<torch::nn::GroupNorm>()) {
      eps_ = gn->options.eps();
      break;
    }
  }
  auto p = [&](const std::string& name) { return params[name].detach(); };
  // Copies, so that the snapshot does not follow later updates of the weights.
  auto cast = [&](const Tensor& t) { return t.to(dtype_, false, true).contiguous(); };
  auto conv_w = [&](const Tensor& w) {  // [Cout, Cin, K]
    return channels_last_ ? cast(w).unsqueeze(2).contiguous(torch::MemoryFormat::ChannelsLast)
                          : cast(w);
  };
  auto linear_w = [&](const Tensor& w) {  // [Cout, Cin]
    return channels_last_ ? cast(w.t()) : cast(as_conv1(w));
  };
  in1_w_ = linear_w(p("in1.weight"));
  in1_b_ = cast(p("in1.bias"));
  in2_w_ = linear_w(p("in2.weight"));
  in2_b_ = cast(p("in2.bias"));
  out2_w_ = linear_w(p("out2.weight"));
  out2_b_ = cast(p("out2.bias"));
  {
    // The output convolution and the per-time linear after it have nothing
    // between them: one convolution does both (W1 Woc[k], W1 boc + b1), a
    // matrix product less per step. Composed in double, rounded once.
    const auto w1 = p("out1.weight").to(torch::kDouble);
    const auto woc = p("out_conv.weight").to(torch::kDouble);
    const int64_t k = woc.size(2);
    auto w = w1.mm(woc.reshape({woc.size(0), -1})).view({w1.size(0), woc.size(1), k});
    auto b = w1.mv(p("out_conv.bias").to(torch::kDouble)) + p("out1.bias").to(torch::kDouble);
    out_conv_w_ = conv_w(w.to(torch::kFloat));
    if (all_gemm_) out_conv_w3_ = cast(conv3_weight_as_matrix(w.to(torch::kFloat)));
    out_conv_b_ = cast(b.to(torch::kFloat));
  }

  std::vector<std::string> block_names, film_names;
  for (int64_t i = 0; i < levels; ++i) {
    const auto s = std::to_string(i);
    pool_w_.push_back(conv_w(p("pool." + s + ".weight")));
    pool_b_.push_back(cast(p("pool." + s + ".bias")));
    auto [kernel, bias2] =
        upsample_k4s2p1_kernel(p("unpool." + s + ".weight"), p("unpool." + s + ".bias"));
    if (all_gemm_) {
      pool_w6_.push_back(cast(pool_weight_as_matrix(p("pool." + s + ".weight"))));
      up_w3_.push_back(cast(conv3_weight_as_matrix(kernel)));
    }
    up_w_.push_back(conv_w(kernel));
    up_b_.push_back(cast(bias2));
    if (fused_) up_bias_.push_back(p("unpool." + s + ".bias").to(torch::kFloat));
    block_names.push_back("down." + s);
    film_names.push_back("film_down." + s);
  }
  film_names.push_back("film_mid");
  block_names.push_back("mid1");
  block_names.push_back("mid2");
  for (int64_t i = 0; i < levels; ++i) {
    block_names.push_back("up." + std::to_string(i));
    film_names.push_back("film_up." + std::to_string(i));
  }
  std::vector<int64_t> block_film;
  for (int64_t i = 0; i < levels; ++i) block_film.push_back(i);
  block_film.push_back(levels);
  block_film.push_back(levels);
  for (int64_t i = 0; i < levels; ++i) block_film.push_back(levels + 1 + i);

  std::vector<Tensor> n1w, n1b;
  for (const auto& name : block_names) {
    Block b;
    auto block_w = [&](const Tensor& w) {
      return gemm_convs_ ? cast(conv3_weight_as_matrix(w)) : conv_w(w);
    };
    b.conv1_w = block_w(p(name + ".conv1.weight"));
    b.conv1_b = cast(p(name + ".conv1.bias"));
    b.conv2_w = block_w(p(name + ".conv2.weight"));
    b.conv2_b = cast(p(name + ".conv2.bias"));
    b.norm2_w = p(name + ".norm2.weight").to(norm_dtype_, false, true);
    b.norm2_b = p(name + ".norm2.bias").to(norm_dtype_, false, true);
    if (fused_) {
      // Blocks 1..levels (down blocks after the first, then mid1) read a
      // pooling convolution's output, which comes without its bias.
      const auto k = static_cast<int64_t>(blocks_.size());
      b.conv1_bias = p(name + ".conv1.bias").to(torch::kFloat);
      b.res_bias = p(name + ".conv2.bias").to(torch::kFloat);
      if (k >= 1 && k <= levels) {
        b.in_bias = p("pool." + std::to_string(k - 1) + ".bias").to(torch::kFloat);
        b.res_bias = b.res_bias + b.in_bias;
      }
    }
    blocks_.push_back(b);
    n1w.push_back(p(name + ".norm1.weight").to(torch::kFloat));
    n1b.push_back(p(name + ".norm1.bias").to(torch::kFloat));
  }
  norm1_w_ = torch::stack(n1w).unsqueeze(1);
  norm1_b_ = torch::stack(n1b).unsqueeze(1);
  block_film_ = torch::tensor(block_film, torch::kLong).to(device);

  // FiLM tables, in fp32 (they are computed once; the per-call work is a gather).
  const int64_t n_cond = static_cast<int64_t>(config_.cond_sizes.size());
  auto one_gamma = [&](const Tensor& gamma_beta) {  // 1 + gamma, beta
    return torch::cat({gamma_beta.narrow(-1, 0, c) + 1.0, gamma_beta.narrow(-1, c, c)}, -1);
  };
  if (n_cond == 0) {
    if (cond.defined()) throw UsageError("this U-Net takes no conditions");
    auto t_all =
        torch::arange(config_.n_steps, torch::TensorOptions().dtype(torch::kLong)).to(device);
    std::vector<Tensor> parts;
    for (const auto& name : film_names) {
      auto* film = net->named_modules()[name]->as<FiLM>();
      auto [gamma, beta] = film->forward(t_all);
      parts.push_back(one_gamma(torch::cat({gamma, beta}, -1).to(torch::kFloat)));
    }
    // Every block's GroupNorm affine at every step, so that a call is one
    // gather: [T, blocks, 2C] -> (scale, shift) [2, blocks, T, C].
    auto sel =
        torch::cat(parts, -1).view({config_.n_steps, -1, 2 * c}).index_select(1, block_film_);
    auto gamma1 = sel.narrow(2, 0, c), beta = sel.narrow(2, c, c);  // 1 + gamma, beta
    auto scale = gamma1 * norm1_w_.squeeze(1);
    auto shift = torch::addcmul(beta, norm1_b_.squeeze(1), gamma1);
    affine_table_ = torch::stack({scale, shift}).transpose(1, 2).to(norm_dtype_).contiguous();
  } else {
    if (cond.defined() && (cond.dim() != 2 || cond.size(1) != n_cond))
      throw UsageError("U-Net conditions must be [batch, " + std::to_string(n_cond) + "]");
    const auto cond_on = cond.defined() ? cond.to(device, torch::kLong) : Tensor();
    cond_batch_ = cond.defined() ? cond.size(0) : 0;
    Tensor ce;  // [1 or B, time_dim]
    for (int64_t k = 0; k < n_cond; ++k) {
      auto idx = cond_on.defined()
                     ? cond_on.select(1, k)
                     : torch::full({1}, config_.cond_sizes[static_cast<size_t>(k)] - 1,
                                   torch::TensorOptions().dtype(torch::kLong).device(device));
      auto e = p("cond_emb." + std::to_string(k) + ".weight").index_select(0, idx);
      ce = ce.defined() ? ce + e : e;
    }
    std::vector<Tensor> a, cc, w2, b2;
    for (const auto& name : film_names) {
      auto w1 = p(name + ".fc1.weight").to(torch::kFloat);
      auto b1 = p(name + ".fc1.bias").to(torch::kFloat);
      auto table = buffers[name + ".table"].to(torch::kFloat);
      a.push_back(torch::addmm(b1, table, w1.t()));
      cc.push_back(torch::mm(ce.to(torch::kFloat), w1.t()));
      w2.push_back(p(name + ".fc2.weight").to(torch::kFloat).t());
      b2.push_back(one_gamma(p(name + ".fc2.bias").to(torch::kFloat)).unsqueeze(0));
    }
    film_a_ = torch::cat(a, -1).contiguous();
    film_c_ = torch::cat(cc, -1).contiguous();
    film_w2_ = torch::stack(w2).contiguous();
    film_b2_ = torch::stack(b2).contiguous();
  }
}

Tensor PreparedUNet::block(const Block& b, int64_t index, const Tensor& x,
                           const Tensor& affine) const {
  const int64_t batch = x.size(0), c = x.size(1), l = x.size(2);
  // (reshape: a convolution's output need not be contiguous on every backend.)
  // GroupNorm, its affine and FiLM in one: the batch as one sample of B x C
  // channels in B x groups groups has the same groups, and per (sample,
  // channel) weights can carry wn (1 + gamma) and bn (1 + gamma) + beta.
  auto y = torch::group_norm(x.to(norm_dtype_).reshape({1, batch * c, l}), batch * groups_,
                             affine[0][index].view({-1}), affine[1][index].view({-1}), eps_)
               .reshape({batch, c, l});
  y = F::conv1d(torch::silu(y).to(dtype_), b.conv1_w,
                F::Conv1dFuncOptions().bias(b.conv1_b).padding(1));
  y = torch::group_norm(y.to(norm_dtype_), groups_, b.norm2_w, b.norm2_b, eps_);
  y = F::conv1d(torch::silu(y).to(dtype_), b.conv2_w,
                F::Conv1dFuncOptions().bias(b.conv2_b).padding(1));
  return y + x;
}

Tensor PreparedUNet::affine(const Tensor& t, int64_t batch) const {
  if (affine_table_.defined()) return affine_table_.index_select(2, t);
  const int64_t c = config_.hidden;
  // FiLM outputs [F, B, 2C], then each block's GroupNorm affine [2, blocks, B, C].
  auto h = torch::silu(film_a_.index_select(0, t) + film_c_);
  auto film = torch::baddbmm(film_b2_, h.view({batch, -1, 2 * c}).transpose(0, 1), film_w2_);
  auto sel = film.index_select(0, block_film_);  // [blocks, B, 2C]
  auto one_gamma = sel.narrow(2, 0, c), beta = sel.narrow(2, c, c);
  auto affine = torch::empty({2, sel.size(0), batch, c}, sel.options());
  auto scale = affine[0], shift = affine[1];
  torch::mul_out(scale, one_gamma, norm1_w_);
  torch::addcmul_out(shift, beta, norm1_b_, one_gamma);
  if (norm_dtype_ != torch::kFloat) affine = affine.to(norm_dtype_);
  return affine;
}

namespace {

// Channels-last helpers: activations [B, L, C] contiguous.

// A convolution through cuDNN's channels-last kernels: [B, L, C] is the
// memory of [B, C, 1, L] in channels-last, and the output comes back so.
Tensor conv_cl(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride,
               int64_t padding) {
  const int64_t b = x.size(0), l = x.size(1), c = x.size(2);
  const std::vector<int64_t> strides{1, stride}, pads{0, padding};
  auto y = torch::conv2d(x.contiguous().view({b, 1, l, c}).permute({0, 3, 1, 2}), w, bias, strides,
                         pads);
  return y.permute({0, 2, 3, 1}).reshape({b, y.size(3), y.size(1)});
}

// A per-time linear layer, or a convolution over taps with its weight as a
// matrix: one matrix product over all B x L rows (bias may be undefined).
Tensor linear_cl(const Tensor& x, const Tensor& w_t, const Tensor& bias) {
  const int64_t b = x.size(0), l = x.size(1);
  auto rows = x.reshape({b * l, x.size(2)});
  return (bias.defined() ? torch::addmm(bias, rows, w_t) : torch::mm(rows, w_t))
      .view({b, l, w_t.size(1)});
}

Tensor align_length_cl(const Tensor& x, int64_t n) {
  const int64_t l = x.size(1);
  if (l > n) return x.narrow(1, 0, n);
  if (l < n) return torch::constant_pad_nd(x, {0, 0, 0, n - l});
  return x;
}

}  // namespace

Tensor PreparedUNet::block_cl(const Block& b, int64_t index, const Tensor& x, const Tensor& affine,
                              Tensor* taps) const {
  // A block's convolutions read what a normalisation wrote: with gemm_convs_
  // it writes their three taps and each is one matrix product.
  auto conv = [&](const Tensor& h, const Tensor& w, const Tensor& bias) {
    return gemm_convs_ ? linear_cl(h, w, bias) : conv_cl(h, w, bias, 1, 1);
  };
  if (fused_) {
    auto h = group_norm_silu_channels_last(x, groups_, affine[0][index], affine[1][index], eps_,
                                           b.in_bias, gemm_convs_);
    h = conv(h, b.conv1_w, {});
    h = group_norm_silu_channels_last(h, groups_, b.norm2_w, b.norm2_b, eps_, b.conv1_bias,
                                      gemm_convs_);
    if (!taps) return add_aligned_channels_last(conv(h, b.conv2_w, {}), b.res_bias, x);
    auto [out, out_taps] = add_aligned_with_taps3(conv(h, b.conv2_w, {}), b.res_bias, x);
    *taps = out_taps;
    return out;
  }
  auto y = group_norm_silu_channels_last(x, groups_, affine[0][index], affine[1][index], eps_, {},
                                         gemm_convs_);
  y = conv(y, b.conv1_w, b.conv1_b);
  y = group_norm_silu_channels_last(y, groups_, b.norm2_w, b.norm2_b, eps_, {}, gemm_convs_);
  auto out = conv(y, b.conv2_w, b.conv2_b).add_(x);
  if (taps) *taps = taps3_of(out);  // (forward_cl asks only with folded biases)
  return out;
}

Tensor PreparedUNet::forward_cl(const Tensor& x_in, const Tensor& affine, bool any_layout) const {
  const int64_t batch = x_in.size(0), length = x_in.size(2), levels = config_.levels;
  auto x = torch::empty({batch, length, x_in.size(1)}, x_in.options().dtype(dtype_));
  x.copy_(x_in.transpose(1, 2));  // cast and transpose in one copy
  x = linear_cl(x, in1_w_, in1_b_);
  torch::silu_(x);
  x = linear_cl(x, in2_w_, in2_b_);
  // all_gemm_: a block whose output a convolution reads writes its taps too,
  // and that convolution is a matrix product over them (linear_cl).
  Tensor taps;
  std::vector<Tensor> skips;
  size_t k = 0;
  for (int64_t i = 0; i < levels; ++i, ++k) {
    const auto u = static_cast<size_t>(i);
    const int64_t l = x.size(1);
    // The pooling (kernel 4, stride 2) reads taps rows 2i and 2i + 1 as one
    // row: at an even length, the taps seen as [B * L / 2, 6C] (else the
    // library's convolution).
    const bool pool_taps = all_gemm_ && l % 2 == 0;
    x = block_cl(blocks_[k], static_cast<int64_t>(k), x, affine, pool_taps ? &taps : nullptr);
    skips.push_back(x);
    // fused_: the pooling's bias is added by the next block's kernels.
    if (pool_taps) {
      x = linear_cl(taps.view({batch, l / 2, 2 * taps.size(2)}), pool_w6_[u], {});
    } else {
      x = conv_cl(x, pool_w_[u], fused_ ? Tensor() : pool_b_[u], 2, 1);
    }
  }
  for (int mid = 0; mid < 2; ++mid, ++k)
    x = block_cl(blocks_[k], static_cast<int64_t>(k), x, affine,
                 all_gemm_ && mid == 1 ? &taps : nullptr);
  for (int64_t i = 0; i < levels; ++i, ++k) {
    // The transposed convolution as one conv with outputs (even, odd) per
    // position: channels-last, [B, L, 2C] is already the interleaved [B, 2L, C].
    const auto u = static_cast<size_t>(i);
    auto y = all_gemm_ ? linear_cl(taps, up_w3_[u], {})
                       : conv_cl(x, up_w_[u], fused_ ? Tensor() : up_b_[u], 1, 1);
    y = y.view({batch, 2 * y.size(1), y.size(2) / 2});
    auto s = skips.back();
    skips.pop_back();
    auto joined =
        fused_ ? add_aligned_channels_last(y, up_bias_[u], s) : align_length_cl(y, s.size(1)) + s;
    x = block_cl(blocks_[k], static_cast<int64_t>(k), joined, affine, all_gemm_ ? &taps : nullptr);
  }
  // out_conv and out1 in one
  x = all_gemm_ ? linear_cl(taps, out_conv_w3_, out_conv_b_)
                : conv_cl(x, out_conv_w_, out_conv_b_, 1, 1);
  torch::silu_(x);
  x = linear_cl(x, out2_w_, out2_b_);
  if (any_layout) return x.transpose(1, 2);
  auto out = torch::empty({batch, x.size(2), length}, x_in.options().dtype(torch::kFloat));
  out.copy_(x.transpose(1, 2));
  return out;
}

Tensor PreparedUNet::forward(const Tensor& x_in, const Tensor& t, bool any_layout) const {
  torch::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t levels = config_.levels;
  const int64_t min_length = int64_t{1} << levels;
  if (x_in.dim() != 3 || x_in.size(1) != config_.features)
    throw UsageError("U-Net input must be [batch, " + std::to_string(config_.features) +
                     ", length]");
  if (x_in.size(2) < min_length)
    throw UsageError("sequence length " + std::to_string(x_in.size(2)) + " is too short for " +
                     std::to_string(levels) +
                     " U-Net levels (needs >= " + std::to_string(min_length) + ")");
  const int64_t batch = x_in.size(0);
  if (t.dim() != 1 || t.size(0) != batch) throw UsageError("U-Net time steps must be [batch]");
  if (cond_batch_ > 0 && cond_batch_ != batch)
    throw UsageError("this prepared U-Net holds conditions for " + std::to_string(cond_batch_) +
                     " sequences, called with " + std::to_string(batch));

  const auto affine = this->affine(t, batch);
  if (channels_last_ && (!parallel_ || batch < parallel_->size()))
    return forward_cl(x_in, affine, any_layout);
  if (channels_last_) {
    auto out = torch::empty(x_in.sizes(), x_in.options().dtype(torch::kFloat));
    const int64_t n = parallel_->size(), per = (batch + n - 1) / n;
    parallel_->run([&](int64_t i) {
      const int64_t start = i * per, len = std::min(per, batch - start);
      if (len > 0)
        out.narrow(0, start, len)
            .copy_(forward_cl(x_in.narrow(0, start, len), affine.narrow(2, start, len), true));
    });
    return out;
  }

  auto x = F::conv1d(x_in.to(dtype_), in1_w_, F::Conv1dFuncOptions().bias(in1_b_));
  x = F::conv1d(torch::silu(x), in2_w_, F::Conv1dFuncOptions().bias(in2_b_));
  std::vector<Tensor> skips;
  int64_t k = 0;
  for (int64_t i = 0; i < levels; ++i) {
    x = block(blocks_[static_cast<size_t>(k)], k, x, affine);
    ++k;
    skips.push_back(x);
    x = F::conv1d(
        x, pool_w_[static_cast<size_t>(i)],
        F::Conv1dFuncOptions().bias(pool_b_[static_cast<size_t>(i)]).stride(2).padding(1));
  }
  x = block(blocks_[static_cast<size_t>(k)], k, x, affine);
  ++k;
  x = block(blocks_[static_cast<size_t>(k)], k, x, affine);
  ++k;
  for (int64_t i = 0; i < levels; ++i) {
    x = upsample_k4s2p1_apply(x, up_w_[static_cast<size_t>(i)], up_b_[static_cast<size_t>(i)]);
    auto s = skips.back();
    skips.pop_back();
    x = block(blocks_[static_cast<size_t>(k)], k, align_length(x, s.size(-1)) + s, affine);
    ++k;
  }
  x = F::conv1d(x, out_conv_w_, F::Conv1dFuncOptions().bias(out_conv_b_).padding(1));
  x = F::conv1d(torch::silu(x), out2_w_, F::Conv1dFuncOptions().bias(out2_b_));
  return any_layout ? x : x.to(torch::kFloat);
}

}  // namespace healthgym
