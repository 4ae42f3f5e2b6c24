#include "healthgym/encoder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

std::string to_string(TimeMode m) {
  switch (m) {
    case TimeMode::kAuto:
      return "auto";
    case TimeMode::kGrid:
      return "grid";
    case TimeMode::kGaps:
      return "gaps";
  }
  return "?";
}

TimeMode time_mode_from_string(const std::string& s) {
  if (s == "auto") return TimeMode::kAuto;
  if (s == "grid") return TimeMode::kGrid;
  if (s == "gaps") return TimeMode::kGaps;
  throw UsageError("unknown time mode '" + s + "' (expected auto, grid or gaps)");
}

namespace {

// Gap of row k of patient p: time since the previous visit, or the first time.
double gap_at(const Cohort& co, int64_t p, int64_t k) {
  const int64_t r = co.start[p] + k;
  return k == 0 ? co.times[r] : co.times[r] - co.times[r - 1];
}

}  // namespace

int64_t auto_working_length(int64_t max_length, int64_t levels) {
  const int64_t m = int64_t{1} << levels;
  return std::max<int64_t>(m, (max_length + m - 1) / m * m);
}

torch::Tensor fill_weighted_mask(const EncodedCohort& data, double w, double balance) {
  if (!(w >= 0.0 && w <= 1.0)) throw UsageError("fill weight must be in [0, 1]");
  if (!(balance >= 0.0 && balance <= 1.0)) throw UsageError("channel balance must be in [0, 1]");
  if (w == 0.0 && balance == 0.0) return data.loss_mask;
  const int64_t len = data.x.size(2);
  auto valid =
      (torch::arange(len).view({1, 1, len}) < data.lengths.view({-1, 1, 1})).to(torch::kFloat);
  auto counted = data.loss_mask;
  if (balance > 0.0) {
    // Shares over the whole cohort, in double so large cohorts sum exactly.
    const double n_valid = std::max(valid.to(torch::kDouble).sum().item<double>(), 1.0);
    const int64_t c = data.loss_mask.size(1);
    auto share = data.loss_mask.to(torch::kDouble).sum(std::vector<int64_t>{0, 2}) / n_valid;
    auto weight = share.clamp_min(1e-3).pow(-balance).to(torch::kFloat).view({1, c, 1});
    counted = data.loss_mask * weight;
  }
  return w * (valid - data.loss_mask) + counted;
}

namespace {

// Greedy grouping in column order: a variable joins the first group with whose
// every member its observed cells overlap with Jaccard index >= threshold.
void assign_missing_groups(Schema& schema, const Cohort& co, double threshold) {
  for (auto& v : schema.variables) v.missing_group.clear();
  if (threshold <= 0.0) return;
  const size_t nv = schema.variables.size();
  std::vector<std::vector<uint8_t>> observed(nv);
  std::vector<int64_t> count(nv, 0);
  for (size_t i = 0; i < nv; ++i) {
    if (!schema.variables[i].has_missing) continue;
    observed[i].resize(static_cast<size_t>(co.n_rows()));
    for (int64_t r = 0; r < co.n_rows(); ++r) {
      observed[i][r] = is_missing(co.cell(r, static_cast<int64_t>(i))) ? 0 : 1;
      count[i] += observed[i][r];
    }
  }
  auto jaccard = [&](size_t a, size_t b) {
    int64_t both = 0;
    for (size_t r = 0; r < observed[a].size(); ++r) both += observed[a][r] & observed[b][r];
    const int64_t either = count[a] + count[b] - both;
    return either > 0 ? static_cast<double>(both) / static_cast<double>(either) : 0.0;
  };
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < nv; ++i) {
    if (!schema.variables[i].has_missing) continue;
    auto fits = [&](const std::vector<size_t>& g) {
      for (size_t m : g)
        if (jaccard(i, m) < threshold) return false;
      return true;
    };
    auto it = std::find_if(groups.begin(), groups.end(), fits);
    if (it == groups.end())
      groups.push_back({i});
    else
      it->push_back(i);
  }
  for (const auto& g : groups) {
    if (g.size() < 2) continue;  // a group of one would only add a channel
    for (size_t m : g) schema.variables[m].missing_group = schema.variables[g.front()].name;
  }
}

}  // namespace

Encoder Encoder::fit(const Schema& schema, const Cohort& co, int64_t working_length, double shift,
                     TimeMode time_mode, double range_tail, double missing_groups) {
  if (co.n_patients() == 0) throw InputError("the cohort has no patients");
  if (working_length < 1) throw UsageError("working length must be at least 1");
  Encoder e;
  e.schema_ = schema;
  e.working_length_ = working_length;
  // Missingness channels follow the training data, whatever the schema said.
  for (size_t i = 0; i < e.schema_.variables.size(); ++i) {
    bool miss = false;
    for (int64_t r = 0; r < co.n_rows() && !miss; ++r) miss = is_missing(co.cell(r, i));
    e.schema_.variables[i].has_missing = miss;
  }
  if (!(missing_groups >= 0.0 && missing_groups <= 1.0))
    throw UsageError("--missing-groups must be in [0, 1] (0: no groups)");
  assign_missing_groups(e.schema_, co, missing_groups);
  e.schema_.compute_layout();

  e.real_.resize(e.schema_.variables.size());
  for (size_t i = 0; i < e.schema_.variables.size(); ++i) {
    const Variable& v = e.schema_.variables[i];
    if (v.type != VarType::kReal) {
      e.real_[i].kind = PowerKind::kNone;
      continue;
    }
    std::vector<double> vals;
    vals.reserve(static_cast<size_t>(co.n_rows()));
    for (int64_t p = 0; p < co.n_patients(); ++p)
      for (int64_t k = 0; k < std::min(co.length[p], working_length); ++k) {
        const double x = co.cell(co.start[p] + k, i);
        if (!is_missing(x)) vals.push_back(x);
      }
    if (vals.empty())
      throw InputError("variable '" + v.name + "' has no observed values in the training data");
    PowerKind kind = v.transform;
    if (kind == PowerKind::kBoxCox && choose_power_kind(vals, shift) != PowerKind::kBoxCox) {
      const double mn = *std::min_element(vals.begin(), vals.end());
      throw InputError("variable '" + v.name + "' has values down to " + std::to_string(mn) +
                       ", which Box-Cox cannot take (needs > -" + std::to_string(shift) +
                       "); set its \"transform\" to \"yeojohnson\" in the schema");
    }
    try {
      e.real_[i] = RealTransform::fit(vals, kind, shift, range_tail);
    } catch (const InputError& err) {
      throw InputError("variable '" + v.name + "': " + err.what());
    }
  }

  // Time grid: the step's time when every patient shares it (a regular grid),
  // otherwise the median across patients; extended by the last gap.
  e.time_grid_.assign(static_cast<size_t>(working_length), 0.0);
  std::vector<double> at;
  for (int64_t k = 0; k < working_length; ++k) {
    at.clear();
    for (int64_t p = 0; p < co.n_patients(); ++p)
      if (co.length[p] > k) at.push_back(co.times[co.start[p] + k]);
    if (at.empty()) {
      const double gap = k >= 2 ? e.time_grid_[k - 1] - e.time_grid_[k - 2] : 1.0;
      e.time_grid_[k] = (k >= 1 ? e.time_grid_[k - 1] : 0.0) + gap;
      continue;
    }
    std::nth_element(at.begin(), at.begin() + at.size() / 2, at.end());
    e.time_grid_[k] = at[at.size() / 2];
    if (k > 0 && e.time_grid_[k] <= e.time_grid_[k - 1])  // medians need not increase
      e.time_grid_[k] =
          e.time_grid_[k - 1] + (k >= 2 ? e.time_grid_[k - 1] - e.time_grid_[k - 2] : 1.0);
  }
  // Irregular visits: some step's time differs between patients.
  bool irregular = false;
  for (int64_t p = 1; p < co.n_patients() && !irregular; ++p)
    for (int64_t k = 0; k < std::min({co.length[p], co.length[0], working_length}); ++k)
      if (co.times[co.start[p] + k] != co.times[co.start[0] + k]) {
        irregular = true;
        break;
      }
  if (time_mode == TimeMode::kGaps || (time_mode == TimeMode::kAuto && irregular)) {
    std::vector<double> gaps;
    double min_gap = std::numeric_limits<double>::infinity();
    for (int64_t p = 0; p < co.n_patients(); ++p)
      for (int64_t k = 0; k < std::min(co.length[p], working_length); ++k) {
        const double g = gap_at(co, p, k);
        if (g < 0)
          throw InputError("time of patient '" + co.patient_ids[p] +
                           "' starts below 0; --time-mode gaps needs non-negative times");
        gaps.push_back(g);
        if (k > 0) min_gap = std::min(min_gap, g);
        if (k == 0) e.max_first_time_ = std::max(e.max_first_time_, g);
      }
    e.time_channel_ = e.schema_.n_channels;
    e.time_transform_ = RealTransform::fit(gaps, PowerKind::kBoxCox, shift, range_tail);
    e.min_gap_ = std::isfinite(min_gap) ? min_gap : 1.0;
  }

  e.length_counts_.assign(static_cast<size_t>(working_length), 0);
  for (int64_t p = 0; p < co.n_patients(); ++p)
    ++e.length_counts_[std::min(co.length[p], working_length) - 1];
  return e;
}

EncodedCohort Encoder::encode(const Cohort& co) const {
  const int64_t n = co.n_patients(), c = channels(), len = working_length_;
  if (co.n_vars != static_cast<int64_t>(schema_.variables.size()))
    throw InputError("cohort has " + std::to_string(co.n_vars) + " variables, the model " +
                     std::to_string(schema_.variables.size()));
  auto x = torch::zeros({n, c, len});
  auto m = torch::zeros({n, c, len});
  auto lengths = torch::empty({n}, torch::kLong);
  float* xp = x.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  int64_t* lp = lengths.data_ptr<int64_t>();
  for (int64_t p = 0; p < n; ++p) {
    const int64_t l = std::min(co.length[p], len);
    lp[p] = l;
    float* xb = xp + p * c * len;
    float* mb = mp + p * c * len;
    for (int64_t k = 0; k < l; ++k) {
      const int64_t r = co.start[p] + k;
      if (time_channel_ >= 0) {
        const double u = time_transform_.forward(gap_at(co, p, k));
        xb[time_channel_ * len + k] = static_cast<float>(2.0 * u - 1.0);
        mb[time_channel_ * len + k] = 1.f;
      }
      // A group's channel: whether any member was measured at this step.
      for (size_t i = 0; i < schema_.variables.size(); ++i) {
        const Variable& v = schema_.variables[i];
        if (v.group_channel < 0) continue;
        float& g = xb[v.group_channel * len + k];
        if (!is_missing(co.cell(r, static_cast<int64_t>(i))))
          g = 1.f;
        else if (g != 1.f)
          g = -1.f;
        mb[v.group_channel * len + k] = 1.f;
      }
      for (size_t i = 0; i < schema_.variables.size(); ++i) {
        const Variable& v = schema_.variables[i];
        const double val = co.cell(r, static_cast<int64_t>(i));
        const bool obs = !is_missing(val);
        if (v.observed_channel >= 0) {
          // A group member's own channel says "missing" only where its group was
          // measured without it; elsewhere it holds 1 and the group decides.
          const bool group_off = v.group_channel >= 0 && xb[v.group_channel * len + k] < 0.f;
          xb[v.observed_channel * len + k] = obs || group_off ? 1.f : -1.f;
          mb[v.observed_channel * len + k] = 1.f;
        }
        // Unobserved value channels stay 0 (the centre) and out of the loss.
        if (!obs) continue;
        if (v.type == VarType::kReal) {
          const double u = real_[i].forward(val);
          xb[v.value_offset * len + k] = static_cast<float>(2.0 * u - 1.0);
          mb[v.value_offset * len + k] = 1.f;
        } else {
          const auto idx = static_cast<int64_t>(val);
          if (idx < 0 || idx >= v.value_width)
            throw InputError("label index out of range for '" + v.name + "'");
          for (int64_t q = 0; q < v.value_width; ++q) {
            xb[(v.value_offset + q) * len + k] = q == idx ? 1.f : -1.f;
            mb[(v.value_offset + q) * len + k] = 1.f;
          }
        }
      }
    }
  }
  return {x, m, lengths};
}

torch::Tensor Encoder::within_range(const torch::Tensor& x_in, const torch::Tensor& lengths) const {
  auto x = x_in.detach().to(torch::kCPU, torch::kFloat);
  const int64_t b = x.size(0), len = x.size(2);
  auto valid = torch::arange(len).unsqueeze(0) < lengths.to(torch::kCPU).unsqueeze(1);  // [B, L]
  auto ok = torch::ones({b}, torch::kBool);
  for (const auto& v : schema_.variables) {
    if (v.type != VarType::kReal) continue;
    auto out = x.select(1, v.value_offset).abs() > 1.0;  // [B, L]
    if (v.observed_channel >= 0) out = out & (x.select(1, v.observed_channel) > 0);
    if (v.group_channel >= 0) out = out & (x.select(1, v.group_channel) > 0);
    ok = ok & ~(out & valid).any(1);
  }
  if (time_channel_ >= 0) ok = ok & ~((x.select(1, time_channel_).abs() > 1.0) & valid).any(1);
  return ok;
}

torch::Tensor Encoder::project_fill(const torch::Tensor& x0, const torch::Tensor& lengths) const {
  return fill_projection(lengths, x0.device())(x0);
}

std::function<torch::Tensor(const torch::Tensor&)> Encoder::fill_projection(
    const torch::Tensor& lengths, torch::Device dev) const {
  const int64_t c = channels(), len = working_length_;
  // Channel k is gated by the signs of channels src[k] and src2[k] (its own
  // observed channel and its missing group's, or the same one twice) where
  // gated[k] is set.
  std::vector<int64_t> src(static_cast<size_t>(c)), src2(static_cast<size_t>(c));
  std::vector<float> gated(static_cast<size_t>(c), 0.f);
  for (int64_t k = 0; k < c; ++k) src[k] = src2[k] = k;
  for (const auto& v : schema_.variables) {
    if (v.observed_channel < 0) continue;
    for (int64_t q = 0; q < v.value_width; ++q) {
      src[v.value_offset + q] = v.observed_channel;
      src2[v.value_offset + q] = v.group_channel >= 0 ? v.group_channel : v.observed_channel;
      gated[v.value_offset + q] = 1.f;
    }
  }
  auto src_t = torch::tensor(src, torch::kLong).to(dev);
  // Without groups src2 is src: one gather per call is enough (this runs at every step).
  auto src2_t = src2 == src ? torch::Tensor() : torch::tensor(src2, torch::kLong).to(dev);
  auto gated_t = torch::tensor(gated).to(dev).view({1, c, 1});
  auto valid = (torch::arange(len).view({1, 1, len}) < lengths.to(torch::kCPU).view({-1, 1, 1}))
                   .to(torch::kFloat)
                   .to(dev);
  return [c, len, src_t, src2_t, gated_t, valid](const torch::Tensor& x0) {
    if (x0.dim() != 3 || x0.size(1) != c || x0.size(2) != len || x0.size(0) != valid.size(0))
      throw InputError("fill projection: x0 must be [" + std::to_string(valid.size(0)) + ", " +
                       std::to_string(c) + ", " + std::to_string(len) + "]");
    auto on = x0.index_select(1, src_t) > 0;
    if (src2_t.defined()) on = on & (x0.index_select(1, src2_t) > 0);
    auto open = on.to(x0.scalar_type());
    auto gate = 1 - gated_t.to(x0.scalar_type()) * (1 - open);
    return x0 * gate * valid.to(x0.scalar_type());
  };
}

std::function<torch::Tensor(const torch::Tensor&)> Encoder::static_projection(
    const torch::Tensor& lengths, torch::Device dev) const {
  const int64_t c = channels(), len = working_length_;
  std::vector<float> is_static(static_cast<size_t>(c), 0.f);
  for (const auto& v : schema_.variables) {
    if (!v.is_static) continue;
    for (int64_t q = 0; q < v.value_width; ++q) is_static[v.value_offset + q] = 1.f;
    if (v.observed_channel >= 0) is_static[v.observed_channel] = 1.f;
  }
  auto lens = lengths.to(torch::kCPU, torch::kFloat);
  auto valid = (torch::arange(len).view({1, 1, len}) < lens.view({-1, 1, 1})).to(torch::kFloat);
  auto mask = (torch::tensor(is_static).view({1, c, 1}) * valid).to(dev);
  auto inv_len = (1.0 / lens.clamp_min(1.0)).view({-1, 1, 1}).to(dev);
  return [c, len, mask, inv_len](const torch::Tensor& x0) {
    if (x0.dim() != 3 || x0.size(1) != c || x0.size(2) != len || x0.size(0) != mask.size(0))
      throw InputError("static projection: x0 must be [" + std::to_string(mask.size(0)) + ", " +
                       std::to_string(c) + ", " + std::to_string(len) + "]");
    auto m = mask.to(x0.scalar_type());
    auto mean = (x0 * m).sum(2, /*keepdim=*/true) * inv_len.to(x0.scalar_type());
    return x0 + m * (mean - x0);
  };
}

torch::Tensor Encoder::sample_lengths(int64_t n, torch::Generator gen) const {
  std::vector<double> w(length_counts_.begin(), length_counts_.end());
  auto probs = torch::tensor(w, torch::kDouble);
  auto idx = torch::multinomial(probs, n, /*replacement=*/true, gen);
  return idx + 1;
}

Cohort Encoder::decode(const torch::Tensor& x_in, const torch::Tensor& lengths_in,
                       const DecodeOptions& opt, torch::Generator gen) const {
  auto x = x_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto lengths = lengths_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = x.size(0), c = x.size(1), len = x.size(2);
  if (c != channels() || len != working_length_)
    throw InputError("decode: tensor is [" + std::to_string(c) + " channels, " +
                     std::to_string(len) + " steps], the encoder expects [" +
                     std::to_string(channels()) + ", " + std::to_string(working_length_) + "]");
  const auto nv = static_cast<int64_t>(schema_.variables.size());

  // Category choice for every one-hot span, done as tensor ops up front.
  std::vector<torch::Tensor> choice(schema_.variables.size());
  for (size_t i = 0; i < schema_.variables.size(); ++i) {
    const Variable& v = schema_.variables[i];
    if (!v.is_one_hot()) continue;
    auto span = x.narrow(1, v.value_offset, v.value_width);  // [N, W, L]
    if (opt.categorical == CategoricalDecode::kArgmax || v.value_width == 1) {
      choice[i] = span.argmax(1).contiguous();  // [N, L]
    } else {
      auto logits = span.permute({0, 2, 1}).reshape({-1, v.value_width}) / opt.temperature;
      auto probs = torch::softmax(logits.to(torch::kDouble), 1);
      choice[i] = torch::multinomial(probs, 1, true, gen).view({n, len}).contiguous();
    }
  }

  Cohort co;
  co.n_vars = nv;
  const int64_t* lp = lengths.data_ptr<int64_t>();
  int64_t rows = 0;
  for (int64_t p = 0; p < n; ++p) {
    if (lp[p] < 1 || lp[p] > len) throw InputError("decode: length out of range");
    rows += lp[p];
  }
  co.times.reserve(rows);
  co.cells.reserve(rows * nv);
  const float* xp = x.data_ptr<float>();
  std::vector<const int64_t*> cp(schema_.variables.size(), nullptr);
  for (size_t i = 0; i < choice.size(); ++i)
    if (choice[i].defined()) cp[i] = choice[i].data_ptr<int64_t>();
  for (int64_t p = 0; p < n; ++p) {
    co.patient_ids.push_back(std::to_string(opt.first_id + p));
    co.start.push_back(co.n_rows());
    co.length.push_back(lp[p]);
    const float* xb = xp + p * c * len;
    for (int64_t k = 0; k < lp[p]; ++k) {
      if (time_channel_ < 0) {
        co.times.push_back(time_grid_[k]);
      } else {
        // Sum the gaps; later visits come at least the smallest real gap apart,
        // and times are rounded as the input writes them, so they stay increasing.
        const double u = (static_cast<double>(xb[time_channel_ * len + k]) + 1.0) / 2.0;
        double g = std::max(0.0, time_transform_.inverse(u));
        // The first visit falls within the training range of first visits (day
        // 0 in a trial that counts from enrolment); later ones keep the min gap.
        g = k == 0 ? std::min(g, max_first_time_) : std::max(g, min_gap_);
        const double scale = std::pow(10.0, schema_.time_decimals);
        double t = std::round(((k > 0 ? co.times.back() : 0.0) + g) * scale) / scale;
        if (k > 0 && t <= co.times.back()) t = co.times.back() + 1.0 / scale;
        co.times.push_back(t);
      }
      for (int64_t i = 0; i < nv; ++i) {
        const Variable& v = schema_.variables[i];
        if ((v.observed_channel >= 0 && !(xb[v.observed_channel * len + k] > 0.f)) ||
            (v.group_channel >= 0 && !(xb[v.group_channel * len + k] > 0.f))) {
          co.cells.push_back(kMissing);
          continue;
        }
        if (v.type == VarType::kReal) {
          const double u = (static_cast<double>(xb[v.value_offset * len + k]) + 1.0) / 2.0;
          co.cells.push_back(real_[i].inverse(u));
        } else {
          co.cells.push_back(static_cast<double>(cp[i][p * len + k]));
        }
      }
    }
  }
  if (opt.hold_static) hold_static_values(co, schema_);
  return co;
}

void hold_static_values(Cohort& co, const Schema& schema) {
  std::vector<double> vals;
  for (int64_t i = 0; i < co.n_vars; ++i) {
    const Variable& v = schema.variables[i];
    if (!v.is_static) continue;
    for (int64_t p = 0; p < co.n_patients(); ++p) {
      vals.clear();
      for (int64_t k = 0; k < co.length[p]; ++k) {
        const double x = co.cell(co.start[p] + k, i);
        if (!is_missing(x)) vals.push_back(x);
      }
      double value = kMissing;
      if (!vals.empty() && 2 * static_cast<int64_t>(vals.size()) >= co.length[p]) {
        std::sort(vals.begin(), vals.end());
        if (v.type == VarType::kReal) {
          value = vals[vals.size() / 2];
        } else {  // mode; ties go to the lower label
          size_t best = 0, run = 0;
          for (size_t q = 0; q < vals.size(); ++q) {
            run = (q > 0 && vals[q] == vals[q - 1]) ? run + 1 : 1;
            if (run > best) {
              best = run;
              value = vals[q];
            }
          }
        }
      }
      for (int64_t k = 0; k < co.length[p]; ++k)
        co.cells[(co.start[p] + k) * co.n_vars + i] = value;
    }
  }
}

json Encoder::to_json() const {
  json reals = json::array();
  for (size_t i = 0; i < real_.size(); ++i) {
    const auto& t = real_[i];
    reals.push_back({{"variable", schema_.variables[i].name},
                     {"kind", to_string(t.kind)},
                     {"lambda", t.lambda},
                     {"shift", t.shift},
                     {"min", t.min},
                     {"range", t.range},
                     {"tail", t.tail},
                     {"bulk_lo", t.bulk_lo},
                     {"bulk_hi", t.bulk_hi}});
  }
  return {{"schema", schema_.to_json()},
          {"working_length", working_length_},
          {"real_transforms", reals},
          {"time_grid", time_grid_},
          {"length_counts", length_counts_},
          {"time_channel", time_channel_},
          {"time_transform",
           {{"kind", to_string(time_transform_.kind)},
            {"lambda", time_transform_.lambda},
            {"shift", time_transform_.shift},
            {"min", time_transform_.min},
            {"range", time_transform_.range},
            {"tail", time_transform_.tail},
            {"bulk_lo", time_transform_.bulk_lo},
            {"bulk_hi", time_transform_.bulk_hi}}},
          {"min_gap", min_gap_},
          {"max_first_time", max_first_time_}};
}

namespace {

// The robust spread's parameters; files without them used plain min-max.
void read_spread(const json& j, RealTransform& t) {
  t.tail = j.value("tail", 0.0);
  t.bulk_lo = j.value("bulk_lo", 0.0);
  t.bulk_hi = j.value("bulk_hi", 1.0);
  if (!(t.tail >= 0 && t.tail < 0.5 && t.bulk_lo >= 0 && t.bulk_lo < t.bulk_hi && t.bulk_hi <= 1))
    throw InputError("checkpoint: a real transform's spread parameters are inconsistent");
}

}  // namespace

Encoder Encoder::from_json(const json& j) {
  Encoder e;
  try {
    e.schema_ = Schema::from_json(j.at("schema"), "checkpoint schema");
    e.working_length_ = j.at("working_length").get<int64_t>();
    for (const auto& jr : j.at("real_transforms")) {
      RealTransform t;
      t.kind = power_kind_from_string(jr.at("kind").get<std::string>());
      t.lambda = jr.at("lambda").get<double>();
      t.shift = jr.at("shift").get<double>();
      t.min = jr.at("min").get<double>();
      t.range = jr.at("range").get<double>();
      read_spread(jr, t);
      e.real_.push_back(t);
    }
    e.time_grid_ = j.at("time_grid").get<std::vector<double>>();
    e.length_counts_ = j.at("length_counts").get<std::vector<int64_t>>();
    e.time_channel_ = j.value("time_channel", int64_t{-1});
    if (e.time_channel_ >= 0) {
      const auto& jt = j.at("time_transform");
      e.time_transform_.kind = power_kind_from_string(jt.at("kind").get<std::string>());
      e.time_transform_.lambda = jt.at("lambda").get<double>();
      e.time_transform_.shift = jt.at("shift").get<double>();
      e.time_transform_.min = jt.at("min").get<double>();
      e.time_transform_.range = jt.at("range").get<double>();
      read_spread(jt, e.time_transform_);
      e.min_gap_ = j.at("min_gap").get<double>();
      e.max_first_time_ = j.value("max_first_time", 0.0);
      if (e.time_channel_ != e.schema_.n_channels)
        throw InputError("checkpoint: time channel index is inconsistent");
    }
  } catch (const json::exception& ex) {
    throw InputError(std::string("checkpoint: malformed encoder: ") + ex.what());
  }
  if (e.real_.size() != e.schema_.variables.size() ||
      static_cast<int64_t>(e.time_grid_.size()) != e.working_length_ ||
      static_cast<int64_t>(e.length_counts_.size()) != e.working_length_)
    throw InputError("checkpoint: encoder sizes are inconsistent");
  return e;
}

}  // namespace healthgym
