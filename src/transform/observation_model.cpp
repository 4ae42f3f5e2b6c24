#include "healthgym/observation_model.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

namespace {

// Which state a step is in: 0 before the first observation, else the steps
// since the last one, capped.
int64_t gap_state(int64_t step, int64_t last, int64_t max_gap) {
  return last < 0 ? 0 : std::min(step - last, max_gap);
}

// Where P(observed | t, s, q) sits in a unit's table.
size_t table_index(int64_t t, int64_t s, int64_t q, int64_t states) {
  return static_cast<size_t>((t * states + s) * 2 + q);
}

double odds(double p) {
  p = std::clamp(p, 1e-12, 1.0 - 1e-12);
  return p / (1.0 - p);
}

}  // namespace

ObservationModel ObservationModel::fit(const Encoder& encoder, const EncodedCohort& data,
                                       int64_t max_gap, double prior, double partner_jaccard) {
  if (max_gap < 1) throw UsageError("observation model: max_gap must be >= 1");
  if (!(prior > 0.0)) throw UsageError("observation model: prior must be > 0");
  ObservationModel m;
  m.max_gap_ = max_gap;
  m.length_ = encoder.working_length();
  m.channels_ = encoder.channels();
  // Static variables keep their observed channel to the network: hold_static
  // decides them per patient. Groups first, since members are drawn inside them.
  std::set<int64_t> groups;
  for (const Variable& v : encoder.schema().variables)
    if (!v.is_static && v.group_channel >= 0) groups.insert(v.group_channel);
  auto unit = [](int64_t channel, int64_t gate) {
    Unit u;
    u.channel = channel;
    u.gate = gate;
    return u;
  };
  for (int64_t g : groups) m.units_.push_back(unit(g, -1));
  for (const Variable& v : encoder.schema().variables)
    if (!v.is_static && v.observed_channel >= 0)
      m.units_.push_back(unit(v.observed_channel, v.group_channel));
  if (m.units_.empty()) return m;

  auto x = data.x.to(torch::kCPU, torch::kFloat).contiguous();
  auto lengths = data.lengths.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = x.size(0), c = x.size(1), len = x.size(2);
  if (len != m.length_ || c != encoder.channels())
    throw InputError("observation model: the encoded cohort does not match the encoder");
  const float* xp = x.data_ptr<float>();
  const int64_t* lp = lengths.data_ptr<int64_t>();
  // Per unit and cell (patient, step): 1 observed, 0 drawn and not observed,
  // -1 not drawn (past the length, or its gate closed).
  const size_t n_units = m.units_.size();
  const auto n_cells = static_cast<size_t>(n * len);
  std::vector<std::vector<int8_t>> state(n_units, std::vector<int8_t>(n_cells, -1));
  for (size_t i = 0; i < n_units; ++i) {
    const Unit& u = m.units_[i];
    for (int64_t p = 0; p < n; ++p) {
      const float* xb = xp + p * c * len;
      for (int64_t t = 0; t < std::min(lp[p], len); ++t) {
        if (u.gate >= 0 && !(xb[u.gate * len + t] > 0.f)) continue;
        state[i][static_cast<size_t>(p * len + t)] = xb[u.channel * len + t] > 0.f ? 1 : 0;
      }
    }
  }
  // The share is of the cells the units cover, before the hour gate narrows them.
  double observed = 0, cells = 0;
  for (const auto& st : state)
    for (int8_t s : st) {
      observed += s == 1;
      cells += s >= 0;
    }
  m.observed_share_ = cells > 0 ? observed / cells : 1.0;
  // The hour gate: 1 where any unit is observed, 0 at the other steps inside
  // the length; units outside a group are counted only where it is open.
  std::vector<int8_t> hour(n_cells, -1);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t t = 0; t < std::min(lp[p], len); ++t) {
      const auto cell = static_cast<size_t>(p * len + t);
      hour[cell] = 0;
      for (size_t i = 0; i < n_units && hour[cell] == 0; ++i) hour[cell] = state[i][cell] == 1;
    }
  for (size_t i = 0; i < n_units; ++i)
    if (m.units_[i].gate < 0)
      for (size_t k = 0; k < n_cells; ++k)
        if (hour[k] == 0) state[i][k] = -1;
  // Partners: the earlier unit observed together with this one most often, if
  // often enough (Jaccard >= partner_jaccard). On PhysioNet 2012 the labs of a
  // panel overlap 0.6-0.8 (magnesium and sodium 0.79, the blood count 0.71-0.74)
  // and the liver tests with albumin 0.46; at 0.8, as first fitted, those
  // panels were drawn independently (co-observed 4% against 80% of the time).
  // Lower, 0.3, paired non-invasive with invasive blood pressure through a
  // shared partner; a partner drawn from its own chain also shifts the joint
  // states a first-order model was counted on (missing-rate difference 0.005
  // -> 0.007 at 0.4, README, Sampling).
  for (size_t i = 1; i < n_units; ++i) {
    double best = partner_jaccard - 1e-12;  // ties go to the earlier unit
    for (size_t j = 0; j < i; ++j) {
      double both = 0, either = 0;
      for (size_t k = 0; k < n_cells; ++k) {
        const bool a = state[i][k] == 1, b = state[j][k] == 1;
        both += a && b;
        either += a || b;
      }
      const double jac = either > 0 ? both / either : 0.0;
      if (jac > best) {
        best = jac;
        m.units_[i].partner = static_cast<int64_t>(j);
      }
    }
  }
  const int64_t states = max_gap + 1;
  // Fills u.p from the unit's states (and its partner's, when it has one).
  auto estimate = [&](Unit& u, const std::vector<int8_t>& mine, const std::vector<int8_t>* other) {
    const auto size = static_cast<size_t>(len * states * 2);
    std::vector<double> on(size, 0.0), seen(size, 0.0);
    for (int64_t p = 0; p < n; ++p) {
      int64_t last = -1;
      for (int64_t t = 0; t < len; ++t) {
        const auto cell = static_cast<size_t>(p * len + t);
        if (mine[cell] < 0) continue;
        const int q = other != nullptr && (*other)[cell] == 1;
        const auto k = table_index(t, gap_state(t, last, max_gap), q, states);
        seen[k] += 1.0;
        if (mine[cell] == 1) {
          on[k] += 1.0;
          last = t;
        }
      }
    }
    // Shrinkage with `prior` pseudo-observations, so states seen rarely fall
    // back on what is seen often: the unit's rate (with half an observation
    // each way, never 0 or 1) -> its rate at gap s -> at step t and gap s, and
    // at gap s and partner state q; the cell (t, s, q) -> the step's rate with
    // the partner's odds ratio at that gap applied (a log-linear model without
    // a three-way term).
    double on_all = 0.5, seen_all = 1.0;
    std::vector<double> on_s(static_cast<size_t>(states), 0.0), seen_s(on_s.size(), 0.0);
    std::vector<double> on_sq(on_s.size() * 2, 0.0), seen_sq(on_sq.size(), 0.0);
    for (int64_t t = 0; t < len; ++t)
      for (int64_t s = 0; s < states; ++s)
        for (size_t q = 0; q < 2; ++q) {
          const auto k = table_index(t, s, static_cast<int64_t>(q), states);
          on_s[static_cast<size_t>(s)] += on[k];
          seen_s[static_cast<size_t>(s)] += seen[k];
          on_sq[static_cast<size_t>(s * 2) + q] += on[k];
          seen_sq[static_cast<size_t>(s * 2) + q] += seen[k];
          on_all += on[k];
          seen_all += seen[k];
        }
    const double rate = on_all / seen_all;
    u.p.resize(size);
    for (int64_t s = 0; s < states; ++s) {
      const auto si = static_cast<size_t>(s);
      const double gap = (on_s[si] + prior * rate) / (seen_s[si] + prior);
      for (size_t q = 0; q < 2; ++q) {
        const auto g = si * 2 + q;
        const double partner = (on_sq[g] + prior * gap) / (seen_sq[g] + prior);
        const double ratio = other != nullptr ? odds(partner) / odds(gap) : 1.0;
        for (int64_t t = 0; t < len; ++t) {
          const auto k0 = table_index(t, s, 0, states);
          const double step =
              (on[k0] + on[k0 + 1] + prior * gap) / (seen[k0] + seen[k0 + 1] + prior);
          const double o = odds(step) * ratio;
          const double base = o / (1.0 + o);
          // Rounded to 1e-6: the checkpoint stores short numbers.
          u.p[k0 + q] =
              std::round((on[k0 + q] + prior * base) / (seen[k0 + q] + prior) * 1e6) / 1e6;
        }
      }
    }
  };
  m.hour_.channel = -1;
  estimate(m.hour_, hour, nullptr);
  for (size_t i = 0; i < n_units; ++i) {
    Unit& u = m.units_[i];
    estimate(u, state[i], u.partner >= 0 ? &state[static_cast<size_t>(u.partner)] : nullptr);
  }
  return m;
}

double ObservationModel::probability(size_t unit, int64_t step, int64_t since,
                                     bool partner_on) const {
  if (unit >= units_.size() || step < 0 || step >= length_ || since < 0)
    throw UsageError("observation model: no unit " + std::to_string(unit) + " at step " +
                     std::to_string(step));
  const int64_t s = std::min(since, max_gap_);
  return units_[unit].p[table_index(step, s, partner_on ? 1 : 0, max_gap_ + 1)];
}

ObservationModel::Draw ObservationModel::sample(const torch::Tensor& lengths_in,
                                                torch::Generator generator) const {
  auto lengths = lengths_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t b = lengths.size(0), len = length_, c = channels_;
  Draw d;
  d.values = torch::zeros({b, c, len});
  d.known = torch::zeros({c});
  if (units_.empty() || b == 0) return d;
  const auto n_units = static_cast<int64_t>(units_.size());
  auto uniform = torch::rand({b, n_units, len}, generator, torch::kDouble).contiguous();
  const double* up = uniform.data_ptr<double>();
  // Drawn after the units' numbers, so a model without the gate draws as before.
  torch::Tensor hour_uniform;
  if (has_hour()) hour_uniform = torch::rand({b, len}, generator, torch::kDouble).contiguous();
  std::vector<uint8_t> open(static_cast<size_t>(len), 1);
  float* vp = d.values.data_ptr<float>();
  const int64_t* lp = lengths.data_ptr<int64_t>();
  const int64_t states = max_gap_ + 1;
  // Per unit, whether it is observed at each step of the current patient.
  std::vector<std::vector<uint8_t>> on(units_.size(),
                                       std::vector<uint8_t>(static_cast<size_t>(len)));
  for (int64_t p = 0; p < b; ++p) {
    if (lp[p] < 1 || lp[p] > len)
      throw UsageError("observation model: length " + std::to_string(lp[p]) + " outside [1, " +
                       std::to_string(len) + "]");
    float* vb = vp + p * c * len;
    if (has_hour()) {
      const double* hb = hour_uniform.data_ptr<double>() + p * len;
      int64_t last = -1;
      for (int64_t t = 0; t < lp[p]; ++t) {
        const auto k = table_index(t, gap_state(t, last, max_gap_), 0, states);
        open[static_cast<size_t>(t)] = hb[t] < hour_.p[k];
        if (open[static_cast<size_t>(t)]) last = t;
      }
    }
    for (int64_t i = 0; i < n_units; ++i) {
      const Unit& u = units_[static_cast<size_t>(i)];
      auto& mine = on[static_cast<size_t>(i)];
      std::fill(mine.begin(), mine.end(), 0);
      const double* ub = up + (p * n_units + i) * len;
      int64_t last = -1;
      for (int64_t t = 0; t < lp[p]; ++t) {
        if (u.gate >= 0 && !(vb[u.gate * len + t] > 0.f)) {
          vb[u.channel * len + t] = 1.f;  // the group decides, as encoded
          continue;
        }
        if (u.gate < 0 && !open[static_cast<size_t>(t)]) {
          vb[u.channel * len + t] = -1.f;  // nothing observed at this step
          continue;
        }
        const int q = u.partner >= 0 && on[static_cast<size_t>(u.partner)][static_cast<size_t>(t)];
        const auto k = table_index(t, gap_state(t, last, max_gap_), q, states);
        const bool hit = ub[t] < u.p[k];
        vb[u.channel * len + t] = hit ? 1.f : -1.f;
        if (hit) {
          mine[static_cast<size_t>(t)] = 1;
          last = t;
        }
      }
    }
  }
  for (const Unit& u : units_) d.known[u.channel] = 1.f;
  return d;
}

std::function<torch::Tensor(const torch::Tensor&)> ObservationModel::projection(
    const Draw& draw, torch::Device device) {
  const int64_t c = draw.known.size(0);
  auto known = (draw.known > 0).to(device).view({1, c, 1});
  auto values = draw.values.to(device);
  // Runs at every denoising step: one select, no arithmetic.
  return [known, values](const torch::Tensor& x0) {
    if (x0.sizes() != values.sizes())
      throw InputError("observation projection: x0 must have the draw's shape");
    return torch::where(known, values.to(x0.scalar_type()), x0);
  };
}

json ObservationModel::to_json() const {
  json units = json::array();
  for (const Unit& u : units_)
    units.push_back({{"channel", u.channel}, {"gate", u.gate}, {"partner", u.partner}, {"p", u.p}});
  json j = {{"max_gap", max_gap_},
            {"length", length_},
            {"observed_share", observed_share_},
            {"units", units}};
  if (has_hour()) j["hour"] = {{"p", hour_.p}};
  return j;
}

ObservationModel ObservationModel::from_json(const json& j, int64_t channels, int64_t length) {
  auto bad = [](const std::string& what) {
    return InputError("checkpoint observation model: " + what);
  };
  ObservationModel m;
  m.channels_ = channels;
  try {
    m.max_gap_ = j.at("max_gap").get<int64_t>();
    m.length_ = j.at("length").get<int64_t>();
    m.observed_share_ = j.at("observed_share").get<double>();
    if (!(m.observed_share_ >= 0.0 && m.observed_share_ <= 1.0))
      throw bad("observed_share out of [0, 1]");
    if (m.max_gap_ < 1 || m.max_gap_ > 100000) throw bad("max_gap out of range");
    if (m.length_ != length)
      throw bad("length " + std::to_string(m.length_) + " differs from the encoder's " +
                std::to_string(length));
    const auto table_size = static_cast<size_t>(length * (m.max_gap_ + 1) * 2);
    if (j.contains("hour")) {
      m.hour_.p = j.at("hour").at("p").get<std::vector<double>>();
      if (m.hour_.p.size() != table_size)
        throw bad("hour gate: " + std::to_string(m.hour_.p.size()) + " probabilities, expected " +
                  std::to_string(table_size));
      for (double v : m.hour_.p)
        if (!(v >= 0.0 && v <= 1.0)) throw bad("hour gate: probability " + std::to_string(v));
    }
    std::set<int64_t> drawn;
    for (const json& ju : j.at("units")) {
      Unit u;
      u.channel = ju.at("channel").get<int64_t>();
      u.gate = ju.at("gate").get<int64_t>();
      u.partner = ju.at("partner").get<int64_t>();
      u.p = ju.at("p").get<std::vector<double>>();
      const std::string name = "unit of channel " + std::to_string(u.channel);
      if (u.channel < 0 || u.channel >= channels || drawn.count(u.channel))
        throw bad(name + ": channel out of range or repeated");
      if (u.gate >= 0 && !drawn.count(u.gate))
        throw bad(name + ": its gate is not drawn before it");
      if (u.gate < -1) throw bad(name + ": gate out of range");
      if (u.partner < -1 || u.partner >= static_cast<int64_t>(m.units_.size()))
        throw bad(name + ": its partner is not a unit drawn before it");
      if (static_cast<int64_t>(u.p.size()) != length * (m.max_gap_ + 1) * 2)
        throw bad(name + ": " + std::to_string(u.p.size()) + " probabilities, expected " +
                  std::to_string(length * (m.max_gap_ + 1) * 2));
      for (double v : u.p)
        if (!(v >= 0.0 && v <= 1.0)) throw bad(name + ": probability " + std::to_string(v));
      drawn.insert(u.channel);
      m.units_.push_back(std::move(u));
    }
  } catch (const json::exception& e) {
    throw bad(e.what());
  }
  return m;
}

}  // namespace healthgym
