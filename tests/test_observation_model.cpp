#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "healthgym/checkpoint.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/observation_model.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::message_of;
using healthgym::testing::TempDir;

namespace {

// 120 patients of 12 hourly steps: "lab" measured every third hour from hour 0,
// "hr" at every hour after the first (missing at hour 0; sparse: only at hours
// 1, 5 and 9), "age" static.
std::string scheduled_csv(const TempDir& dir, bool sparse = false) {
  std::string s = "id,hour,age,hr,lab\n";
  for (int p = 0; p < 120; ++p)
    for (int t = 0; t < 12; ++t) {
      s += std::to_string(p) + "," + std::to_string(t) + "," + std::to_string(40 + p % 30) + ",";
      s += t == 0 || (sparse && t % 4 != 1) ? "" : std::to_string(60 + (p * 7 + t * 3) % 40);
      s += ",";
      if (t % 3 == 0) s += std::to_string(1 + (p + t) % 9) + "." + std::to_string(p % 10);
      s += "\n";
    }
  return dir.write(sparse ? "sparse.csv" : "sched.csv", s);
}

struct Fitted {
  LoadedData data;
  Encoder encoder;
  EncodedCohort enc;
  ObservationModel model;
};

Fitted fit_scheduled(const TempDir& dir) {
  Fitted f;
  f.data = load_data(scheduled_csv(dir), "id", "hour", "");
  f.encoder = Encoder::fit(f.data.schema, f.data.cohort, 16, 1e-3);
  f.enc = f.encoder.encode(f.data.cohort);
  f.model = ObservationModel::fit(f.encoder, f.enc);
  return f;
}

// A small default- or seed-preset run on scheduled_csv, checkpoint at dir/m.hg.
TrainConfig scheduled_config(const TempDir& dir, TrainConfig base, bool sparse) {
  return healthgym::testing::tiny_run_config(base, scheduled_csv(dir, sparse), "id", "hour",
                                             dir.file("m.hg"));
}

SampleConfig ddim_config(const TempDir& dir, const TrainConfig& c, int64_t n) {
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = n;
  s.sampler = SamplerKind::kDdim;
  s.sample_steps = 3;
  return s;
}

size_t unit_of(const Fitted& f, const std::string& name) {
  const auto& v = f.data.schema.variables[f.data.schema.variable_index(name)];
  for (size_t i = 0; i < f.model.units().size(); ++i)
    if (f.model.units()[i].channel == v.observed_channel) return i;
  ADD_FAILURE() << "no unit for " << name;
  return 0;
}

}  // namespace

TEST(ObservationModel, CountsKnownSchedules) {
  TempDir dir;
  Fitted f = fit_scheduled(dir);
  // hr and lab are time-varying with missing cells; age never misses.
  ASSERT_EQ(f.model.units().size(), 2u);
  const size_t lab = unit_of(f, "lab"), hr = unit_of(f, "hr");
  // Lab is drawn after hr but observed with it too rarely (Jaccard 0.25) to
  // have it as a partner. Lab: observed at hour 0 (never seen before), then
  // exactly 3 hours after the last one; 120 patients per cell, prior 4.
  EXPECT_EQ(f.model.units()[hr].partner, -1);
  EXPECT_EQ(f.model.units()[lab].partner, -1);
  EXPECT_GT(f.model.probability(lab, 0, 0), 0.95);
  for (int t = 3; t < 12; t += 3) EXPECT_GT(f.model.probability(lab, t, 3), 0.95) << t;
  for (int t = 1; t < 12; ++t)
    if (t % 3 != 0) EXPECT_LT(f.model.probability(lab, t, t % 3), 0.02) << t;
  // Known answer for a cell: 120 of 120 seen at hour 6, gap 3; shrunk toward
  // gap 3 over all steps (360 of 360), that toward lab's rate (480 of 1440,
  // plus half of one).
  const double rate = 480.5 / 1441.0;
  const double gap = (360.0 + 4.0 * rate) / 364.0;
  const double step = (120.0 + 4.0 * gap) / 124.0;
  EXPECT_NEAR(f.model.probability(lab, 6, 3), (120.0 + 4.0 * step) / 124.0, 1e-6);
  // HR: never at hour 0, then every hour.
  EXPECT_LT(f.model.probability(hr, 0, 0), 0.05);
  EXPECT_GT(f.model.probability(hr, 1, 0), 0.95);
  EXPECT_GT(f.model.probability(hr, 5, 1), 0.95);
  EXPECT_THROW(f.model.probability(9, 0, 0), UsageError);
  // 1320 hr and 480 lab cells observed of 1440 each: not sparse.
  EXPECT_NEAR(f.model.observed_share(), 1800.0 / 2880.0, 1e-12);
  EXPECT_FALSE(f.model.sparse());
}

TEST(ObservationModel, DrawsFollowTheSchedulesAndLengths) {
  TempDir dir;
  Fitted f = fit_scheduled(dir);
  const auto& lab = f.data.schema.variables[f.data.schema.variable_index("lab")];
  auto lengths = torch::tensor({12, 5, 1, 16}, torch::kLong);
  auto gen = at::detail::createCPUGenerator(3);
  auto d = f.model.sample(lengths, gen);
  ASSERT_EQ(d.values.sizes().vec(), (std::vector<int64_t>{4, f.encoder.channels(), 16}));
  EXPECT_EQ(d.known.sum().item<float>(), 2.f);
  EXPECT_EQ(d.known[lab.observed_channel].item<float>(), 1.f);
  for (int p = 0; p < 4; ++p) {
    const int64_t len = lengths[p].item<int64_t>();
    for (int64_t t = 0; t < 16; ++t) {
      const float v = d.values[p][lab.observed_channel][t].item<float>();
      if (t >= len) {
        EXPECT_EQ(v, 0.f) << "past the length";
      } else if (t < 12) {
        EXPECT_EQ(v, t % 3 == 0 ? 1.f : -1.f) << p << " " << t;
      }
    }
  }
  // Unmodelled channels stay 0; the same generator seed gives the same draw.
  EXPECT_EQ((d.values * (1 - d.known.view({1, -1, 1}))).abs().sum().item<float>(), 0.f);
  auto again = f.model.sample(lengths, at::detail::createCPUGenerator(3));
  EXPECT_TRUE(torch::equal(again.values, d.values));
  EXPECT_THROW(f.model.sample(torch::tensor({17}, torch::kLong)), UsageError);
  // The projection replaces exactly the known channels.
  auto x0 = torch::randn({4, f.encoder.channels(), 16});
  auto y = ObservationModel::projection(d, torch::kCPU)(x0);
  auto k = d.known.view({1, -1, 1});
  EXPECT_TRUE(torch::equal(y * (1 - k), x0 * (1 - k)));
  EXPECT_TRUE(torch::equal(y * k, d.values));
  EXPECT_THROW(ObservationModel::projection(d, torch::kCPU)(torch::zeros({1, 2, 3})), InputError);
}

TEST(ObservationModel, GroupMembersAreDrawnInsideTheirGroup) {
  TempDir dir;
  auto data = load_data(healthgym::testing::grouped_csv(dir), "id", "t", "");
  Encoder e = Encoder::fit(data.schema, data.cohort, 8, 1e-3, TimeMode::kGrid, 0.0, 0.5);
  const Variable& va = e.schema().variables[0];
  const Variable& vb = e.schema().variables[1];
  ASSERT_GE(va.group_channel, 0);
  ASSERT_EQ(va.group_channel, vb.group_channel);
  auto m = ObservationModel::fit(e, e.encode(data.cohort));
  ASSERT_EQ(m.units().size(), 3u);
  EXPECT_EQ(m.units()[0].channel, va.group_channel);
  EXPECT_EQ(m.units()[1].gate, va.group_channel);
  auto d = m.sample(torch::full({50}, 8, torch::kLong), at::detail::createCPUGenerator(1));
  auto g = d.values.select(1, va.group_channel);
  auto own_b = d.values.select(1, vb.observed_channel);
  // Where the group is off, members hold 1 (as encoded); the group follows its
  // every-other-step schedule and b its every-fourth one inside it.
  EXPECT_TRUE(
      torch::equal(own_b.masked_select(g < 0), torch::ones_like(own_b.masked_select(g < 0))));
  for (int t = 0; t < 8; ++t) {
    EXPECT_EQ(g.select(1, t).mean().item<float>(), t % 2 == 0 ? 1.f : -1.f) << t;
    if (t % 2 == 0) EXPECT_EQ(own_b.select(1, t).mean().item<float>(), t % 4 == 0 ? 1.f : -1.f);
  }
  // Decoding the draw gives b exactly on its schedule.
  auto x = torch::zeros({50, e.channels(), 8});
  auto k = d.known.view({1, -1, 1});
  x = x * (1 - k) + d.values * k;
  Cohort co = e.decode(x, torch::full({50}, 8, torch::kLong), DecodeOptions{});
  for (int64_t r = 0; r < co.n_rows(); ++r) {
    const int64_t t = r % 8;
    EXPECT_EQ(is_missing(co.cell(r, 1)), t % 4 != 0) << r;
    EXPECT_EQ(is_missing(co.cell(r, 0)), t % 2 != 0) << r;
  }
}

TEST(ObservationModel, JsonRoundTripAndCorruptTables) {
  TempDir dir;
  Fitted f = fit_scheduled(dir);
  const auto j = f.model.to_json();
  auto back = ObservationModel::from_json(j, f.encoder.channels(), 16);
  ASSERT_EQ(back.units().size(), f.model.units().size());
  for (size_t i = 0; i < back.units().size(); ++i) {
    EXPECT_EQ(back.units()[i].channel, f.model.units()[i].channel);
    EXPECT_EQ(back.units()[i].gate, f.model.units()[i].gate);
    EXPECT_EQ(back.units()[i].partner, f.model.units()[i].partner);
    EXPECT_EQ(back.units()[i].p, f.model.units()[i].p);
  }
  auto expect_error = [&](nlohmann::json bad, int64_t channels, int64_t len, const char* what) {
    try {
      ObservationModel::from_json(bad, channels, len);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error(j, f.encoder.channels(), 32, "differs from the encoder's");
  expect_error(j, 1, 16, "channel out of range");
  auto bad = j;
  bad["units"][0]["p"][3] = 1.5;
  expect_error(bad, f.encoder.channels(), 16, "probability 1.5");
  bad = j;
  bad["units"][0]["p"].erase(0);
  expect_error(bad, f.encoder.channels(), 16, "probabilities, expected");
  bad = j;
  bad["units"][0]["gate"] = bad["units"][1]["channel"];
  expect_error(bad, f.encoder.channels(), 16, "not drawn before it");
  bad = j;
  bad["units"][0]["partner"] = 1;
  expect_error(bad, f.encoder.channels(), 16, "partner is not a unit drawn before it");
  bad = j;
  bad.erase("max_gap");
  expect_error(bad, f.encoder.channels(), 16, "checkpoint observation model");
}

// Through train and sample: a checkpoint carries the model, and sampling with
// it puts the observations on the training schedule.
TEST(ObservationModel, SampledCohortFollowsTheSchedule) {
  TempDir dir;
  TrainConfig c = scheduled_config(dir, default_preset(), false);
  train(c);
  auto ck = load_checkpoint(c.out_path);
  ASSERT_EQ(ck.model.observations.units().size(), 2u);
  SampleConfig s = ddim_config(dir, c, 40);
  s.observations = ObservationSource::kChains;  // this cohort is not sparse: off by default
  auto r = sample_to_csv(s);
  EXPECT_EQ(r.accepted, 40);
  EXPECT_TRUE(r.observation_model);
  auto syn = load_data_with_schema(s.out_path, ck.model.encoder.schema());
  const long lab = ck.model.encoder.schema().variable_index("lab");
  const long hr = ck.model.encoder.schema().variable_index("hr");
  int64_t off_schedule = 0, rows = 0;
  for (int64_t p = 0; p < syn.n_patients(); ++p)
    for (int64_t k = 0; k < syn.length[p]; ++k, ++rows) {
      const int64_t row = syn.start[p] + k;
      off_schedule += is_missing(syn.cell(row, lab)) != (k % 3 != 0);
      off_schedule += is_missing(syn.cell(row, hr)) != (k == 0);
    }
  ASSERT_GT(rows, 0);
  // Each cell is off its schedule with probability below 2% (CountsKnownSchedules).
  EXPECT_LT(static_cast<double>(off_schedule) / static_cast<double>(2 * rows), 0.02);
  // Asking for it from a checkpoint without one is a usage error.
  ck.model.observations = ObservationModel();
  SampleConfig s2 = s;
  s2.observations = ObservationSource::kChains;
  EXPECT_THROW(generate_cohort(ck.model, s2, nullptr), UsageError);
}

// The default follows the training cohort: drawn schedules for sparse records,
// the network's own placement for dense ones and for the seed preset.
TEST(ObservationModel, DefaultFollowsSparsity) {
  TempDir dir;
  for (bool sparse : {false, true})
    for (const char* preset : {"default", "seed"}) {
      TrainConfig c = scheduled_config(dir, preset_by_name(preset), sparse);
      train(c);
      auto ck = load_checkpoint(c.out_path);
      EXPECT_EQ(ck.model.observations.sparse(), sparse);
      if (sparse) EXPECT_NEAR(ck.model.observations.observed_share(), 840.0 / 2880.0, 1e-12);
      SampleConfig s = ddim_config(dir, c, 4);
      s.guardrail = false;
      EXPECT_EQ(sample_to_csv(s).observation_model, sparse && std::string(preset) == "default")
          << preset << (sparse ? " sparse" : " dense");
    }
}

// Variables measured together without sharing a group (Encoder::fit without
// groups here) stay together: the later one's chances depend on its partner.
TEST(ObservationModel, PartnersKeepCoMeasurements) {
  TempDir dir;
  std::string s = "id,t,x,y\n";
  for (int p = 0; p < 200; ++p)
    for (int t = 0; t < 10; ++t) {
      const bool on = (p * 7 + t * 3) % 4 == 0;  // a different schedule per patient
      const std::string v = on ? std::to_string(p % 9 + t) + "." + std::to_string(t % 7) : "";
      s += std::to_string(p) + "," + std::to_string(t) + "," + v + "," + v + "\n";
    }
  auto data = load_data(dir.write("pair.csv", s), "id", "t", "");
  Encoder e = Encoder::fit(data.schema, data.cohort, 16, 1e-3);
  auto m = ObservationModel::fit(e, e.encode(data.cohort));
  ASSERT_EQ(m.units().size(), 2u);
  EXPECT_EQ(m.units()[1].partner, 0);
  EXPECT_EQ(m.units()[0].partner, -1);
  // y is observed with x (4 steps after the last time) and not without it.
  for (int64_t t = 4; t < 10; ++t) {
    EXPECT_GT(m.probability(1, t, 4, true), 0.97) << t;
    // x is all there is to observe: where the hour gate opens, it is there.
    EXPECT_GT(m.probability(0, t, 2), 0.97) << t;
  }
  auto d = m.sample(torch::full({300}, 10, torch::kLong), at::detail::createCPUGenerator(5));
  auto x = d.values.select(1, e.schema().variables[0].observed_channel).narrow(1, 0, 10);
  auto y = d.values.select(1, e.schema().variables[1].observed_channel).narrow(1, 0, 10);
  const double together = (x == y).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(together, 0.99);
  const double rate = (x > 0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(rate, 0.25, 0.05);
}

// Steps where nothing is measured stay empty: the hour gate closes them, and
// units are not drawn there one by one.
TEST(ObservationModel, HourGateLeavesEmptyStepsEmpty) {
  TempDir dir;
  // Sparse: lab at hours 0, 3, 6, 9 and hr at 1, 5, 9, so hours 2, 4, 7, 8,
  // 10 and 11 measure nothing.
  auto data = load_data(scheduled_csv(dir, true), "id", "hour", "");
  Encoder e = Encoder::fit(data.schema, data.cohort, 16, 1e-3);
  auto m = ObservationModel::fit(e, e.encode(data.cohort));
  ASSERT_TRUE(m.has_hour());
  const int64_t states = m.max_gap() + 1;
  auto gate = [&](int64_t t, int64_t since) { return m.hour().p[(t * states + since) * 2]; };
  EXPECT_GT(gate(0, 0), 0.95);
  EXPECT_GT(gate(1, 1), 0.95);
  EXPECT_LT(gate(2, 1), 0.05);
  EXPECT_LT(gate(4, 1), 0.05);
  EXPECT_GT(gate(9, 3), 0.95);
  // The share is still of all the cells the units cover.
  EXPECT_NEAR(m.observed_share(), 840.0 / 2880.0, 1e-12);
  auto d = m.sample(torch::full({200}, 12, torch::kLong), at::detail::createCPUGenerator(7));
  auto observed = (d.values > 0).to(torch::kFloat);
  auto any = std::get<0>(observed.index_select(1, torch::nonzero(d.known).view(-1)).max(1));
  const double empty = 1.0 - any.narrow(1, 0, 12).mean().item<double>();
  EXPECT_NEAR(empty, 6.0 / 12.0, 0.03);
  for (int64_t t : {2, 4, 7, 8, 10, 11})
    EXPECT_LT(any.select(1, t).mean().item<double>(), 0.05) << t;
  // Round trip; a table of the wrong size is an error naming the gate; a
  // model written before the gate had one draws every step open.
  auto j = m.to_json();
  auto back = ObservationModel::from_json(j, e.channels(), 16);
  EXPECT_EQ(back.hour().p, m.hour().p);
  auto bad = j;
  bad["hour"]["p"].erase(0);
  EXPECT_NE(
      message_of([&] { ObservationModel::from_json(bad, e.channels(), 16); }).find("hour gate: "),
      std::string::npos);
  bad = j;
  bad["hour"]["p"][0] = -0.5;
  EXPECT_NE(message_of([&] {
              ObservationModel::from_json(bad, e.channels(), 16);
            }).find("hour gate: probability"),
            std::string::npos);
  auto old = j;
  old.erase("hour");
  EXPECT_FALSE(ObservationModel::from_json(old, e.channels(), 16).has_hour());
}
