#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "healthgym/dataset.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/error.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;

namespace {

LoadedData pbc_subset(const TempDir& dir, int patients) {
  const auto path = healthgym::testing::head_patients(
      dir, healthgym::testing::source_path("data/pbcseq.csv"), patients, "pbc.csv");
  return load_data(path, "id", "day", "");
}

}  // namespace

TEST(Encoder, RoundTripIsExact) {
  TempDir dir;
  auto d = pbc_subset(dir, 60);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  EncodedCohort enc = e.encode(d.cohort);
  ASSERT_EQ(enc.x.size(0), 60);
  EXPECT_EQ(enc.x.size(1), e.channels());
  EXPECT_LE(enc.x.abs().max().item<float>(), 1.0f + 1e-6f);
  Cohort back = e.decode(enc.x, enc.lengths, {});
  ASSERT_EQ(back.n_rows(), d.cohort.n_rows());
  for (int64_t r = 0; r < back.n_rows(); ++r)
    for (int64_t v = 0; v < back.n_vars; ++v) {
      const double a = d.cohort.cell(r, v), b = back.cell(r, v);
      if (is_missing(a)) {
        EXPECT_TRUE(is_missing(b)) << "row " << r << " var " << v;
      } else {
        // float32 storage of the encoded value bounds the error.
        EXPECT_NEAR(a, b, 1e-4 * std::max(1.0, std::abs(a))) << "row " << r << " var " << v;
      }
    }
}

TEST(Encoder, LossMaskCoversOnlyValidObservedCells) {
  TempDir dir;
  auto d = pbc_subset(dir, 30);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  EncodedCohort enc = e.encode(d.cohort);
  const auto& s = e.schema();
  for (int64_t p = 0; p < 30; ++p) {
    const int64_t len = enc.lengths[p].item<int64_t>();
    // Padding is out of the loss everywhere.
    if (len < 16) {
      EXPECT_EQ(enc.loss_mask[p].slice(1, len).sum().item<float>(), 0.f);
    }
    for (const auto& v : s.variables) {
      if (v.observed_channel < 0) continue;
      for (int64_t k = 0; k < len; ++k) {
        const bool obs = enc.x[p][v.observed_channel][k].item<float>() > 0;
        EXPECT_EQ(enc.loss_mask[p][v.observed_channel][k].item<float>(), 1.f);
        EXPECT_EQ(enc.loss_mask[p][v.value_offset][k].item<float>(), obs ? 1.f : 0.f);
      }
    }
  }
}

TEST(Encoder, GuardrailChecksObservedRealsWithinLength) {
  TempDir dir;
  auto d = pbc_subset(dir, 10);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  auto x = torch::zeros({3, e.channels(), 16});
  const auto& s = e.schema();
  const auto& bili = s.variables[s.variable_index("bili")];
  const auto& chol = s.variables[s.variable_index("chol")];
  ASSERT_GE(chol.observed_channel, 0);
  auto lengths = torch::tensor({4, 4, 4}, torch::kLong);
  x[0][bili.value_offset][2] = 1.5;   // inside the length: rejected
  x[1][bili.value_offset][10] = 1.5;  // padding: ignored
  x[2][chol.value_offset][1] = -2.0;  // not observed: ignored
  x[2][chol.observed_channel][1] = -1.0;
  auto ok = e.within_range(x, lengths);
  EXPECT_FALSE(ok[0].item<bool>());
  EXPECT_TRUE(ok[1].item<bool>());
  EXPECT_TRUE(ok[2].item<bool>());
  x[2][chol.observed_channel][1] = 1.0;
  EXPECT_FALSE(e.within_range(x, lengths)[2].item<bool>());
}

TEST(Encoder, SampledLengthsFollowTheData) {
  TempDir dir;
  auto d = pbc_subset(dir, 50);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  torch::manual_seed(1);
  auto l = e.sample_lengths(2000);
  EXPECT_GE(l.min().item<int64_t>(), 1);
  EXPECT_LE(l.max().item<int64_t>(), d.cohort.max_length());
  const double real_mean =
      std::accumulate(d.cohort.length.begin(), d.cohort.length.end(), 0.0) / 50.0;
  EXPECT_NEAR(l.to(torch::kDouble).mean().item<double>(), real_mean, 0.5);
}

TEST(Encoder, JsonRoundTrip) {
  TempDir dir;
  auto d = pbc_subset(dir, 20);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  Encoder back = Encoder::from_json(e.to_json());
  EXPECT_EQ(back.to_json(), e.to_json());
  auto enc = e.encode(d.cohort);
  EXPECT_TRUE(torch::equal(back.encode(d.cohort).x, enc.x));
}

TEST(Encoder, AutoWorkingLength) {
  EXPECT_EQ(auto_working_length(48, 3), 48);
  EXPECT_EQ(auto_working_length(60, 3), 64);
  EXPECT_EQ(auto_working_length(16, 3), 16);
  EXPECT_EQ(auto_working_length(1, 3), 8);
  EXPECT_EQ(auto_working_length(100, 0), 100);
}

TEST(Encoder, IrregularVisitTimesRoundTripAsGaps) {
  TempDir dir;
  auto d = pbc_subset(dir, 60);
  Encoder grid = Encoder::fit(d.schema, d.cohort, 16, 1e-3, TimeMode::kGrid);
  EXPECT_EQ(grid.time_channel(), -1);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3, TimeMode::kAuto);
  ASSERT_EQ(e.time_channel(), e.schema().n_channels);
  EXPECT_EQ(e.channels(), e.schema().n_channels + 1);
  auto enc = e.encode(d.cohort);
  EXPECT_EQ(enc.x.size(1), e.channels());
  EXPECT_LE(enc.x.abs().max().item<float>(), 1.0f + 1e-6f);
  Cohort back = e.decode(enc.x, enc.lengths, {});
  ASSERT_EQ(back.n_rows(), d.cohort.n_rows());
  for (int64_t r = 0; r < back.n_rows(); ++r) EXPECT_EQ(back.times[r], d.cohort.times[r]) << r;
  // Generated gaps are never below the smallest real one, so times increase.
  auto noisy = enc.x.clone();
  noisy.select(1, e.time_channel()).fill_(-1.0);  // the smallest gap everywhere
  Cohort tight = e.decode(noisy, enc.lengths, {});
  for (int64_t p = 0; p < tight.n_patients(); ++p)
    for (int64_t k = 1; k < tight.length[p]; ++k)
      EXPECT_GT(tight.times[tight.start[p] + k], tight.times[tight.start[p] + k - 1]);
  // First visits stay within the real ones' range (pbcseq: always day 0).
  auto late = enc.x.clone();
  late.select(1, e.time_channel()).fill_(1.0);
  Cohort shifted = e.decode(late, enc.lengths, {});
  for (int64_t p = 0; p < shifted.n_patients(); ++p)
    EXPECT_EQ(shifted.times[shifted.start[p]], 0.0);
  Encoder back_e = Encoder::from_json(e.to_json());
  EXPECT_EQ(back_e.to_json(), e.to_json());
}

TEST(Encoder, RegularGridNeedsNoTimeChannel) {
  TempDir dir;
  const auto path = healthgym::testing::head_patients(
      dir, healthgym::testing::source_path("data/physionet2012_set_a.csv"), 40, "icu.csv");
  auto d = load_data(path, "stay_id", "hour", "");
  Encoder e = Encoder::fit(d.schema, d.cohort, 48, 1e-3, TimeMode::kAuto);
  EXPECT_EQ(e.time_channel(), -1);
  EXPECT_THROW(time_mode_from_string("weekly"), UsageError);
}

TEST(Encoder, FillWeightCountsUnobservedValuesWithinLengthOnly) {
  TempDir dir;
  auto d = pbc_subset(dir, 30);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  EncodedCohort enc = e.encode(d.cohort);
  EXPECT_TRUE(torch::equal(fill_weighted_mask(enc, 0.0), enc.loss_mask));
  auto m = fill_weighted_mask(enc, 0.25);
  for (int64_t p = 0; p < 30; ++p) {
    const int64_t len = enc.lengths[p].item<int64_t>();
    if (len < 16) EXPECT_EQ(m[p].slice(1, len).sum().item<float>(), 0.f);
    for (const auto& v : e.schema().variables) {
      if (v.observed_channel < 0) continue;
      for (int64_t k = 0; k < len; ++k) {
        const bool obs = enc.x[p][v.observed_channel][k].item<float>() > 0;
        EXPECT_EQ(m[p][v.observed_channel][k].item<float>(), 1.f);
        EXPECT_FLOAT_EQ(m[p][v.value_offset][k].item<float>(), obs ? 1.f : 0.25f);
      }
    }
  }
  EXPECT_THROW(fill_weighted_mask(enc, 1.5), UsageError);
}

TEST(Encoder, ChannelBalanceWeighsEachChannelByItsObservedShare) {
  TempDir dir;
  auto d = pbc_subset(dir, 30);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  EncodedCohort enc = e.encode(d.cohort);
  const int64_t len = enc.x.size(2);
  auto valid =
      (torch::arange(len).view({1, 1, len}) < enc.lengths.view({-1, 1, 1})).to(torch::kDouble);
  const double n_valid = valid.sum().item<double>();
  for (double b : {0.5, 1.0}) {
    for (double w : {0.0, 1.0}) {
      auto m = fill_weighted_mask(enc, w, b).to(torch::kDouble);
      for (int64_t c = 0; c < enc.x.size(1); ++c) {
        auto counted = enc.loss_mask.select(1, c).to(torch::kDouble);
        const double n = counted.sum().item<double>();
        if (n == 0) continue;
        const double weight = std::pow(std::max(n / n_valid, 1e-3), -b);
        // Counted cells carry the channel's weight, the rest of the valid cells w, padding 0.
        EXPECT_NEAR((m.select(1, c) * counted).sum().item<double>(), weight * n, 1e-6 * weight * n);
        auto rest = valid.select(1, 0) - counted;
        EXPECT_NEAR((m.select(1, c) * rest).sum().item<double>(), w * rest.sum().item<double>(),
                    1e-6 * n_valid);
      }
    }
  }
  // A channel counted at every valid step keeps weight 1: the observed indicators.
  for (const auto& v : e.schema().variables)
    if (v.observed_channel >= 0)
      EXPECT_TRUE(torch::allclose(fill_weighted_mask(enc, 1.0, 1.0).select(1, v.observed_channel),
                                  valid.select(1, 0).to(torch::kFloat)));
  EXPECT_TRUE(torch::equal(fill_weighted_mask(enc, 0.0, 0.0), enc.loss_mask));
  EXPECT_THROW(fill_weighted_mask(enc, 1.0, -0.5), UsageError);
  EXPECT_THROW(fill_weighted_mask(enc, 1.0, 1.5), UsageError);
}

TEST(Encoder, ProjectFillZeroesPaddingAndUnobservedValues) {
  TempDir dir;
  auto d = pbc_subset(dir, 8);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  torch::manual_seed(3);
  auto x0 = torch::randn({3, e.channels(), 16});
  auto lengths = torch::tensor({16, 9, 1}, torch::kLong);
  auto y = e.project_fill(x0, lengths);
  for (int64_t p = 0; p < 3; ++p) {
    const int64_t len = lengths[p].item<int64_t>();
    if (len < 16) EXPECT_EQ(y[p].slice(1, len).abs().sum().item<float>(), 0.f);
    for (const auto& v : e.schema().variables) {
      for (int64_t k = 0; k < len; ++k) {
        const bool open = v.observed_channel < 0 || x0[p][v.observed_channel][k].item<float>() > 0;
        for (int64_t q = 0; q < v.value_width; ++q) {
          const float want = open ? x0[p][v.value_offset + q][k].item<float>() : 0.f;
          EXPECT_EQ(y[p][v.value_offset + q][k].item<float>(), want) << v.name;
        }
        if (v.observed_channel >= 0)
          EXPECT_EQ(y[p][v.observed_channel][k].item<float>(),
                    x0[p][v.observed_channel][k].item<float>());
      }
    }
  }
  // Encoded training data is a fixed point: its cells already hold the fill.
  EncodedCohort enc = e.encode(d.cohort);
  EXPECT_TRUE(torch::equal(e.project_fill(enc.x, enc.lengths), enc.x));
}

TEST(Encoder, StaticProjectionHoldsStaticsToTheirMeanWithinTheLength) {
  TempDir dir;
  auto d = pbc_subset(dir, 8);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3);
  torch::manual_seed(4);
  auto x0 = torch::randn({3, e.channels(), 16});
  auto lengths = torch::tensor({16, 9, 1}, torch::kLong);
  auto y = e.static_projection(lengths, torch::kCPU)(x0);
  int statics = 0;
  for (const auto& v : e.schema().variables) {
    std::vector<int64_t> chans;
    for (int64_t q = 0; q < v.value_width; ++q) chans.push_back(v.value_offset + q);
    if (v.observed_channel >= 0) chans.push_back(v.observed_channel);
    statics += v.is_static;
    for (int64_t p = 0; p < 3; ++p) {
      const int64_t len = lengths[p].item<int64_t>();
      for (int64_t ch : chans) {
        auto in = x0[p][ch], out = y[p][ch];
        // Past the length nothing moves; inside it a static holds its mean.
        EXPECT_TRUE(torch::equal(out.slice(0, len), in.slice(0, len)));
        if (!v.is_static) {
          EXPECT_TRUE(torch::equal(out, in)) << v.name;
          continue;
        }
        const float mean = in.slice(0, 0, len).mean().item<float>();
        for (int64_t k = 0; k < len; ++k) EXPECT_NEAR(out[k].item<float>(), mean, 1e-5) << v.name;
      }
    }
  }
  EXPECT_GT(statics, 0);
  // Encoded training data is a fixed point: its statics are constant already.
  EncodedCohort enc = e.encode(d.cohort);
  auto held = e.static_projection(enc.lengths, torch::kCPU)(enc.x);
  EXPECT_TRUE(torch::allclose(held, enc.x, 1e-5, 1e-6));
  EXPECT_THROW(e.static_projection(lengths, torch::kCPU)(torch::zeros({2, e.channels(), 16})),
               InputError);
}

TEST(Encoder, RangeTailRoundTripsAndOldFilesReadAsMinMax) {
  TempDir dir;
  auto d = pbc_subset(dir, 60);
  Encoder e = Encoder::fit(d.schema, d.cohort, 16, 1e-3, TimeMode::kAuto, 0.05);
  EncodedCohort enc = e.encode(d.cohort);
  EXPECT_LE(enc.x.abs().max().item<float>(), 1.0f + 1e-6f);
  Cohort back = e.decode(enc.x, enc.lengths, {});
  for (int64_t r = 0; r < back.n_rows(); ++r)
    for (int64_t v = 0; v < back.n_vars; ++v) {
      const double a = d.cohort.cell(r, v), b = back.cell(r, v);
      if (is_missing(a)) continue;
      EXPECT_NEAR(a, b, 1e-3 * std::max(1.0, std::abs(a))) << "row " << r << " var " << v;
    }
  Encoder again = Encoder::from_json(e.to_json());
  EXPECT_TRUE(torch::equal(again.encode(d.cohort).x, enc.x));
  // A checkpoint written before the spread existed decodes as plain min-max.
  auto j = Encoder::fit(d.schema, d.cohort, 16, 1e-3, TimeMode::kAuto).to_json();
  auto old = j;
  for (auto& jr : old["real_transforms"]) {
    jr.erase("tail");
    jr.erase("bulk_lo");
    jr.erase("bulk_hi");
  }
  EXPECT_TRUE(torch::equal(Encoder::from_json(old).encode(d.cohort).x,
                           Encoder::from_json(j).encode(d.cohort).x));
  old["real_transforms"][0]["bulk_lo"] = 2.0;
  EXPECT_THROW(Encoder::from_json(old), InputError);
}

namespace {

// sys and dia are measured together except at one step (dia missing while sys
// is there); temp is measured on its own schedule; age never misses.
LoadedData measured_together(const TempDir& dir) {
  std::string csv = "id,t,age,sys,dia,temp\n";
  const char* rows[] = {
      "1,0,50,120,80,36.5", "1,1,50,,,",      "1,2,50,125,85,", "1,3,50,118,,37.1",
      "2,0,61,,,36.9",      "2,1,61,140,90,", "2,2,61,,,37.4",  "2,3,61,135,88,",
      "3,0,44,110,70,",     "3,1,44,,,36.6",  "3,2,44,112,72,", "3,3,44,,,",
      "4,0,70,150,95,37.0", "4,1,70,148,94,", "4,2,70,,,36.8",  "4,3,70,152,96,"};
  for (const char* r : rows) csv += std::string(r) + "\n";
  return load_data(dir.write("bp.csv", csv), "id", "t", "");
}

}  // namespace

TEST(Encoder, MissingGroupsShareAChannelAndRoundTripExactly) {
  TempDir dir;
  auto d = measured_together(dir);
  // sys/dia overlap on 9 of the 10 steps either was measured at (Jaccard 0.9);
  // temp hardly overlaps with them.
  Encoder none = Encoder::fit(d.schema, d.cohort, 4, 1e-3, TimeMode::kGrid, 0.0, 0.0);
  Encoder loose = Encoder::fit(d.schema, d.cohort, 4, 1e-3, TimeMode::kGrid, 0.0, 0.85);
  Encoder strict = Encoder::fit(d.schema, d.cohort, 4, 1e-3, TimeMode::kGrid, 0.0, 0.95);
  const auto var = [](const Encoder& e, const std::string& n) {
    return e.schema().variables[static_cast<size_t>(e.schema().variable_index(n))];
  };
  EXPECT_EQ(var(loose, "sys").missing_group, "sys");
  EXPECT_EQ(var(loose, "dia").missing_group, "sys");
  EXPECT_EQ(var(loose, "temp").missing_group, "");
  EXPECT_EQ(var(loose, "age").missing_group, "");
  EXPECT_EQ(var(strict, "dia").missing_group, "");
  EXPECT_EQ(loose.channels(), none.channels() + 1);
  EXPECT_EQ(var(loose, "sys").group_channel, var(loose, "dia").group_channel);
  EXPECT_EQ(var(loose, "sys").group_channel, loose.channels() - 1);
  EXPECT_EQ(var(loose, "temp").group_channel, -1);

  EncodedCohort enc = loose.encode(d.cohort);
  const int g = var(loose, "sys").group_channel, od = var(loose, "dia").observed_channel;
  // Patient 1 (index 0): the group is on at steps 0, 2, 3; dia's own channel is
  // off only at step 3, where sys was measured without it.
  EXPECT_EQ(enc.x[0][g][0].item<float>(), 1.f);
  EXPECT_EQ(enc.x[0][g][1].item<float>(), -1.f);
  EXPECT_EQ(enc.x[0][od][1].item<float>(), 1.f);
  EXPECT_EQ(enc.x[0][od][3].item<float>(), -1.f);
  EXPECT_EQ(enc.loss_mask[0][g].sum().item<float>(), 4.f);

  Cohort back = loose.decode(enc.x, enc.lengths, {});
  ASSERT_EQ(back.n_rows(), d.cohort.n_rows());
  for (int64_t r = 0; r < back.n_rows(); ++r)
    for (int64_t v = 0; v < back.n_vars; ++v) {
      const double a = d.cohort.cell(r, v), b = back.cell(r, v);
      if (is_missing(a))
        EXPECT_TRUE(is_missing(b)) << "row " << r << " var " << v;
      else
        EXPECT_NEAR(a, b, 1e-4 * std::max(1.0, std::abs(a))) << "row " << r << " var " << v;
    }

  // A generated step whose group channel says "not measured" has no member,
  // whatever the members' own channels say; the guardrail and the fill ignore them.
  auto x = enc.x.clone();
  x[1][g][1] = -1.f;
  x[1][var(loose, "sys").value_offset][1] = 5.f;  // out of range, but not measured
  EXPECT_TRUE(is_missing(loose.decode(x, enc.lengths, {}).cell(5, 1)));
  EXPECT_TRUE(loose.within_range(x, enc.lengths)[1].item<bool>());
  auto y = loose.project_fill(x, enc.lengths);
  EXPECT_EQ(y[1][var(loose, "sys").value_offset][1].item<float>(), 0.f);
  EXPECT_TRUE(torch::equal(loose.project_fill(enc.x, enc.lengths), enc.x));

  // The groups travel with the encoder (and so the checkpoint).
  Encoder again = Encoder::from_json(loose.to_json());
  EXPECT_EQ(again.channels(), loose.channels());
  EXPECT_TRUE(torch::equal(again.encode(d.cohort).x, enc.x));
  EXPECT_THROW(Encoder::fit(d.schema, d.cohort, 4, 1e-3, TimeMode::kGrid, 0.0, 1.5), UsageError);
}
