#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "healthgym/checkpoint.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/train.hpp"
#include "healthgym/value_repeats.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;
using healthgym::testing::TempDir;

namespace {

Schema schema_of(const std::string& csv, Cohort* cohort) {
  const CsvTable table = parse_csv(csv, "inline.csv");
  InferOptions opts;
  opts.max_categorical_codes = 1;  // every numeric column but 0/1 flags is real
  Schema s = infer_schema(table, "id", "t", opts);
  *cohort = load_cohort(table, s);
  return s;
}

}  // namespace

// Shares are counted on consecutive observations as written; statics and
// labels get none.
TEST(ValueRepeats, CountsRepeatsAsWritten) {
  // w: patient a 70.0 70.0 (gap) 70.0 71.5 -> pairs (70,70) (70,70) (70,71.5);
  // patient b 80.5 80.5 -> 1 pair, equal: 3 of 4. hr: a 60 61 62 63, b 90 91:
  // no repeats in 4 pairs. age static, flag a label.
  const std::string csv =
      "id,t,age,w,hr,flag\n"
      "a,0,50,70.0,60,n\n"
      "a,1,50,70.0,61,y\n"
      "a,2,50,,62,n\n"
      "a,3,50,70.0,63,y\n"
      "a,4,50,71.5,,n\n"
      "b,0,60,80.5,90,y\n"
      "b,1,60,80.5,91,n\n";
  Cohort c;
  const Schema s = schema_of(csv, &c);
  const auto r = ValueRepeats::fit(c, s);
  ASSERT_FALSE(r.empty());
  EXPECT_DOUBLE_EQ(r.share(s.variable_index("w")), 0.75);
  EXPECT_DOUBLE_EQ(r.share(s.variable_index("hr")), 0.0);
  EXPECT_TRUE(std::isnan(r.share(s.variable_index("age"))));
  EXPECT_TRUE(std::isnan(r.share(s.variable_index("flag"))));
  // Round trip, and the errors naming what is wrong.
  const auto back = ValueRepeats::from_json(r.to_json(), s);
  EXPECT_DOUBLE_EQ(back.share(s.variable_index("w")), 0.75);
  EXPECT_TRUE(std::isnan(back.share(s.variable_index("age"))));
  auto j = r.to_json();
  j[s.variable_index("w")] = 1.5;
  EXPECT_NE(message_of([&] { ValueRepeats::from_json(j, s); }).find("w: share 1.5"),
            std::string::npos);
  j = r.to_json();
  j[s.variable_index("age")] = 0.5;
  EXPECT_NE(message_of([&] { ValueRepeats::from_json(j, s); }).find("age: not a time-varying"),
            std::string::npos);
  j = r.to_json();
  j.erase(0);
  EXPECT_NE(message_of([&] { ValueRepeats::from_json(j, s); }).find("3 shares for 4 variables"),
            std::string::npos);
}

// Applying makes the smallest changes repeats, as many as the share asks for,
// in time order so a run holds its first value.
TEST(ValueRepeats, SmallestChangesBecomeRepeats) {
  const std::string real =
      "id,t,w,hr\n"
      "a,0,70.0,60\n"
      "a,1,70.0,60\n"
      "a,2,70.0,61\n"
      "a,3,70.0,62\n"
      "a,4,71.0,62\n";
  Cohort c;
  const Schema s = schema_of(real, &c);
  const auto r = ValueRepeats::fit(c, s);
  const long w = s.variable_index("w"), hr = s.variable_index("hr");
  ASSERT_DOUBLE_EQ(r.share(w), 0.75);  // 3 of 4
  ASSERT_DOUBLE_EQ(r.share(hr), 0.5);  // 2 of 4
  // A synthetic cohort. w, in tenths as written (1 decimal): p 700 703 704 -
  // 724, q 800 802 802 (80.25 prints as 80.2): changes 3, 1, 20 | 2, 0; 0.75
  // of 5 pairs rounds to 4, so all but the 20 become repeats. hr, as written
  // (0 decimals): p 60 65 67 70 70 (70.2), q 70 70 70: changes 5, 2, 3, 0 | 0,
  // 0; half of 6 pairs are the three already equal as written.
  Cohort syn;
  schema_of(
      "id,t,w,hr\n"
      "p,0,70.0,60\n"
      "p,1,70.3,65\n"
      "p,2,70.4,67\n"
      "p,3,,70\n"
      "p,4,72.4,70.2\n"
      "q,0,80.0,70\n"
      "q,1,80.2,70\n"
      "q,2,80.25,70\n",
      &syn);
  const int64_t changed = r.apply(syn, s);
  auto at = [&](int64_t row, long var) { return syn.cell(row, var); };
  EXPECT_DOUBLE_EQ(at(1, w), 70.0);
  EXPECT_DOUBLE_EQ(at(2, w), 70.0);  // a run carries its first value
  EXPECT_TRUE(is_missing(at(3, w)));
  EXPECT_DOUBLE_EQ(at(4, w), 72.4);
  EXPECT_DOUBLE_EQ(at(6, w), 80.0);
  EXPECT_DOUBLE_EQ(at(7, w), 80.0);
  EXPECT_DOUBLE_EQ(at(2, hr), 67.0);
  EXPECT_DOUBLE_EQ(at(4, hr), 70.0);  // equal as written, now equal exactly
  // Cells whose written value changed: w's rows 1, 2, 6 and 7.
  EXPECT_EQ(changed, 4);
  // A schema of another shape is refused.
  Schema other = s;
  other.variables.pop_back();
  EXPECT_THROW(r.apply(syn, other), UsageError);
}

// Through train and sample: default-preset checkpoints carry the shares and
// sampling restores them; the seed preset (the original) leaves values alone.
TEST(ValueRepeats, SamplingRestoresTheTrainingShare) {
  TempDir dir;
  // w is carried on unchanged for 3 hours at a time: 2 of every 3 pairs repeat.
  std::string csv = "id,hour,w,hr\n";
  for (int p = 0; p < 60; ++p)
    for (int t = 0; t < 12; ++t)
      csv += std::to_string(p) + "," + std::to_string(t) + "," +
             std::to_string(60 + p % 20 + t / 3) + ".5," +
             std::to_string(60 + (p * 7 + t * 5) % 40) + "\n";
  for (const char* preset : {"default", "seed"}) {
    const TrainConfig c = healthgym::testing::tiny_run_config(
        preset_by_name(preset), dir.write("w.csv", csv), "id", "hour", dir.file("m.hg"));
    train(c);
    auto ck = load_checkpoint(c.out_path);
    const long w = ck.model.encoder.schema().variable_index("w");
    ASSERT_FALSE(ck.model.repeats.empty());
    EXPECT_NEAR(ck.model.repeats.share(w), 8.0 / 11.0, 1e-6);  // per patient 8 of 11
    SampleConfig s;
    s.model_path = c.out_path;
    s.out_path = dir.file("syn.csv");
    s.n = 30;
    s.guardrail = false;
    s.sampler = SamplerKind::kDdim;
    s.sample_steps = 3;
    const auto r = sample_to_csv(s);
    auto syn = load_data_with_schema(s.out_path, ck.model.encoder.schema());
    int64_t pairs = 0, same = 0;
    for (int64_t p = 0; p < syn.n_patients(); ++p)
      for (int64_t k = 1; k < syn.length[p]; ++k) {
        const double a = syn.cell(syn.start[p] + k - 1, w), b = syn.cell(syn.start[p] + k, w);
        if (is_missing(a) || is_missing(b)) continue;
        ++pairs;
        same += a == b;
      }
    ASSERT_GT(pairs, 0);
    if (std::string(preset) == "default") {
      EXPECT_GE(r.repeats_set, 0);
      // The share of pairs, up to rounding and pairs that happen to come out equal.
      EXPECT_NEAR(static_cast<double>(same), 8.0 / 11.0 * static_cast<double>(pairs), 3.0);
    } else {
      EXPECT_EQ(r.repeats_set, -1);
    }
  }
  // Asked for from a checkpoint that predates the counts: a usage error.
  auto ck = load_checkpoint(dir.file("m.hg"));
  ck.model.repeats = ValueRepeats();
  SampleConfig s;
  s.model_path = dir.file("m.hg");
  s.out_path = dir.file("syn2.csv");
  s.n = 2;
  s.repeats = true;
  const std::string msg = message_of([&] { generate_cohort(ck.model, s, nullptr); });
  EXPECT_NE(msg.find("--repeats off"), std::string::npos) << msg;
}
