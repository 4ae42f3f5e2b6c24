#pragma once
// Exact repeats. Charts repeat a value from one observation to the next: a
// weight entered once and carried on every hour, a heart rate charted as the
// same integer, a Glasgow score unchanged for a day. The network generates
// continuous values, which almost never repeat as written, and a classifier
// notices (on PhysioNet 2012, real stays repeat heart rate 4.4 times and weight
// 25 times on average, synthetic ones almost never). This keeps, per
// time-varying real variable, the training cohort's share of consecutive
// observations equal to the previous one; after decoding, the pairs of that
// variable whose change is smallest (as written, at its decimals) are made
// equal, as many as the share asks for. The change distribution gets its atom
// at zero back, where the network moved the least.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "healthgym/cohort.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

class ValueRepeats {
 public:
  ValueRepeats() = default;
  // Shares counted on `cohort`; variables that are static, not real, or have
  // no consecutive observations in any patient get none (NaN).
  static ValueRepeats fit(const Cohort& cohort, const Schema& schema);

  bool empty() const { return share_.empty(); }
  // The share of variable `var` (index into the schema's variables); NaN when none.
  double share(size_t var) const;

  // Makes the smallest changes of each variable repeats, in time order within
  // each patient (a run of repeats holds the run's first value). Returns the
  // cells changed. The schema must be the one fitted on.
  int64_t apply(Cohort& cohort, const Schema& schema) const;

  nlohmann::json to_json() const;  // shares per variable, null where none
  // InputError naming what is wrong: a count that does not match the schema,
  // a share outside [0, 1], a share on a variable that cannot repeat.
  static ValueRepeats from_json(const nlohmann::json& j, const Schema& schema);

 private:
  std::vector<double> share_;  // per schema variable
};

}  // namespace healthgym
