#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>

#include "healthgym/checkpoint.hpp"
#include "healthgym/conditions.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/observation_model.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/schedule_model.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;
using healthgym::testing::TempDir;

namespace {

// 200 patients of 12 hourly steps. "temp" is charted hourly in a third of the
// stays and every fourth hour (from a random phase) in the rest, as PhysioNet's
// temperature; "lab" every sixth hour from hour 0; "age" static.
// With `ward`, a static label says which: "h" for the hourly stays, "q" for the others.
std::string styled_csv(const TempDir& dir, bool ward = false) {
  std::string s = ward ? "id,hour,age,ward,temp,lab\n" : "id,hour,age,temp,lab\n";
  for (int p = 0; p < 200; ++p) {
    const bool hourly = p % 3 == 0;
    const int phase = (p * 7) % 4;
    for (int t = 0; t < 12; ++t) {
      s += std::to_string(p) + "," + std::to_string(t) + "," + std::to_string(40 + p % 30) + ",";
      if (ward) s += hourly ? "h," : "q,";
      if (hourly || t % 4 == phase) s += std::to_string(36 + (p + t) % 3) + ".5";
      s += ",";
      if (t % 6 == 0) s += std::to_string(1 + (p + t) % 9);
      s += "\n";
    }
  }
  return dir.write(ward ? "styled_ward.csv" : "styled.csv", s);
}

struct Fitted {
  LoadedData data;
  Encoder encoder;
  EncodedCohort enc;
  ObservationModel chains;
  ScheduleModel sequence;
};

Fitted fit_styled(const TempDir& dir, int64_t epochs = 60) {
  Fitted f;
  f.data = load_data(styled_csv(dir), "id", "hour", "");
  f.encoder = Encoder::fit(f.data.schema, f.data.cohort, 16, 1e-3);
  f.enc = f.encoder.encode(f.data.cohort);
  f.chains = ObservationModel::fit(f.encoder, f.enc);
  ScheduleFitConfig c;
  c.max_epochs = epochs;
  c.seed = 5;
  f.sequence = ScheduleModel::fit(f.encoder, f.enc, f.chains, {}, c);
  return f;
}

// Per drawn patient, the steps (of its first 12) where `channel` is observed.
std::vector<int64_t> counts(const ObservationModel::Draw& d, int64_t channel) {
  std::vector<int64_t> out;
  for (int64_t p = 0; p < d.values.size(0); ++p)
    out.push_back((d.values[p][channel].slice(0, 0, 12) > 0).sum().item<int64_t>());
  return out;
}

}  // namespace

// The inputs of step t come from steps before t only, with known values.
TEST(ScheduleModel, FeaturesSeeOnlyThePast) {
  // One patient, 2 units, 4 steps (length 3 inside a working length of 8).
  auto y = torch::tensor({1.f, 0.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f}).view({1, 4, 2});
  auto f = schedule_features(y, torch::tensor({3}, torch::kLong), 8, 4);
  ASSERT_EQ(f.sizes().vec(), (std::vector<int64_t>{1, 4, 10}));
  auto row = [&](int64_t t) {
    auto r = f[0][t].contiguous();
    return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + 10);
  };
  // t = 0: nothing before; gaps at their cap; shares 0; position 0, 2 steps left.
  EXPECT_EQ(row(0), (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 0, 0, 2.f / 8}));
  // t = 2: the step before is (0, 0); unit 0 last seen at 0 (gap 2), unit 1
  // never; unit 0 observed in 1 of 2 steps.
  EXPECT_EQ(row(2), (std::vector<float>{0, 0, 0.5f, 1, 1, 0, 0.5f, 0, 2.f / 8, 0}));
  // t = 3 (past the length: fed, never counted): both seen at step 2.
  EXPECT_EQ(row(3), (std::vector<float>{1, 1, 0.25f, 0.25f, 1, 1, 2.f / 3, 1.f / 3, 3.f / 8, 0}));
  // Changing step 3 changes no step's inputs up to 3.
  auto y2 = y.clone();
  y2[0][3] = torch::tensor({0.f, 0.f});
  EXPECT_TRUE(torch::equal(schedule_features(y2, torch::tensor({3}, torch::kLong), 8, 4), f));
}

// A stay keeps its rhythm: hourly stays stay hourly, 4-hourly stays 4-hourly.
// The per-unit chains, which see only the gap since the last measurement,
// mix the two within a stay.
TEST(ScheduleModel, StaysKeepTheirRhythm) {
  TempDir dir;
  Fitted f = fit_styled(dir);
  ASSERT_FALSE(f.sequence.empty());
  ASSERT_EQ(f.sequence.units(), 2);
  EXPECT_GE(f.sequence.epochs(), 1);
  EXPECT_LE(f.sequence.epochs(), 60);
  const auto& temp = f.data.schema.variables[f.data.schema.variable_index("temp")];
  const auto& lab = f.data.schema.variables[f.data.schema.variable_index("lab")];
  auto lengths = torch::full({300}, 12, torch::kLong);
  auto mixed = [&](const ObservationModel::Draw& d, int64_t* hourly) {
    int64_t m = 0;
    *hourly = 0;
    for (int64_t c : counts(d, temp.observed_channel)) {
      m += c > 4 && c < 11;  // neither rhythm
      *hourly += c >= 11;
    }
    return m;
  };
  int64_t hourly = 0;
  const auto d = f.sequence.sample(lengths, {}, at::detail::createCPUGenerator(1));
  const int64_t mixed_sequence = mixed(d, &hourly);
  EXPECT_LT(mixed_sequence, 30) << "of 300";
  EXPECT_GT(hourly, 60);  // a third of the real stays
  EXPECT_LT(hourly, 140);
  int64_t chain_hourly = 0;
  const int64_t mixed_chains =
      mixed(f.chains.sample(lengths, at::detail::createCPUGenerator(1)), &chain_hourly);
  EXPECT_GT(mixed_chains, 2 * mixed_sequence + 30);
  // The lab keeps its 6-hourly schedule.
  int64_t off = 0;
  for (int64_t p = 0; p < 300; ++p)
    for (int64_t t = 0; t < 12; ++t)
      off += (d.values[p][lab.observed_channel][t].item<float>() > 0) != (t % 6 == 0);
  EXPECT_LT(off, 300 * 12 / 50);
  // Only the units' channels are known; past each length they are 0; the same
  // generator seed draws the same schedules.
  EXPECT_EQ(d.known.sum().item<float>(), 2.f);
  auto short_ones = torch::tensor({12, 5, 1, 16}, torch::kLong);
  auto s = f.sequence.sample(short_ones, {}, at::detail::createCPUGenerator(4));
  ASSERT_EQ(s.values.sizes().vec(), (std::vector<int64_t>{4, f.encoder.channels(), 16}));
  for (int64_t p = 0; p < 4; ++p) {
    const int64_t len = short_ones[p].item<int64_t>();
    EXPECT_EQ(s.values[p].slice(1, len).abs().sum().item<float>(), 0.f) << p;
    EXPECT_EQ(s.values[p][temp.observed_channel].slice(0, 0, len).abs().sum().item<float>(),
              static_cast<float>(len))
        << "every modelled cell is +-1";
  }
  EXPECT_TRUE(torch::equal(
      f.sequence.sample(short_ones, {}, at::detail::createCPUGenerator(4)).values, s.values));
  EXPECT_THROW(f.sequence.sample(torch::tensor({17}, torch::kLong)), UsageError);
  EXPECT_THROW(f.sequence.sample(torch::tensor({0}, torch::kLong)), UsageError);
  // The held-out likelihood is the model's: finite and far below a coin's (0.69).
  EXPECT_LT(f.sequence.validation_nll(), 0.3);
  EXPECT_NEAR(f.sequence.nll(f.enc), f.sequence.validation_nll(), 0.1);
}

// Given each stay's label, the model gives a labelled subgroup its own rhythm
// from the first hour: hourly temperature for "h", 4-hourly for "q".
TEST(ScheduleModel, LabelsGiveEachSubgroupItsSchedules) {
  TempDir dir;
  auto data = load_data(styled_csv(dir, true), "id", "hour", "");
  Encoder e = Encoder::fit(data.schema, data.cohort, 16, 1e-3);
  const auto enc = e.encode(data.cohort);
  auto chains = ObservationModel::fit(e, enc);
  auto spec = ConditionSpec::fit(data.schema, data.cohort, "ward", 16);
  ScheduleFitConfig c;
  c.seed = 5;
  const ScheduleLabels labels{spec.indices(data.cohort), spec.label_sizes()};
  auto m = ScheduleModel::fit(e, enc, chains, labels, c);
  EXPECT_EQ(m.label_sizes(), (std::vector<int64_t>{3}));  // h, q, missing
  const Variable& temp =
      e.schema().variables[static_cast<size_t>(data.schema.variable_index("temp"))];
  auto lengths = torch::full({300}, 12, torch::kLong);
  auto hourly_share = [&](int64_t label) {
    const auto d = m.sample(lengths, torch::full({300, 1}, label, torch::kLong),
                            at::detail::createCPUGenerator(1));
    int64_t hourly = 0;
    for (int64_t n : counts(d, temp.observed_channel)) hourly += n >= 11;
    return static_cast<double>(hourly) / 300.0;
  };
  const int64_t h = spec.parse({"ward=h"}).begin()->second;
  const int64_t q = spec.parse({"ward=q"}).begin()->second;
  EXPECT_GT(hourly_share(h), 0.8);
  EXPECT_LT(hourly_share(q), 0.1);
  // The labels are required, one row per patient, within their sizes.
  EXPECT_THROW(m.sample(lengths), UsageError);
  EXPECT_THROW(m.sample(lengths, torch::full({300, 1}, 3, torch::kLong)), UsageError);
  EXPECT_THROW(m.sample(lengths, torch::zeros({2, 1}, torch::kLong)), UsageError);
  // The label inputs survive the JSON; the weights' shapes check them.
  EXPECT_EQ(ScheduleNetConfig::from_json(m.to_json().at("net")).label_sizes,
            (std::vector<int64_t>{3}));
}

// Fitting leaves the global generator as it found it (the seed preset's
// samples must not depend on whether a schedule model was fitted) and is
// deterministic for a seed.
TEST(ScheduleModel, FitIsDeterministicAndLeavesTheGlobalGenerator) {
  TempDir dir;
  torch::manual_seed(11);
  const auto before = torch::rand({4});
  torch::manual_seed(11);
  Fitted a = fit_styled(dir, 3);
  EXPECT_TRUE(torch::equal(torch::rand({4}), before));
  Fitted b = fit_styled(dir, 3);
  auto lengths = torch::full({20}, 12, torch::kLong);
  EXPECT_TRUE(
      torch::equal(a.sequence.sample(lengths, {}, at::detail::createCPUGenerator(2)).values,
                   b.sequence.sample(lengths, {}, at::detail::createCPUGenerator(2)).values));
  EXPECT_EQ(a.sequence.epochs(), 3);
}

// Group members are modelled inside their group and hold 1 elsewhere, as encoded.
TEST(ScheduleModel, GroupMembersAreDrawnInsideTheirGroup) {
  TempDir dir;
  auto data = load_data(healthgym::testing::grouped_csv(dir), "id", "t", "");
  Encoder e = Encoder::fit(data.schema, data.cohort, 8, 1e-3, TimeMode::kGrid, 0.0, 0.5);
  const Variable& va = e.schema().variables[0];
  const Variable& vb = e.schema().variables[1];
  ASSERT_GE(va.group_channel, 0);
  const auto enc = e.encode(data.cohort);
  auto chains = ObservationModel::fit(e, enc);
  ScheduleFitConfig c;
  c.seed = 1;
  auto m = ScheduleModel::fit(e, enc, chains, {}, c);
  ASSERT_EQ(m.units(), 3);
  auto d = m.sample(torch::full({50}, 8, torch::kLong), {}, at::detail::createCPUGenerator(1));
  auto g = d.values.select(1, va.group_channel);
  auto own_b = d.values.select(1, vb.observed_channel);
  EXPECT_TRUE(
      torch::equal(own_b.masked_select(g < 0), torch::ones_like(own_b.masked_select(g < 0))));
  int64_t off = 0;
  for (int t = 0; t < 8; ++t) {
    off += (g.select(1, t) > 0).ne(t % 2 == 0).sum().item<int64_t>();
    if (t % 2 == 0) off += (own_b.select(1, t) > 0).ne(t % 4 == 0).sum().item<int64_t>();
  }
  EXPECT_LT(off, 50 * 12 / 50);
}

// Through train and sample: a sparse cohort's default-preset checkpoint holds
// the model, it survives the round trip, and sampling uses it by default.
TEST(ScheduleModel, CheckpointRoundTripAndDefaultSampling) {
  TempDir dir;
  TrainConfig c = healthgym::testing::tiny_run_config(default_preset(), styled_csv(dir), "id",
                                                      "hour", dir.file("m.hg"));
  c.schedule_epochs = 4;
  TrainResult r = train(c);
  EXPECT_EQ(r.schedule_epochs, 4);
  auto ck = load_checkpoint(c.out_path);
  ASSERT_TRUE(ck.model.observations.sparse());
  ASSERT_FALSE(ck.model.schedules.empty());
  EXPECT_EQ(ck.model.schedules.epochs(), 4);
  EXPECT_EQ(ck.meta.at("train_config").at("schedule_epochs").get<int64_t>(), 4);
  auto ck2 = load_checkpoint(c.out_path);
  auto lengths = torch::full({10}, 12, torch::kLong);
  EXPECT_TRUE(torch::equal(
      ck.model.schedules.sample(lengths, {}, at::detail::createCPUGenerator(3)).values,
      ck2.model.schedules.sample(lengths, {}, at::detail::createCPUGenerator(3)).values));
  // A resumed run keeps it as it was (it is not refitted).
  TrainConfig more;
  more.resume_path = c.out_path;
  more.out_path = dir.file("more.hg");
  more.epochs = 2;
  EXPECT_EQ(train(more).schedule_epochs, 0);
  auto ck3 = load_checkpoint(more.out_path);
  ASSERT_FALSE(ck3.model.schedules.empty());
  EXPECT_TRUE(torch::equal(
      ck.model.schedules.sample(lengths, {}, at::detail::createCPUGenerator(3)).values,
      ck3.model.schedules.sample(lengths, {}, at::detail::createCPUGenerator(3)).values));

  SampleConfig s = healthgym::testing::ddim_config(c.out_path, dir.file("syn.csv"), 6, 3);
  s.guardrail = false;
  EXPECT_EQ(sample_to_csv(s).observations, ObservationSource::kSequence);
  s.observations = ObservationSource::kChains;
  EXPECT_EQ(sample_to_csv(s).observations, ObservationSource::kChains);
  s.observations = ObservationSource::kNetwork;
  EXPECT_FALSE(sample_to_csv(s).observation_model);
  // Without one, "model" falls back on the chains and "sequence" is refused.
  ck.model.schedules = ScheduleModel();
  s.observations = ObservationSource::kSequence;
  EXPECT_NE(
      message_of([&] { generate_cohort(ck.model, s, nullptr); }).find("holds no schedule model"),
      std::string::npos);
  SampleResult res;
  s.observations = ObservationSource::kModel;
  generate_cohort(ck.model, s, &res);
  EXPECT_EQ(res.observations, ObservationSource::kChains);

  // The seed preset fits none; --schedule-epochs 0 neither.
  TrainConfig seed = healthgym::testing::tiny_run_config(seed_preset(), styled_csv(dir), "id",
                                                         "hour", dir.file("s.hg"));
  train(seed);
  EXPECT_TRUE(load_checkpoint(seed.out_path).model.schedules.empty());
  c.schedule_epochs = 0;
  c.out_path = dir.file("none.hg");
  train(c);
  EXPECT_TRUE(load_checkpoint(c.out_path).model.schedules.empty());
}

// Through train and sample with a label: the checkpoint's schedule model takes
// it, and `--condition ward=h` gets the hourly stays' temperatures.
TEST(ScheduleModel, ConditionalSamplingGetsTheSubgroupsSchedules) {
  TempDir dir;
  TrainConfig c = healthgym::testing::tiny_run_config(default_preset(), styled_csv(dir, true), "id",
                                                      "hour", dir.file("m.hg"));
  train(c);
  auto ck = load_checkpoint(c.out_path);
  ASSERT_FALSE(ck.model.schedules.empty());
  EXPECT_EQ(ck.model.schedules.label_sizes(), ck.model.conditions.label_sizes());
  EXPECT_EQ(ck.model.conditions.names(), std::vector<std::string>{"ward"});
  auto hourly_share = [&](const std::string& ward) {
    SampleConfig s =
        healthgym::testing::ddim_config(c.out_path, dir.file("syn_" + ward + ".csv"), 40, 2);
    s.guardrail = false;
    s.conditions = {"ward=" + ward};
    sample_to_csv(s);
    auto table = read_csv(s.out_path);
    const auto& h = table.header;
    const auto temp = std::find(h.begin(), h.end(), "temp") - h.begin();
    std::map<std::string, int> charted;
    for (const auto& row : table.rows) charted[row[0]] += row[temp].empty() ? 0 : 1;
    int hourly = 0;
    for (const auto& kv : charted) hourly += kv.second >= 11;
    return static_cast<double>(hourly) / static_cast<double>(charted.size());
  };
  EXPECT_GT(hourly_share("h"), 0.8);
  EXPECT_LT(hourly_share("q"), 0.2);
}

TEST(ScheduleModel, CorruptMetadataAndBadSettingsAreNamed) {
  TempDir dir;
  Fitted f = fit_styled(dir, 1);
  const auto j = f.sequence.to_json();
  // What ScheduleModel::load says of `meta` with the weights `save` writes.
  auto load_error = [&](const nlohmann::json& meta,
                        const std::function<void(torch::serialize::OutputArchive&)>& save,
                        int64_t channels, int64_t len,
                        const std::vector<int64_t>& labels = {}) -> std::string {
    torch::serialize::OutputArchive out;
    save(out);
    std::ostringstream bytes;
    out.save_to(bytes);
    std::istringstream in(bytes.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    try {
      ScheduleModel::load(meta, archive, channels, len, labels);
    } catch (const InputError& e) {
      return e.what();
    }
    return "(no error)";
  };
  auto fitted = [&](torch::serialize::OutputArchive& out) { f.sequence.save(out); };
  auto expect_error = [&](const nlohmann::json& bad, int64_t channels, int64_t len,
                          const char* what, const std::vector<int64_t>& labels = {}) {
    const std::string message = load_error(bad, fitted, channels, len, labels);
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect_error(j, f.encoder.channels(), 32, "differs from the encoder's");
  expect_error(j, 1, 16, "out of range or repeated");
  auto bad = j;
  bad["gates"][0] = 1;
  expect_error(bad, f.encoder.channels(), 16, "not a unit drawn before it");
  bad = j;
  bad["channels"].erase(0);
  expect_error(bad, f.encoder.channels(), 16, "must list 2 units");
  bad = j;
  bad["net"]["hidden"] = 8;  // the weights are 64 wide
  expect_error(bad, f.encoder.channels(), 16,
               "does not match the model's 2 units, width 8 and 0 label inputs");
  // Label inputs: the conditioning variables' or none, checked before the
  // network is built; the weights must have them.
  bad = j;
  bad["net"]["label_sizes"] = {3, 3};
  expect_error(bad, f.encoder.channels(), 16, "label inputs are not the conditioning variables'");
  bad["net"]["label_sizes"] = {3};
  expect_error(bad, f.encoder.channels(), 16, "label inputs are not the conditioning variables'",
               {2});
  expect_error(bad, f.encoder.channels(), 16, "3 label inputs", {3});
  bad["net"]["label_sizes"] = {0};
  expect_error(bad, f.encoder.channels(), 16, "every label size must be in [1, 65536]", {0});
  EXPECT_EQ(load_error(j, fitted, f.encoder.channels(), 16, {3}), "(no error)");  // as before them
  bad = j;
  bad.erase("net");
  expect_error(bad, f.encoder.channels(), 16, "checkpoint schedule model");
  // Weights of the right shapes but stored as float64, or not finite.
  auto load_from = [&](ScheduleNet net) {
    return load_error(
        j, [&](torch::serialize::OutputArchive& out) { net->save(out); }, f.encoder.channels(), 16);
  };
  const auto config = ScheduleNetConfig::from_json(j.at("net"));
  ScheduleNet wide(config);
  wide->to(torch::kDouble);
  EXPECT_NE(load_from(wide).find("is not finite float32"), std::string::npos) << load_from(wide);
  ScheduleNet broken(config);
  {
    torch::NoGradGuard no_grad;
    broken->parameters()[0].fill_(std::numeric_limits<float>::quiet_NaN());
  }
  EXPECT_NE(load_from(broken).find("is not finite float32"), std::string::npos);
  EXPECT_EQ(load_from(ScheduleNet(config)), "(no error)");

  ScheduleFitConfig c;
  c.validation_share = 1.0;
  EXPECT_NE(message_of([&] { c.validate(); }).find("validation_share"), std::string::npos);
  TrainConfig t = default_preset();
  t.data_path = "x.csv";
  t.id_column = "id";
  t.time_column = "t";
  t.out_path = dir.file("x.hg");
  t.schedule_epochs = -1;
  EXPECT_NE(message_of([&] { t.validate(); }).find("--schedule-epochs"), std::string::npos);
  EXPECT_EQ(observation_source_from_string("sequence"), ObservationSource::kSequence);
  EXPECT_NE(message_of([&] {
              observation_source_from_string("hourly");
            }).find("expected model, sequence, chains or network"),
            std::string::npos);
}
