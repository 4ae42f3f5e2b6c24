#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto");
  EXPECT_EQ(spec.names(), (std::vector<std::string>{"sex", "group"}));
  EXPECT_EQ(spec.embedding_sizes(), (std::vector<int64_t>{4, 4}));  // 2 labels + missing + dropped
  EXPECT_TRUE(torch::equal(spec.null_row(), torch::tensor({3, 3}, torch::kLong)));
  auto rows = spec.indices(d.cohort);
  EXPECT_TRUE(
      torch::equal(rows, torch::tensor({0, 0, 1, 0, 0, 1, 0, 0}, torch::kLong).view({4, 2})));
  EXPECT_TRUE(ConditionSpec::fit(d.schema, d.cohort, "none").empty());
  EXPECT_EQ(ConditionSpec::fit(d.schema, d.cohort, "group").names(),
            std::vector<std::string>{"group"});
}

TEST(Conditions, RejectsWhatCannotBeAConditionWithTheReason) {
  TempDir dir;
  auto d = load_small(dir);
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "HR"); }),
              HasSubstr("'HR' must be a static binary or categorical variable"));
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "nope"); }),
              HasSubstr("no variable 'nope'"));
  EXPECT_THAT(message_of([&] { ConditionSpec::fit(d.schema, d.cohort, "sex,sex"); }),
              HasSubstr("named twice"));
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto");
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
  auto none = ConditionSpec::fit(d.schema, d.cohort, "none");
  EXPECT_THAT(message_of([&] { none.parse({"sex=f"}); }),
              HasSubstr("trained without conditioning variables"));
}

TEST(Conditions, DrawKeepsTheFixedLabelsAndTheTrainingShares) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "auto");
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

TEST(Conditions, ApplySetsTheLabelsAndReportsAgreement) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "sex");
  Cohort co = d.cohort;
  // Patients 1..4 are f, m, f, f; ask for f, f, f, m.
  auto rows = torch::tensor({0, 0, 0, 1}, torch::kLong).view({4, 1});
  EXPECT_DOUBLE_EQ(spec.apply(co, rows), 0.5);
  EXPECT_TRUE(torch::equal(spec.indices(co), rows));
}

TEST(Conditions, ProjectionHoldsTheLabelsEncodedInsideTheLength) {
  TempDir dir;
  auto d = load_small(dir);
  auto spec = ConditionSpec::fit(d.schema, d.cohort, "sex");
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
