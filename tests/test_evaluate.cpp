#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "healthgym/csv.hpp"
#include "healthgym/error.hpp"
#include "healthgym/evaluate.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

std::string write_table(const TempDir& dir, const std::string& name, const CsvTable& t) {
  std::string out;
  for (size_t c = 0; c < t.header.size(); ++c) out += (c ? "," : "") + csv_field(t.header[c]);
  out += "\n";
  for (const auto& row : t.rows) {
    for (size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + csv_field(row[c]);
    out += "\n";
  }
  return dir.write(name, out);
}

// Patients [from, to) of pbcseq as a table; with `parity` 0 or 1, only the
// even or odd ones among them (an interleaved split: pbcseq's later patients
// have shorter follow-up, so halves by position are genuinely different).
CsvTable pbc_patients(int from, int to, int parity = -1) {
  CsvTable all = read_csv(healthgym::testing::source_path("data/pbcseq.csv"));
  CsvTable t = all;
  t.rows.clear();
  std::string last;
  int k = -1;
  for (const auto& row : all.rows) {
    if (row[0] != last) {
      ++k;
      last = row[0];
    }
    if (k >= from && k < to && (parity < 0 || k % 2 == parity)) t.rows.push_back(row);
  }
  return t;
}

EvaluateConfig base_config(const TempDir& dir, const std::string& real, const std::string& syn) {
  EvaluateConfig c;
  c.real_path = real;
  c.synthetic_path = syn;
  c.id_column = "id";
  c.time_column = "day";
  c.out_dir = dir.file("report");
  c.repeats = 2;
  c.classifier_epochs = 8;
  return c;
}

double num(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

const std::vector<std::string> kReals = {"bili", "chol",     "albumin", "alk.phos",
                                         "ast",  "platelet", "protime"};

}  // namespace

TEST(Evaluate, CohortAgainstItself) {
  TempDir dir;
  const auto real = write_table(dir, "real.csv", pbc_patients(0, 120));
  const auto hold = write_table(dir, "hold.csv", pbc_patients(120, 240));
  auto c = base_config(dir, real, real);
  c.holdout_path = hold;
  const auto r = evaluate(c);
  const auto& s = r.at("summary");
  EXPECT_EQ(num(s["mean_ks"]), 0.0);
  EXPECT_EQ(num(s["mean_tvd"]), 0.0);
  EXPECT_EQ(num(s["missing_rate_mad"]), 0.0);
  EXPECT_NEAR(num(s["corr_mad"]), 0.0, 1e-12);
  EXPECT_NEAR(num(s["trend_corr_mad"]), 0.0, 1e-12);
  EXPECT_NEAR(num(s["cycle_corr_mad"]), 0.0, 1e-12);
  EXPECT_NEAR(num(s["acf_mad"]), 0.0, 1e-12);
  EXPECT_EQ(num(s["static_violation_rate"]), 0.0);
  EXPECT_EQ(num(s["exact_copies"]), 120.0);
  // Two halves of the real cohort differ a little: the floor beside each number.
  const auto& h = s["real_halves"];
  EXPECT_GT(num(h["mean_ks"]), 0.0);
  EXPECT_LT(num(h["mean_ks"]), 0.3);
  EXPECT_GE(num(h["cycle_corr_mad"]), 0.0);
  EXPECT_FALSE(h.contains("discriminative"));
  EXPECT_GT(num(s["mia_auc"]), 0.9);  // every training patient is at distance 0
  EXPECT_EQ(num(s["dcr_share_train"]), 1.0);
  // Files are written, and the JSON on disk is the report.
  const auto on_disk =
      nlohmann::json::parse(healthgym::testing::read_file(dir.file("report/report.json")));
  EXPECT_EQ(on_disk.at("summary").at("exact_copies"), s.at("exact_copies"));
  EXPECT_THAT(healthgym::testing::read_file(dir.file("report/report.html")),
              AllOf(HasSubstr("<html"), HasSubstr("(real halves: ")));
}

TEST(Evaluate, IndependentSplitLooksReal) {
  TempDir dir;
  const auto real = write_table(dir, "real.csv", pbc_patients(0, 312, 0));
  const auto syn = write_table(dir, "syn.csv", pbc_patients(0, 312, 1));
  const auto r = evaluate(base_config(dir, real, syn));
  const auto& s = r.at("summary");
  EXPECT_LT(num(s["mean_ks"]), 0.15);
  EXPECT_LT(num(s["discriminative"]["mean"]), 0.2);
  EXPECT_EQ(num(s["exact_copies"]), 0.0);
  // Without a holdout the privacy items that need one say so.
  EXPECT_TRUE(s["mia_auc"].is_null());
  EXPECT_FALSE(r.at("notes").empty());
}

TEST(Evaluate, ShiftedAndTimeShuffledCopiesAreCaught) {
  TempDir dir;
  CsvTable t = pbc_patients(0, 200);
  const auto real = write_table(dir, "real.csv", t);
  const auto self = evaluate(base_config(dir, real, real)).at("summary");

  CsvTable shifted = t;
  for (auto& row : shifted.rows)
    for (const auto& name : kReals) {
      auto& cell = row[shifted.column_of(name)];
      if (!cell.empty()) cell = std::to_string(std::stod(cell) * 1.6 + 0.5);
    }
  auto c = base_config(dir, real, write_table(dir, "shifted.csv", shifted));
  const auto sh = evaluate(c).at("summary");
  EXPECT_GT(num(sh["mean_ks"]), 0.2);

  // Shuffle each patient's time-varying values across its steps (times kept).
  CsvTable shuffled = t;
  std::mt19937 rng(3);
  size_t r0 = 0;
  while (r0 < shuffled.rows.size()) {
    size_t r1 = r0;
    while (r1 < shuffled.rows.size() && shuffled.rows[r1][0] == shuffled.rows[r0][0]) ++r1;
    std::vector<size_t> perm(r1 - r0);
    std::iota(perm.begin(), perm.end(), r0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<std::vector<std::string>> orig(shuffled.rows.begin() + r0,
                                               shuffled.rows.begin() + r1);
    for (size_t k = 0; k < perm.size(); ++k)
      for (const auto& name : kReals) {
        const auto col = shuffled.column_of(name);
        shuffled.rows[r0 + k][col] = orig[perm[k] - r0][col];
      }
    r0 = r1;
  }
  const auto sf =
      evaluate(base_config(dir, real, write_table(dir, "shuffled.csv", shuffled))).at("summary");
  EXPECT_NEAR(num(sf["mean_ks"]), 0.0, 1e-12);  // same values, other order
  EXPECT_GT(num(sf["acf_mad"]), num(self["acf_mad"]) + 0.05);
  EXPECT_GT(num(sf["trend_corr_mad"]) + num(sf["cycle_corr_mad"]), 0.05);
}

TEST(Evaluate, NoiseIsEasyToTellApart) {
  TempDir dir;
  CsvTable t = pbc_patients(0, 150);
  const auto real = write_table(dir, "real.csv", t);
  CsvTable noise = t;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& row : noise.rows)
    for (const auto& name : kReals) {
      auto& cell = row[noise.column_of(name)];
      cell = std::to_string(1.0 + 1000.0 * u(rng));
    }
  const auto s =
      evaluate(base_config(dir, real, write_table(dir, "noise.csv", noise))).at("summary");
  EXPECT_GT(num(s["discriminative"]["mean"]), 0.35);
  EXPECT_GT(num(s["mean_ks"]), 0.5);
}

TEST(Evaluate, OutcomeNeedsHoldoutAndIsReported) {
  TempDir dir;
  const auto real = write_table(dir, "real.csv", pbc_patients(0, 150));
  const auto hold = write_table(dir, "hold.csv", pbc_patients(150, 312));
  auto c = base_config(dir, real, real);
  c.outcome = "trt";
  c.holdout_path = hold;
  const auto s = evaluate(c).at("summary");
  ASSERT_TRUE(s.contains("outcome_auroc"));
  EXPECT_TRUE(s["outcome_auroc"]["tstr"].is_number());
  EXPECT_TRUE(s["outcome_auroc"]["trtr"].is_number());
}

TEST(Evaluate, BadInputsGiveClearErrors) {
  TempDir dir;
  CsvTable t = pbc_patients(0, 40);
  const auto real = write_table(dir, "real.csv", t);
  // A column the real data does not have.
  CsvTable other = t;
  other.header[other.column_of("bili")] = "bilirubin";
  auto c = base_config(dir, real, write_table(dir, "other.csv", other));
  try {
    evaluate(c);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("other.csv:1: the synthetic cohort's columns differ"));
    EXPECT_THAT(e.what(), HasSubstr("missing 'bili'"));
    EXPECT_THAT(e.what(), HasSubstr("'bilirubin'"));
  }
  // An empty cohort.
  c.synthetic_path = dir.write("empty.csv", "\"id\",\"day\"\n");
  EXPECT_THROW(evaluate(c), InputError);
  // A label the schema does not know.
  CsvTable bad = t;
  bad.rows[3][bad.column_of("sex")] = "x";
  c.synthetic_path = write_table(dir, "badlabel.csv", bad);
  try {
    evaluate(c);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("badlabel.csv:5:"));
    EXPECT_THAT(e.what(), HasSubstr("unknown label in column 'sex'"));
  }
  // An outcome that is not a variable.
  c.synthetic_path = real;
  c.outcome = "death";
  EXPECT_THROW(evaluate(c), UsageError);
}
