// Utility of a synthetic cohort: can a classifier tell it from the real one
// (discriminative), does a next-step model trained on it transfer to real data
// (predictive), and does an outcome model trained on it transfer (TSTR).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "healthgym/error.hpp"
#include "healthgym/evaluate.hpp"
#include "healthgym/metrics.hpp"

namespace healthgym::eval {
namespace {

using nlohmann::json;
using torch::Tensor;

constexpr int64_t kBatch = 128;
constexpr int64_t kEvalBatch = 1024;
constexpr double kLearningRate = 1e-3;
// Seed offsets keep the stages' random streams apart (discriminative uses seed + repeat).
constexpr uint64_t kPredictiveSeed = 1000;
constexpr uint64_t kOutcomeSeed = 2000;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

void add_note(json* notes, const std::string& note) {
  if (notes) notes->push_back(note);
}

torch::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// A cohort as model inputs: per step the design tensor channels plus a validity channel.
struct Sequences {
  Tensor inputs;     // [N, L, C+1] float
  Tensor lengths;    // [N] int64, at least 1
  Tensor valid;      // [N, L] float, 1 inside the length
  Tensor x;          // [N, C, L] design tensor
  Tensor loss_mask;  // [N, C, L]
  int64_t n() const { return inputs.size(0); }
};

Sequences prepare(const Encoder& encoder, const Cohort& cohort) {
  EncodedCohort e = encoder.encode(cohort);
  const int64_t len = encoder.working_length();
  Sequences s;
  s.valid = (torch::arange(len).unsqueeze(0) < e.lengths.unsqueeze(1)).to(torch::kFloat);
  s.inputs = torch::cat({e.x.permute({0, 2, 1}), s.valid.unsqueeze(2)}, 2).contiguous();
  s.lengths = e.lengths.clamp_min(1);  // gathers need a step; cohorts have none empty anyway
  s.x = e.x;
  s.loss_mask = e.loss_mask;
  return s;
}

struct GruNetImpl : torch::nn::Module {
  GruNetImpl(int64_t inputs, int64_t hidden, int64_t outputs)
      : gru(register_module(
            "gru", torch::nn::GRU(torch::nn::GRUOptions(inputs, hidden).batch_first(true)))),
        head(register_module("head", torch::nn::Linear(hidden, outputs))) {}
  Tensor hidden_states(const Tensor& x) { return std::get<0>(gru->forward(x)); }  // [B, T, H]
  torch::nn::GRU gru;
  torch::nn::Linear head;
};
TORCH_MODULE(GruNet);

// One logit per sequence from the hidden state at its last valid step. Steps past
// the batch's longest sequence cannot reach that state, so they are not run.
Tensor classifier_logits(GruNet& net, const Tensor& inputs, const Tensor& lengths) {
  const int64_t t = lengths.max().item<int64_t>();
  auto h = net->hidden_states(inputs.narrow(1, 0, t));
  auto idx = (lengths - 1).view({-1, 1, 1}).expand({-1, 1, h.size(2)});
  return net->head->forward(h.gather(1, idx).squeeze(1)).squeeze(1);
}

// Adam over shuffled mini-batches; batch_loss maps a batch's indices to its loss
// (undefined to skip the batch).
GruNet train_gru(int64_t n, int64_t inputs, int64_t hidden, int64_t outputs, int64_t epochs,
                 uint64_t seed, const std::function<Tensor(GruNet&, const Tensor&)>& batch_loss) {
  torch::manual_seed(seed);
  GruNet net(inputs, hidden, outputs);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(kLearningRate));
  auto gen = make_generator(seed);
  net->train();
  for (int64_t e = 0; e < epochs; ++e) {
    auto order = torch::randperm(n, gen, torch::kLong);
    for (int64_t b = 0; b < n; b += kBatch) {
      auto loss = batch_loss(net, order.narrow(0, b, std::min(kBatch, n - b)));
      if (!loss.defined()) continue;
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  net->eval();
  return net;
}

GruNet train_classifier(const Tensor& inputs, const Tensor& lengths, const Tensor& labels,
                        int64_t hidden, int64_t epochs, uint64_t seed) {
  return train_gru(
      inputs.size(0), inputs.size(2), hidden, 1, epochs, seed, [&](GruNet& net, const Tensor& idx) {
        auto logits =
            classifier_logits(net, inputs.index_select(0, idx), lengths.index_select(0, idx));
        return torch::binary_cross_entropy_with_logits(logits, labels.index_select(0, idx));
      });
}

Tensor predict_logits(GruNet& net, const Tensor& inputs, const Tensor& lengths) {
  torch::NoGradGuard no_grad;
  net->eval();
  std::vector<Tensor> out;
  for (int64_t b = 0; b < inputs.size(0); b += kEvalBatch) {
    const int64_t k = std::min(kEvalBatch, inputs.size(0) - b);
    out.push_back(classifier_logits(net, inputs.narrow(0, b, k), lengths.narrow(0, b, k)));
  }
  return out.empty() ? torch::empty({0}) : torch::cat(out);
}

std::vector<double> to_vector(const Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Reports stage progress as a share of the utility work units.
struct Progress {
  const UtilityOptions& options;
  int64_t total = 1, done = 0;
  void start(const std::string& stage) const {
    if (options.progress) options.progress(stage, static_cast<double>(done) / total);
  }
  void finish() { ++done; }
};

// TimeGAN's discriminative score: |accuracy - 0.5| of a GRU telling real from
// synthetic on a balanced held-out 20%.
json discriminative(const Sequences& real, const Sequences& syn, int64_t hidden,
                    const UtilityOptions& options, Progress& progress, json* notes) {
  const int64_t n = std::min(real.n(), syn.n());
  std::vector<double> scores;
  if (n < 2) {
    add_note(notes, "discriminative score needs at least 2 real and 2 synthetic patients");
  } else {
    // Per class: the first 80% of a shuffled balanced subset train, the rest test.
    const int64_t n_train = std::clamp<int64_t>(n * 4 / 5, 1, n - 1);
    for (int r = 0; r < options.repeats; ++r) {
      progress.start("discriminative " + std::to_string(r + 1) + "/" +
                     std::to_string(options.repeats));
      const uint64_t seed = options.seed + static_cast<uint64_t>(r);
      auto gen = make_generator(seed);
      auto pr = torch::randperm(real.n(), gen, torch::kLong).narrow(0, 0, n);
      auto ps = torch::randperm(syn.n(), gen, torch::kLong).narrow(0, 0, n);
      auto split = [&](int64_t from, int64_t count, Tensor* inputs, Tensor* lengths,
                       Tensor* labels) {
        auto ir = pr.narrow(0, from, count), is = ps.narrow(0, from, count);
        *inputs = torch::cat({real.inputs.index_select(0, ir), syn.inputs.index_select(0, is)});
        *lengths = torch::cat({real.lengths.index_select(0, ir), syn.lengths.index_select(0, is)});
        *labels = torch::cat({torch::ones({count}), torch::zeros({count})});
      };
      Tensor tr_in, tr_len, tr_y, te_in, te_len, te_y;
      split(0, n_train, &tr_in, &tr_len, &tr_y);
      split(n_train, n - n_train, &te_in, &te_len, &te_y);
      GruNet net = train_classifier(tr_in, tr_len, tr_y, hidden, options.epochs, seed);
      auto logits = predict_logits(net, te_in, te_len);
      const double acc = ((logits > 0) == (te_y > 0.5)).to(torch::kDouble).mean().item<double>();
      scores.push_back(std::abs(acc - 0.5));
      progress.finish();
    }
  }
  json out = {{"scores", scores}, {"hidden", hidden}, {"epochs", options.epochs}};
  if (scores.empty()) {
    out["mean"] = nullptr;
    out["ci95"] = nullptr;
  } else {
    const metrics::MeanCi mc = metrics::mean_ci95(scores);
    out["mean"] = number_or_null(mc.mean);
    out["ci95"] = number_or_null(mc.ci95);
  }
  return out;
}

// Next-step prediction of the real variables' value channels: inputs steps
// 0..k-1, target step k, scored where the target is observed and valid.
struct NextStep {
  Tensor inputs, lengths, target, mask;  // target/mask: [N, L, R]
};

NextStep next_step_data(const Sequences& s, const Tensor& channels) {
  NextStep d;
  d.inputs = s.inputs;
  d.lengths = s.lengths;
  d.target = s.x.index_select(1, channels).permute({0, 2, 1}).contiguous();
  d.mask = (s.loss_mask.index_select(1, channels).permute({0, 2, 1}) * s.valid.unsqueeze(2))
               .contiguous();
  return d;
}

// Sum of absolute errors and number of scored cells of a batch.
std::pair<Tensor, Tensor> next_step_errors(GruNet& net, const NextStep& d, const Tensor& idx) {
  auto lengths = d.lengths.index_select(0, idx);
  const int64_t t = lengths.max().item<int64_t>();
  if (t < 2) return {};
  auto h = net->hidden_states(d.inputs.index_select(0, idx).narrow(1, 0, t - 1));
  auto pred = net->head->forward(h);
  auto target = d.target.index_select(0, idx).narrow(1, 1, t - 1);
  auto mask = d.mask.index_select(0, idx).narrow(1, 1, t - 1);
  return {((pred - target).abs() * mask).sum(), mask.sum()};
}

GruNet train_next_step(const NextStep& d, int64_t hidden, int64_t epochs, uint64_t seed) {
  return train_gru(d.inputs.size(0), d.inputs.size(2), hidden, d.target.size(2), epochs, seed,
                   [&](GruNet& net, const Tensor& idx) {
                     auto [err, count] = next_step_errors(net, d, idx);
                     if (!err.defined()) return Tensor();
                     return err / count.clamp_min(1.0);
                   });
}

double next_step_mae(GruNet& net, const NextStep& d) {
  torch::NoGradGuard no_grad;
  net->eval();
  double err = 0, count = 0;
  const int64_t n = d.inputs.size(0);
  for (int64_t b = 0; b < n; b += kEvalBatch) {
    auto [e, c] = next_step_errors(net, d, torch::arange(b, std::min(n, b + kEvalBatch)));
    if (!e.defined()) continue;
    err += e.item<double>();
    count += c.item<double>();
  }
  return count > 0 ? err / count : kNaN;
}

json predictive(const Encoder& encoder, const Sequences& real, const Sequences& syn,
                const Sequences& test, bool test_is_holdout, int64_t hidden,
                const UtilityOptions& options, Progress& progress, json* notes) {
  json out = {{"synthetic_mae", nullptr},
              {"real_mae", nullptr},
              {"test_set", test_is_holdout ? "holdout" : "real"}};
  std::vector<int64_t> channels;
  for (const auto& v : encoder.schema().variables)
    if (v.type == VarType::kReal) channels.push_back(v.value_offset);
  const char* why = nullptr;
  if (channels.empty())
    why = "predictive score needs real-valued variables; the schema has none";
  else if (encoder.working_length() < 2)
    why = "predictive score needs a working length of at least 2 steps";
  else if (syn.n() == 0)
    why = "predictive score needs synthetic patients";
  if (why) {
    add_note(notes, why);
    progress.done += 2;
    return out;
  }
  auto ch = torch::tensor(channels, torch::kLong);
  const NextStep test_data = next_step_data(test, ch);
  const uint64_t seed = options.seed + kPredictiveSeed;
  progress.start("predictive (synthetic)");
  GruNet on_syn = train_next_step(next_step_data(syn, ch), hidden, options.epochs, seed);
  out["synthetic_mae"] = number_or_null(next_step_mae(on_syn, test_data));
  progress.finish();
  progress.start("predictive (real)");
  GruNet on_real = train_next_step(next_step_data(real, ch), hidden, options.epochs, seed);
  out["real_mae"] = number_or_null(next_step_mae(on_real, test_data));
  progress.finish();
  return out;
}

// The outcome variable, checked up front so that a bad name fails before any training.
long outcome_variable(const Schema& schema, const std::string& name) {
  const long vi = schema.variable_index(name);
  if (vi < 0) throw UsageError("outcome variable '" + name + "' is not a column of the data");
  const Variable& v = schema.variables[vi];
  if (!v.is_one_hot() || !v.is_static || v.labels.empty())
    throw UsageError("outcome variable '" + name +
                     "' must be a static binary or categorical variable; it is " +
                     (v.is_static ? "static " : "time-varying ") + to_string(v.type));
  return vi;
}

// Outcome model data: the first `steps` steps with the outcome's own channels
// zeroed, and whether each patient's label (at step 0) is the positive one.
// Patients whose outcome is missing are dropped.
struct OutcomeData {
  Tensor inputs, lengths, labels;
  int64_t positives = 0;
};

OutcomeData outcome_data(const Cohort& cohort, const Sequences& s, const Variable& v, long vi,
                         int64_t steps) {
  std::vector<int64_t> keep;
  std::vector<float> labels;
  const double positive = static_cast<double>(v.labels.size() - 1);
  for (int64_t p = 0; p < cohort.n_patients(); ++p) {
    const double label = cohort.cell(cohort.start[p], vi);
    if (is_missing(label)) continue;
    keep.push_back(p);
    labels.push_back(label == positive ? 1.f : 0.f);
  }
  OutcomeData d;
  auto idx = torch::tensor(keep, torch::kLong);
  d.inputs = s.inputs.index_select(0, idx).narrow(1, 0, steps).clone();
  d.inputs.narrow(2, v.value_offset, v.value_width).zero_();
  if (v.observed_channel >= 0) d.inputs.select(2, v.observed_channel).zero_();
  d.lengths = s.lengths.index_select(0, idx).clamp_max(steps);
  d.labels = torch::tensor(labels, torch::kFloat);
  d.positives = static_cast<int64_t>(std::count(labels.begin(), labels.end(), 1.f));
  return d;
}

// The GRUs run many tiny per-step ops, where intra-op threads cost more than
// they give (PhysioNet, 2 shared cores: 64 s on 1 thread, 287 s on 2). Restored on exit.
class SingleThreaded {
 public:
  SingleThreaded() : saved_(at::get_num_threads()) { at::set_num_threads(1); }
  ~SingleThreaded() { at::set_num_threads(saved_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int saved_;
};

}  // namespace

json utility_report(const Encoder& encoder, const Cohort& real, const Cohort& synthetic,
                    const Cohort* holdout, const UtilityOptions& options, json* notes) {
  const Schema& schema = encoder.schema();
  const int64_t len = encoder.working_length();
  long outcome_vi = -1;
  if (!options.outcome.empty()) outcome_vi = outcome_variable(schema, options.outcome);
  if (options.outcome_steps < 0)
    throw UsageError("outcome steps must be >= 0 (0 = half the working length)");
  if (options.repeats < 1) throw UsageError("repeats must be at least 1");
  if (options.epochs < 1) throw UsageError("classifier epochs must be at least 1");

  SingleThreaded single_threaded;
  const Sequences real_s = prepare(encoder, real);
  const Sequences syn_s = prepare(encoder, synthetic);
  Sequences holdout_s;
  if (holdout) holdout_s = prepare(encoder, *holdout);
  const int64_t hidden = std::max<int64_t>(4, encoder.channels() / 2);

  Progress progress{options};
  const bool outcome_models = outcome_vi >= 0 && holdout;
  progress.total = options.repeats + 2 + (outcome_models ? 2 : 0);

  json out;
  out["discriminative"] = discriminative(real_s, syn_s, hidden, options, progress, notes);
  out["predictive"] = predictive(encoder, real_s, syn_s, holdout ? holdout_s : real_s,
                                 holdout != nullptr, hidden, options, progress, notes);

  out["outcome"] = nullptr;
  if (outcome_vi >= 0) {
    const Variable& v = schema.variables[outcome_vi];
    const int64_t steps = options.outcome_steps > 0 ? std::min(options.outcome_steps, len)
                                                    : std::max<int64_t>(1, len / 2);
    json o = {{"variable", v.name},
              {"positive_label", v.labels.back()},
              {"steps", steps},
              {"tstr", nullptr},
              {"trtr", nullptr}};
    if (!holdout) {
      add_note(notes,
               "outcome AUROC needs --holdout: models trained on synthetic and on real "
               "data are both scored on held-out real patients");
    } else {
      const OutcomeData test = outcome_data(*holdout, holdout_s, v, outcome_vi, steps);
      if (test.positives == 0 || test.positives == test.labels.size(0))
        add_note(notes, "outcome AUROC: the holdout's '" + v.name +
                            "' has a single class, so AUROC is undefined");
      const std::vector<int> test_labels = [&] {
        std::vector<int> y;
        for (double l : to_vector(test.labels)) y.push_back(l > 0.5 ? 1 : 0);
        return y;
      }();
      auto auroc_of = [&](const Cohort& co, const Sequences& s, const std::string& name) {
        const OutcomeData train = outcome_data(co, s, v, outcome_vi, steps);
        if (train.labels.size(0) == 0) {
          add_note(notes, "outcome AUROC: no " + name + " patient has '" + v.name + "' observed");
          return kNaN;
        }
        GruNet net = train_classifier(train.inputs, train.lengths, train.labels, hidden,
                                      options.epochs, options.seed + kOutcomeSeed);
        return metrics::auroc(to_vector(predict_logits(net, test.inputs, test.lengths)),
                              test_labels);
      };
      progress.start("outcome (synthetic)");
      o["tstr"] = number_or_null(auroc_of(synthetic, syn_s, "synthetic"));
      progress.finish();
      progress.start("outcome (real)");
      o["trtr"] = number_or_null(auroc_of(real, real_s, "real"));
      progress.finish();
    }
    out["outcome"] = o;
  }
  if (options.progress) options.progress("utility", 1.0);
  return out;
}

}  // namespace healthgym::eval
