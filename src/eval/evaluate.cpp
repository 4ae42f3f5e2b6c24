#include "healthgym/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include "healthgym/atomic_file.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

void EvaluateConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError(msg);
  };
  need(!real_path.empty(), "--real is required");
  need(!synthetic_path.empty(), "--synthetic is required");
  need(!out_dir.empty(), "--out is required (a directory for report.json and report.html)");
  need(!id_column.empty() || !schema_path.empty(), "--id is required (or give --schema)");
  need(!time_column.empty() || !schema_path.empty(), "--time is required (or give --schema)");
  need(repeats >= 1, "--repeats must be >= 1, is " + std::to_string(repeats));
  need(classifier_epochs >= 1, "--classifier-epochs must be >= 1");
  need(outcome_steps >= 0, "--outcome-steps must be >= 0 (0 = half the length)");
  need(device == "cpu", "evaluate runs on the CPU; --device '" + device + "' is not supported");
}

namespace {

// Reads a cohort that should share the real data's columns. Static flags are
// relaxed so a synthetic cohort whose statics drift still loads: that drift is
// measured, not refused.
Cohort load_like(const std::string& path, const Schema& schema, const std::string& what) {
  const CsvTable table = read_csv(path);
  std::set<std::string> want(schema.columns.begin(), schema.columns.end());
  std::set<std::string> have(table.header.begin(), table.header.end());
  std::string missing, extra;
  for (const auto& c : want)
    if (!have.count(c)) missing += (missing.empty() ? "'" : ", '") + c + "'";
  for (const auto& c : have)
    if (!want.count(c)) extra += (extra.empty() ? "'" : ", '") + c + "'";
  if (!missing.empty() || !extra.empty())
    throw InputError(path + ":1: the " + what + " cohort's columns differ from the real data's" +
                     (missing.empty() ? "" : ": missing " + missing) +
                     (extra.empty() ? "" : "; not in the real data: " + extra));
  Schema relaxed = schema;
  for (auto& v : relaxed.variables) v.is_static = false;
  return load_cohort(table, relaxed);
}

double mean_finite(const std::vector<double>& xs) {
  double s = 0;
  int n = 0;
  for (double x : xs)
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  return n ? s / n : std::nan("");
}

// Undefined numbers are null in the report, in memory as on disk.
json finite_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

double number(const json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_number()) return std::nan("");
  return j.at(key).get<double>();
}

// The fidelity numbers of the summary, from fidelity_report's sections.
json fidelity_summary(const json& fidelity) {
  std::vector<double> ks, w, tvd, miss;
  for (const auto& v : fidelity.at("variables")) {
    if (v.contains("ks")) ks.push_back(number(v, "ks"));
    if (v.contains("wasserstein_iqr")) w.push_back(number(v, "wasserstein_iqr"));
    if (v.contains("tvd")) tvd.push_back(number(v, "tvd"));
    miss.push_back(number(v, "missing_rate_diff"));
  }
  json summary;
  summary["mean_ks"] = finite_or_null(mean_finite(ks));
  summary["mean_wasserstein"] = finite_or_null(mean_finite(w));
  summary["mean_tvd"] = finite_or_null(mean_finite(tvd));
  summary["missing_rate_mad"] = finite_or_null(mean_finite(miss));
  summary["corr_mad"] = finite_or_null(number(fidelity.at("correlation"), "mad"));
  summary["trend_corr_mad"] = finite_or_null(number(fidelity.at("trend_correlation"), "mad"));
  summary["cycle_corr_mad"] = finite_or_null(number(fidelity.at("cycle_correlation"), "mad"));
  summary["trend_corr_mad_all_pairs"] =
      finite_or_null(number(fidelity.at("trend_correlation"), "mad_all_pairs"));
  summary["cycle_corr_mad_all_pairs"] =
      finite_or_null(number(fidelity.at("cycle_correlation"), "mad_all_pairs"));
  summary["acf_mad"] = finite_or_null(number(fidelity.at("autocorrelation"), "mad"));
  return summary;
}

// Fidelity of one random half of the real patients against the other: what two
// real samples differ by, the floor each fidelity number is read against (each
// half has half the patients, so the floor is a little high for the whole
// cohort). Null below 4 patients.
json real_halves_fidelity(const Schema& schema, const Cohort& real, uint64_t seed) {
  const int64_t n = real.n_patients();
  if (n < 4) return nullptr;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed ^ 0x5eed4a1fULL);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int64_t> a(order.begin(), order.begin() + n / 2),
      b(order.begin() + n / 2, order.end());
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return eval::fidelity_report(schema, subset_patients(real, a), subset_patients(real, b));
}

}  // namespace

json evaluate(const EvaluateConfig& cfg, const EvaluateCallback& progress) {
  cfg.validate();
  namespace fs = std::filesystem;
  make_directories(cfg.out_dir);
  const std::string json_path = (fs::path(cfg.out_dir) / "report.json").string();
  const std::string html_path = (fs::path(cfg.out_dir) / "report.html").string();
  check_writable(json_path);

  auto report_progress = [&](const std::string& stage, double f) {
    if (progress) progress({stage, f});
  };
  report_progress("reading cohorts", 0.0);
  LoadedData real = load_data(cfg.real_path, cfg.id_column, cfg.time_column, cfg.schema_path);
  const Schema& schema = real.schema;
  Cohort synthetic = load_like(cfg.synthetic_path, schema, "synthetic");
  std::optional<Cohort> holdout;
  if (!cfg.holdout_path.empty()) holdout = load_like(cfg.holdout_path, schema, "holdout");
  if (!cfg.outcome.empty()) {
    const long i = schema.variable_index(cfg.outcome);
    if (i < 0) throw UsageError("--outcome '" + cfg.outcome + "' is not a variable of the data");
  }

  json notes = json::array();
  report_progress("fidelity", 0.05);
  json fidelity = eval::fidelity_report(schema, real.cohort, synthetic);
  report_progress("fidelity of two real halves", 0.08);
  const json real_halves = real_halves_fidelity(schema, real.cohort, cfg.seed);

  // Utility and privacy work on the design tensor of an encoder fitted on the
  // real data, long enough for every cohort.
  int64_t len = std::max(real.cohort.max_length(), synthetic.max_length());
  if (holdout) len = std::max(len, holdout->max_length());
  Encoder encoder = Encoder::fit(schema, real.cohort, len, 1e-3, TimeMode::kAuto);

  eval::UtilityOptions uo;
  uo.seed = cfg.seed;
  uo.repeats = cfg.repeats;
  uo.epochs = cfg.classifier_epochs;
  uo.outcome = cfg.outcome;
  uo.outcome_steps = cfg.outcome_steps;
  uo.progress = [&](const std::string& stage, double f) { report_progress(stage, 0.1 + 0.8 * f); };
  json utility = eval::utility_report(encoder, real.cohort, synthetic,
                                      holdout ? &*holdout : nullptr, uo, &notes);
  report_progress("privacy", 0.9);
  json privacy =
      eval::privacy_report(encoder, real.cohort, synthetic, holdout ? &*holdout : nullptr, &notes);

  // The summary: one number per question, each from the sections below it.
  json summary = fidelity_summary(fidelity);
  summary["static_violation_rate"] =
      finite_or_null(number(fidelity.at("static_violation"), "rate"));
  if (!real_halves.is_null()) summary["real_halves"] = fidelity_summary(real_halves);
  const json& disc = utility.at("discriminative");
  summary["discriminative"] = {{"mean", finite_or_null(number(disc, "mean"))},
                               {"ci95", finite_or_null(number(disc, "ci95"))}};
  const json& pred = utility.at("predictive");
  summary["predictive"] = {{"synthetic_mae", finite_or_null(number(pred, "synthetic_mae"))},
                           {"real_mae", finite_or_null(number(pred, "real_mae"))}};
  if (!cfg.outcome.empty()) {
    const json& oc = utility.at("outcome");
    summary["outcome_auroc"] = {
        {"tstr", finite_or_null(oc.is_object() ? number(oc, "tstr") : std::nan(""))},
        {"trtr", finite_or_null(oc.is_object() ? number(oc, "trtr") : std::nan(""))}};
  }
  summary["exact_copies"] = privacy.at("exact_copies");
  summary["dcr_share_train"] = finite_or_null(number(privacy.at("dcr"), "share_closer_to_train"));
  summary["dcr_share_train_ci95"] =
      finite_or_null(number(privacy.at("dcr"), "share_closer_to_train_ci95"));
  summary["mia_auc"] = finite_or_null(number(privacy, "mia_auc"));
  summary["mia_auc_ci95"] = finite_or_null(number(privacy, "mia_auc_ci95"));
  summary["mia_p_value"] = finite_or_null(number(privacy, "mia_p_value"));

  json report;
  report["format"] = "healthgym-evaluation";
  report["version"] = 1;
  report["inputs"] = {
      {"real", cfg.real_path},
      {"synthetic", cfg.synthetic_path},
      {"holdout", cfg.holdout_path.empty() ? json(nullptr) : json(cfg.holdout_path)},
      {"n_real", real.cohort.n_patients()},
      {"n_synthetic", synthetic.n_patients()},
      {"n_holdout", holdout ? json(holdout->n_patients()) : json(nullptr)},
      {"outcome", cfg.outcome.empty() ? json(nullptr) : json(cfg.outcome)},
      {"seed", cfg.seed}};
  report["summary"] = summary;
  report["notes"] = notes;
  report["fidelity"] = fidelity;
  report["utility"] = utility;
  report["privacy"] = privacy;

  report_progress("writing report", 0.97);
  // Both files are complete or absent: each is written beside and renamed.
  const std::string html = eval::render_html(report);
  write_text_atomically(json_path, report.dump(2) + "\n");
  write_text_atomically(html_path, html);
  report_progress("done", 1.0);
  return report;
}

}  // namespace healthgym
