// Privacy of a synthetic cohort: verbatim copies of training patients, distance
// to the closest record (DCR) against training vs holdout patients, and a
// distance-based membership-inference attack.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include "healthgym/evaluate.hpp"
#include "healthgym/metrics.hpp"

namespace healthgym::eval {
namespace {

using nlohmann::json;
using torch::Tensor;

// The signature carries no seed; a fixed one keeps the subsampling reproducible.
constexpr uint64_t kSubsampleSeed = 0;
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
              {"train_median", number_or_null(median(dcr_train_v))},
              {"holdout_median", nullptr}};
  out["mia_auc"] = nullptr;
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
  // set is cut to the smaller's size before the two are compared.
  const int64_t n_train = train_x.size(0), n_holdout = holdout_x.size(0);
  const int64_t n_ref = std::min(n_train, n_holdout);
  Tensor train_idx = torch::arange(n_train), holdout_idx = torch::arange(n_holdout);
  Tensor near_train = dcr_train, near_holdout = dcr_holdout;
  if (n_train != n_holdout) {
    auto gen = at::detail::createCPUGenerator(kSubsampleSeed);
    const bool cut_train = n_train > n_holdout;
    Tensor& idx = cut_train ? train_idx : holdout_idx;
    idx = torch::randperm(idx.size(0), gen, torch::kLong).narrow(0, 0, n_ref);
    if (cut_train)
      near_train = nearest_distance(syn_x, train_x.index_select(0, idx));
    else
      near_holdout = nearest_distance(syn_x, holdout_x.index_select(0, idx));
    dcr["note"] = std::string("train (") + std::to_string(n_train) + ") and holdout (" +
                  std::to_string(n_holdout) + ") differ in size: share_closer_to_train and " +
                  "mia_auc use a seeded random subset of " + std::to_string(n_ref) + " " +
                  (cut_train ? "training" : "holdout") +
                  " patients; the train/holdout lists and medians use all";
  }
  if (n_syn > 0) {
    auto closer = (near_train < near_holdout).to(torch::kDouble) +
                  0.5 * (near_train == near_holdout).to(torch::kDouble);
    dcr["share_closer_to_train"] = number_or_null(closer.mean().item<double>());
  }
  out["dcr"] = dcr;

  // Membership inference: training patients should sit nearer the synthetic ones.
  if (n_syn > 0) {
    std::vector<double> scores;
    std::vector<int> labels;
    auto add = [&](const Tensor& x, const Tensor& idx, int label) {
      for (double d : to_vector(nearest_distance(x.index_select(0, idx), syn_x))) {
        scores.push_back(-d);
        labels.push_back(label);
      }
    };
    add(train_x, train_idx, 1);
    add(holdout_x, holdout_idx, 0);
    out["mia_auc"] = number_or_null(metrics::auroc(scores, labels));
  }
  return out;
}

}  // namespace healthgym::eval
