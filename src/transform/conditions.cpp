#include "healthgym/conditions.hpp"

#include <algorithm>
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
                                 const std::string& names) {
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
  std::map<std::vector<int64_t>, int64_t> counts;
  auto acc = rows.accessor<int64_t, 2>();
  for (int64_t p = 0; p < rows.size(0); ++p) {
    std::vector<int64_t> r(spec.size());
    for (size_t k = 0; k < spec.size(); ++k) r[k] = acc[p][static_cast<int64_t>(k)];
    ++counts[r];
  }
  for (const auto& kv : counts) {
    spec.combos_.push_back(kv.first);
    spec.counts_.push_back(kv.second);
  }
  return spec;
}

std::vector<int64_t> ConditionSpec::embedding_sizes() const {
  std::vector<int64_t> s;
  for (int64_t c : cards_) s.push_back(c + 2);
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
  for (size_t c = 0; c < combos_.size(); ++c)
    combos.push_back({{"labels", combos_[c]}, {"count", counts_[c]}});
  return {{"variables", names_}, {"combinations", combos}};
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
    for (const auto& c : j.at("combinations")) {
      auto labels = c.at("labels").get<std::vector<int64_t>>();
      if (labels.size() != spec.size())
        throw InputError("a conditioning combination has the wrong number of labels");
      for (size_t k = 0; k < labels.size(); ++k)
        if (labels[k] < 0 || labels[k] > spec.cards_[k])
          throw InputError("a conditioning combination has a label out of range");
      spec.combos_.push_back(labels);
      spec.counts_.push_back(c.at("count").get<int64_t>());
    }
  } catch (const json::exception& e) {
    throw InputError(std::string("conditioning section is malformed: ") + e.what());
  }
  return spec;
}

}  // namespace healthgym
