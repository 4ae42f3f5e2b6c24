#pragma once
// Where observations fall. Real records are measured on schedules: vitals every
// hour once a line is in, labs once or twice a day, blood gases in bursts. The
// diffusion network, trained briefly, places observations almost independently
// from step to step, and a classifier tells such a cohort from the real one at
// once. This model counts, on the training cohort, how likely each observation
// unit (a missing group's shared channel, or the observed channel of a
// time-varying variable) is observed at step t given the steps since it was
// last observed and whether its partner (the unit drawn before it that the
// training data most often observes with it, e.g. sodium for creatinine) is
// observed at t; sampling draws whole schedules from it and the network then
// generates the values with those channels held fixed (through the x0
// projection, see ObservationModel::projection).
// Before the units, one more chain decides whether anything is observed at a
// step at all (the hour gate): charts have hours where nothing is written
// (6% of PhysioNet's), which units drawn one by one almost never leave empty
// together. Units outside a missing group are then counted and drawn only at
// steps the gate opens.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "healthgym/encoder.hpp"

namespace healthgym {

class ObservationModel {
 public:
  struct Unit {
    int64_t channel = -1;  // the design tensor channel it draws
    // The missing group's channel for a group member (drawn earlier): the member
    // is drawn only where its group is observed and holds 1 elsewhere, as encoded.
    int64_t gate = -1;
    // An earlier unit whose state at the same step the chances depend on; -1 for
    // none (the first unit).
    int64_t partner = -1;
    // p[(t * (max_gap + 1) + s) * 2 + q]: P(observed at step t | s, q), s = 0
    // before the first observation, else the steps since the last one, capped
    // at max_gap; q = 1 when the partner is observed at t.
    std::vector<double> p;
  };

  // Schedules drawn for a batch: values [B, C, L] (+-1 in the modelled channels
  // inside each length, 0 elsewhere) and known [C] (1 for modelled channels).
  struct Draw {
    torch::Tensor values;
    torch::Tensor known;
  };

  ObservationModel() = default;
  // Counts over the encoded training cohort, each estimate shrunk with
  // `prior` pseudo-observations toward a coarser one (see the .cpp), so states
  // seen rarely fall back on what is seen often.
  // A unit's partner is the earlier unit whose observed cells overlap its own
  // most (Jaccard index), if that reaches `partner_jaccard`.
  static ObservationModel fit(const Encoder& encoder, const EncodedCohort& data,
                              int64_t max_gap = 24, double prior = 4.0,
                              double partner_jaccard = kPartnerJaccard);

  bool empty() const { return units_.empty(); }
  // Observed cells over the cells the units cover, in the training cohort.
  double observed_share() const { return observed_share_; }
  // Sparse records (most cells missing, as ICU charts) are where the network
  // places observations worst and where sampling uses this model by default:
  // on PhysioNet 2012 (share 0.29) it took the missing-rate difference from
  // 0.085 to 0.004, on pbcseq (0.96) the network's own placement kept a
  // better discriminative score (README, Sampling).
  static constexpr double kSparseShare = 0.5;
  // A unit takes as partner the earlier unit it overlaps most if their Jaccard
  // index reaches this (see the .cpp).
  static constexpr double kPartnerJaccard = 0.4;
  bool sparse() const { return !empty() && observed_share_ < kSparseShare; }
  const std::vector<Unit>& units() const { return units_; }
  // The hour gate: a unit of channel -1 whose `p` is empty in checkpoints
  // that predate it (then every step is open).
  const Unit& hour() const { return hour_; }
  bool has_hour() const { return !hour_.p.empty(); }
  int64_t max_gap() const { return max_gap_; }
  int64_t length() const { return length_; }
  double probability(size_t unit, int64_t step, int64_t since, bool partner_on = false) const;

  // lengths: [B] (CPU), each in [1, length()]. Uses `generator` (the global one
  // when undefined).
  Draw sample(const torch::Tensor& lengths, torch::Generator generator = {}) const;

  // x0 -> x0 with the known channels set to the draw, on `device`: applied to
  // every step's x0-hat, so the chain ends on the drawn schedules and the
  // network predicts the values for them.
  static std::function<torch::Tensor(const torch::Tensor&)> projection(const Draw& draw,
                                                                       torch::Device device);

  nlohmann::json to_json() const;
  // Checks the units against the encoder's channels and length; InputError
  // naming what is wrong.
  static ObservationModel from_json(const nlohmann::json& j, int64_t channels, int64_t length);

 private:
  std::vector<Unit> units_;  // gates before their members
  Unit hour_;
  int64_t max_gap_ = 0;
  int64_t length_ = 0;
  int64_t channels_ = 0;  // the encoder's
  double observed_share_ = 0;
};

}  // namespace healthgym
