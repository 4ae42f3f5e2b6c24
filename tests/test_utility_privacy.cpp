// Utility (discriminative, predictive, outcome) and privacy (copies, DCR, MIA)
// on small slices of the bundled PBC data.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "healthgym/dataset.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/error.hpp"
#include "healthgym/evaluate.hpp"
#include "healthgym/metrics.hpp"
#include "test_util.hpp"

namespace healthgym {
namespace {

using nlohmann::json;
using testing::TempDir;

// The first 240 PBC patients, interleaved (ids follow enrolment, and later patients have
// shorter follow-up): even ones as the real training set, odd ones as a holdout.
struct Pbc {
  Schema schema;
  Cohort all;
  Cohort real, holdout;
  Encoder encoder;
};

// Patients from, from + stride, ... (count of them).
Cohort pick(const Cohort& co, int64_t from, int64_t count, int64_t stride) {
  Cohort out;
  out.n_vars = co.n_vars;
  for (int64_t p = from; p < from + count * stride; p += stride) {
    out.patient_ids.push_back(co.patient_ids[p]);
    out.start.push_back(out.n_rows());
    out.length.push_back(co.length[p]);
    for (int64_t k = 0; k < co.length[p]; ++k) {
      const int64_t r = co.start[p] + k;
      out.times.push_back(co.times[r]);
      for (int64_t i = 0; i < co.n_vars; ++i) out.cells.push_back(co.cell(r, i));
    }
  }
  return out;
}

const Pbc& pbc() {
  static const Pbc data = [] {
    TempDir dir;
    const std::string path =
        testing::head_patients(dir, testing::source_path("data/pbcseq.csv"), 240, "pbc.csv");
    LoadedData loaded = load_data(path, "id", "day", "");
    Pbc d;
    d.schema = loaded.schema;
    d.all = loaded.cohort;
    d.real = pick(d.all, 0, 120, 2);
    d.holdout = pick(d.all, 1, 120, 2);
    d.encoder = Encoder::fit(d.schema, d.real, 16, 1e-3);
    return d;
  }();
  return data;
}

// Patients of random lengths, values (within each real variable's observed
// range), labels and missingness: nothing like the real data but the columns.
Cohort noise_cohort(const Cohort& like, const Schema& schema, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> lo(schema.variables.size(), 0.0), hi(schema.variables.size(), 1.0);
  for (size_t i = 0; i < schema.variables.size(); ++i) {
    lo[i] = INFINITY;
    hi[i] = -INFINITY;
    for (int64_t r = 0; r < like.n_rows(); ++r) {
      const double v = like.cell(r, static_cast<int64_t>(i));
      if (is_missing(v)) continue;
      lo[i] = std::min(lo[i], v);
      hi[i] = std::max(hi[i], v);
    }
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Cohort co;
  co.n_vars = like.n_vars;
  for (int64_t p = 0; p < n; ++p) {
    co.patient_ids.push_back("noise" + std::to_string(p));
    co.start.push_back(co.n_rows());
    const int64_t len = 1 + static_cast<int64_t>(u(rng) * 16);
    co.length.push_back(len);
    for (int64_t k = 0; k < len; ++k) {
      co.times.push_back(static_cast<double>(k));
      for (size_t i = 0; i < schema.variables.size(); ++i) {
        const Variable& v = schema.variables[i];
        double value = kMissing;
        if (u(rng) < 0.5) {
          value = v.is_one_hot() ? std::floor(u(rng) * static_cast<double>(v.labels.size()))
                                 : lo[i] + u(rng) * (hi[i] - lo[i]);
        }
        co.cells.push_back(value);
      }
    }
  }
  return co;
}

eval::UtilityOptions small_options() {
  eval::UtilityOptions o;
  o.seed = 7;
  o.repeats = 3;
  o.epochs = 10;
  return o;
}

TEST(Privacy, CohortAgainstItselfIsAllCopies) {
  const Pbc& d = pbc();
  json notes = json::array();
  const json r = eval::privacy_report(d.encoder, d.real, d.real, &d.holdout, &notes);
  EXPECT_EQ(r["exact_copies"].get<int64_t>(), 120);
  EXPECT_DOUBLE_EQ(r["exact_copies_share"].get<double>(), 1.0);
  ASSERT_EQ(r["dcr"]["train"].size(), 120u);
  for (const auto& v : r["dcr"]["train"]) EXPECT_EQ(v.get<double>(), 0.0);
  EXPECT_EQ(r["dcr"]["train_median"].get<double>(), 0.0);
  ASSERT_EQ(r["dcr"]["holdout"].size(), 120u);
  EXPECT_GT(r["dcr"]["holdout_median"].get<double>(), 0.0);
  EXPECT_GT(r["dcr"]["share_closer_to_train"].get<double>(), 0.95);
  EXPECT_FALSE(r["dcr"].contains("note"));  // same sizes: no subsampling
  // Each synthetic patient counts 0 or 1 here: the interval is the binomial one.
  const double share = r["dcr"]["share_closer_to_train"].get<double>();
  EXPECT_NEAR(r["dcr"]["share_closer_to_train_ci95"].get<double>(),
              1.96 * std::sqrt(share * (1 - share) / 119), 1e-12);
  EXPECT_GT(r["mia_auc"].get<double>(), 0.95);
  EXPECT_NEAR(r["mia_auc_ci95"].get<double>(), 1.96 * r["mia_auc_se"].get<double>(), 1e-12);
  EXPECT_LT(r["mia_p_value"].get<double>(), 1e-6);  // copies: overwhelming evidence
  EXPECT_TRUE(notes.empty());
}

TEST(Privacy, NoiseHasNoCopies) {
  const Pbc& d = pbc();
  const Cohort noise = noise_cohort(d.real, d.schema, 80, 3);
  json notes = json::array();
  const json r = eval::privacy_report(d.encoder, d.real, noise, &d.holdout, &notes);
  EXPECT_EQ(r["exact_copies"].get<int64_t>(), 0);
  ASSERT_EQ(r["dcr"]["train"].size(), 80u);
  for (const auto& v : r["dcr"]["train"]) EXPECT_GT(v.get<double>(), 0.0);
  const double mia = r["mia_auc"].get<double>();
  EXPECT_GE(mia, 0.0);
  EXPECT_LE(mia, 1.0);
}

TEST(Privacy, WithoutHoldoutFieldsAreNullWithANote) {
  const Pbc& d = pbc();
  json notes = json::array();
  const json r = eval::privacy_report(d.encoder, d.real, d.real, nullptr, &notes);
  EXPECT_EQ(r["exact_copies"].get<int64_t>(), 120);
  EXPECT_TRUE(r["dcr"]["holdout"].is_null());
  EXPECT_TRUE(r["dcr"]["share_closer_to_train"].is_null());
  EXPECT_TRUE(r["dcr"]["holdout_median"].is_null());
  EXPECT_TRUE(r["mia_auc"].is_null());
  EXPECT_TRUE(r["mia_auc_ci95"].is_null() && r["mia_p_value"].is_null());
  EXPECT_TRUE(r["dcr"]["share_closer_to_train_ci95"].is_null());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].get<std::string>().find("holdout"), std::string::npos);
}

TEST(Privacy, UnequalHoldoutIsSubsampled) {
  const Pbc& d = pbc();
  const Cohort small_holdout = pick(d.all, 1, 50, 2);
  json notes = json::array();
  const json r = eval::privacy_report(d.encoder, d.real, d.real, &small_holdout, &notes);
  ASSERT_TRUE(r["dcr"].contains("note"));
  EXPECT_NE(r["dcr"]["note"].get<std::string>().find("50"), std::string::npos);
  EXPECT_EQ(r["dcr"]["train"].size(), 120u);
  EXPECT_EQ(r["dcr"]["holdout"].size(), 120u);
  // Each copy is at distance 0 from itself, in a 50-patient subset of the training
  // set with probability 50/120; otherwise it is about as near the subset as the
  // 50 holdout patients: ~0.7 in expectation over the subsets.
  const double share = r["dcr"]["share_closer_to_train"].get<double>();
  EXPECT_GT(share, 0.55);
  EXPECT_LT(share, 0.85);
  EXPECT_GT(r["mia_auc"].get<double>(), 0.95);
}

// A larger holdout counts as subsets of the training set's size: copies of the
// training patients are at distance 0 from them, so training is always nearer.
TEST(Privacy, LargerHoldoutIsTheSubsetSide) {
  const Pbc& d = pbc();
  const Cohort small_train = pick(d.all, 0, 40, 2);
  json notes = json::array();
  const json r = eval::privacy_report(d.encoder, small_train, small_train, &d.holdout, &notes);
  ASSERT_TRUE(r["dcr"].contains("note"));
  EXPECT_NE(r["dcr"]["note"].get<std::string>().find("subset of 40 holdout"), std::string::npos);
  EXPECT_DOUBLE_EQ(r["dcr"]["share_closer_to_train"].get<double>(), 1.0);
  EXPECT_EQ(r["dcr"]["share_closer_to_train_ci95"].get<double>(), 0.0);
  EXPECT_GT(r["mia_auc"].get<double>(), 0.95);
}

TEST(Metrics, SubsetHitProbabilityKnownAnswers) {
  EXPECT_DOUBLE_EQ(metrics::subset_hit_probability(10, 0, 4), 0.0);
  EXPECT_DOUBLE_EQ(metrics::subset_hit_probability(10, 3, 0), 0.0);
  EXPECT_NEAR(metrics::subset_hit_probability(4, 1, 2), 0.5, 1e-12);
  EXPECT_NEAR(metrics::subset_hit_probability(5, 2, 2), 0.7, 1e-12);  // 1 - C(3,2)/C(5,2)
  EXPECT_NEAR(metrics::subset_hit_probability(120, 1, 50), 50.0 / 120, 1e-12);
  EXPECT_DOUBLE_EQ(metrics::subset_hit_probability(6, 3, 4), 1.0);  // 3 unmarked < 4 drawn
  EXPECT_DOUBLE_EQ(metrics::subset_hit_probability(7, 7, 7), 1.0);
  EXPECT_THROW(metrics::subset_hit_probability(5, 6, 2), std::invalid_argument);
  EXPECT_THROW(metrics::subset_hit_probability(5, 1, 6), std::invalid_argument);
}

TEST(Utility, CohortAgainstItselfIsIndistinguishable) {
  const Pbc& d = pbc();
  json notes = json::array();
  std::vector<double> fractions;
  eval::UtilityOptions o = small_options();
  o.progress = [&](const std::string&, double f) { fractions.push_back(f); };
  const json r = eval::utility_report(d.encoder, d.real, d.real, nullptr, o, &notes);
  const json& disc = r["discriminative"];
  EXPECT_EQ(disc["scores"].size(), 3u);
  EXPECT_LT(disc["mean"].get<double>(), 0.15);
  EXPECT_TRUE(disc["ci95"].is_number());
  EXPECT_EQ(disc["hidden"].get<int64_t>(), std::max(4, d.encoder.schema().n_channels / 2));
  EXPECT_EQ(disc["epochs"].get<int64_t>(), 10);
  const json& pred = r["predictive"];
  EXPECT_EQ(pred["test_set"], "real");
  const double real_mae = pred["real_mae"].get<double>();
  EXPECT_TRUE(std::isfinite(real_mae));
  EXPECT_GT(real_mae, 0.0);
  // Same data, architecture, epochs and seed: the same model.
  EXPECT_DOUBLE_EQ(pred["synthetic_mae"].get<double>(), real_mae);
  EXPECT_TRUE(r["outcome"].is_null());
  EXPECT_TRUE(notes.empty());
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
}

// Without copies there is no twin to memorise: other real patients stay near 0
// even with longer training.
TEST(Utility, OtherRealPatientsAreIndistinguishable) {
  const Pbc& d = pbc();
  eval::UtilityOptions o = small_options();
  o.epochs = 30;
  const json r = eval::utility_report(d.encoder, d.real, d.holdout, nullptr, o, nullptr);
  EXPECT_LT(r["discriminative"]["mean"].get<double>(), 0.15) << r["discriminative"].dump();
}

TEST(Utility, NoiseIsDistinguishable) {
  const Pbc& d = pbc();
  const Cohort noise = noise_cohort(d.real, d.schema, 120, 5);
  eval::UtilityOptions o = small_options();
  o.epochs = 30;
  const json r = eval::utility_report(d.encoder, d.real, noise, &d.holdout, o, nullptr);
  EXPECT_GT(r["discriminative"]["mean"].get<double>(), 0.35) << r["discriminative"].dump();
  EXPECT_EQ(r["predictive"]["test_set"], "holdout");
  // A next-step model trained on noise transfers worse than one trained on real data.
  EXPECT_GT(r["predictive"]["synthetic_mae"].get<double>(),
            r["predictive"]["real_mae"].get<double>());
}

TEST(Utility, IsReproducible) {
  const Pbc& d = pbc();
  eval::UtilityOptions o = small_options();
  o.repeats = 2;
  o.epochs = 3;
  const Cohort noise = noise_cohort(d.real, d.schema, 60, 9);
  const json a = eval::utility_report(d.encoder, d.real, noise, nullptr, o, nullptr);
  const json b = eval::utility_report(d.encoder, d.real, noise, nullptr, o, nullptr);
  EXPECT_EQ(a.dump(), b.dump());
}

TEST(Utility, OutcomeMustBeAStaticLabel) {
  const Pbc& d = pbc();
  eval::UtilityOptions o = small_options();
  for (const std::string name : {"no_such_column", "bili", "hepato", "age"}) {
    o.outcome = name;
    try {
      eval::utility_report(d.encoder, d.real, d.real, &d.holdout, o, nullptr);
      ADD_FAILURE() << name << " was accepted as an outcome";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(Utility, OutcomeAuroc) {
  const Pbc& d = pbc();
  ASSERT_TRUE(d.schema.variables[d.schema.variable_index("status")].is_static);
  eval::UtilityOptions o = small_options();
  o.repeats = 2;
  o.epochs = 10;
  o.outcome = "status";
  json notes = json::array();
  const json r = eval::utility_report(d.encoder, d.real, d.real, &d.holdout, o, &notes);
  const json& out = r["outcome"];
  EXPECT_EQ(out["variable"], "status");
  EXPECT_EQ(out["positive_label"],
            d.schema.variables[d.schema.variable_index("status")].labels.back());
  EXPECT_EQ(out["steps"].get<int64_t>(), 8);
  for (const char* k : {"tstr", "trtr"}) {
    ASSERT_TRUE(out[k].is_number()) << k;
    EXPECT_GE(out[k].get<double>(), 0.0);
    EXPECT_LE(out[k].get<double>(), 1.0);
  }
  // Trained on the same data with the same seed: the same model.
  EXPECT_DOUBLE_EQ(out["tstr"].get<double>(), out["trtr"].get<double>());

  json no_holdout_notes = json::array();
  const json n = eval::utility_report(d.encoder, d.real, d.real, nullptr, o, &no_holdout_notes);
  EXPECT_TRUE(n["outcome"]["tstr"].is_null());
  EXPECT_TRUE(n["outcome"]["trtr"].is_null());
  ASSERT_EQ(no_holdout_notes.size(), 1u);
  EXPECT_EQ(no_holdout_notes[0].get<std::string>().rfind("outcome AUROC needs --holdout", 0), 0u);
}

}  // namespace
}  // namespace healthgym
