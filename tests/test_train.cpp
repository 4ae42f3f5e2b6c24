#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "healthgym/checkpoint.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

// A small, fast configuration on the first patients of pbcseq.
TrainConfig tiny_config(const TempDir& dir, int patients = 40) {
  TrainConfig c = healthgym::testing::small_config(dir, default_preset(), "pbcseq", patients);
  c.epochs = 2;
  c.batch = 16;
  c.seed = 7;
  return c;
}

bool same_weights(UNet& a, UNet& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& kv : pa)
    if (!torch::equal(kv.value(), pb[kv.key()])) return false;
  return true;
}

}  // namespace

TEST(Train, SameSeedSameWeights) {
  TempDir dir;
  auto c = tiny_config(dir);
  train(c);
  auto a = load_checkpoint(c.out_path);
  c.out_path = dir.file("again.hg");
  train(c);
  auto b = load_checkpoint(c.out_path);
  EXPECT_TRUE(same_weights(a.model.net, b.model.net));
  c.out_path = dir.file("other.hg");
  c.seed = 8;
  train(c);
  auto other = load_checkpoint(c.out_path);
  EXPECT_FALSE(same_weights(a.model.net, other.model.net));
}

TEST(Train, ResumeEqualsUninterruptedRun) {
  TempDir dir;
  auto c = tiny_config(dir);
  c.epochs = 4;
  train(c);
  auto straight = load_checkpoint(c.out_path);

  auto first = tiny_config(dir);
  first.epochs = 2;
  first.out_path = dir.file("part.hg");
  train(first);
  TrainConfig rest;
  rest.resume_path = first.out_path;
  rest.out_path = dir.file("resumed.hg");
  rest.epochs = 4;
  const auto r = train(rest);
  EXPECT_EQ(r.epochs_done, 4);
  auto resumed = load_checkpoint(rest.out_path);
  EXPECT_EQ(resumed.epoch, 4);
  EXPECT_TRUE(same_weights(straight.model.net, resumed.model.net));
  // The loss log carries on too: same epochs and losses (seconds differ).
  auto a = parse_csv(healthgym::testing::read_file(dir.file("resumed.hg.log.csv")), "a");
  auto b = parse_csv(healthgym::testing::read_file(c.out_path + ".log.csv"), "b");
  ASSERT_EQ(a.rows.size(), 4u);
  ASSERT_EQ(b.rows.size(), 4u);
  for (size_t r = 0; r < 4; ++r)
    for (size_t col = 0; col < 4; ++col) EXPECT_EQ(a.rows[r][col], b.rows[r][col]);
}

TEST(Train, StopMidEpochThenResumeEqualsUninterruptedRun) {
  TempDir dir;
  auto c = tiny_config(dir);  // 40 patients, batch 16: 3 steps per epoch
  c.epochs = 3;
  train(c);
  auto straight = load_checkpoint(c.out_path);
  // Stop at the 5th poll (epoch 2, step 2) and, separately, at the 4th
  // (between epochs 1 and 2): both resume to the unbroken run's weights.
  for (int stop_at : {5, 4}) {
    auto first = tiny_config(dir);
    first.epochs = 3;
    first.out_path = dir.file("part" + std::to_string(stop_at) + ".hg");
    int polls = 0;
    TrainCallbacks cb;
    cb.should_stop = [&] { return ++polls == stop_at; };
    const auto r1 = train(first, cb);
    EXPECT_TRUE(r1.stopped_early);
    EXPECT_EQ(r1.epochs_done, 1);
    EXPECT_EQ(r1.stopped_at_step, stop_at - 4);
    auto saved = load_checkpoint(first.out_path);
    EXPECT_EQ(saved.epoch, 1);
    EXPECT_EQ(saved.meta.at("epoch_step").get<int64_t>(), stop_at - 4);
    TrainConfig rest;
    rest.resume_path = first.out_path;
    rest.out_path = first.out_path;
    rest.epochs = 3;
    EXPECT_EQ(train(rest).epochs_done, 3);
    auto resumed = load_checkpoint(rest.out_path);
    EXPECT_TRUE(same_weights(straight.model.net, resumed.model.net)) << "stop at poll " << stop_at;
    EXPECT_FALSE(resumed.meta.contains("epoch_rng"));  // a whole-epoch checkpoint again
  }
}

// The fused step (what CUDA replays as a graph) on CPU: with batches that divide
// the cohort it draws what the plain step draws and lands on the same weights,
// EMA weights included; it resumes from its own checkpoints.
TEST(Train, FusedStepMatchesPlainStep) {
  TempDir dir;
  auto c = tiny_config(dir, 32);  // batch 16: two full batches an epoch
  c.fused_step = "off";
  train(c);
  auto plain = load_checkpoint(c.out_path);
  auto f = tiny_config(dir, 32);
  f.fused_step = "on";
  f.out_path = dir.file("fused.hg");
  train(f);
  auto fused = load_checkpoint(f.out_path);
  auto pa = plain.model.net->named_parameters(), pb = fused.model.net->named_parameters();
  for (const auto& kv : pa)
    EXPECT_TRUE(torch::allclose(kv.value(), pb[kv.key()], 1e-4, 1e-5)) << kv.key();
  ASSERT_TRUE(plain.model.ema && fused.model.ema);
  auto ea = plain.model.ema->named_parameters(), eb = fused.model.ema->named_parameters();
  for (const auto& kv : ea)
    EXPECT_TRUE(torch::allclose(kv.value(), eb[kv.key()], 1e-4, 1e-5)) << kv.key();
  EXPECT_EQ(plain.meta.at("ema_updates"), fused.meta.at("ema_updates"));
  auto la = parse_csv(healthgym::testing::read_file(c.out_path + ".log.csv"), "a");
  auto lb = parse_csv(healthgym::testing::read_file(f.out_path + ".log.csv"), "b");
  ASSERT_EQ(la.rows.size(), lb.rows.size());
  for (size_t r = 0; r < la.rows.size(); ++r)
    EXPECT_NEAR(std::stod(la.rows[r][1]), std::stod(lb.rows[r][1]), 1e-4);
}

// Training through the U-Net's CPU kernels lands where LibTorch's modules do:
// two fp32 epochs, the same weights up to rounding and the same logged losses.
TEST(Train, CpuKernelsMatchModules) {
  TempDir dir;
  auto c = tiny_config(dir, 32);
  c.cpu_kernels = false;
  train(c);
  auto modules = load_checkpoint(c.out_path);
  auto k = tiny_config(dir, 32);
  k.cpu_kernels = true;
  k.out_path = dir.file("kernels.hg");
  train(k);
  auto kernels = load_checkpoint(k.out_path);
  auto pa = modules.model.net->named_parameters(), pb = kernels.model.net->named_parameters();
  // Adam turns rounding-level differences of near-zero gradients into steps
  // of up to lr (1e-3): 2e-4 measured on this run.
  for (const auto& kv : pa)
    EXPECT_LT((kv.value() - pb[kv.key()]).abs().max().item<float>(), 1e-3) << kv.key();
  auto la = parse_csv(healthgym::testing::read_file(c.out_path + ".log.csv"), "a");
  auto lb = parse_csv(healthgym::testing::read_file(k.out_path + ".log.csv"), "b");
  ASSERT_EQ(la.rows.size(), lb.rows.size());
  for (size_t r = 0; r < la.rows.size(); ++r)
    EXPECT_NEAR(std::stod(la.rows[r][1]), std::stod(lb.rows[r][1]), 1e-5);
}

TEST(Train, FusedStepResumesAndFillsTheLastBatch) {
  TempDir dir;
  auto c = tiny_config(dir);  // 40 patients, batch 16: the last batch is filled up
  c.fused_step = "on";
  c.epochs = 4;
  train(c);
  auto straight = load_checkpoint(c.out_path);
  auto first = tiny_config(dir);
  first.fused_step = "on";
  first.epochs = 2;
  first.out_path = dir.file("part.hg");
  train(first);
  TrainConfig rest;
  rest.resume_path = first.out_path;
  rest.out_path = dir.file("resumed.hg");
  rest.epochs = 4;
  rest.fused_step = "on";
  train(rest);
  auto resumed = load_checkpoint(rest.out_path);
  auto pa = straight.model.net->named_parameters(), pb = resumed.model.net->named_parameters();
  for (const auto& kv : pa)
    EXPECT_TRUE(torch::allclose(kv.value(), pb[kv.key()], 1e-5, 1e-6)) << kv.key();
  c.fused_step = "sometimes";
  EXPECT_THROW(c.validate(), UsageError);
}

TEST(Train, ResumeNeedsMoreEpochs) {
  TempDir dir;
  auto c = tiny_config(dir);
  train(c);
  TrainConfig rest;
  rest.resume_path = c.out_path;
  rest.out_path = c.out_path;
  rest.epochs = 2;
  EXPECT_THROW(train(rest), UsageError);
}

TEST(Train, TimeLimitStopsBetweenEpochsAndSaves) {
  TempDir dir;
  TrainConfig c = tiny_config(dir);
  c.epochs = 50;
  c.time_limit_s = 1e-6;  // any epoch overruns it: exactly one is trained
  const TrainResult r = train(c);
  EXPECT_TRUE(r.time_limited);
  EXPECT_EQ(r.epochs_done, 1);
  EXPECT_EQ(load_checkpoint(c.out_path).epoch, 1);
  TrainConfig bad = c;
  bad.time_limit_s = -1;
  EXPECT_THROW(bad.validate(), UsageError);
}

TEST(Train, ProgressAndLogPerEpoch) {
  TempDir dir;
  auto c = tiny_config(dir);
  c.epochs = 3;
  int epochs_seen = 0, steps_seen = 0;
  TrainCallbacks cb;
  cb.on_progress = [&](const TrainProgress& p) {
    if (p.epoch_done)
      ++epochs_seen;
    else
      ++steps_seen;
    EXPECT_TRUE(std::isfinite(p.loss));
  };
  train(c, cb);
  EXPECT_EQ(epochs_seen, 3);
  EXPECT_EQ(steps_seen, 3 * 3);  // 40 patients, batch 16
  auto log = parse_csv(healthgym::testing::read_file(c.out_path + ".log.csv"), "log");
  ASSERT_EQ(log.rows.size(), 3u);
  EXPECT_EQ(log.header[1], "loss");
}

TEST(Train, Bf16TrainsToFiniteLoss) {
  TempDir dir;
  auto c = tiny_config(dir);
  c.precision = Precision::kBf16;
  const auto r = train(c);
  EXPECT_TRUE(std::isfinite(r.final_loss));
  EXPECT_GT(r.final_loss, 0);
}

TEST(Train, Fp16OnCpuIsAClearError) {
  TempDir dir;
  auto c = tiny_config(dir);
  c.precision = Precision::kFp16;
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present";
  try {
    train(c);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("fp16 needs a CUDA device"));
  }
}

TEST(Checkpoint, SaveLoadGivesIdenticalSamples) {
  TempDir dir;
  auto c = tiny_config(dir);
  train(c);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("a.csv");
  s.n = 12;
  s.seed = 3;
  s.guardrail = false;
  sample_to_csv(s);
  s.out_path = dir.file("b.csv");
  sample_to_csv(s);
  EXPECT_EQ(healthgym::testing::read_file(dir.file("a.csv")),
            healthgym::testing::read_file(dir.file("b.csv")));
  s.seed = 4;
  s.out_path = dir.file("c.csv");
  sample_to_csv(s);
  EXPECT_NE(healthgym::testing::read_file(dir.file("a.csv")),
            healthgym::testing::read_file(dir.file("c.csv")));
}

TEST(Checkpoint, HoldsEverythingToResume) {
  TempDir dir;
  auto c = tiny_config(dir);
  train(c);
  auto ck = load_checkpoint(c.out_path);
  EXPECT_EQ(ck.meta.at("format_version"), kCheckpointFormatVersion);
  EXPECT_EQ(ck.epoch, 2);
  EXPECT_TRUE(ck.meta.contains("train_config"));
  EXPECT_TRUE(ck.meta.contains("scaler"));
  EXPECT_TRUE(ck.meta.contains("encoder"));
  EXPECT_TRUE(ck.optimizer_archive != nullptr);
  EXPECT_TRUE(ck.rng_state.defined());
  EXPECT_EQ(ck.model.encoder.schema().id_column, "id");
}

TEST(Checkpoint, BadFilesGiveClearErrors) {
  TempDir dir;
  auto c = tiny_config(dir);
  train(c);
  const std::string bytes = healthgym::testing::read_file(c.out_path);
  const auto truncated = dir.write("trunc.hg", bytes.substr(0, bytes.size() / 2));
  try {
    load_checkpoint(truncated);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("trunc.hg: cannot read checkpoint (truncated or corrupt)"));
  }
  const auto text = dir.write("text.hg", "hello");
  EXPECT_THROW(load_checkpoint(text), InputError);
  EXPECT_THROW(load_checkpoint(dir.file("absent.hg")), IoError);

  // Another format version, in the file's header and in its metadata.
  std::string v99 = bytes;
  v99[4] = 99;
  dir.write("v99.hg", v99);
  try {
    load_checkpoint(dir.file("v99.hg"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("format version 99 is not supported"));
  }
  auto meta = load_checkpoint(c.out_path).meta;
  meta["format_version"] = 99;
  try {
    model_from_meta(meta, "v99.hg");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("format version 99 is not supported"));
  }
}

TEST(Sample, GuardrailGivesUpWithAClearMessage) {
  TempDir dir;
  auto c = tiny_config(dir);
  c.epochs = 1;
  train(c);
  auto ck = load_checkpoint(c.out_path);
  // Zero weights on the output layer make eps_hat = bias: force divergence by
  // scaling the network output so every sample leaves [-1, 1].
  {
    torch::NoGradGuard ng;
    for (auto& kv : ck.model.net->named_parameters())
      if (kv.key().rfind("out2", 0) == 0) kv.value().fill_(-50.0);
  }
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("x.csv");
  s.n = 4;
  s.max_attempts = 8;
  SampleResult r;
  try {
    generate_cohort(ck.model, s, &r);
    FAIL();
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("the guardrail accepted only 0 of 4 sequences in 8 attempts"));
  }
}

TEST(EndToEnd, TrainSampleCsvParsesWithTheSameSchema) {
  TempDir dir;
  auto c = tiny_config(dir, 80);
  c.epochs = 3;
  train(c);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 30;
  s.guardrail = false;
  const auto r = sample_to_csv(s);
  EXPECT_EQ(r.accepted, 30);
  auto ck = load_checkpoint(c.out_path);
  const Schema& schema = ck.model.encoder.schema();
  auto table = read_csv(s.out_path);
  EXPECT_EQ(table.header, read_csv(c.data_path).header);
  Cohort syn = load_cohort(table, schema);  // same labels, types, and statics held
  EXPECT_EQ(syn.n_patients(), 30);
  EXPECT_EQ(syn.patient_ids.front(), "1");
  for (int64_t p = 0; p < syn.n_patients(); ++p) {
    EXPECT_GE(syn.length[p], 1);
    EXPECT_LE(syn.length[p], 16);
  }
  // pbcseq's visits are irregular, so times are generated as gaps: non-negative
  // and increasing within each patient (load_cohort already refuses otherwise).
  for (int64_t r = 0; r < syn.n_rows(); ++r) EXPECT_GE(syn.times[r], 0.0);
  EXPECT_GE(ck.model.encoder.time_channel(), 0);
}

TEST(Sample, SeedPresetLeavesStaticsFreeAsTheOriginal) {
  TempDir dir;
  auto c = tiny_config(dir, 40);
  c.preset = "seed";
  c.epochs = 1;
  train(c);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 20;
  s.guardrail = false;
  sample_to_csv(s);
  auto ck = load_checkpoint(c.out_path);
  // An untrained seed-preset model's statics drift, so the strict schema refuses them.
  EXPECT_THROW(load_cohort(read_csv(s.out_path), ck.model.encoder.schema()), InputError);
  s.hold_static = true;
  sample_to_csv(s);
  EXPECT_NO_THROW(load_cohort(read_csv(s.out_path), ck.model.encoder.schema()));
}

// The seed preset samples exactly as the original: pure noise, DDPM over all T
// steps without clamping, the last weights, no conditions, statics free. None of
// the default preset's additions may leak into that path.
TEST(Sample, SeedPresetReproducesTheOriginalChainForAFixedSeed) {
  TempDir dir;
  TrainConfig c = healthgym::testing::small_config(dir, seed_preset(), "pbcseq", 30);
  train(c);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 6;
  s.seed = 5;
  s.guardrail = false;
  sample_to_csv(s);

  auto ck = load_checkpoint(c.out_path);
  EXPECT_TRUE(ck.model.conditions.empty());
  EXPECT_FALSE(static_cast<bool>(ck.model.ema));
  torch::manual_seed(5);
  auto lengths = ck.model.encoder.sample_lengths(6);
  ck.model.net->eval();
  auto x = reverse_diffusion(ck.model.net, ck.model.schedule,
                             {6, ck.model.encoder.channels(), ck.model.encoder.working_length()},
                             SamplerOptions{});
  DecodeOptions d;
  d.hold_static = false;
  auto expected =
      format_cohort_csv(ck.model.encoder.decode(x, lengths, d), ck.model.encoder.schema());
  EXPECT_EQ(healthgym::testing::read_file(s.out_path), expected);
}

// The default preset's precision is auto: bf16 on a CPU with native bf16, fp32
// elsewhere; the checkpoint records the precision used, never "auto".
TEST(Train, AutoPrecisionIsResolvedAndRecorded) {
  EXPECT_EQ(default_preset().precision, Precision::kAuto);
  EXPECT_EQ(seed_preset().precision, Precision::kFp32);
  EXPECT_EQ(precision_from_string("auto"), Precision::kAuto);
  const auto expected = cpu_has_native_bf16() ? Precision::kBf16 : Precision::kFp32;
  EXPECT_EQ(auto_precision(torch::kCPU), expected);
  EXPECT_EQ(resolve_precision(Precision::kFp32, torch::kCPU), Precision::kFp32);
  TempDir dir;
  auto c = tiny_config(dir, 20);
  c.epochs = 1;
  c.precision = Precision::kAuto;
  train(c);
  auto ck = load_checkpoint(c.out_path);
  EXPECT_EQ(ck.meta.at("train_config").at("precision").get<std::string>(), to_string(expected));
}

// Sampling's auto precision: the CPU's for default-preset models, fp32 for
// seed-preset ones (their samples stay the original's).
TEST(Sample, AutoPrecisionFollowsThePresetAndTheCpu) {
  for (const auto& preset : {default_preset(), seed_preset()}) {
    TempDir dir;
    auto c = healthgym::testing::small_config(dir, preset, "pbcseq", 20);
    train(c);
    auto run = [&](Precision p, const std::string& name) {
      auto s = healthgym::testing::ddim_config(c.out_path, dir.file(name), 4, 5);
      s.seed = 3;
      s.guardrail = false;  // a one-epoch model: guardrail rejections are not the point
      s.precision = p;
      sample_to_csv(s);
      return healthgym::testing::read_file(s.out_path);
    };
    const auto expected = preset.preset == "seed" ? Precision::kFp32 : auto_precision(torch::kCPU);
    EXPECT_EQ(run(Precision::kAuto, "auto.csv"), run(expected, "explicit.csv")) << preset.preset;
  }
}

TEST(Train, PresetsSetTheFillWeightAndRangeTail) {
  // The seed preset keeps the original's objective and scaling.
  EXPECT_EQ(seed_preset().fill_weight, 0.0);
  EXPECT_EQ(seed_preset().range_tail, 0.0);
  EXPECT_EQ(default_preset().fill_weight, 1.0);
  EXPECT_EQ(seed_preset().channel_balance, 0.0);
  EXPECT_EQ(default_preset().channel_balance, 1.0);
  EXPECT_EQ(default_preset().partner_jaccard, ObservationModel::kPartnerJaccard);
  EXPECT_EQ(default_preset().range_tail, 0.05);
  EXPECT_EQ(seed_preset().missing_groups, 0.0);
  EXPECT_EQ(default_preset().missing_groups, 0.95);
  EXPECT_EQ(seed_preset().batch, 128);
  EXPECT_EQ(default_preset().batch, 32);
  auto j = default_preset().to_json();
  EXPECT_EQ(TrainConfig::from_json(j).missing_groups, 0.95);
  EXPECT_EQ(TrainConfig::from_json(j).fill_weight, 1.0);
  EXPECT_EQ(TrainConfig::from_json(j).channel_balance, 1.0);
  EXPECT_EQ(TrainConfig::from_json(j).range_tail, 0.05);
  j.erase("fill_weight");
  j.erase("range_tail");  // checkpoints written before these existed
  j.erase("missing_groups");
  j.erase("channel_balance");
  j.erase("partner_jaccard");
  EXPECT_EQ(TrainConfig::from_json(j).fill_weight, 0.0);
  EXPECT_EQ(TrainConfig::from_json(j).partner_jaccard, 0.8);
  EXPECT_EQ(TrainConfig::from_json(j).channel_balance, 0.0);
  EXPECT_EQ(TrainConfig::from_json(j).range_tail, 0.0);
  EXPECT_EQ(TrainConfig::from_json(j).missing_groups, 0.0);
  TrainConfig bad = default_preset();
  bad.range_tail = 0.5;
  EXPECT_THROW(bad.validate(), UsageError);
  bad = default_preset();
  bad.fill_weight = -1;
  EXPECT_THROW(bad.validate(), UsageError);
  bad = default_preset();
  bad.missing_groups = 1.5;
  EXPECT_THROW(bad.validate(), UsageError);
  bad = default_preset();
  bad.data_path = "cohort.csv";
  bad.id_column = "id";
  bad.time_column = "t";
  bad.out_path = "model.hg";
  bad.channel_balance = 2;
  EXPECT_EQ(healthgym::testing::message_of([&] { bad.validate(); }),
            "--channel-balance must be in [0, 1]");
  bad.channel_balance = 1;
  bad.partner_jaccard = 0;
  EXPECT_EQ(healthgym::testing::message_of([&] { bad.validate(); }),
            "--partner-jaccard must be in (0, 1]");
}
