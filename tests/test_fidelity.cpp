// fidelity_report on small hand-built cohorts: known answers (from
// scripts/metrics_reference.py where scipy is involved) and the behaviour of
// each score under a controlled change to the synthetic cohort.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "healthgym/cohort.hpp"
#include "healthgym/evaluate.hpp"
#include "healthgym/schema.hpp"

using namespace healthgym;
using nlohmann::json;

namespace {

constexpr double kTol = 1e-12;

// Reads a number from the report, NaN for null (the report keeps NaN in memory).
double num(const json& j) { return j.is_null() ? NAN : j.get<double>(); }

const json& variable(const json& report, const std::string& name) {
  for (const auto& v : report["variables"])
    if (v["name"] == name) return v;
  throw std::runtime_error("no variable " + name);
}

const json& trajectory(const json& report, const std::string& name) {
  for (const auto& v : report["trajectories"])
    if (v["name"] == name) return v;
  throw std::runtime_error("no trajectory " + name);
}

// Six patients of 6..11 steps: static age and sex, a binary flag, and three
// time-varying reals with linear trends plus cycles (sbp has gaps). hr and sbp
// trend in opposite directions but share their cycle.
std::string smooth_csv() {
  std::string csv = "pid,t,age,sex,hr,sbp,resp,flag\n";
  char buf[256];
  for (int p = 0; p < 6; ++p) {
    const int len = 6 + p;
    for (int k = 0; k < len; ++k) {
      const double cyc = std::sin(1.3 * k + p);
      const double hr = 70 + 2 * p + 3.0 * k + 4 * cyc;
      const double sbp = 120 - 3.0 * k + 4 * cyc + 0.3 * std::cos(2.1 * k);
      const double resp = 16 + 0.2 * p + 0.8 * std::sin(0.5 * k + 2 * p);
      std::string sbp_text = "";
      if (k % 4 != 3) {
        std::snprintf(buf, sizeof buf, "%.3f", sbp);
        sbp_text = buf;
      }
      std::snprintf(buf, sizeof buf, "p%d,%d,%.1f,%s,%.3f,%s,%.3f,%d\n", p, k, 40 + 3.5 * p,
                    p % 2 ? "m" : "f", hr, sbp_text.c_str(), resp, (k + p) % 3 == 0 ? 1 : 0);
      csv += buf;
    }
  }
  return csv;
}

struct Data {
  Schema schema;
  Cohort cohort;
};

Data load(const std::string& csv, int max_codes = 5) {
  const CsvTable table = parse_csv(csv, "inline.csv");
  InferOptions opts;
  opts.max_categorical_codes = max_codes;
  Data d;
  d.schema = infer_schema(table, "pid", "t", opts);
  d.cohort = load_cohort(table, d.schema);
  return d;
}

void add_to_variable(Cohort* c, const Schema& s, const std::string& name, double delta) {
  const long v = s.variable_index(name);
  for (int64_t r = 0; r < c->n_rows(); ++r) c->cells[r * c->n_vars + v] += delta;
}

// Reorders each patient's rows (all variables together, times kept): even
// steps first, then odd ones. Marginals and row-wise correlations are unchanged.
Cohort shuffle_in_time(const Cohort& c) {
  Cohort out = c;
  for (int64_t p = 0; p < c.n_patients(); ++p) {
    std::vector<int64_t> order;
    for (int64_t k = 0; k < c.length[p]; k += 2) order.push_back(k);
    for (int64_t k = 1; k < c.length[p]; k += 2) order.push_back(k);
    for (int64_t j = 0; j < c.length[p]; ++j)
      for (int64_t v = 0; v < c.n_vars; ++v)
        out.cells[(c.start[p] + j) * c.n_vars + v] = c.cell(c.start[p] + order[j], v);
  }
  return out;
}

}  // namespace

TEST(Fidelity, CohortAgainstItselfScoresPerfectly) {
  const Data d = load(smooth_csv());
  ASSERT_TRUE(d.schema.variables[0].is_static);  // age
  ASSERT_TRUE(d.schema.variables[1].is_static);  // sex
  const json r = eval::fidelity_report(d.schema, d.cohort, d.cohort);

  for (const auto& v : r["variables"]) {
    if (v["type"] == "real") {
      EXPECT_EQ(num(v["ks"]), 0.0) << v["name"];
      EXPECT_EQ(num(v["wasserstein"]), 0.0) << v["name"];
      EXPECT_EQ(v["plot"]["kind"], "histogram");
      EXPECT_EQ(v["plot"]["edges"].size(), 31u);
      EXPECT_EQ(v["plot"]["real"], v["plot"]["synthetic"]);
    } else {
      EXPECT_EQ(num(v["tvd"]), 0.0) << v["name"];
      EXPECT_EQ(v["plot"]["kind"], "bars");
    }
    EXPECT_EQ(num(v["missing_rate_diff"]), 0.0) << v["name"];
  }
  EXPECT_EQ(num(r["lengths"]["ks"]), 0.0);
  EXPECT_EQ(num(r["correlation"]["mad"]), 0.0);
  EXPECT_EQ(num(r["trend_correlation"]["mad"]), 0.0);
  EXPECT_EQ(num(r["cycle_correlation"]["mad"]), 0.0);
  EXPECT_EQ(num(r["autocorrelation"]["mad"]), 0.0);
  EXPECT_EQ(num(r["static_violation"]["rate"]), 0.0);
  EXPECT_EQ(num(r["static_violation"]["variables"]["age"]), 0.0);
  EXPECT_EQ(num(r["static_violation"]["variables"]["sex"]), 0.0);

  // Shapes: the dynamic analyses cover the time-varying reals only.
  EXPECT_EQ(r["trend_correlation"]["variables"], (json{"hr", "sbp", "resp"}));
  EXPECT_EQ(r["correlation"]["columns"],
            (json{"age", "sex=f", "sex=m", "hr", "sbp", "resp", "flag=0", "flag=1"}));
  EXPECT_EQ(r["autocorrelation"]["lags"], (json{1, 2, 3, 4, 5}));
  EXPECT_EQ(r["autocorrelation"]["variables"].size(), 3u);
  EXPECT_EQ(r["trajectories"].size(), 4u);  // age, hr, sbp, resp
  EXPECT_EQ(trajectory(r, "hr")["time"].size(), 11u);

  // hr and sbp: opposite trends, shared cycles.
  const auto& trend = r["trend_correlation"]["real"];
  const auto& cycle = r["cycle_correlation"]["real"];
  EXPECT_NEAR(num(trend[0][1]), -1.0, 1e-5);
  EXPECT_GT(num(cycle[0][1]), 0.9);
  EXPECT_EQ(num(trend[0][0]), 1.0);
  EXPECT_EQ(num(cycle[2][2]), 1.0);
  // Six patients: pairs are scored where half of them (3) estimate them.
  EXPECT_EQ(num(r["cycle_correlation"]["min_patients"]), 3.0);
  EXPECT_EQ(num(r["cycle_correlation"]["patients_real"][0][1]), 6.0);
  EXPECT_EQ(num(r["cycle_correlation"]["pairs_scored"]), 3.0);
}

TEST(Fidelity, ShiftedRealsRaiseKsOnly) {
  const Data d = load(smooth_csv());
  Cohort syn = d.cohort;
  add_to_variable(&syn, d.schema, "hr", 1000.0);  // beyond the whole range: disjoint samples
  add_to_variable(&syn, d.schema, "resp", 0.5);
  const json r = eval::fidelity_report(d.schema, d.cohort, syn);

  EXPECT_EQ(num(variable(r, "hr")["ks"]), 1.0);
  EXPECT_NEAR(num(variable(r, "hr")["wasserstein"]), 1000.0, 1e-9);
  const double iqr = num(variable(r, "hr")["iqr"]);
  EXPECT_GT(iqr, 0);
  EXPECT_NEAR(num(variable(r, "hr")["wasserstein_iqr"]), 1000.0 / iqr, 1e-9);
  EXPECT_GT(num(variable(r, "resp")["ks"]), 0.2);
  EXPECT_NEAR(num(variable(r, "resp")["wasserstein"]), 0.5, 1e-9);
  EXPECT_EQ(num(variable(r, "sbp")["ks"]), 0.0);
  EXPECT_EQ(num(variable(r, "age")["ks"]), 0.0);
  // Correlations do not see a location shift.
  EXPECT_NEAR(num(r["correlation"]["mad"]), 0.0, 1e-9);
  EXPECT_NEAR(num(r["trend_correlation"]["mad"]), 0.0, 1e-9);
  EXPECT_NEAR(num(r["cycle_correlation"]["mad"]), 0.0, 1e-9);
  EXPECT_NEAR(num(r["autocorrelation"]["mad"]), 0.0, 1e-9);
  // The synthetic histogram of hr piles into the top bin of the real range.
  const auto& dens = variable(r, "hr")["plot"]["synthetic"];
  EXPECT_GT(num(dens[29]), 0.0);
  EXPECT_EQ(num(dens[0]), 0.0);
}

TEST(Fidelity, ShufflingStepsRaisesAcfAndCycleMad) {
  const Data d = load(smooth_csv());
  const Cohort syn = shuffle_in_time(d.cohort);
  const json r = eval::fidelity_report(d.schema, d.cohort, syn);
  // Same values, same rows: marginals and static correlations are untouched...
  for (const auto& v : r["variables"]) {
    if (v["type"] == "real") {
      EXPECT_EQ(num(v["ks"]), 0.0) << v["name"];
    }
    EXPECT_EQ(num(v["missing_rate_diff"]), 0.0) << v["name"];
  }
  EXPECT_NEAR(num(r["correlation"]["mad"]), 0.0, 1e-9);
  EXPECT_EQ(num(r["static_violation"]["rate"]), 0.0);
  // ...but the dynamics are not.
  EXPECT_GT(num(r["autocorrelation"]["mad"]), 0.2);
  EXPECT_GT(num(r["cycle_correlation"]["mad"]), 0.2);
  const auto& hr_acf = r["autocorrelation"]["variables"][0];
  EXPECT_EQ(hr_acf["name"], "hr");
  EXPECT_GT(num(hr_acf["real"][0]), num(hr_acf["synthetic"][0]));
}

// 40 patients of 8 steps: x and y share a cycle; z, measured in the first 5
// patients only, follows x's cycle. The synthetic copy flips z's cycle.
TEST(Fidelity, PairsFewPatientsEstimateAreReportedButNotScored) {
  std::string real = "pid,t,x,y,z\n", syn = real;
  char buf[160];
  for (int p = 0; p < 40; ++p)
    for (int k = 0; k < 8; ++k) {
      const double c = std::sin(1.1 * k + p);
      const double x = 10 + 0.5 * k + c, y = 20 - 0.3 * k + 2 * c + 0.1 * std::cos(3.0 * k);
      std::string z_real, z_syn;
      if (p < 5) {
        std::snprintf(buf, sizeof buf, "%.4f", 5 + 0.2 * k + c + 0.2 * std::cos(2.0 * k));
        z_real = buf;
        std::snprintf(buf, sizeof buf, "%.4f", 5 + 0.2 * k - c + 0.2 * std::cos(2.0 * k));
        z_syn = buf;
      }
      std::snprintf(buf, sizeof buf, "p%d,%d,%.4f,%.4f,", p, k, x, y);
      real += buf + z_real + "\n";
      syn += buf + z_syn + "\n";
    }
  const Data d = load(real);
  const Cohort s = load_cohort(parse_csv(syn, "syn.csv"), d.schema);
  const json r = eval::fidelity_report(d.schema, d.cohort, s);
  const json& cyc = r["cycle_correlation"];
  ASSERT_EQ(cyc["variables"], (json{"x", "y", "z"}));
  EXPECT_EQ(num(cyc["min_patients"]), 20.0);
  EXPECT_EQ(num(cyc["patients_real"][0][1]), 40.0);
  EXPECT_EQ(num(cyc["patients_real"][2][0]), 5.0);
  EXPECT_EQ(num(cyc["patients_synthetic"][0][2]), 5.0);
  EXPECT_EQ(num(cyc["pairs_defined"]), 3.0);
  EXPECT_EQ(num(cyc["pairs_scored"]), 1.0);
  // x with y is scored and identical; z's flipped pairs only count in mad_all_pairs.
  EXPECT_NEAR(num(cyc["mad"]), 0.0, 1e-12);
  EXPECT_GT(num(cyc["real"][0][2]), 0.5);
  EXPECT_LT(num(cyc["synthetic"][0][2]), -0.5);
  EXPECT_GT(num(cyc["mad_all_pairs"]), 2 * 0.5 * 2 / 3);
}

TEST(Fidelity, StaticViolationCountsPatientsWhoseStaticValueChanges) {
  const Data d = load(smooth_csv());
  Cohort syn = d.cohort;
  const long age = d.schema.variable_index("age"), sex = d.schema.variable_index("sex");
  auto set = [&](int64_t p, int64_t k, long v, double x) {
    syn.cells[(syn.start[p] + k) * syn.n_vars + v] = x;
  };
  set(0, 2, age, 99.0);  // p0: age changes
  set(1, 0, sex, 0.0);   // p1: sex changes (was "m" = 1)
  set(2, 3, age, 1.0);   // p2: both change
  set(2, 4, sex, 1.0);
  set(3, 5, age, NAN);  // p3: a value turning missing is a change
  for (int64_t k = 0; k < syn.length[4]; ++k) set(4, k, sex, NAN);  // p4: missing throughout
  const json r = eval::fidelity_report(d.schema, d.cohort, syn);
  EXPECT_NEAR(num(r["static_violation"]["variables"]["age"]), 3.0 / 6, kTol);
  EXPECT_NEAR(num(r["static_violation"]["variables"]["sex"]), 2.0 / 6, kTol);
  EXPECT_NEAR(num(r["static_violation"]["rate"]), 4.0 / 6, kTol);
  EXPECT_FALSE(r["static_violation"]["variables"].contains("hr"));
}

TEST(Fidelity, NoStaticVariablesMeansNoViolation) {
  const Data d = load("pid,t,x\na,0,1.5\na,1,2.5\nb,0,3.25\nb,1,4\nb,2,5.5\nc,0,6\n", 2);
  const json r = eval::fidelity_report(d.schema, d.cohort, d.cohort);
  EXPECT_EQ(num(r["static_violation"]["rate"]), 0.0);
  EXPECT_TRUE(r["static_violation"]["variables"].empty());
}

TEST(Fidelity, KnownAnswersOnATinyCohort) {
  const std::string head = "pid,t,age,sex,hr,flag\n";
  const Data d = load(head +
                          "a,0,50,f,80,0\n"
                          "a,1,50,f,82,1\n"
                          "a,2,50,f,,1\n"
                          "b,0,60,m,90,0\n"
                          "b,1,60,m,91,0\n"
                          "c,0,70,m,100,1\n",
                      2);
  ASSERT_EQ(d.schema.variables[0].type, VarType::kReal);
  ASSERT_EQ(d.schema.variables[3].type, VarType::kBinary);
  const Cohort syn = load_cohort(parse_csv(head + "x,0,55,f,85,1\n"
                                                  "x,1,55,f,86,1\n"
                                                  "y,0,65,m,,0\n",
                                           "syn.csv"),
                                 d.schema);
  const json r = eval::fidelity_report(d.schema, d.cohort, syn);

  // scipy values: fid_* in scripts/metrics_reference.py.
  const json& hr = variable(r, "hr");
  EXPECT_NEAR(num(hr["ks"]), 0.6, kTol);
  EXPECT_NEAR(num(hr["wasserstein"]), 6.3, kTol);
  EXPECT_NEAR(num(hr["iqr"]), 9.0, kTol);
  EXPECT_NEAR(num(hr["wasserstein_iqr"]), 6.3 / 9.0, kTol);
  EXPECT_NEAR(num(hr["missing_rate_real"]), 1.0 / 6, kTol);
  EXPECT_NEAR(num(hr["missing_rate_synthetic"]), 1.0 / 3, kTol);
  EXPECT_NEAR(num(hr["missing_rate_diff"]), 1.0 / 6, kTol);
  const json& age = variable(r, "age");
  EXPECT_TRUE(age["static"].get<bool>());
  EXPECT_NEAR(num(age["ks"]), 0.5, kTol);
  EXPECT_NEAR(num(age["wasserstein"]), 5.0, kTol);
  EXPECT_NEAR(num(age["wasserstein_iqr"]), 0.5, kTol);
  // One-hot: label shares over rows.
  EXPECT_NEAR(num(variable(r, "flag")["tvd"]), 1.0 / 6, kTol);
  EXPECT_NEAR(num(variable(r, "sex")["tvd"]), 1.0 / 6, kTol);
  const json& flag_plot = variable(r, "flag")["plot"];
  EXPECT_EQ(flag_plot["labels"], (json{"0", "1"}));
  EXPECT_NEAR(num(flag_plot["real"][0]), 0.5, kTol);
  EXPECT_NEAR(num(flag_plot["synthetic"][1]), 2.0 / 3, kTol);

  // Lengths 3,2,1 against 2,1.
  EXPECT_NEAR(num(r["lengths"]["ks"]), 1.0 / 3, kTol);
  EXPECT_NEAR(num(r["lengths"]["real_mean"]), 2.0, kTol);
  EXPECT_NEAR(num(r["lengths"]["synthetic_mean"]), 1.5, kTol);
  EXPECT_EQ(r["lengths"]["plot"]["labels"], (json{"1", "2", "3"}));
  EXPECT_NEAR(num(r["lengths"]["plot"]["synthetic"][2]), 0.0, kTol);
  EXPECT_NEAR(num(r["lengths"]["plot"]["real"][2]), 1.0 / 3, kTol);

  // Trajectories: step 2 has no observed hr in either cohort.
  const json& th = trajectory(r, "hr");
  EXPECT_EQ(th["time"], (json{0, 1, 2}));
  EXPECT_NEAR(num(th["real_mean"][0]), 90.0, kTol);
  EXPECT_NEAR(num(th["real_q25"][0]), 85.0, kTol);
  EXPECT_NEAR(num(th["real_q75"][0]), 95.0, kTol);
  EXPECT_NEAR(num(th["real_mean"][1]), 86.5, kTol);
  EXPECT_NEAR(num(th["real_q25"][1]), 84.25, kTol);
  EXPECT_NEAR(num(th["real_q75"][1]), 88.75, kTol);
  EXPECT_NEAR(num(th["synthetic_mean"][0]), 85.0, kTol);
  EXPECT_TRUE(std::isnan(num(th["real_mean"][2])));
  EXPECT_TRUE(std::isnan(num(th["synthetic_q75"][2])));

  EXPECT_EQ(r["missingness"]["variables"], (json{"age", "sex", "hr", "flag"}));
  EXPECT_NEAR(num(r["missingness"]["synthetic"][2]), 1.0 / 3, kTol);
  EXPECT_EQ(num(r["missingness"]["real"][0]), 0.0);

  // Too short for any within-patient dynamics: undefined, not zero.
  EXPECT_TRUE(std::isnan(num(r["trend_correlation"]["mad"])));
  EXPECT_TRUE(std::isnan(num(r["autocorrelation"]["mad"])));
  // Written out, undefined numbers become null.
  const json back = json::parse(r.dump());
  EXPECT_TRUE(back["trajectories"][1]["real_mean"][2].is_null());
  EXPECT_TRUE(back["trend_correlation"]["mad"].is_null());
}

TEST(Fidelity, VariablesMissingEverywhereGiveNulls) {
  const Data d = load(smooth_csv());
  Cohort syn = d.cohort;
  const long hr = d.schema.variable_index("hr"), flag = d.schema.variable_index("flag");
  for (int64_t row = 0; row < syn.n_rows(); ++row) {
    syn.cells[row * syn.n_vars + hr] = NAN;
    syn.cells[row * syn.n_vars + flag] = NAN;
  }
  const json r = eval::fidelity_report(d.schema, d.cohort, syn);
  const json& jhr = variable(r, "hr");
  EXPECT_TRUE(std::isnan(num(jhr["ks"])));
  EXPECT_TRUE(std::isnan(num(jhr["wasserstein"])));
  EXPECT_TRUE(std::isnan(num(jhr["wasserstein_iqr"])));
  EXPECT_EQ(num(jhr["missing_rate_synthetic"]), 1.0);
  EXPECT_EQ(num(jhr["missing_rate_diff"]), 1.0);
  EXPECT_TRUE(std::isnan(num(jhr["plot"]["synthetic"][0])));
  EXPECT_GT(num(jhr["plot"]["real"][0]), 0.0);
  EXPECT_TRUE(std::isnan(num(variable(r, "flag")["tvd"])));
  EXPECT_TRUE(std::isnan(num(variable(r, "flag")["plot"]["synthetic"][0])));
  EXPECT_TRUE(std::isnan(num(trajectory(r, "hr")["synthetic_mean"][0])));
  // hr's correlations are undefined in the synthetic cohort; the rest still compare.
  EXPECT_TRUE(std::isnan(num(r["correlation"]["synthetic"][3][4])));
  EXPECT_NEAR(num(r["correlation"]["mad"]), 0.0, 1e-9);
  EXPECT_NEAR(num(r["autocorrelation"]["mad"]), 0.0, 1e-9);
  EXPECT_TRUE(std::isnan(num(r["autocorrelation"]["variables"][0]["synthetic"][0])));
  const std::string text = r.dump();
  EXPECT_EQ(text.find("nan"), std::string::npos);
  EXPECT_NE(text.find("null"), std::string::npos);
}

TEST(Fidelity, RejectsCohortsThatDoNotMatchTheSchema) {
  const Data d = load(smooth_csv());
  Cohort bad = d.cohort;
  bad.n_vars -= 1;
  EXPECT_THROW(eval::fidelity_report(d.schema, d.cohort, bad), std::invalid_argument);
}

TEST(Fidelity, EmptySyntheticCohortGivesNullsNotCrashes) {
  const Data d = load(smooth_csv());
  Cohort empty;
  empty.n_vars = d.cohort.n_vars;
  const json r = eval::fidelity_report(d.schema, d.cohort, empty);
  EXPECT_TRUE(std::isnan(num(variable(r, "hr")["ks"])));
  EXPECT_TRUE(std::isnan(num(variable(r, "hr")["missing_rate_synthetic"])));
  EXPECT_TRUE(std::isnan(num(r["lengths"]["ks"])));
  EXPECT_TRUE(std::isnan(num(r["lengths"]["synthetic_mean"])));
  EXPECT_TRUE(std::isnan(num(r["static_violation"]["rate"])));
  EXPECT_TRUE(std::isnan(num(r["autocorrelation"]["mad"])));
  EXPECT_EQ(trajectory(r, "hr")["time"].size(), 11u);
  EXPECT_NO_THROW(json::parse(r.dump()));
}
