#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "healthgym/checkpoint.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/train.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

TEST(Fingerprints, SameRecordSameHashIdsIgnored) {
  TempDir dir;
  auto d = load_data(dir.write("c.csv",
                               "id,t,x,lab\n"
                               "1,0,1.5,a\n1,1,2.5,a\n"
                               "2,0,1.5,a\n2,1,2.5,a\n"
                               "3,0,1.5,a\n3,1,2.5,b\n"
                               "4,0,1.5,a\n"),
                     "id", "t", "");
  auto f = record_fingerprints(d.cohort, d.schema);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], f[1]);  // same rows, other id
  EXPECT_NE(f[0], f[2]);  // one label differs
  EXPECT_NE(f[0], f[3]);  // a prefix is not a copy
}

TEST(PrivacyGuard, SampleRefusesExactCopiesUnlessAllowed) {
  TempDir dir;
  TrainConfig c = default_preset();
  // Two patients whose only variable is a static label: every synthetic
  // patient on the training grid is one of them.
  c.data_path = dir.write("two.csv", "id,t,lab\n1,0,a\n1,1,a\n2,0,b\n2,1,b\n");
  c.id_column = "id";
  c.time_column = "t";
  c.out_path = dir.file("m.hg");
  c.hidden = 8;
  c.diffusion.n_steps = 10;
  c.epochs = 1;
  train(c);
  EXPECT_EQ(load_checkpoint(c.out_path).model.training_fingerprints.size(), 2u);
  SampleConfig s;
  s.model_path = c.out_path;
  s.out_path = dir.file("syn.csv");
  s.n = 4;
  try {
    sample_to_csv(s);
    FAIL() << "expected the copies to stop the run";
  } catch (const RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("4 of 4 synthetic patients are exact copies of training "
                                    "patients"));
    EXPECT_THAT(e.what(), HasSubstr("nothing was written"));
  }
  EXPECT_FALSE(std::filesystem::exists(s.out_path));
  s.allow_copies = true;
  auto r = sample_to_csv(s);
  EXPECT_TRUE(r.copies_checked);
  EXPECT_EQ(r.copies, 4);
  EXPECT_TRUE(std::filesystem::exists(s.out_path));
}

namespace {

const std::string kBin = HEALTHGYM_BINARY;

bool same_weights(const std::string& a, const std::string& b) {
  auto ca = load_checkpoint(a), cb = load_checkpoint(b);
  auto pb = cb.model.net->named_parameters();
  for (const auto& kv : ca.model.net->named_parameters())
    if (!torch::equal(kv.value(), pb[kv.key()])) return false;
  return true;
}

// Starts a training run in the background, waits for its first checkpoint,
// sends it `signal`, and returns the run's exit code and output.
healthgym::testing::CommandResult train_and_signal(const TempDir& dir, const std::string& args,
                                                   const std::string& model,
                                                   const std::string& signal) {
  const std::string script = dir.write(
      "run_" + signal + ".sh", "set -u\n" + kBin + " train " + args + " --out " + model +
                                   " --threads 1 > " + model +
                                   ".out 2>&1 &\npid=$!\n"
                                   "for i in $(seq 1 2400); do [ -f " +
                                   model + " ] && break; sleep 0.05; done\nkill -" + signal +
                                   " $pid\nwait $pid\nrc=$?\ncat " + model + ".out\nexit $rc\n");
  return healthgym::testing::run_command("bash " + script);
}

}  // namespace

TEST(CrashSafety, SigintSavesAndSigkillLosesNothingSaved) {
  TempDir dir;
  const std::string data = healthgym::testing::head_patients(
      dir, healthgym::testing::source_path("data/pbcseq.csv"), 60, "pbc.csv");
  const std::string args = "--data " + data +
                           " --id id --time day --hidden 16 --n-steps 20 --batch 8 "
                           "--epochs 40 --seed 3 --precision fp32";
  auto straight = healthgym::testing::run_command(kBin + " train " + args + " --out " +
                                                  dir.file("straight.hg") + " --threads 1");
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  // SIGINT: a clean stop with a saved, resumable checkpoint and exit code 130.
  auto r = train_and_signal(dir, args, dir.file("int.hg"), "INT");
  if (r.exit_code == 130) {
    EXPECT_THAT(r.output, HasSubstr("stopped by SIGINT"));
    EXPECT_THAT(r.output, HasSubstr("Continue with: healthgym train --resume"));
  } else {
    ASSERT_EQ(r.exit_code, 0) << r.output;  // finished before the signal landed
  }
  auto resumed = healthgym::testing::run_command(kBin + " train --resume " + dir.file("int.hg") +
                                                 " --epochs 40 --threads 1");
  if (r.exit_code == 130) ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(same_weights(dir.file("straight.hg"), dir.file("int.hg")));

  // SIGKILL: nothing is saved at the kill, but the last checkpoint is whole
  // (written to a temporary file and renamed) and resumes to the same weights.
  r = train_and_signal(dir, args, dir.file("kill.hg"), "KILL");
  EXPECT_NE(r.exit_code, 0);
  auto ck = load_checkpoint(dir.file("kill.hg"));  // loads: not truncated
  EXPECT_GE(ck.epoch, 1);
  if (ck.epoch < 40) {
    resumed = healthgym::testing::run_command(kBin + " train --resume " + dir.file("kill.hg") +
                                              " --epochs 40 --threads 1");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  }
  EXPECT_TRUE(same_weights(dir.file("straight.hg"), dir.file("kill.hg")));
}

namespace {

struct BadInput {
  std::string name;
  std::string csv;    // written as bad.csv ("" = no file written)
  std::string extra;  // more arguments (may name files written below)
  int exit_code;
  std::string message;  // expected in the one error line
};

// Runs `command`, expecting failure with exactly one line on stderr.
void expect_one_line_error(const std::string& command, int exit_code, const std::string& message,
                           const std::string& name) {
  const auto r = healthgym::testing::run_command(command);
  EXPECT_EQ(r.exit_code, exit_code) << name << ": " << r.output;
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 0) << name << ": " << r.output;
  EXPECT_THAT(out, HasSubstr("healthgym: error: ")) << name;
  EXPECT_THAT(out, HasSubstr(message)) << name;
}

}  // namespace

TEST(BadInputs, EachGivesItsOneLineErrorAndExitCode) {
  TempDir dir;
  const std::string bad = dir.file("bad.csv");
  const std::string schema =
      dir.write("s.json", R"({"id_column":"pid","time_column":"t","variables":[
        {"name":"x","type":"real"},{"name":"sex","type":"categorical","labels":["f","m"]}]})");
  const std::string h = "pid,t,x,sex\n";
  const std::string real_x =
      dir.write("real.json", R"({"id_column":"pid","time_column":"t","variables":[
        {"name":"x","type":"real"},{"name":"sex","type":"categorical","labels":["f","m"]}]})");
  const std::vector<BadInput> cases = {
      {"empty file", "", "", 3, bad + ": file is empty"},
      {"header only", h, "", 3, bad + ":1: header only, no data rows"},
      {"ragged row", h + "a,0,1,f\na,1,2\n", "", 3, bad + ":3:"},
      {"bad quoting", h + "a,0,1,\"f\nb,0,1,m\n", "", 3,
       bad + ":2:4: bad quoting: unterminated quote"},
      {"non-UTF-8 bytes", h + "a,0,1,f\xff\n", "", 3, bad + ":2:4: not valid UTF-8"},
      {"text in a real column", h + "a,0,1,f\na,1,high,f\n", "--schema " + real_x, 3,
       bad + ":3:3: not a number in real column 'x' (value 'high')"},
      {"NaN", h + "a,0,2,f\na,1,NaN,f\n", "", 3,
       bad + ":3:3: non-finite value in numeric column 'x'; leave the cell empty for a missing "
             "value (value 'NaN')"},
      {"infinity", h + "a,0,-inf,f\n", "", 3, bad + ":2:3: non-finite value"},
      {"unknown category", h + "a,0,1,x\n", "--schema " + schema, 3,
       bad + ":2:4: unknown label in column 'sex' (known: f, m) (value 'x')"},
      {"duplicate (patient, time)", h + "a,0,1,f\na,0,2,f\n", "", 3, bad + ":3:2: duplicate time"},
      {"unsorted time", h + "a,1,1,f\na,0,2,f\n", "", 3, bad + ":3:2: time goes backwards"},
      {"column the schema expects", "pid,t,x\na,0,1\n", "--schema " + schema, 3,
       "no column named 'sex', which the schema needs"},
      {"schema that does not parse", h + "a,0,1,f\n", "--schema " + dir.write("b.json", "{\"id\":"),
       3, "b.json:1:"},
  };
  for (const auto& c : cases) {
    dir.write("bad.csv", c.csv);
    std::filesystem::remove(dir.file("m.hg"));
    // Small and short, so a case that wrongly trains does not hold the suite up.
    expect_one_line_error(kBin + " train --data " + bad + " --id pid --time t " + c.extra +
                              " --hidden 8 --n-steps 10 --epochs 1 --out " + dir.file("m.hg"),
                          c.exit_code, c.message, c.name);
    EXPECT_FALSE(std::filesystem::exists(dir.file("m.hg"))) << c.name << ": nothing written";
  }

  // A model to misuse.
  const std::string ok = dir.write("ok.csv", h + "a,0,1,f\na,1,2,f\nb,0,3,m\nb,1,4,m\n");
  auto r = healthgym::testing::run_command(kBin + " train --data " + ok +
                                           " --id pid --time t --hidden 8 --n-steps 10 --epochs 1 "
                                           "--out " +
                                           dir.file("ok.hg"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string model = dir.file("ok.hg");
  const std::string bytes = healthgym::testing::read_file(model);
  dir.write("truncated.hg", bytes.substr(0, bytes.size() / 2));
  const std::string sample = kBin + " sample --n 2 --out " + dir.file("s.csv") + " --model ";
  expect_one_line_error(sample + dir.file("truncated.hg"), 3, "truncated or corrupt", "truncated");
  expect_one_line_error(sample + dir.write("text.hg", "hello"), 3, "not a healthgym checkpoint",
                        "not a checkpoint");
  expect_one_line_error(kBin + " sample --n 0 --out " + dir.file("s.csv") + " --model " + model, 2,
                        "--n must be >= 1, is 0", "--n 0");
  expect_one_line_error(kBin + " sample --n -3 --out " + dir.file("s.csv") + " --model " + model, 2,
                        "--n must be >= 1, is -3", "--n -3");
  expect_one_line_error(kBin + " sample --n 2 --out /nonexistent/dir/s.csv --model " + model, 4,
                        "/nonexistent/dir", "unwritable output");
  expect_one_line_error(kBin + " train --resume " + model + " --epochs 3 --data " +
                            dir.write("few.csv", "pid,t,x\na,0,1\n"),
                        3, "no column named 'sex'", "column the checkpoint expects");
  EXPECT_FALSE(std::filesystem::exists(dir.file("s.csv")));
}

TEST(BadInputs, SingleRowPatientsAreValidData) {
  // pbcseq has 27 patients seen once; a one-row patient is a short stay, not an error.
  TempDir dir;
  const std::string data = dir.write("one.csv", "pid,t,x\na,0,1\nb,0,2\nb,1,3\nc,0,4\n");
  auto r = healthgym::testing::run_command(kBin + " train --data " + data +
                                           " --id pid --time t --hidden 8 --n-steps 10 "
                                           "--epochs 1 --out " +
                                           dir.file("m.hg"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}
