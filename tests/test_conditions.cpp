#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "healthgym/conditions.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/samplers.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

constexpr int64_t kLength = 4;  // the working length the specs count lengths up to

// Four patients: sex f/m static, group a/b static, HR time-varying.
const char* kCsv =
    "id,t,sex,group,HR\n"
    "1,0,f,a,80\n1,1,f,a,82\n"
    "2,0,m,a,70\n2,1,m,a,71\n"
    "3,0,f,b,90\n3,1,f,b,91\n"
    "4,0,f,a,60\n4,1,f,a,65\n";

LoadedData load_small(const TempDir& dir) {
  return load_data(dir.write("c.csv", kCsv), "id", "t", "");
}

}  // namespace

TEST(Conditions, AutoPicksStaticLabelVariables) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto", kLength);
  EXPECT_EQ(spec.names(), (std::vector<std::string>{"sex", "group"}));
  EXPECT_EQ(spec.embedding_sizes(), (std::vector<int64_t>{4, 4}));  // 2 labels + missing + dropped
  EXPECT_TRUE(torch::equal(spec.null_row(), torch::tensor({3, 3}, torch::kLong)));
  auto rows = spec.indices(d.cohort);
  EXPECT_TRUE(
      torch::equal(rows, torch::tensor({0, 0, 1, 0, 0, 1, 0, 0}, torch::kLong).view({4, 2})));
  EXPECT_TRUE(ConditionSpec::fit(d.schema, d.cohort, "none", kLength).empty());
  EXPECT_EQ(ConditionSpec::fit(d.schema, d.cohort, "group", kLength).names(),
            std::vector<std::string>{"group"});
}

TEST(Conditions, RejectsWhatCannotBeAConditionWithTheReason) {
  TempDir dir;
  auto d = load_small(dir);
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "HR", kLength); }),
              HasSubstr("'HR' must be a static binary or categorical variable"));
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "nope", kLength); }),
              HasSubstr("no variable 'nope'"));
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "sex,sex", kLength); }),
              HasSubstr("named twice"));
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto", kLength);
  EXPECT_THAT(message_of([&] { spec.parse({"sex=x"}); }),
              HasSubstr("'x' is not a label of 'sex' (labels: f, m)"));
  EXPECT_THAT(message_of([&] { spec.parse({"HR=1"}); }),
              HasSubstr("not a conditioning variable of this model (it has: sex, group)"));
  EXPECT_THAT(message_of([&] { spec.parse({"sex"}); }), HasSubstr("expected COLUMN=VALUE"));
  EXPECT_THAT(message_of([&] { spec.parse({"sex=f", "sex=m"}); }), HasSubstr("given twice"));
  // m and b never occur together in training.
  auto fixed = spec.parse({"sex=m", "group=b"});
  EXPECT_THAT(message_of([&] { spec.draw(3, fixed); }),
              HasSubstr("no training patient has sex=m and group=b"));
  auto none = ConditionSpec::fit(d.schema, d.cohort, "none", kLength);
  EXPECT_THAT(message_of([&] { none.parse({"sex=f"}); }),
              HasSubstr("trained without conditioning variables"));
}

TEST(Conditions, DrawKeepsTheFixedLabelsAndTheTrainingShares) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto", kLength);
  torch::manual_seed(3);
  auto fixed = spec.parse({"group=b"});
  EXPECT_DOUBLE_EQ(spec.share(fixed), 0.25);
  auto rows = spec.draw(50, fixed);
  // Only patient 3 has group b, and she is f.
  EXPECT_TRUE(torch::all(rows.select(1, 1) == 1).item<bool>());
  EXPECT_TRUE(torch::all(rows.select(1, 0) == 0).item<bool>());
  // Unconditioned: sex m in about a quarter of draws.
  auto all = spec.draw(4000, {});
  const double m = (all.select(1, 0) == 1).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(m, 0.25, 0.03);
  // JSON round trip keeps the combinations.
  auto back = ConditionSpec::from_json(spec.to_json(), d.schema);
  EXPECT_EQ(back.names(), spec.names());
  EXPECT_DOUBLE_EQ(back.share(spec.parse({"sex=f", "group=a"})), 0.5);
}

// 20 patients of group a with 2 steps, 20 of group b with 4 (a dead patient's
// follow-up is shorter), 3 of group c with 4: each group's lengths, a little of
// the whole cohort's mixed in; c, too small to keep a table of, the whole
// cohort's.
TEST(Conditions, LengthsFollowTheLabels) {
  TempDir dir;
  std::string csv = "id,t,group,HR\n";
  for (int p = 0; p < 43; ++p) {
    const char* group = p < 20 ? "a" : p < 40 ? "b" : "c";
    for (int t = 0; t < (p < 20 ? 2 : 4); ++t)
      csv += std::to_string(p) + "," + std::to_string(t) + "," + group + ",70\n";
  }
  auto d = load_data(dir.write("len.csv", csv), "id", "t", "");
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "group", kLength);
  ASSERT_TRUE(spec.has_lengths());
  EXPECT_EQ(spec.max_length(), kLength);
  const std::vector<int64_t> overall = {0, 20, 0, 23};
  auto share_of_2 = [&](const char* group) {
    auto rows = spec.draw(4000, spec.parse({std::string("group=") + group}));
    auto lengths = spec.draw_lengths(rows, overall);
    EXPECT_TRUE(((lengths == 2) | (lengths == 4)).all().item<bool>());
    return (lengths == 2).to(torch::kDouble).mean().item<double>();
  };
  torch::manual_seed(4);
  EXPECT_NEAR(share_of_2("a"), (20 + 5 * 20.0 / 43) / 25, 0.02);
  EXPECT_NEAR(share_of_2("b"), (5 * 20.0 / 43) / 25, 0.02);
  EXPECT_NEAR(share_of_2("c"), 20.0 / 43, 0.03);
  const auto j = spec.to_json();
  EXPECT_FALSE(j["combinations"][2].contains("length_counts"));  // c's 3 patients
  // Mixed rows get each row's own group's lengths.
  auto both = torch::tensor({0, 1, 0, 1}, torch::kLong).view({4, 1}).repeat({500, 1});
  auto l2 = spec.draw_lengths(both, overall).view({500, 4});
  EXPECT_GT((l2.select(1, 0) == 2).sum().item<int64_t>(), 400);
  EXPECT_GT((l2.select(1, 1) == 4).sum().item<int64_t>(), 400);
  // The JSON round trip keeps the table; a checkpoint without it has none.
  auto rows = spec.draw(100, {});
  auto back = ConditionSpec::from_json(j, d.schema);
  torch::manual_seed(9);
  auto a = spec.draw_lengths(rows, overall);
  torch::manual_seed(9);
  EXPECT_TRUE(torch::equal(back.draw_lengths(rows, overall), a));
  auto old = j;
  old.erase("max_length");
  for (auto& c : old["combinations"]) c.erase("length_counts");
  EXPECT_FALSE(ConditionSpec::from_json(old, d.schema).has_lengths());
  EXPECT_THAT(
      message_of([&] { ConditionSpec::from_json(old, d.schema).draw_lengths(rows, overall); }),
      HasSubstr("holds no lengths per label combination"));
  // Corrupt tables and bad calls are named.
  auto bad = j;
  bad["combinations"][0]["length_counts"][1] = 19;  // no longer sums to its count
  EXPECT_THAT(message_of([&] { ConditionSpec::from_json(bad, d.schema); }),
              HasSubstr("are not non-negative counts of its 20 patients over 4 lengths"));
  bad = j;
  bad.erase("max_length");
  EXPECT_THAT(message_of([&] { ConditionSpec::from_json(bad, d.schema); }),
              HasSubstr("length counts but no max_length"));
  bad = j;
  bad["combinations"][0]["count"] = -1;
  EXPECT_THAT(message_of([&] { ConditionSpec::from_json(bad, d.schema); }),
              HasSubstr("count -1 is out of range"));
  EXPECT_NO_THROW(spec.check_lengths(overall));
  EXPECT_THAT(message_of([&] {
                spec.check_lengths({0, 20, 0, 19});
              }),
              HasSubstr("more patients of length 4 than the cohort has"));
  EXPECT_THAT(message_of([&] {
                spec.check_lengths({1, 2, 3});
              }),
              HasSubstr("cover 4 steps, not the working length 3"));
  EXPECT_THAT(message_of([&] {
                spec.draw_lengths(rows, {1, 2});
              }),
              HasSubstr("have 2 lengths, not 4"));
  EXPECT_THAT(message_of([&] {
                spec.draw_lengths(torch::full({1, 1}, 3, torch::kLong), overall);
              }),
              HasSubstr("not a label combination of the training cohort"));
  EXPECT_THAT(message_of([&] { spec.draw_lengths(torch::zeros({}, torch::kLong), overall); }),
              HasSubstr("rows must be [n, 1]"));
}

// Through train and sample: a requested subgroup comes out with its own lengths.
TEST(Conditions, ConditionalSamplingDrawsTheSubgroupsLengths) {
  TempDir dir;
  std::string csv = "id,t,group,HR\n";
  for (int p = 0; p < 40; ++p)
    for (int t = 0; t < (p % 2 == 0 ? 2 : 4); ++t)
      csv += std::to_string(p) + "," + std::to_string(t) + "," + (p % 2 == 0 ? "a" : "b") + "," +
             std::to_string(60 + p + t) + "\n";
  TrainConfig c = healthgym::testing::tiny_run_config(default_preset(), dir.write("len.csv", csv),
                                                      "id", "t", dir.file("m.hg"));
  train(c);
  SampleConfig s = healthgym::testing::ddim_config(c.out_path, dir.file("syn.csv"), 40, 2);
  s.guardrail = false;
  s.conditions = {"group=b"};
  sample_to_csv(s);
  auto table = read_csv(s.out_path);
  std::map<std::string, int> steps;
  for (const auto& row : table.rows) ++steps[row[0]];
  int four = 0;
  for (const auto& kv : steps) four += kv.second == 4;
  EXPECT_EQ(steps.size(), 40u);
  EXPECT_GE(four, 30);  // 4 in (20 + 5/2) / 25 = 90% of draws
}

TEST(Conditions, ApplySetsTheLabelsAndReportsAgreement) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "sex", kLength);
  Cohort co = d.cohort;
  // Patients 1..4 are f, m, f, f; ask for f, f, f, m.
  auto rows = torch::tensor({0, 0, 0, 1}, torch::kLong).view({4, 1});
  EXPECT_DOUBLE_EQ(spec.apply(co, rows), 0.5);
  EXPECT_TRUE(torch::equal(spec.indices(co), rows));
}

TEST(Conditions, ProjectionHoldsTheLabelsEncodedInsideTheLength) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "sex", kLength);
  Encoder e = Encoder::fit(d.schema, d.cohort, 4, 1e-3);
  EncodedCohort enc = e.encode(d.cohort);
  auto same = spec.projection(e.schema(), spec.indices(d.cohort), enc.lengths, e.channels(), 4,
                              torch::kCPU);
  EXPECT_TRUE(torch::equal(same(enc.x), enc.x));  // the training data is a fixed point
  // Other labels: decoding gives them, and nothing else moves.
  auto rows = torch::tensor({1, 1, 0, 1}, torch::kLong).view({4, 1});
  auto x = spec.projection(e.schema(), rows, enc.lengths, e.channels(), 4, torch::kCPU)(enc.x);
  Cohort back = e.decode(x, enc.lengths, DecodeOptions{});
  EXPECT_TRUE(torch::equal(spec.indices(back), rows));
  EXPECT_TRUE(torch::equal(x.slice(2, 2), enc.x.slice(2, 2)));  // past each length of 2
  const auto& sex = e.schema().variables[0];
  auto untouched = torch::ones({e.channels()}, torch::kBool);
  for (int64_t q = 0; q < sex.value_width; ++q) untouched[sex.value_offset + q] = false;
  if (sex.observed_channel >= 0) untouched[sex.observed_channel] = false;
  auto keep = untouched.nonzero().view(-1);
  EXPECT_TRUE(torch::equal(x.index_select(1, keep), enc.x.index_select(1, keep)));
  EXPECT_THROW(
      spec.projection(e.schema(), rows.slice(0, 0, 2), enc.lengths, e.channels(), 4, torch::kCPU),
      UsageError);
}

TEST(Conditions, UNetConditionEmbeddings) {
  torch::manual_seed(5);
  UNetConfig uc;
  uc.features = 4;
  uc.hidden = 16;
  uc.n_steps = 20;
  UNet plain(uc);
  uc.cond_sizes = {4, 5};
  UNet net(uc);
  net->eval();
  // Only the embeddings are added: 2 tables x rows x time_dim.
  EXPECT_EQ(count_parameters(*net) - count_parameters(*plain), (4 + 5) * uc.time_dim);
  auto x = torch::randn({3, 4, 16});
  auto t = torch::tensor({0, 5, 19}, torch::kLong);
  auto null = torch::tensor({3, 4}, torch::kLong).unsqueeze(0).expand({3, 2});
  torch::NoGradGuard ng;
  // No conditions means the dropped row of every variable.
  EXPECT_TRUE(torch::allclose(net->forward(x, t), net->forward(x, t, null)));
  auto cond = torch::tensor({0, 1, 1, 2, 2, 0}, torch::kLong).view({3, 2});
  auto yc = net->forward(x, t, cond);
  EXPECT_EQ(yc.sizes(), x.sizes());
  EXPECT_FALSE(torch::allclose(yc, net->forward(x, t, null)));
  EXPECT_THROW(net->forward(x, t, torch::zeros({3, 3}, torch::kLong)), UsageError);

  // Guidance: w = 1 is the conditional prediction, w = 0 the unconditional one,
  // and w = 2 extrapolates linearly.
  auto null_row = torch::tensor({3, 4}, torch::kLong);
  auto e1 = guided_denoiser(net, cond, null_row, 1.0)(x, t);
  auto e0 = guided_denoiser(net, cond, null_row, 0.0)(x, t);
  auto e2 = guided_denoiser(net, cond, null_row, 2.0)(x, t);
  EXPECT_TRUE(torch::allclose(e1, yc, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(e0, net->forward(x, t, null), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(e2, 2 * e1 - e0, 1e-4, 1e-4));
}

TEST(Conditions, ConditionalSamplingReturnsOnlyTheRequestedValues) {
  TempDir dir;
  TrainConfig c = healthgym::testing::small_config(dir, default_preset(), "physionet", 40);
  train(c);
  auto ck = load_checkpoint(c.out_path);
  EXPECT_EQ(ck.model.conditions.names(),
            (std::vector<std::string>{"sex", "icu_type", "in_hospital_death"}));
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 12;
  s.sampler = SamplerKind::kDdim;
  s.sample_steps = 4;
  s.guidance = 2.0;
  s.conditions = {"in_hospital_death=yes", "sex=male"};
  auto r = sample_to_csv(s);
  EXPECT_TRUE(r.conditional);
  EXPECT_GT(r.subgroup_share_real, 0.0);
  EXPECT_LT(r.subgroup_share_real, 1.0);
  auto table = read_csv(s.out_path);
  const auto& h = table.header;
  const auto death = std::find(h.begin(), h.end(), "in_hospital_death") - h.begin();
  const auto sex = std::find(h.begin(), h.end(), "sex") - h.begin();
  std::set<std::string> deaths, sexes, ids;
  for (const auto& row : table.rows) {
    deaths.insert(row[death]);
    sexes.insert(row[sex]);
    ids.insert(row[0]);
  }
  EXPECT_EQ(deaths, std::set<std::string>{"yes"});
  EXPECT_EQ(sexes, std::set<std::string>{"male"});
  EXPECT_EQ(ids.size(), 12u);
}
