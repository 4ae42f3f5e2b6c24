#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/evaluate.hpp"

namespace healthgym::cli {

namespace {

std::string show(const nlohmann::json& j) {
  if (!j.is_number()) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", j.get<double>());
  return buf;
}

}  // namespace

Action register_evaluate(CLI::App& app) {
  struct Opts {
    EvaluateConfig cfg;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "evaluate",
      "Compare a synthetic cohort with the real one it was trained on (and a real holdout the "
      "model never saw): fidelity, utility and privacy, as DIR/report.json and DIR/report.html.");
  auto& c = o->cfg;
  sub->add_option("--real", c.real_path, "The real training cohort (CSV)")->required();
  sub->add_option("--synthetic", c.synthetic_path, "The synthetic cohort (CSV, same columns)")
      ->required();
  sub->add_option("--holdout", c.holdout_path,
                  "Real patients the model never saw: enables membership inference, distance "
                  "to closest record shares and the outcome AUROC");
  sub->add_option("--id", c.id_column, "Column naming the patient");
  sub->add_option("--time", c.time_column, "Column giving the time step");
  sub->add_option("--schema", c.schema_path, "Schema JSON (default: inferred from --real)");
  sub->add_option("--outcome", c.outcome,
                  "A static binary/categorical variable (e.g. in_hospital_death) to predict from "
                  "the first steps: AUROC trained on synthetic vs on real, tested on --holdout");
  sub->add_option("--outcome-steps", c.outcome_steps,
                  "Steps fed to the outcome model (0 = half the length)")
      ->capture_default_str();
  sub->add_option("--out", c.out_dir, "Directory for report.json and report.html")->required();
  sub->add_option("--seed", c.seed, "Seed for the classifiers and subsampling")
      ->capture_default_str();
  sub->add_option("--repeats", c.repeats, "Repetitions of the discriminative score")
      ->capture_default_str();
  sub->add_option("--classifier-epochs", c.classifier_epochs,
                  "Training passes for each GRU classifier/predictor")
      ->capture_default_str();
  add_threads_option(sub, &o->threads);
  return [o] {
    apply_threads(o->threads);
    StatusLine status;
    const auto report = evaluate(o->cfg, [&](const EvaluateProgress& p) {
      char buf[120];
      std::snprintf(buf, sizeof buf, "evaluate: %s (%.0f%%)", p.stage.c_str(), 100 * p.fraction);
      status.update(buf, false);
    });
    status.finish();
    const auto& s = report.at("summary");
    std::cout << "fidelity   mean KS " << show(s["mean_ks"]) << ", mean W1/IQR "
              << show(s["mean_wasserstein"]) << ", mean TVD " << show(s["mean_tvd"])
              << ", missing-rate diff " << show(s["missing_rate_mad"]) << "\n"
              << "           correlation diff " << show(s["corr_mad"]) << " (trend "
              << show(s["trend_corr_mad"]) << ", cycle " << show(s["cycle_corr_mad"])
              << "), autocorrelation diff " << show(s["acf_mad"]) << ", static violations "
              << show(s["static_violation_rate"]) << "\n";
    if (s.contains("real_halves")) {
      const auto& h = s["real_halves"];
      std::cout << "           two real halves (the floor): mean KS " << show(h["mean_ks"])
                << ", missing-rate diff " << show(h["missing_rate_mad"]) << ", correlation diff "
                << show(h["corr_mad"]) << " (trend " << show(h["trend_corr_mad"]) << ", cycle "
                << show(h["cycle_corr_mad"]) << "), autocorrelation diff " << show(h["acf_mad"])
                << "\n";
    }
    std::cout << "utility    discriminative " << show(s["discriminative"]["mean"]) << " +/- "
              << show(s["discriminative"]["ci95"]) << " (0 is best), predictive MAE synthetic "
              << show(s["predictive"]["synthetic_mae"]) << " vs real "
              << show(s["predictive"]["real_mae"]) << "\n";
    if (s.contains("outcome_auroc"))
      std::cout << "           outcome AUROC trained on synthetic "
                << show(s["outcome_auroc"]["tstr"]) << " vs real "
                << show(s["outcome_auroc"]["trtr"]) << "\n";
    std::cout << "privacy    exact copies " << show(s["exact_copies"])
              << ", share closer to training " << show(s["dcr_share_train"])
              << " (0.5 ideal), membership AUC " << show(s["mia_auc"]) << " (0.5 ideal)\n";
    for (const auto& n : report.at("notes")) std::cout << "note: " << n.get<std::string>() << "\n";
    std::cout << "report: " << o->cfg.out_dir << "/report.html\n";
  };
}

}  // namespace healthgym::cli
