// Privacy of a synthetic cohort: verbatim copies of training patients, distance
// to the closest record (DCR) against training vs holdout patients, and a
// distance-based membership-inference attack.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "healthgym/evaluate.hpp"
#include "healthgym/metrics.hpp"

namespace healthgym::eval {
namespace {

using nlohmann::json;
using torch::Tensor;

// Elements of one [chunk, reference] distance block: bounds memory at 32 MB.
constexpr int64_t kBlockElements = int64_t{1} << 22;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

void add_note(json* notes, const std::string& note) {
  if (notes) notes->push_back(note);
}

// One definition of a copy for evaluate and for sample's guard: the same record
// as the CSV writes it (record_fingerprints), the id left out.
int64_t count_exact_copies(const Schema& schema, const Cohort& train, const Cohort& synthetic) {
  const auto known = record_fingerprints(train, schema);
  const std::unordered_set<uint64_t> seen(known.begin(), known.end());
  int64_t copies = 0;
  for (uint64_t f : record_fingerprints(synthetic, schema)) copies += seen.count(f) ? 1 : 0;
  return copies;
}

// Patients as flat vectors in the encoded space, padding zeroed: [N, C*L] double.
Tensor flat_encoded(const Encoder& encoder, const Cohort& cohort) {
  EncodedCohort e = encoder.encode(cohort);
  auto valid = (torch::arange(encoder.working_length()).unsqueeze(0) < e.lengths.unsqueeze(1))
                   .to(torch::kFloat);
  return (e.x * valid.unsqueeze(1)).reshape({e.x.size(0), -1}).to(torch::kDouble);
}

// Distance from each row of a to its nearest row of b. cdist's matrix-product
// form finds the neighbour fast; its distance is then recomputed directly, so
// that an exact copy gives exactly 0.
Tensor nearest_distance(const Tensor& a, const Tensor& b) {
  const int64_t na = a.size(0), nb = b.size(0);
  if (nb == 0) return torch::full({na}, kNaN, torch::kDouble);
  std::vector<Tensor> out;
  const int64_t chunk = std::max<int64_t>(1, kBlockElements / nb);
  for (int64_t s = 0; s < na; s += chunk) {
    auto ac = a.narrow(0, s, std::min(chunk, na - s));
    auto nearest = torch::cdist(ac, b).argmin(1);
    out.push_back((ac - b.index_select(0, nearest)).norm(2, {1}));
  }
  return out.empty() ? torch::empty({0}, torch::kDouble) : torch::cat(out);
}

// For each row i of a: how many rows of b lie nearer than limit[i], and how many
// at limit[i] (within a rounding tolerance of cdist's matrix-product form).
std::pair<std::vector<int64_t>, std::vector<int64_t>> count_nearer(const Tensor& a, const Tensor& b,
                                                                   const Tensor& limit) {
  const int64_t na = a.size(0), nb = b.size(0);
  std::vector<int64_t> lt, eq;
  const int64_t chunk = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, nb));
  for (int64_t s = 0; s < na; s += chunk) {
    const int64_t c = std::min(chunk, na - s);
    const auto d = torch::cdist(a.narrow(0, s, c), b);
    const auto lim = limit.narrow(0, s, c).unsqueeze(1);
    const auto tol = 1e-6 * torch::clamp_min(lim, 1.0);
    const auto below = (d < lim - tol).sum(1).contiguous();
    const auto at = ((d - lim).abs() <= tol).sum(1).contiguous();
    for (int64_t i = 0; i < c; ++i) {
      lt.push_back(below[i].item<int64_t>());
      eq.push_back(at[i].item<int64_t>());
    }
  }
  return {lt, eq};
}

std::vector<double> to_vector(const Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double median(const std::vector<double>& x) { return x.empty() ? kNaN : metrics::quantile(x, 0.5); }

}  // namespace

json privacy_report(const Encoder& encoder, const Cohort& train, const Cohort& synthetic,
                    const Cohort* holdout, json* notes) {
  json out;
  const int64_t n_syn = synthetic.n_patients();
  const int64_t copies = count_exact_copies(encoder.schema(), train, synthetic);
  out["exact_copies"] = copies;
  out["exact_copies_share"] =
      number_or_null(n_syn > 0 ? static_cast<double>(copies) / n_syn : kNaN);

  const Tensor train_x = flat_encoded(encoder, train);
  const Tensor syn_x = flat_encoded(encoder, synthetic);
  const Tensor dcr_train = nearest_distance(syn_x, train_x);
  const std::vector<double> dcr_train_v = to_vector(dcr_train);
  json dcr = {{"train", dcr_train_v},
              {"holdout", nullptr},
              {"share_closer_to_train", nullptr},
              {"share_closer_to_train_ci95", nullptr},
              {"train_median", number_or_null(median(dcr_train_v))},
              {"holdout_median", nullptr}};
  for (const char* k : {"mia_auc", "mia_auc_se", "mia_auc_ci95", "mia_p_value"}) out[k] = nullptr;
  if (!holdout) {
    add_note(notes,
             "privacy: the DCR train/holdout comparison and the membership-inference AUC "
             "need --holdout (real patients not used for training)");
    out["dcr"] = dcr;
    return out;
  }

  const Tensor holdout_x = flat_encoded(encoder, *holdout);
  const Tensor dcr_holdout = nearest_distance(syn_x, holdout_x);
  const std::vector<double> dcr_holdout_v = to_vector(dcr_holdout);
  dcr["holdout"] = dcr_holdout_v;
  dcr["holdout_median"] = number_or_null(median(dcr_holdout_v));

  // Nearer neighbours are likelier among more patients, so the larger reference
  // set counts as a random subset of the smaller's size. The share is the exact
  // expectation over every such subset, from each synthetic patient's distances
  // to all of the larger set, rather than one drawn subset's: the draw added its
  // own noise, large when the smaller set is small (pbcseq holds out 62).
  const int64_t n_train = train_x.size(0), n_holdout = holdout_x.size(0);
  const int64_t n_ref = std::min(n_train, n_holdout);
  if (n_train != n_holdout) {
    const bool cut_train = n_train > n_holdout;
    dcr["note"] = std::string("train (") + std::to_string(n_train) + ") and holdout (" +
                  std::to_string(n_holdout) + ") differ in size: share_closer_to_train is " +
                  "the expectation over every subset of " + std::to_string(n_ref) + " " +
                  (cut_train ? "training" : "holdout") +
                  " patients; the train/holdout lists, medians and mia_auc use all";
  }
  if (n_syn > 0) {
    std::vector<double> closer;  // per synthetic patient: the chance training is nearer
    closer.reserve(static_cast<size_t>(n_syn));
    if (n_train == n_holdout) {
      for (int64_t i = 0; i < n_syn; ++i) {
        const double t = dcr_train_v[i], h = dcr_holdout_v[i];
        closer.push_back(t < h ? 1.0 : (t == h ? 0.5 : 0.0));
      }
    } else if (n_train > n_holdout) {
      // Training is nearer when the subset holds one of the training patients
      // nearer than the nearest holdout patient.
      const auto [lt, eq] = count_nearer(syn_x, train_x, dcr_holdout);
      for (int64_t i = 0; i < n_syn; ++i) {
        const double p_lt = metrics::subset_hit_probability(n_train, lt[i], n_ref);
        const double p_le = metrics::subset_hit_probability(n_train, lt[i] + eq[i], n_ref);
        closer.push_back(p_lt + 0.5 * (p_le - p_lt));
      }
    } else {
      // Training is nearer when the holdout subset misses every holdout patient
      // at or inside the nearest training distance.
      const auto [lt, eq] = count_nearer(syn_x, holdout_x, dcr_train);
      for (int64_t i = 0; i < n_syn; ++i) {
        const double p_lt = metrics::subset_hit_probability(n_holdout, lt[i], n_ref);
        const double p_le = metrics::subset_hit_probability(n_holdout, lt[i] + eq[i], n_ref);
        closer.push_back((1.0 - p_le) + 0.5 * (p_le - p_lt));
      }
    }
    // With its 95% interval over the synthetic patients: with pbcseq's 250 the
    // share moved by 0.07 between sampling seeds of one checkpoint.
    double sum = 0, ss = 0;
    for (double v : closer) sum += v;
    const double share = sum / static_cast<double>(n_syn);
    for (double v : closer) ss += (v - share) * (v - share);
    dcr["share_closer_to_train"] = number_or_null(share);
    dcr["share_closer_to_train_ci95"] = number_or_null(
        n_syn > 1
            ? 1.96 * std::sqrt(ss / static_cast<double>(n_syn - 1) / static_cast<double>(n_syn))
            : kNaN);
  }
  out["dcr"] = dcr;

  // Membership inference: training patients should sit nearer the synthetic ones.
  if (n_syn > 0) {
    std::vector<double> scores;
    std::vector<int> labels;
    auto add = [&](const Tensor& x, int label) {
      for (double d : to_vector(nearest_distance(x, syn_x))) {
        scores.push_back(-d);
        labels.push_back(label);
      }
    };
    // AUC does not depend on the classes' sizes: every patient counts.
    add(train_x, 1);
    add(holdout_x, 0);
    // One run's AUC moves by chance: with 2000 training and 1000 holdout patients
    // its standard error is about 0.011, so it comes with its 95% interval and the
    // p-value of "training patients sit no nearer than unseen ones".
    const metrics::AurocTest t = metrics::auroc_test(scores, labels);
    out["mia_auc"] = number_or_null(t.auc);
    out["mia_auc_se"] = number_or_null(t.se);
    out["mia_auc_ci95"] = number_or_null(1.96 * t.se);
    out["mia_p_value"] = number_or_null(t.p_greater);
  }
  return out;
}

}  // namespace healthgym::eval
