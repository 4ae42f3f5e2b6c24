#pragma once
// `healthgym evaluate`: fidelity, utility and privacy of a synthetic cohort
// against the real one it was trained on (and a real holdout, when given).
//
// Report JSON (report.json; stable keys, NaN written as null):
// {
//   "format": "healthgym-evaluation", "version": 1,
//   "inputs": {"real", "synthetic", "holdout" (path or null), "n_real", "n_synthetic",
//              "n_holdout", "outcome" (or null), "seed"},
//   "summary": {"mean_ks", "mean_wasserstein", "mean_tvd", "missing_rate_mad", "corr_mad",
//               "trend_corr_mad", "cycle_corr_mad" (pairs enough patients estimate),
//               "trend_corr_mad_all_pairs", "cycle_corr_mad_all_pairs", "acf_mad",
//               "static_violation_rate",
//               "discriminative": {"mean", "ci95"}, "predictive": {"synthetic_mae", "real_mae"},
//               "outcome_auroc": {"tstr", "trtr"} (only with an outcome),
//               "exact_copies", "dcr_share_train", "mia_auc",
//               "real_halves": {"mean_ks" .. "acf_mad"} (one random half of the real
//                              patients against the other: the floor; absent below 4)},
//   "notes": [strings: what could not be computed and why],
//   "fidelity": { see fidelity_report() },
//   "utility": { see utility_report() },
//   "privacy": { see privacy_report() }
// }
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "healthgym/cohort.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

struct EvaluateConfig {
  std::string real_path, synthetic_path, holdout_path;  // holdout optional
  std::string id_column, time_column;
  std::string schema_path;  // empty: inferred from the real data
  std::string outcome;      // a static binary/categorical variable, optional
  std::string out_dir;
  uint64_t seed = 0;
  int repeats = 5;                 // discriminative score repetitions
  int64_t classifier_epochs = 20;  // passes over the training split for each GRU
  int64_t outcome_steps = 0;       // first steps fed to the outcome model (0 = half)
  std::string device = "cpu";

  void validate() const;  // throws UsageError
};

struct EvaluateProgress {
  std::string stage;    // e.g. "fidelity", "discriminative 2/5"
  double fraction = 0;  // of the whole evaluation, 0..1
};
using EvaluateCallback = std::function<void(const EvaluateProgress&)>;

// Reads the three cohorts (the synthetic and holdout against the real data's
// schema), computes everything, writes out_dir/report.json and report.html
// atomically, and returns the report.
nlohmann::json evaluate(const EvaluateConfig& config, const EvaluateCallback& progress = {});

namespace eval {

// Fidelity, in clinical units. Returns:
// {
//   "variables": [{"name", "type", "static",
//       "ks", "wasserstein", "iqr", "wasserstein_iqr"   (reals; W1 divided by the real IQR,
//                                                        or by the real range if IQR is 0),
//       "tvd"                                           (binary/categorical),
//       "missing_rate_real", "missing_rate_synthetic", "missing_rate_diff",
//       "plot": {"kind": "histogram", "edges": [bins+1], "real": [density], "synthetic": [density]}
//            or {"kind": "bars", "labels": [...], "real": [share], "synthetic": [share]}}],
//   "lengths": {"ks", "real_mean", "synthetic_mean",
//               "plot": {"kind": "bars", "labels": ["1", ...], "real": [share], "synthetic":
//               [share]}},
//   "correlation": {"columns": [names; reals and "var=label" one-hot columns],
//                   "real": [[...]], "synthetic": [[...]], "mad"},
//   "trend_correlation": {"variables": [time-varying reals], "real", "synthetic",
//                         "patients_real", "patients_synthetic" (patients behind each
//                         coefficient), "min_patients", "pairs_scored", "pairs_defined",
//                         "mad" (pairs at least min_patients patients estimate in both
//                         cohorts: 20, or half the smaller cohort), "mad_all_pairs"},
//   "cycle_correlation": {same},
//   "autocorrelation": {"lags": [1..5], "variables": [{"name", "real": [5], "synthetic": [5]}],
//                       "mad"},
//   "static_violation": {"rate", "variables": {name: share of synthetic patients whose value
//                        changes}},
//   "trajectories": [{"name", "time": [steps], "real_mean", "real_q25", "real_q75",
//                     "synthetic_mean", "synthetic_q25", "synthetic_q75"}]  (reals; null where
//                     no patient is observed at that step),
//   "missingness": {"variables": [names], "real": [rate], "synthetic": [rate]}
// }
nlohmann::json fidelity_report(const Schema& schema, const Cohort& real, const Cohort& synthetic);

// Utility, on the encoded design tensors (the encoder fitted on the real data):
// {
//   "discriminative": {"scores": [|acc - 0.5| per repeat], "mean", "ci95", "hidden", "epochs"},
//   "predictive": {"synthetic_mae", "real_mae", "test_set": "holdout"|"real"},
//   "outcome": {"variable", "positive_label", "steps", "tstr", "trtr"} or null
// }
struct UtilityOptions {
  uint64_t seed = 0;
  int repeats = 5;
  int64_t epochs = 20;
  std::string outcome;        // empty: no outcome model
  int64_t outcome_steps = 0;  // 0 = half the working length
  std::function<void(const std::string& stage, double fraction)> progress;
};
nlohmann::json utility_report(const Encoder& encoder, const Cohort& real, const Cohort& synthetic,
                              const Cohort* holdout, const UtilityOptions& options,
                              nlohmann::json* notes);

// Privacy:
// {
//   "exact_copies": count of synthetic patients whose whole record (times and cells)
//                   equals a training patient's, "exact_copies_share",
//   "dcr": {"train": [per synthetic patient distance to nearest training patient],
//           "holdout": [... nearest holdout patient] or null,
//           "share_closer_to_train" or null (when the sets differ in size, the
//           expectation over every subset of the larger one of the smaller's size),
//           "train_median", "holdout_median", "note" (sizes differ)},
//   "mia_auc": AUC of -distance-to-nearest-synthetic telling training from holdout, or null
// }
// Distances are Euclidean in the encoded space (design tensor with padding zeroed).
nlohmann::json privacy_report(const Encoder& encoder, const Cohort& train, const Cohort& synthetic,
                              const Cohort* holdout, nlohmann::json* notes);

// One self-contained HTML page (opens offline) from a report.
std::string render_html(const nlohmann::json& report);

}  // namespace eval
}  // namespace healthgym
