#include "healthgym/value_repeats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

bool can_repeat(const Variable& v) { return !v.is_static && v.type == VarType::kReal; }

// The value as written (format_cohort_csv prints `decimals` digits), in units
// of the last digit: two values print alike exactly when these are equal.
double as_written(double x, int decimals) {
  return std::nearbyint(x * std::pow(10.0, std::min(decimals, 15)));
}

}  // namespace

ValueRepeats ValueRepeats::fit(const Cohort& cohort, const Schema& schema) {
  ValueRepeats r;
  const size_t nv = schema.variables.size();
  r.share_.assign(nv, kNaN);
  for (size_t v = 0; v < nv; ++v) {
    const Variable& var = schema.variables[v];
    if (!can_repeat(var)) continue;
    double pairs = 0, same = 0;
    for (int64_t p = 0; p < cohort.n_patients(); ++p) {
      double last = kNaN;
      for (int64_t k = 0; k < cohort.length[p]; ++k) {
        const double x = cohort.cell(cohort.start[p] + k, static_cast<int64_t>(v));
        if (is_missing(x)) continue;
        if (!is_missing(last)) {
          pairs += 1;
          same += as_written(x, var.decimals) == as_written(last, var.decimals);
        }
        last = x;
      }
    }
    // Rounded to 1e-6: the checkpoint stores short numbers.
    if (pairs > 0) r.share_[v] = std::round(same / pairs * 1e6) / 1e6;
  }
  return r;
}

double ValueRepeats::share(size_t var) const { return var < share_.size() ? share_[var] : kNaN; }

int64_t ValueRepeats::apply(Cohort& cohort, const Schema& schema) const {
  if (share_.size() != schema.variables.size())
    throw UsageError("value repeats: fitted on " + std::to_string(share_.size()) +
                     " variables, the schema has " + std::to_string(schema.variables.size()));
  int64_t changed = 0;
  // Per consecutive pair of observations: its change as written and the rows.
  struct Pair {
    double change;
    int64_t row, previous;
  };
  std::vector<Pair> pairs;
  for (size_t v = 0; v < share_.size(); ++v) {
    if (!(share_[v] > 0)) continue;
    const int decimals = schema.variables[v].decimals;
    const auto var = static_cast<int64_t>(v);
    pairs.clear();
    for (int64_t p = 0; p < cohort.n_patients(); ++p) {
      int64_t last = -1;
      for (int64_t k = 0; k < cohort.length[p]; ++k) {
        const int64_t row = cohort.start[p] + k;
        const double x = cohort.cell(row, var);
        if (is_missing(x)) continue;
        if (last >= 0)
          pairs.push_back(
              {std::fabs(as_written(x, decimals) - as_written(cohort.cell(last, var), decimals)),
               row, last});
        last = row;
      }
    }
    const auto want =
        static_cast<size_t>(std::llround(share_[v] * static_cast<double>(pairs.size())));
    if (want == 0) continue;
    // The `want` smallest changes; ties keep patient and time order, so the
    // result does not depend on the sort.
    std::stable_sort(pairs.begin(), pairs.end(),
                     [](const Pair& a, const Pair& b) { return a.change < b.change; });
    pairs.resize(std::min(want, pairs.size()));
    // In row order, so a run of repeats carries its first value.
    std::sort(pairs.begin(), pairs.end(),
              [](const Pair& a, const Pair& b) { return a.row < b.row; });
    for (const Pair& pr : pairs) {
      double& x = cohort.cells[static_cast<size_t>(pr.row * cohort.n_vars + var)];
      const double prev = cohort.cell(pr.previous, var);
      if (as_written(x, decimals) != as_written(prev, decimals)) ++changed;
      x = prev;
    }
  }
  return changed;
}

json ValueRepeats::to_json() const {
  json j = json::array();
  for (double s : share_) j.push_back(std::isfinite(s) ? json(s) : json(nullptr));
  return j;
}

ValueRepeats ValueRepeats::from_json(const json& j, const Schema& schema) {
  auto bad = [](const std::string& what) {
    return InputError("checkpoint value repeats: " + what);
  };
  if (!j.is_array()) throw bad("not an array");
  if (j.size() != schema.variables.size())
    throw bad(std::to_string(j.size()) + " shares for " + std::to_string(schema.variables.size()) +
              " variables");
  ValueRepeats r;
  r.share_.assign(j.size(), kNaN);
  for (size_t v = 0; v < j.size(); ++v) {
    if (j[v].is_null()) continue;
    const std::string& name = schema.variables[v].name;
    if (!j[v].is_number()) throw bad(name + ": not a number");
    const double s = j[v].get<double>();
    if (!(s >= 0.0 && s <= 1.0))
      throw bad(name + ": share " + std::to_string(s) + " outside [0, 1]");
    if (!can_repeat(schema.variables[v])) throw bad(name + ": not a time-varying real variable");
    r.share_[v] = s;
  }
  return r;
}

}  // namespace healthgym
