#pragma once
// Observation schedules as sequences. ObservationModel's per-unit chains see a
// unit's own gap and one partner at a time, so a stay's schedule is a fresh mix
// from hour to hour: a classifier told PhysioNet 2012's synthetic stays from
// real ones by their schedules alone (every value replaced by a random real one)
// with 97% accuracy (discriminative score 0.47), while real stays keep a rhythm from first hour to
// last (temperature hourly in some, 4-hourly in most). This model is a small
// GRU over a stay's 0/1 observation vectors: at each step it reads the previous
// step's vector, each unit's steps since its last observation and where the
// step lies in the stay, and gives the units' probabilities one after another,
// each also given the units drawn before it at that step (a linear term), so
// panels come together and an empty hour stays possible. Trained by likelihood
// with a held-out share of the patients deciding when to stop.
#include <torch/torch.h>

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "healthgym/encoder.hpp"
#include "healthgym/observation_model.hpp"

namespace healthgym {

struct ScheduleNetConfig {
  int64_t units = 0;     // observation units, in the order they are drawn
  int64_t hidden = 64;   // GRU width
  int64_t max_gap = 24;  // steps since the last observation are capped here
  int64_t length = 0;    // the working length: positions are fractions of it
  // Indices per static label variable (ConditionSpec::label_sizes): the
  // patient's labels, one-hot, are inputs at every step, so that a cardiac
  // surgery stay gets an arterial line's schedule. Empty: no label inputs (as
  // in checkpoints before them).
  std::vector<int64_t> label_sizes;
  void validate() const;  // UsageError naming the field
  int64_t label_width() const;
  // Per step: the previous step's units, their gaps, whether each was ever
  // observed, their observed shares so far, two positions (from the start, to
  // the end of the stay), and the labels.
  int64_t input_size() const { return 4 * units + 2 + label_width(); }
  nlohmann::json to_json() const;
  static ScheduleNetConfig from_json(const nlohmann::json& j);  // InputError
};

class ScheduleNetImpl : public torch::nn::Module {
 public:
  explicit ScheduleNetImpl(const ScheduleNetConfig& config);
  // features [B, L, input_size - label_width] (schedule_features) and labels
  // [B, label variables] (undefined without label inputs) -> the GRU's per-step
  // logits [B, L, units] before the within-step term; `state` carries the
  // GRU state across calls (undefined starts from zeros).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& labels,
                        torch::Tensor* state = nullptr);
  // Teacher-forced logits of y [B, L, units] (1 observed) with the
  // within-step term added.
  torch::Tensor logits(const torch::Tensor& y, const torch::Tensor& lengths,
                       const torch::Tensor& labels);
  // [units, units], zero on and above the diagonal: unit j's effect on unit i > j.
  torch::Tensor within() const { return within_ * lower_; }
  const ScheduleNetConfig& config() const { return config_; }

 private:
  ScheduleNetConfig config_;
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::Tensor within_, lower_;
};
TORCH_MODULE(ScheduleNet);

// The inputs each step of y [B, L, U] (CPU, 1 observed) sees: computed from
// the steps before it only, so sampling builds the same rows step by step.
// Positions are fractions of `length` (the working length), whatever L is.
torch::Tensor schedule_features(const torch::Tensor& y, const torch::Tensor& lengths,
                                int64_t length, int64_t max_gap);

struct ScheduleFitConfig {
  int64_t hidden = 64;
  // Smaller batches learned faster per second: held-out NLL 0.1118 after 60
  // epochs at 32 against 0.1148 at 64 on PhysioNet 2012.
  int64_t batch = 32;
  double lr = 1e-2;  // halved whenever an epoch does not improve the held-out likelihood
  int64_t max_epochs = 60;
  // Stop after this many epochs without a held-out likelihood 0.1% better
  // than the best so far; the best epoch's weights are kept.
  int64_t patience = 4;
  double validation_share = 0.1;  // of the patients, held out to decide when to stop
  double time_limit_s = 0;        // 0: none
  uint64_t seed = 0;
  void validate() const;  // UsageError naming the field
};

struct ScheduleFitProgress {
  int64_t epoch = 0;
  int64_t max_epochs = 0;
  double train_nll = 0;       // per modelled cell, nats
  double validation_nll = 0;  // NaN without a held-out set
  bool best = false;
};

// Each patient's static labels, as ConditionSpec gives them: rows [N, k] int64
// with indices in [0, sizes[j]). Empty (k = 0): the schedules ignore labels.
struct ScheduleLabels {
  torch::Tensor rows;
  std::vector<int64_t> sizes;
};

class ScheduleModel {
 public:
  ScheduleModel() = default;
  // Learns the schedules of `data` for the units of `observations` (their channels
  // and gates: a group member is modelled only where its group is observed),
  // given each patient's labels. Polls should_stop between batches: a stop keeps
  // the best weights so far.
  static ScheduleModel fit(const Encoder& encoder, const EncodedCohort& data,
                           const ObservationModel& observations, const ScheduleLabels& labels,
                           const ScheduleFitConfig& config,
                           const std::function<void(const ScheduleFitProgress&)>& progress = {},
                           const std::function<bool()>& should_stop = {});

  bool empty() const { return !net_; }
  int64_t units() const { return static_cast<int64_t>(channels_.size()); }
  const std::vector<int64_t>& channels() const { return channels_; }  // per unit
  int64_t epochs() const { return epochs_; }
  double validation_nll() const { return validation_nll_; }
  // The label inputs' sizes (empty: none).
  const std::vector<int64_t>& label_sizes() const;
  // Mean negative log-likelihood per modelled cell of `data` with its labels
  // (rows [N, k], undefined without label inputs), in nats.
  double nll(const EncodedCohort& data, const torch::Tensor& labels = {}) const;

  // Schedules for a batch, as ObservationModel::sample draws them (same
  // channels, same encoding): lengths [B] (CPU), each in [1, length()], and
  // each patient's labels [B, k] (undefined without label inputs). UsageError
  // for lengths or labels out of range.
  ObservationModel::Draw sample(const torch::Tensor& lengths, const torch::Tensor& labels = {},
                                torch::Generator generator = {}) const;

  nlohmann::json to_json() const;  // everything but the weights
  void save(torch::serialize::OutputArchive& archive) const;
  // InputError naming what is wrong (channels, gates, label inputs other than
  // `label_sizes` (the conditioning variables'; none is allowed, as before
  // them), weight shapes).
  static ScheduleModel load(const nlohmann::json& j, torch::serialize::InputArchive& archive,
                            int64_t channels, int64_t length,
                            const std::vector<int64_t>& label_sizes);

 private:
  // y [N, L, U] (1 observed) and the cells that count [N, L, U].
  std::pair<torch::Tensor, torch::Tensor> targets(const EncodedCohort& data) const;
  double mean_nll(const torch::Tensor& y, const torch::Tensor& mask, const torch::Tensor& lengths,
                  const torch::Tensor& labels) const;
  // Labels [N, k] int64 on the CPU, checked against the label inputs' sizes.
  torch::Tensor checked_labels(const torch::Tensor& labels, int64_t n) const;

  ScheduleNet net_{nullptr};
  std::vector<int64_t> channels_;  // design channel per unit
  std::vector<int64_t> gates_;     // the unit index of its group, -1 for none
  int64_t length_ = 0, design_channels_ = 0, epochs_ = 0;
  double validation_nll_ = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace healthgym
