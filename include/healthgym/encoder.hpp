#pragma once
// The design tensor: a cohort encoded as [patients, channels, steps] in [-1,1],
// with every transform stored so that decoding is its exact inverse.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "healthgym/cohort.hpp"
#include "healthgym/power_transform.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

struct EncodedCohort {
  torch::Tensor x;          // [N, C, L] float32 in [-1, 1]
  torch::Tensor loss_mask;  // [N, C, L] float32: 1 where a channel counts in the loss
  torch::Tensor lengths;    // [N] int64, steps in use (<= L)
};

// The loss mask with unobserved value cells inside each sequence's length
// weighted by fill_weight (their target is the fill, 0) instead of left out,
// and each channel's counted cells weighted f^-balance, f the share of valid
// cells where that channel counts (at least 1e-3): w (valid - mask) + f^-b mask.
// With balance 0 this is (1 - w) mask + w valid; channels that count wherever a
// step is valid keep 1. A balance > 0 gives a rarely measured variable (a lab
// drawn once a day) more of the loss than its few cells alone would.
torch::Tensor fill_weighted_mask(const EncodedCohort& data, double fill_weight,
                                 double balance = 0.0);

enum class CategoricalDecode { kArgmax, kSample };

// How the time column is handled. kGrid writes each step's time from the
// training grid (the original: time is an index). kGaps generates it: one more
// real channel holds the gap since the previous visit (the first visit's time at
// step 0), Box-Cox'd like any real, and decoding sums the gaps. kAuto picks kGaps
// when patients' visit times differ at some step (irregular visits), else kGrid.
enum class TimeMode { kAuto, kGrid, kGaps };
std::string to_string(TimeMode m);
TimeMode time_mode_from_string(const std::string& s);  // throws UsageError

struct DecodeOptions {
  CategoricalDecode categorical = CategoricalDecode::kArgmax;
  double temperature = 0.1;  // softmax temperature over a span's [-1,1] values (kSample)
  int64_t first_id = 1;      // synthetic patients are numbered from here
  // Static variables get one value per patient: the median (reals) or mode
  // (labels) over its steps, missing when most steps say not observed. Off
  // reproduces the original, whose statics drift from step to step.
  bool hold_static = true;
};

// Makes every static variable constant within each patient, as DecodeOptions::hold_static.
void hold_static_values(Cohort& cohort, const Schema& schema);

class Encoder {
 public:
  Encoder() = default;
  // Fits the real transforms, the time grid and the length distribution.
  // working_length is the U-Net's length; longer sequences are cropped.
  // range_tail: RealTransform::tail of every real transform (0: min-max).
  // missing_groups > 0: variables whose observed cells overlap with Jaccard index
  // >= missing_groups with every other member form a missing group
  // (Variable::missing_group); 0: none.
  static Encoder fit(const Schema& schema, const Cohort& cohort, int64_t working_length,
                     double shift, TimeMode time_mode = TimeMode::kGrid, double range_tail = 0.0,
                     double missing_groups = 0.0);

  EncodedCohort encode(const Cohort& cohort) const;
  // x: [N, C, L] (any float dtype, any device), lengths: [N].
  Cohort decode(const torch::Tensor& x, const torch::Tensor& lengths, const DecodeOptions& options,
                torch::Generator generator = {}) const;

  // True for each sequence whose observed real values stay in [-1,1] over its
  // valid length: the original's guardrail. Unobserved cells are not checked,
  // since their values are never written and are not trained.
  torch::Tensor within_range(const torch::Tensor& x, const torch::Tensor& lengths) const;

  // Sets to the fill value (0) the cells of a predicted x0 [N, C, L] that
  // encode() leaves at 0 and out of the loss: steps past each sequence's length
  // and the value channels of cells whose observed indicator is negative. The
  // network never learns what to predict there, so a sampler that feeds its own
  // guesses back drifts off the training distribution; projecting x0 keeps
  // those cells as they were in training (pure noise around 0).
  torch::Tensor project_fill(const torch::Tensor& x0, const torch::Tensor& lengths) const;
  // The same with its index tensors built once on `device`, for a whole chain.
  std::function<torch::Tensor(const torch::Tensor&)> fill_projection(const torch::Tensor& lengths,
                                                                     torch::Device device) const;

  // x0 [N, C, L] -> x0 with each static variable's channels (values and
  // observed indicator) replaced, inside each length, by their mean over it:
  // applied at every step, the chain generates one value per patient instead
  // of a value per step that decoding's median then pulls to the middle.
  std::function<torch::Tensor(const torch::Tensor&)> static_projection(const torch::Tensor& lengths,
                                                                       torch::Device device) const;

  // Lengths drawn from the training cohort's length distribution.
  torch::Tensor sample_lengths(int64_t n, torch::Generator generator = {}) const;
  // Training patients per length: [l - 1] for l in [1, working_length()].
  const std::vector<int64_t>& length_counts() const { return length_counts_; }

  const Schema& schema() const { return schema_; }
  int64_t working_length() const { return working_length_; }
  int64_t channels() const { return schema_.n_channels + (time_channel_ >= 0 ? 1 : 0); }
  // The gap channel's index, or -1 when times come from the grid.
  int64_t time_channel() const { return time_channel_; }
  const std::vector<RealTransform>& real_transforms() const { return real_; }
  const std::vector<double>& time_grid() const { return time_grid_; }

  nlohmann::json to_json() const;
  static Encoder from_json(const nlohmann::json& j);

 private:
  Schema schema_;
  std::vector<RealTransform> real_;  // one per variable; kNone for one-hot variables
  int64_t working_length_ = 0;
  std::vector<double> time_grid_;       // time value written for each step
  std::vector<int64_t> length_counts_;  // length_counts_[l-1]: patients with l steps
  int64_t time_channel_ = -1;
  RealTransform time_transform_;  // of the gaps, when time_channel_ >= 0
  double min_gap_ = 0;            // smallest gap after the first visit: keeps times increasing
  double max_first_time_ = 0;
};

// Smallest multiple of 2^levels that holds max_length, so every down-sampling
// stage sees an even length.
int64_t auto_working_length(int64_t max_length, int64_t levels);

}  // namespace healthgym
