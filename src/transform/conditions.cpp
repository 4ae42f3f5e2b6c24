#include "healthgym/conditions.hpp"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

namespace {

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool can_condition(const Variable& v) { return v.is_static && v.is_one_hot(); }

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

}  // namespace

ConditionSpec ConditionSpec::fit(const Schema& schema, const Cohort& cohort,
                                 const std::string& names, int64_t working_length) {
  if (working_length < 1) throw UsageError("conditions: working length must be >= 1");
  ConditionSpec spec;
  std::vector<std::string> wanted;
  if (names == "auto") {
    for (const auto& v : schema.variables)
      if (can_condition(v)) wanted.push_back(v.name);
  } else if (names != "none" && !names.empty()) {
    wanted = split_names(names);
  }
  for (const auto& name : wanted) {
    const long i = schema.variable_index(name);
    if (i < 0) throw UsageError("--condition-on: no variable '" + name + "' in the data");
    const Variable& v = schema.variables[static_cast<size_t>(i)];
    if (!can_condition(v))
      throw UsageError("--condition-on: '" + name +
                       "' must be a static binary or categorical variable (it is " +
                       (v.is_static ? "" : "time-varying ") + to_string(v.type) + ")");
    if (std::find(spec.names_.begin(), spec.names_.end(), name) != spec.names_.end())
      throw UsageError("--condition-on: '" + name + "' is named twice");
    spec.names_.push_back(name);
    spec.vars_.push_back(static_cast<size_t>(i));
    spec.cards_.push_back(static_cast<int64_t>(v.labels.size()));
    spec.labels_.push_back(v.labels);
  }
  if (spec.empty()) return spec;
  auto rows = spec.indices(cohort);
  std::map<std::vector<int64_t>, std::vector<int64_t>> lengths;  // combination -> per length
  auto acc = rows.accessor<int64_t, 2>();
  for (int64_t p = 0; p < rows.size(0); ++p) {
    std::vector<int64_t> r(spec.size());
    for (size_t k = 0; k < spec.size(); ++k) r[k] = acc[p][static_cast<int64_t>(k)];
    auto& per_length = lengths[r];
    per_length.resize(static_cast<size_t>(working_length), 0);
    const int64_t l = std::clamp<int64_t>(cohort.length[p], 1, working_length);
    ++per_length[static_cast<size_t>(l - 1)];
  }
  for (const auto& kv : lengths) {
    const int64_t count = std::accumulate(kv.second.begin(), kv.second.end(), int64_t{0});
    spec.combos_.push_back(kv.first);
    spec.counts_.push_back(count);
    spec.length_counts_.push_back(count >= kLengthMinPatients ? kv.second : std::vector<int64_t>());
  }
  spec.max_length_ = working_length;
  return spec;
}

std::vector<int64_t> ConditionSpec::embedding_sizes() const {
  std::vector<int64_t> s;
  for (int64_t c : cards_) s.push_back(c + 2);
  return s;
}

std::vector<int64_t> ConditionSpec::label_sizes() const {
  std::vector<int64_t> s;
  for (int64_t c : cards_) s.push_back(c + 1);
  return s;
}

torch::Tensor ConditionSpec::null_row() const {
  auto r = torch::empty({static_cast<int64_t>(size())}, torch::kLong);
  for (size_t k = 0; k < size(); ++k) r[static_cast<int64_t>(k)] = cards_[k] + 1;
  return r;
}

torch::Tensor ConditionSpec::indices(const Cohort& co) const {
  auto out = torch::empty({co.n_patients(), static_cast<int64_t>(size())}, torch::kLong);
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t p = 0; p < co.n_patients(); ++p) {
    for (size_t k = 0; k < size(); ++k) {
      int64_t idx = cards_[k];  // missing
      for (int64_t s = 0; s < co.length[p]; ++s) {
        const double x = co.cell(co.start[p] + s, static_cast<int64_t>(vars_[k]));
        if (!is_missing(x)) {
          idx = static_cast<int64_t>(x);
          break;
        }
      }
      acc[p][static_cast<int64_t>(k)] = idx;
    }
  }
  return out;
}

std::map<size_t, int64_t> ConditionSpec::parse(const std::vector<std::string>& requests) const {
  std::map<size_t, int64_t> fixed;
  if (!requests.empty() && empty())
    throw UsageError(
        "--condition: this model was trained without conditioning variables "
        "(train with --condition-on auto or a list of static categorical columns)");
  for (const auto& req : requests) {
    const auto eq = req.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--condition '" + req + "': expected COLUMN=VALUE");
    const std::string col = req.substr(0, eq), val = req.substr(eq + 1);
    const auto it = std::find(names_.begin(), names_.end(), col);
    if (it == names_.end())
      throw UsageError("--condition '" + req + "': '" + col +
                       "' is not a conditioning variable of this model (it has: " + join(names_) +
                       ")");
    const size_t k = static_cast<size_t>(it - names_.begin());
    if (fixed.count(k)) throw UsageError("--condition: '" + col + "' is given twice");
    fixed[k] = -1;
    const auto& labels = labels_[k];
    for (size_t l = 0; l < labels.size(); ++l)
      if (labels[l] == val) fixed[k] = static_cast<int64_t>(l);
    if (fixed[k] < 0)
      throw UsageError("--condition '" + req + "': '" + val + "' is not a label of '" + col +
                       "' (labels: " + join(labels) + ")");
  }
  return fixed;
}

namespace {

bool agrees(const std::vector<int64_t>& combo, const std::map<size_t, int64_t>& fixed) {
  for (const auto& kv : fixed)
    if (combo[kv.first] != kv.second) return false;
  return true;
}

}  // namespace

double ConditionSpec::share(const std::map<size_t, int64_t>& fixed) const {
  int64_t hit = 0, all = 0;
  for (size_t c = 0; c < combos_.size(); ++c) {
    all += counts_[c];
    if (agrees(combos_[c], fixed)) hit += counts_[c];
  }
  return all > 0 ? static_cast<double>(hit) / static_cast<double>(all) : 0.0;
}

torch::Tensor ConditionSpec::draw(int64_t n, const std::map<size_t, int64_t>& fixed) const {
  std::vector<size_t> ok;
  std::vector<double> w;
  for (size_t c = 0; c < combos_.size(); ++c) {
    if (!agrees(combos_[c], fixed)) continue;
    ok.push_back(c);
    w.push_back(static_cast<double>(counts_[c]));
  }
  if (ok.empty()) {
    std::string what;
    for (const auto& kv : fixed)
      what += (what.empty() ? "" : " and ") + names_[kv.first] + "=" +
              labels_[kv.first][static_cast<size_t>(kv.second)];
    throw UsageError("--condition: no training patient has " + what +
                     "; the model cannot generate a subgroup it never saw");
  }
  auto weights = torch::tensor(w, torch::kDouble);
  auto pick = torch::multinomial(weights, n, /*replacement=*/true);
  auto out = torch::empty({n, static_cast<int64_t>(size())}, torch::kLong);
  auto acc = out.accessor<int64_t, 2>();
  auto pk = pick.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& combo = combos_[ok[static_cast<size_t>(pk[i])]];
    for (size_t k = 0; k < size(); ++k) acc[i][static_cast<int64_t>(k)] = combo[k];
  }
  return out;
}

torch::Tensor ConditionSpec::draw_lengths(const torch::Tensor& rows_in,
                                          const std::vector<int64_t>& overall) const {
  auto rows = rows_in.to(torch::kCPU, torch::kLong).contiguous();
  if (!has_lengths())
    throw UsageError("conditions: this checkpoint holds no lengths per label combination");
  const int64_t k = static_cast<int64_t>(size());
  if (rows.dim() != 2 || rows.size(1) != k)
    throw UsageError("conditions: rows must be [n, " + std::to_string(k) + "]");
  const int64_t n = rows.size(0);
  if (static_cast<int64_t>(overall.size()) != max_length_)
    throw UsageError("conditions: the overall length counts have " +
                     std::to_string(overall.size()) + " lengths, not " +
                     std::to_string(max_length_));
  const double total = std::accumulate(overall.begin(), overall.end(), 0.0);
  if (!(total > 0)) throw UsageError("conditions: the overall length counts are empty");
  std::map<std::vector<int64_t>, std::vector<int64_t>> members;  // combination -> rows
  auto acc = rows.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> r(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j) r[static_cast<size_t>(j)] = acc[i][j];
    members[r].push_back(i);
  }
  auto out = torch::empty({n}, torch::kLong);
  auto op = out.accessor<int64_t, 1>();
  for (const auto& [combo, who] : members) {
    const auto it = std::find(combos_.begin(), combos_.end(), combo);
    if (it == combos_.end())
      throw UsageError("conditions: a row is not a label combination of the training cohort");
    // One draw per row either way, so the generator moves on the same.
    const auto& own = length_counts_[static_cast<size_t>(it - combos_.begin())];
    std::vector<double> w(overall.size());
    for (size_t l = 0; l < w.size(); ++l)
      w[l] = own.empty() ? static_cast<double>(overall[l])
                         : static_cast<double>(own[l]) +
                               kLengthPrior * static_cast<double>(overall[l]) / total;
    auto pick = torch::multinomial(torch::tensor(w, torch::kDouble),
                                   static_cast<int64_t>(who.size()), /*replacement=*/true);
    auto pk = pick.accessor<int64_t, 1>();
    for (size_t i = 0; i < who.size(); ++i) op[who[i]] = pk[static_cast<int64_t>(i)] + 1;
  }
  return out;
}

void ConditionSpec::check_lengths(const std::vector<int64_t>& overall) const {
  if (!has_lengths()) return;
  if (static_cast<int64_t>(overall.size()) != max_length_)
    throw InputError("the lengths per label combination cover " + std::to_string(max_length_) +
                     " steps, not the working length " + std::to_string(overall.size()));
  bool any = false;
  for (size_t l = 0; l < overall.size(); ++l) {
    if (overall[l] < 0) throw InputError("the cohort's length counts are negative");
    any = any || overall[l] > 0;
    int64_t sum = 0;
    for (const auto& own : length_counts_) {
      sum += own.empty() ? 0 : own[l];  // each term <= 2^40, checked before it grows past
      if (sum > overall[l])
        throw InputError("the lengths per label combination count more patients of length " +
                         std::to_string(l + 1) + " than the cohort has");
    }
  }
  if (!any) throw InputError("the cohort's length counts are empty");
}

double ConditionSpec::apply(Cohort& co, const torch::Tensor& rows) const {
  if (empty() || co.n_patients() == 0) return 1.0;
  auto got = indices(co);
  auto gacc = got.accessor<int64_t, 2>();
  auto acc = rows.accessor<int64_t, 2>();
  int64_t agree = 0;
  for (int64_t p = 0; p < co.n_patients(); ++p) {
    bool same = true;
    for (size_t k = 0; k < size(); ++k) {
      const int64_t want = acc[p][static_cast<int64_t>(k)];
      if (gacc[p][static_cast<int64_t>(k)] != want) same = false;
      const double value = want >= cards_[k] ? kMissing : static_cast<double>(want);
      for (int64_t s = 0; s < co.length[p]; ++s)
        co.cells[(co.start[p] + s) * co.n_vars + static_cast<int64_t>(vars_[k])] = value;
    }
    if (same) ++agree;
  }
  return static_cast<double>(agree) / static_cast<double>(co.n_patients());
}

std::function<torch::Tensor(const torch::Tensor&)> ConditionSpec::projection(
    const Schema& schema, const torch::Tensor& rows_in, const torch::Tensor& lengths,
    int64_t channels, int64_t length, torch::Device device) const {
  auto rows = rows_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t b = rows.size(0);
  if (rows.dim() != 2 || rows.size(1) != static_cast<int64_t>(size()) || lengths.size(0) != b)
    throw UsageError("condition projection: rows must be [B, " + std::to_string(size()) +
                     "] with B lengths");
  auto known = torch::zeros({b, channels, 1});
  auto values = torch::zeros({b, channels, 1});
  auto acc = rows.accessor<int64_t, 2>();
  auto kp = known.accessor<float, 3>();
  auto vp = values.accessor<float, 3>();
  for (int64_t p = 0; p < b; ++p)
    for (size_t k = 0; k < size(); ++k) {
      const Variable& v = schema.variables[vars_[k]];
      const int64_t want = acc[p][static_cast<int64_t>(k)];
      const bool missing = want >= cards_[k];
      for (int64_t q = 0; q < v.value_width; ++q) {
        kp[p][v.value_offset + q][0] = 1.f;
        vp[p][v.value_offset + q][0] = missing ? 0.f : (q == want ? 1.f : -1.f);
      }
      if (v.observed_channel >= 0) {
        kp[p][v.observed_channel][0] = 1.f;
        vp[p][v.observed_channel][0] = missing ? -1.f : 1.f;
      }
    }
  auto valid = torch::arange(length).view({1, 1, length}) <
               lengths.to(torch::kCPU, torch::kLong).view({-1, 1, 1});
  auto mask = ((known > 0) & valid).to(device);
  values = values.to(device);
  return [mask, values](const torch::Tensor& x0) {
    if (x0.dim() != 3 || x0.size(0) != mask.size(0) || x0.size(1) != mask.size(1) ||
        x0.size(2) != mask.size(2))
      throw InputError("condition projection: x0 does not match the rows and lengths");
    return torch::where(mask, values.to(x0.scalar_type()), x0);
  };
}

json ConditionSpec::to_json() const {
  json combos = json::array();
  for (size_t c = 0; c < combos_.size(); ++c) {
    json combo = {{"labels", combos_[c]}, {"count", counts_[c]}};
    if (!length_counts_[c].empty()) combo["length_counts"] = length_counts_[c];
    combos.push_back(combo);
  }
  json j = {{"variables", names_}, {"combinations", combos}};
  if (has_lengths()) j["max_length"] = max_length_;
  return j;
}

ConditionSpec ConditionSpec::from_json(const json& j, const Schema& schema) {
  ConditionSpec spec;
  try {
    for (const auto& name : j.at("variables")) {
      const std::string n = name.get<std::string>();
      const long i = schema.variable_index(n);
      if (i < 0 || !can_condition(schema.variables[static_cast<size_t>(i)]))
        throw InputError("conditioning variable '" + n + "' is not a static label variable");
      const Variable& v = schema.variables[static_cast<size_t>(i)];
      spec.names_.push_back(n);
      spec.vars_.push_back(static_cast<size_t>(i));
      spec.cards_.push_back(static_cast<int64_t>(v.labels.size()));
      spec.labels_.push_back(v.labels);
    }
    if (j.contains("max_length")) {
      spec.max_length_ = j.at("max_length").get<int64_t>();
      if (spec.max_length_ < 1 || spec.max_length_ > (int64_t{1} << 20))
        throw InputError("conditioning max_length " + std::to_string(spec.max_length_) +
                         " is out of range");
    }
    for (const auto& c : j.at("combinations")) {
      auto labels = c.at("labels").get<std::vector<int64_t>>();
      if (labels.size() != spec.size())
        throw InputError("a conditioning combination has the wrong number of labels");
      for (size_t k = 0; k < labels.size(); ++k)
        if (labels[k] < 0 || labels[k] > spec.cards_[k])
          throw InputError("a conditioning combination has a label out of range");
      const auto count = c.at("count").get<int64_t>();
      if (count < 1 || count > (int64_t{1} << 40))
        throw InputError("a conditioning combination's count " + std::to_string(count) +
                         " is out of range");
      spec.combos_.push_back(labels);
      spec.counts_.push_back(count);
      spec.length_counts_.emplace_back();
      // Checkpoints before the table have none: lengths are then drawn overall.
      if (!c.contains("length_counts")) continue;
      if (spec.max_length_ < 1)
        throw InputError("a conditioning combination has length counts but no max_length");
      auto per_length = c.at("length_counts").get<std::vector<int64_t>>();
      int64_t sum = 0;
      bool ok = static_cast<int64_t>(per_length.size()) == spec.max_length_;
      for (int64_t v : per_length) {
        ok = ok && v >= 0 && v <= count;
        if (ok) sum += v;  // each term <= count: no overflow
      }
      if (!ok || sum != count)
        throw InputError(
            "a conditioning combination's length counts are not non-negative counts of its " +
            std::to_string(count) + " patients over " + std::to_string(spec.max_length_) +
            " lengths");
      spec.length_counts_.back() = std::move(per_length);
    }
  } catch (const json::exception& e) {
    throw InputError(std::string("conditioning section is malformed: ") + e.what());
  }
  return spec;
}

}  // namespace healthgym
