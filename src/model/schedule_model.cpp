#include "healthgym/schedule_model.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <string>

#include "healthgym/checkpoint.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

namespace {

// Folds step t - 1 (prev; nullptr at t = 0) into each unit's history (last:
// its last observed step, -1 for none; count: its observations so far) and
// writes step t's inputs: the previous step, the steps since each unit's last
// observation, whether it has been observed, its observed share so far (what
// kind of stay this is: hourly or 4-hourly temperature), and the position.
void next_row(float* row, const float* prev, int64_t* last, int64_t* count, int64_t t, int64_t len,
              int64_t length, int64_t units, int64_t max_gap) {
  for (int64_t u = 0; u < units; ++u) {
    const bool on = prev != nullptr && prev[u] > 0.5f;
    if (on) {
      last[u] = t - 1;
      ++count[u];
    }
    row[u] = on ? 1.f : 0.f;
    const int64_t since = last[u] < 0 ? max_gap : std::min(t - last[u], max_gap);
    row[units + u] = static_cast<float>(since) / static_cast<float>(max_gap);
    row[2 * units + u] = last[u] >= 0 ? 1.f : 0.f;
    row[3 * units + u] = t > 0 ? static_cast<float>(count[u]) / static_cast<float>(t) : 0.f;
  }
  row[4 * units] = static_cast<float>(t) / static_cast<float>(length);
  row[4 * units + 1] =
      static_cast<float>(std::max<int64_t>(len - 1 - t, 0)) / static_cast<float>(length);
}

// Restores the global CPU generator when fitting ends: the schedule model must
// not change what the diffusion network draws after it (the seed preset's
// samples are reproduced bit for bit).
class GlobalRngGuard {
 public:
  GlobalRngGuard() : state_(cpu_rng_state()) {}
  ~GlobalRngGuard() { set_cpu_rng_state(state_); }
  GlobalRngGuard(const GlobalRngGuard&) = delete;
  GlobalRngGuard& operator=(const GlobalRngGuard&) = delete;

 private:
  torch::Tensor state_;
};

}  // namespace

void ScheduleNetConfig::validate() const {
  if (units < 1) throw UsageError("schedule model: units must be >= 1");
  if (hidden < 1 || hidden > 4096) throw UsageError("schedule model: hidden must be in [1, 4096]");
  if (max_gap < 1) throw UsageError("schedule model: max_gap must be >= 1");
  if (length < 1) throw UsageError("schedule model: length must be >= 1");
  for (int64_t n : label_sizes)
    if (n < 1 || n > 65536)
      throw UsageError("schedule model: every label size must be in [1, 65536]");
  if (label_width() > 65536)
    throw UsageError("schedule model: the label sizes must add up to at most 65536");
}

int64_t ScheduleNetConfig::label_width() const {
  return std::accumulate(label_sizes.begin(), label_sizes.end(), int64_t{0});
}

json ScheduleNetConfig::to_json() const {
  return {{"units", units},
          {"hidden", hidden},
          {"max_gap", max_gap},
          {"length", length},
          {"label_sizes", label_sizes}};
}

ScheduleNetConfig ScheduleNetConfig::from_json(const json& j) {
  ScheduleNetConfig c;
  try {
    c.units = j.at("units").get<int64_t>();
    c.hidden = j.at("hidden").get<int64_t>();
    c.max_gap = j.at("max_gap").get<int64_t>();
    c.length = j.at("length").get<int64_t>();
    // Absent in checkpoints before the label inputs.
    if (j.contains("label_sizes")) c.label_sizes = j.at("label_sizes").get<std::vector<int64_t>>();
    c.validate();
  } catch (const json::exception& e) {
    throw InputError(std::string("schedule model config: ") + e.what());
  } catch (const UsageError& e) {
    throw InputError(e.what());
  }
  return c;
}

ScheduleNetImpl::ScheduleNetImpl(const ScheduleNetConfig& config) : config_(config) {
  config_.validate();
  gru_ = register_module(
      "gru", torch::nn::GRU(
                 torch::nn::GRUOptions(config_.input_size(), config_.hidden).batch_first(true)));
  head_ = register_module("head", torch::nn::Linear(config_.hidden, config_.units));
  within_ = register_parameter("within", torch::zeros({config_.units, config_.units}));
  // Not a buffer: a checkpoint cannot change which units see which.
  lower_ = torch::ones({config_.units, config_.units}).tril(-1);
}

torch::Tensor ScheduleNetImpl::forward(const torch::Tensor& features_in,
                                       const torch::Tensor& labels, torch::Tensor* state) {
  torch::Tensor features = features_in;
  if (!config_.label_sizes.empty()) {
    // The labels, one-hot, beside every step's features.
    std::vector<torch::Tensor> parts;
    for (size_t j = 0; j < config_.label_sizes.size(); ++j)
      parts.push_back(
          torch::one_hot(labels.select(1, static_cast<int64_t>(j)), config_.label_sizes[j])
              .to(features.scalar_type()));
    auto onehot = torch::cat(parts, 1).unsqueeze(1).expand(
        {features.size(0), features.size(1), config_.label_width()});
    features = torch::cat({features, onehot}, 2);
  }
  torch::Tensor out;
  if (state != nullptr && state->defined()) {
    auto r = gru_->forward(features, *state);
    out = std::get<0>(r);
    *state = std::get<1>(r);
  } else {
    auto r = gru_->forward(features);
    out = std::get<0>(r);
    if (state != nullptr) *state = std::get<1>(r);
  }
  return head_->forward(out);
}

torch::Tensor ScheduleNetImpl::logits(const torch::Tensor& y, const torch::Tensor& lengths,
                                      const torch::Tensor& labels) {
  auto features = schedule_features(y, lengths, config_.length, config_.max_gap);
  return forward(features, labels) + torch::matmul(y, within().t());
}

torch::Tensor schedule_features(const torch::Tensor& y_in, const torch::Tensor& lengths_in,
                                int64_t length, int64_t max_gap) {
  auto y = y_in.to(torch::kCPU, torch::kFloat).contiguous();
  auto lengths = lengths_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t b = y.size(0), len = y.size(1), units = y.size(2), width = 4 * units + 2;
  auto out = torch::empty({b, len, width});
  const float* yp = y.data_ptr<float>();
  const int64_t* lp = lengths.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  std::vector<int64_t> last(static_cast<size_t>(units)), count(last.size());
  for (int64_t p = 0; p < b; ++p) {
    std::fill(last.begin(), last.end(), -1);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t t = 0; t < len; ++t) {
      const float* prev = t > 0 ? yp + (p * len + t - 1) * units : nullptr;
      next_row(op + (p * len + t) * width, prev, last.data(), count.data(), t, lp[p], length, units,
               max_gap);
    }
  }
  return out;
}

void ScheduleFitConfig::validate() const {
  if (hidden < 1 || hidden > 4096) throw UsageError("schedule model: hidden must be in [1, 4096]");
  if (batch < 1) throw UsageError("schedule model: batch must be >= 1");
  if (!(lr > 0.0 && lr < 1.0)) throw UsageError("schedule model: lr must be in (0, 1)");
  if (max_epochs < 1) throw UsageError("schedule model: max_epochs must be >= 1");
  if (patience < 1) throw UsageError("schedule model: patience must be >= 1");
  if (!(validation_share >= 0.0 && validation_share < 1.0))
    throw UsageError("schedule model: validation_share must be in [0, 1)");
  if (!(time_limit_s >= 0.0)) throw UsageError("schedule model: time_limit_s must be >= 0");
}

std::pair<torch::Tensor, torch::Tensor> ScheduleModel::targets(const EncodedCohort& data) const {
  auto x = data.x.to(torch::kCPU, torch::kFloat).contiguous();
  auto lengths = data.lengths.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = x.size(0), c = x.size(1), len = x.size(2), units = this->units();
  if (c != design_channels_ || len != length_)
    throw InputError("schedule model: the encoded cohort does not match the encoder");
  auto y = torch::zeros({n, len, units}), mask = torch::zeros({n, len, units});
  const float* xp = x.data_ptr<float>();
  const int64_t* lp = lengths.data_ptr<int64_t>();
  float* yp = y.data_ptr<float>();
  float* mp = mask.data_ptr<float>();
  for (int64_t p = 0; p < n; ++p)
    for (int64_t t = 0; t < std::min(lp[p], len); ++t)
      for (int64_t u = 0; u < units; ++u) {
        const auto su = static_cast<size_t>(u);
        const int64_t k = (p * len + t) * units + u;
        const int64_t gate = gates_[su];
        // A group member counts only where its group is observed; elsewhere it
        // holds 1 in the design tensor but is not observed.
        if (gate >= 0 && !(yp[(p * len + t) * units + gate] > 0.5f)) continue;
        mp[k] = 1.f;
        yp[k] = xp[(p * c + channels_[su]) * len + t] > 0.f ? 1.f : 0.f;
      }
  return {y, mask};
}

const std::vector<int64_t>& ScheduleModel::label_sizes() const {
  static const std::vector<int64_t> kNone;
  return empty() ? kNone : net_->config().label_sizes;
}

torch::Tensor ScheduleModel::checked_labels(const torch::Tensor& labels_in, int64_t n) const {
  const auto& sizes = label_sizes();
  if (sizes.empty()) return {};  // a model without label inputs ignores them
  const auto k = static_cast<int64_t>(sizes.size());
  if (!labels_in.defined() || labels_in.dim() != 2 || labels_in.size(0) != n ||
      labels_in.size(1) != k)
    throw UsageError("schedule model: labels must be [" + std::to_string(n) + ", " +
                     std::to_string(k) + "], one row per patient");
  auto labels = labels_in.to(torch::kCPU, torch::kLong).contiguous();
  for (int64_t j = 0; j < k; ++j) {
    auto col = labels.select(1, j);
    if (n > 0 && (col.min().item<int64_t>() < 0 ||
                  col.max().item<int64_t>() >= sizes[static_cast<size_t>(j)]))
      throw UsageError("schedule model: label variable " + std::to_string(j) +
                       " has an index outside [0, " +
                       std::to_string(sizes[static_cast<size_t>(j)]) + ")");
  }
  return labels;
}

double ScheduleModel::mean_nll(const torch::Tensor& y, const torch::Tensor& mask,
                               const torch::Tensor& lengths, const torch::Tensor& labels) const {
  torch::NoGradGuard no_grad;
  ScheduleNet net = net_;  // shares the weights; forward is not const
  double total = 0, cells = 0;
  const int64_t n = y.size(0), batch = 256;  // patients per pass: bounds the memory, not the result
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t e = std::min(n, s + batch);
    auto yb = y.slice(0, s, e), mb = mask.slice(0, s, e);
    auto logits =
        net->logits(yb, lengths.slice(0, s, e), labels.defined() ? labels.slice(0, s, e) : labels);
    total += torch::binary_cross_entropy_with_logits(logits, yb, mb, {}, at::Reduction::Sum)
                 .item<double>();
    cells += mb.sum().item<double>();
  }
  return cells > 0 ? total / cells : 0.0;
}

double ScheduleModel::nll(const EncodedCohort& data, const torch::Tensor& labels) const {
  if (empty()) throw UsageError("schedule model: empty");
  auto [y, mask] = targets(data);
  return mean_nll(y, mask, data.lengths.to(torch::kCPU, torch::kLong),
                  checked_labels(labels, y.size(0)));
}

ScheduleModel ScheduleModel::fit(const Encoder& encoder, const EncodedCohort& data,
                                 const ObservationModel& observations,
                                 const ScheduleLabels& labels_in, const ScheduleFitConfig& config,
                                 const std::function<void(const ScheduleFitProgress&)>& progress,
                                 const std::function<bool()>& should_stop) {
  config.validate();
  ScheduleModel m;
  m.length_ = encoder.working_length();
  m.design_channels_ = encoder.channels();
  std::map<int64_t, int64_t> unit_of;  // design channel -> unit index
  for (const auto& u : observations.units()) {
    const auto it = unit_of.find(u.gate);
    if (u.gate >= 0 && it == unit_of.end())
      throw UsageError("schedule model: a unit's group is not drawn before it");
    unit_of[u.channel] = static_cast<int64_t>(m.channels_.size());
    m.channels_.push_back(u.channel);
    m.gates_.push_back(u.gate >= 0 ? it->second : -1);
  }
  if (m.channels_.empty()) return m;
  GlobalRngGuard guard;
  {
    // The weights' initialisation draws from the global CPU generator; only it
    // is seeded (torch::manual_seed would reseed the CUDA ones too).
    auto global = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(global.mutex());
    global.set_current_seed(config.seed);
  }
  auto gen = at::detail::createCPUGenerator(config.seed);
  ScheduleNetConfig nc;
  nc.units = m.units();
  nc.hidden = config.hidden;
  nc.max_gap = observations.max_gap();  // the chains' cap: gaps beyond a day look alike
  nc.length = m.length_;
  nc.label_sizes = labels_in.sizes;
  m.net_ = ScheduleNet(nc);

  auto [y, mask] = m.targets(data);
  auto lengths = data.lengths.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = y.size(0);
  const torch::Tensor labels = m.checked_labels(labels_in.rows, n);
  auto rows_of = [&](const torch::Tensor& idx) {
    return labels.defined() ? labels.index_select(0, idx) : labels;
  };
  auto order = torch::randperm(n, gen, torch::kLong);
  // Too few patients to spare any: train the whole budget on all of them.
  const int64_t n_val =
      n >= 20 && config.validation_share > 0
          ? std::clamp<int64_t>(std::llround(config.validation_share * n), 1, n - 1)
          : 0;
  auto val_idx = order.slice(0, 0, n_val), train_idx = order.slice(0, n_val, n);
  const int64_t n_train = train_idx.size(0);
  torch::Tensor val_y, val_mask, val_len, val_labels;
  if (n_val > 0) {
    val_y = y.index_select(0, val_idx);
    val_mask = mask.index_select(0, val_idx);
    val_len = lengths.index_select(0, val_idx);
    val_labels = rows_of(val_idx);
  }
  torch::optim::Adam opt(m.net_->parameters(), torch::optim::AdamOptions(config.lr));
  const auto started = std::chrono::steady_clock::now();
  double best = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> best_weights;  // the initial ones until an epoch improves
  for (const auto& p : m.net_->parameters()) best_weights.push_back(p.detach().clone());
  int64_t since_best = 0;
  double last_epoch_s = 0;
  bool stopped = false;
  for (int64_t epoch = 1; epoch <= config.max_epochs && !stopped; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    m.net_->train();
    auto perm = train_idx.index_select(0, torch::randperm(n_train, gen, torch::kLong));
    double total = 0, cells = 0;
    for (int64_t s = 0; s < n_train; s += config.batch) {
      if (should_stop && should_stop()) {
        stopped = true;  // the best weights so far are kept
        break;
      }
      auto idx = perm.slice(0, s, std::min(n_train, s + config.batch));
      auto lb = lengths.index_select(0, idx);
      // Only as many steps as the batch's longest stay.
      const int64_t steps = std::max<int64_t>(1, lb.max().item<int64_t>());
      auto yb = y.index_select(0, idx).slice(1, 0, steps);
      auto mb = mask.index_select(0, idx).slice(1, 0, steps);
      const double count = mb.sum().item<double>();
      if (count <= 0) continue;
      auto loss = torch::binary_cross_entropy_with_logits(m.net_->logits(yb, lb, rows_of(idx)), yb,
                                                          mb, {}, at::Reduction::Sum) /
                  count;
      if (!std::isfinite(loss.item<double>()))
        throw RuntimeError("schedule model: the loss became " +
                           std::to_string(loss.item<double>()) + " at epoch " +
                           std::to_string(epoch) + "; lower its learning rate");
      opt.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(m.net_->parameters(), 1.0);
      opt.step();
      total += loss.item<double>() * count;
      cells += count;
    }
    if (stopped) break;
    m.net_->eval();
    ScheduleFitProgress pr;
    pr.epoch = epoch;
    pr.max_epochs = config.max_epochs;
    pr.train_nll = cells > 0 ? total / cells : 0.0;
    pr.validation_nll = n_val > 0 ? m.mean_nll(val_y, val_mask, val_len, val_labels)
                                  : std::numeric_limits<double>::quiet_NaN();
    const double score = n_val > 0 ? pr.validation_nll : pr.train_nll;
    m.epochs_ = epoch;
    if (score < best) {
      // Gains under 0.1% count toward stopping: on PhysioNet the last 15 of 60
      // epochs gained 0.0001 nats per cell together.
      since_best = score < best * (1.0 - 1e-3) ? 0 : since_best + 1;
      best = score;
      pr.best = true;
      best_weights.clear();
      for (const auto& p : m.net_->parameters()) best_weights.push_back(p.detach().clone());
      m.validation_nll_ = pr.validation_nll;
    } else {
      ++since_best;
      // A step too large for the optimum's neighbourhood: halve it and go on
      // from the best weights.
      torch::NoGradGuard no_grad;
      auto params = m.net_->parameters();
      for (size_t i = 0; i < best_weights.size(); ++i) params[i].copy_(best_weights[i]);
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamOptions&>(group.options())
            .lr(static_cast<torch::optim::AdamOptions&>(group.options()).lr() * 0.5);
    }
    if (progress) progress(pr);
    const auto now = std::chrono::steady_clock::now();
    last_epoch_s = std::chrono::duration<double>(now - epoch_start).count();
    const double elapsed = std::chrono::duration<double>(now - started).count();
    // Whole epochs only: stop before one that would end past the limit.
    if (since_best >= config.patience ||
        (config.time_limit_s > 0 && elapsed + last_epoch_s > config.time_limit_s))
      break;
  }
  {
    torch::NoGradGuard no_grad;
    auto params = m.net_->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best_weights[i]);
  }
  m.net_->eval();
  return m;
}

ObservationModel::Draw ScheduleModel::sample(const torch::Tensor& lengths_in,
                                             const torch::Tensor& labels_in,
                                             torch::Generator generator) const {
  auto lengths = lengths_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t b = lengths.size(0), len = length_, c = design_channels_, units = this->units();
  ObservationModel::Draw d;
  d.values = torch::zeros({b, c, len});
  d.known = torch::zeros({c});
  if (empty() || b == 0) return d;
  const int64_t* lp = lengths.data_ptr<int64_t>();
  for (int64_t p = 0; p < b; ++p)
    if (lp[p] < 1 || lp[p] > len)
      throw UsageError("schedule model: length " + std::to_string(lp[p]) + " outside [1, " +
                       std::to_string(len) + "]");
  const torch::Tensor labels = checked_labels(labels_in, b);
  torch::NoGradGuard no_grad;
  const int64_t steps = lengths.max().item<int64_t>();
  auto uniform = torch::rand({b, steps, units}, generator, torch::kDouble).contiguous();
  const double* up = uniform.data_ptr<double>();
  auto within = net_->within().to(torch::kDouble).contiguous();
  const double* wp = within.data_ptr<double>();
  const int64_t width = net_->config().input_size() - net_->config().label_width();
  const int64_t max_gap = net_->config().max_gap;
  auto y = torch::zeros({b, steps, units});
  float* yp = y.data_ptr<float>();
  std::vector<int64_t> last(static_cast<size_t>(b * units), -1), count(last.size(), 0);
  auto row = torch::empty({b, 1, width});
  float* rp = row.data_ptr<float>();
  torch::Tensor state;
  ScheduleNet net = net_;  // shares the weights; forward is not const
  for (int64_t t = 0; t < steps; ++t) {
    for (int64_t p = 0; p < b; ++p) {
      const float* prev = t > 0 ? yp + (p * steps + t - 1) * units : nullptr;
      next_row(rp + p * width, prev, last.data() + p * units, count.data() + p * units, t, lp[p],
               net_->config().length, units, max_gap);
    }
    auto base = net->forward(row, labels, &state).to(torch::kDouble).contiguous();  // [B, 1, U]
    const double* bp = base.data_ptr<double>();
    for (int64_t p = 0; p < b; ++p) {
      if (t >= lp[p]) continue;
      float* yt = yp + (p * steps + t) * units;
      for (int64_t u = 0; u < units; ++u) {
        const int64_t gate = gates_[static_cast<size_t>(u)];
        if (gate >= 0 && !(yt[gate] > 0.5f)) continue;
        double z = bp[p * units + u];
        for (int64_t j = 0; j < u; ++j) z += wp[u * units + j] * yt[j];
        const double prob = 1.0 / (1.0 + std::exp(-z));
        yt[u] = up[(p * steps + t) * units + u] < prob ? 1.f : 0.f;
      }
    }
  }
  float* vp = d.values.data_ptr<float>();
  for (int64_t p = 0; p < b; ++p)
    for (int64_t t = 0; t < lp[p]; ++t) {
      const float* yt = yp + (p * steps + t) * units;
      for (int64_t u = 0; u < units; ++u) {
        const int64_t gate = gates_[static_cast<size_t>(u)];
        // As encoded: a member holds 1 where its group is not observed.
        const bool on = (gate >= 0 && !(yt[gate] > 0.5f)) || yt[u] > 0.5f;
        vp[(p * c + channels_[static_cast<size_t>(u)]) * len + t] = on ? 1.f : -1.f;
      }
    }
  for (int64_t ch : channels_) d.known[ch] = 1.f;
  return d;
}

json ScheduleModel::to_json() const {
  if (empty()) return json();
  return {{"net", net_->config().to_json()},
          {"channels", channels_},
          {"gates", gates_},
          {"epochs", epochs_},
          {"validation_nll", std::isfinite(validation_nll_) ? json(validation_nll_) : json()}};
}

void ScheduleModel::save(torch::serialize::OutputArchive& archive) const {
  if (!empty()) net_->save(archive);
}

ScheduleModel ScheduleModel::load(const json& j, torch::serialize::InputArchive& archive,
                                  int64_t channels, int64_t length,
                                  const std::vector<int64_t>& label_sizes) {
  auto bad = [](const std::string& what) {
    return InputError("checkpoint schedule model: " + what);
  };
  ScheduleModel m;
  m.design_channels_ = channels;
  try {
    const auto config = ScheduleNetConfig::from_json(j.at("net"));
    m.channels_ = j.at("channels").get<std::vector<int64_t>>();
    m.gates_ = j.at("gates").get<std::vector<int64_t>>();
    m.length_ = config.length;
    m.epochs_ = j.at("epochs").get<int64_t>();
    m.validation_nll_ = j.at("validation_nll").is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                         : j.at("validation_nll").get<double>();
    // Before the network is built: its size follows from them.
    if (!config.label_sizes.empty() && config.label_sizes != label_sizes)
      throw bad("its label inputs are not the conditioning variables'");
    if (m.length_ != length)
      throw bad("length " + std::to_string(m.length_) + " differs from the encoder's " +
                std::to_string(length));
    if (static_cast<int64_t>(m.channels_.size()) != config.units ||
        m.gates_.size() != m.channels_.size())
      throw bad("channels and gates must list " + std::to_string(config.units) + " units");
    std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(channels, 0)), false);
    for (size_t u = 0; u < m.channels_.size(); ++u) {
      const int64_t ch = m.channels_[u], gate = m.gates_[u];
      if (ch < 0 || ch >= channels || seen[static_cast<size_t>(ch)])
        throw bad("unit " + std::to_string(u) + ": channel " + std::to_string(ch) +
                  " out of range or repeated");
      seen[static_cast<size_t>(ch)] = true;
      if (gate < -1 || gate >= static_cast<int64_t>(u))
        throw bad("unit " + std::to_string(u) + ": its group is not a unit drawn before it");
    }
    m.net_ = ScheduleNet(config);
    // LibTorch's load takes the archive's tensors as they are (shape, and
    // storage read as float): check them.
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& p : m.net_->named_parameters()) shapes.push_back(p.value().sizes().vec());
    m.net_->load(archive);
    size_t i = 0;
    for (const auto& p : m.net_->named_parameters()) {
      const torch::Tensor& w = p.value();
      if (w.sizes().vec() != shapes[i++])
        throw bad("weight " + p.key() + " does not match the model's " +
                  std::to_string(config.units) + " units, width " + std::to_string(config.hidden) +
                  " and " + std::to_string(config.label_width()) + " label inputs");
      if (w.scalar_type() != torch::kFloat ||
          static_cast<int64_t>(w.storage().nbytes()) !=
              (w.storage_offset() + w.numel()) * static_cast<int64_t>(sizeof(float)) ||
          !torch::isfinite(w).all().item<bool>())
        throw bad("weight " + p.key() + " is not finite float32");
    }
    m.net_->eval();
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw bad(first_line(e.what()));
  }
  return m;
}

}  // namespace healthgym
