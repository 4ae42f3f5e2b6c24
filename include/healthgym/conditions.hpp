#pragma once
// Conditioning variables for classifier-free guidance: static one-hot
// variables (e.g. in_hospital_death, sex) whose label each patient carries
// into the network as an embedding. Training drops them at random so one
// network is both conditional and unconditional; sampling fixes the ones the
// user asks for and draws the others from the training cohort's joint
// distribution of label combinations, so unconditioned output keeps the real
// subgroup shares.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "healthgym/cohort.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

class ConditionSpec {
 public:
  ConditionSpec() = default;

  // names: "auto" (every static binary/categorical variable), "none", or a
  // comma-separated list. Throws UsageError for a name that is not a static
  // one-hot variable of the schema. Counts the lengths (capped at
  // working_length) of each label combination of kLengthMinPatients or more
  // patients, for draw_lengths.
  static ConditionSpec fit(const Schema& schema, const Cohort& cohort, const std::string& names,
                           int64_t working_length);

  bool empty() const { return vars_.empty(); }
  size_t size() const { return vars_.size(); }
  const std::vector<std::string>& names() const { return names_; }
  // Embedding rows per variable: its labels, then "missing", then "dropped".
  std::vector<int64_t> embedding_sizes() const;
  // Indices per variable that `indices` and `draw` give: its labels, then "missing".
  std::vector<int64_t> label_sizes() const;
  // The "dropped" index of every variable, [k] int64: the unconditional input.
  torch::Tensor null_row() const;

  // [patients, k] int64: each patient's label index (its first observed value),
  // or the "missing" index.
  torch::Tensor indices(const Cohort& cohort) const;

  // Parses "COLUMN=VALUE" requests; several combine. Throws UsageError naming
  // the column or value and what is allowed. Returns variable -> label index.
  std::map<size_t, int64_t> parse(const std::vector<std::string>& requests) const;

  // n rows of conditions: the fixed ones as given, the others drawn from the
  // training combinations that agree with them (weighted by their counts).
  // Throws UsageError when no training patient has the requested combination.
  torch::Tensor draw(int64_t n, const std::map<size_t, int64_t>& fixed) const;

  // A length for each row of `draw`, from the training patients with that row's
  // label combination (a dead patient's follow-up is shorter), shrunk toward
  // `overall` (counts per length, as Encoder keeps them) by kLengthPrior
  // pseudo-patients; a combination of fewer than kLengthMinPatients patients
  // draws from `overall`: the checkpoint keeps no table of a few patients'
  // lengths, and the draw does not replay them. Throws UsageError without the
  // table (!has_lengths(), checkpoints before it): the caller draws from
  // `overall` then.
  static constexpr double kLengthPrior = 5.0;
  static constexpr int64_t kLengthMinPatients = 10;
  bool has_lengths() const { return max_length_ > 0; }
  // The longest length the table counts (the encoder's working length); 0 without one.
  int64_t max_length() const { return max_length_; }
  torch::Tensor draw_lengths(const torch::Tensor& rows, const std::vector<int64_t>& overall) const;

  // InputError unless the table fits the encoder's lengths: it counts up to
  // the working length (overall.size()), and no length has more patients in
  // the combinations than in `overall`, which is not empty.
  void check_lengths(const std::vector<int64_t>& overall) const;

  // Share of training patients with the fixed labels.
  double share(const std::map<size_t, int64_t>& fixed) const;

  // Overwrites each patient's conditioned variables with its row of `rows`
  // (the labels the network was given); returns the share of patients whose
  // generated labels already agreed on every variable.
  double apply(Cohort& cohort, const torch::Tensor& rows) const;
  // x0 [B, C, L] -> x0 with each conditioned variable's channels set, inside
  // each of `lengths`, to the encoding of its label in `rows` (+1 for the
  // label, -1 for the others, observed; or not observed with the values at 0
  // for "missing"): applied at every step, the chain generates the rest of
  // each patient around the labels it was given, where the start alone could
  // pull it to another one.
  std::function<torch::Tensor(const torch::Tensor&)> projection(const Schema& schema,
                                                                const torch::Tensor& rows,
                                                                const torch::Tensor& lengths,
                                                                int64_t channels, int64_t length,
                                                                torch::Device device) const;

  nlohmann::json to_json() const;
  static ConditionSpec from_json(const nlohmann::json& j, const Schema& schema);

 private:
  std::vector<std::string> names_;
  std::vector<size_t> vars_;    // indices into schema.variables
  std::vector<int64_t> cards_;  // labels per variable
  std::vector<std::vector<std::string>> labels_;
  std::vector<std::vector<int64_t>> combos_;  // distinct training rows
  std::vector<int64_t> counts_;               // patients per combination
  // Per combination, its patients per length: [c][l - 1] for l in [1, max_length_];
  // empty for a combination under kLengthMinPatients.
  std::vector<std::vector<int64_t>> length_counts_;
  int64_t max_length_ = 0;  // 0: no table
};

}  // namespace healthgym
