#include "healthgym/train_step.hpp"

#include <sstream>
#include <type_traits>

#include "healthgym/compat.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

FlatParameters::FlatParameters(const std::vector<torch::Tensor>& ps, bool with_grads) : params(ps) {
  if (params.empty()) throw RuntimeError("FlatParameters: no parameters");
  int64_t n = 0;
  for (const auto& p : params) {
    if (p.scalar_type() != torch::kFloat || p.device() != params.front().device())
      throw RuntimeError("FlatParameters: parameters must be float32 on one device");
    n += p.numel();
  }
  const auto opts = params.front().options();
  values = torch::empty({n}, opts);
  if (with_grads) grads = torch::zeros({n}, opts);
  torch::NoGradGuard ng;
  int64_t off = 0;
  for (auto& p : params) {
    const int64_t k = p.numel();
    auto v = values.narrow(0, off, k).view(p.sizes());
    v.copy_(p.detach());
    p.set_data(v);
    if (with_grads) p.mutable_grad() = grads.narrow(0, off, k).view(p.sizes());
    off += k;
  }
}

SyncFreeAdam::SyncFreeAdam(FlatParameters& flat, double lr, double beta1, double beta2, double eps)
    : flat_(flat), lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps) {
  exp_avg = torch::zeros_like(flat.values);
  exp_avg_sq = torch::zeros_like(flat.values);
  step_count = torch::zeros({}, flat.values.options().dtype(torch::kDouble));
}

void SyncFreeAdam::step(double max_norm) {
  torch::NoGradGuard ng;
  auto& g = flat_.grads;
  if (max_norm > 0) {
    // clip_grad_norm_'s coefficient, clamped at 1 instead of tested on the host.
    auto coef = (max_norm / (g.norm() + 1e-6)).clamp_max(1.0);
    g.mul_(coef);
  }
  step_count.add_(1.0);
  auto bc1 = 1.0 - torch::pow(beta1_, step_count);
  auto bc2 = 1.0 - torch::pow(beta2_, step_count);
  exp_avg.mul_(beta1_).add_(g, 1.0 - beta1_);
  exp_avg_sq.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
  auto denom = (exp_avg_sq.sqrt() / bc2.sqrt().to(torch::kFloat)).add_(eps_);
  flat_.values.sub_(exp_avg.div(denom).mul_((lr_ / bc1).to(torch::kFloat)));
}

namespace {

// torch::optim keys its state by the parameter's TensorImpl: a string of the
// pointer in LibTorch 1.13, the pointer itself in 2.x.
template <typename Map>
typename Map::key_type state_key(const Map&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream o;  // as c10::guts::to_string writes the pointer
    o << p.unsafeGetTensorImpl();
    return o.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

}  // namespace

torch::optim::AdamParamState* find_adam_state(torch::optim::Adam& opt, const torch::Tensor& p) {
  auto& state = opt.state();
  auto it = state.find(state_key(state, p));
  return it == state.end() ? nullptr : static_cast<torch::optim::AdamParamState*>(it->second.get());
}

void SyncFreeAdam::load_state_from(torch::optim::Adam& opt) {
  torch::NoGradGuard ng;
  int64_t off = 0;
  int64_t steps = -1;
  for (const auto& p : flat_.params) {
    const int64_t k = p.numel();
    if (auto* s = find_adam_state(opt, p)) {
      exp_avg.narrow(0, off, k).copy_(s->exp_avg().reshape(-1));
      exp_avg_sq.narrow(0, off, k).copy_(s->exp_avg_sq().reshape(-1));
      steps = std::max<int64_t>(steps, s->step());
    }
    off += k;
  }
  step_count.fill_(static_cast<double>(std::max<int64_t>(steps, 0)));
}

void SyncFreeAdam::store_state_into(torch::optim::Adam& opt) const {
  torch::NoGradGuard ng;
  const auto steps = static_cast<int64_t>(std::llround(step_count.to(torch::kCPU).item<double>()));
  if (steps == 0) return;
  auto& state = opt.state();
  int64_t off = 0;
  for (const auto& p : flat_.params) {
    const int64_t k = p.numel();
    auto s = std::make_unique<torch::optim::AdamParamState>();
    s->step(steps);
    // Host copies: only checkpoints read this state, and they then load anywhere.
    s->exp_avg(exp_avg.narrow(0, off, k).view(p.sizes()).to(torch::kCPU, false, true));
    s->exp_avg_sq(exp_avg_sq.narrow(0, off, k).view(p.sizes()).to(torch::kCPU, false, true));
    state[state_key(state, p)] = std::move(s);
    off += k;
  }
}

FusedTrainStep::FusedTrainStep(UNet net, NoiseSchedule schedule, DiffusionConfig diffusion,
                               torch::Tensor x_all, torch::Tensor mask_all, int64_t batch,
                               const FusedStepConfig& config, torch::Tensor cond_all,
                               torch::Tensor null_row)
    : net_(std::move(net)),
      schedule_(std::move(schedule)),
      diffusion_(diffusion),
      x_all_(std::move(x_all)),
      mask_all_(std::move(mask_all)),
      cond_all_(std::move(cond_all)),
      null_row_(std::move(null_row)),
      batch_(batch),
      config_(config) {
  if (batch_ < 1 || batch_ > x_all_.size(0))
    throw UsageError("batch " + std::to_string(batch_) + " must be in 1.." +
                     std::to_string(x_all_.size(0)) + " (the rows on the device)");
  flat_ = std::make_unique<FlatParameters>(net_->parameters());
  adam_ = std::make_unique<SyncFreeAdam>(*flat_, config_.lr, config_.beta1, config_.beta2);
  const auto dev = x_all_.device();
  index_ = torch::zeros({batch_}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  sums_ = torch::zeros({3}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  call_ = std::make_unique<GraphedCall>(
      dev, [this] { body(); }, config_.cuda_graph);
}

FusedTrainStep::~FusedTrainStep() = default;

bool FusedTrainStep::graphed() const { return call_->graphed(); }
std::string FusedTrainStep::fallback_reason() const { return call_->fallback_reason(); }

void FusedTrainStep::body() {
  flat_->grads.zero_();
  auto xb = x_all_.index_select(0, index_);
  auto mb = mask_all_.index_select(0, index_);
  torch::Tensor cond_b;
  if (cond_all_.defined()) {
    auto rows = cond_all_.index_select(0, index_);
    auto drop = torch::rand({batch_, 1}, xb.options()) < config_.cond_drop;
    cond_b = torch::where(drop, null_row_.unsqueeze(0), rows);
  }
  LossTerms loss;
  {
    compat::AutocastScope amp(xb.device().type(), config_.autocast, config_.amp_dtype);
    loss = diffusion_loss(net_, schedule_, diffusion_, xb, mb, cond_b);
  }
  loss.total.backward();
  adam_->step(config_.clip);
  torch::NoGradGuard ng;
  sums_.add_(torch::stack({loss.total.detach(), loss.diffusion.detach(), loss.recon.detach()})
                 .to(torch::kFloat));
}

void FusedTrainStep::step(const torch::Tensor& index) {
  if (index.numel() != batch_)
    throw RuntimeError("FusedTrainStep: a batch of " + std::to_string(index.numel()) +
                       " rows, expected " + std::to_string(batch_));
  index_.copy_(index.view(-1));
  (*call_)();
}

}  // namespace healthgym
