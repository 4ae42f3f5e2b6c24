#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

using healthgym::testing::run_command;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

const std::string kBin = HEALTHGYM_BINARY;

}  // namespace

TEST(Cli, HelpEverywhere) {
  for (const std::string sub : {"", " schema", " train", " sample", " info"}) {
    auto r = run_command(kBin + sub + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_THAT(r.output, HasSubstr("Usage")) << sub;
  }
  auto r = run_command(kBin + " train --help");
  EXPECT_THAT(r.output, HasSubstr("--preset"));
  EXPECT_THAT(r.output, HasSubstr("--precision"));
  EXPECT_THAT(r.output, HasSubstr("--threads"));
}

TEST(Cli, UsageErrorsExitTwo) {
  auto r = run_command(kBin + " frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  r = run_command(kBin + " sample --model m.hg --out x.csv");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--n is required"));
  TempDir dir;
  r = run_command(kBin + " sample --model m.hg --out " + dir.file("x.csv") + " --n 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--n must be >= 1, is 0"));
  r = run_command(kBin + " sample --model m.hg --out " + dir.file("x.csv") + " --n -3");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, InputErrorsNameFileLineColumnValue) {
  TempDir dir;
  const auto csv = dir.write("bad.csv", "pid,t,x\na,0,1\na,1,oops\nb,0,2\n");
  const auto schema = dir.write("s.json",
                                R"({"id_column":"pid","time_column":"t",
                                    "variables":[{"name":"x","type":"real"}]})");
  auto r = run_command(kBin + " train --data " + csv + " --id pid --time t --schema " + schema +
                       " --out " + dir.file("m.hg"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.output, HasSubstr(csv + ":3:3: not a number in real column 'x' (value 'oops')"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.hg")));  // nothing partial

  r = run_command(kBin + " train --data " + dir.file("absent.csv") + " --id pid --time t --out " +
                  dir.file("m.hg"));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.output, HasSubstr("cannot open"));

  const auto ok = dir.write("ok.csv", "pid,t,x\na,0,1\na,1,2\nb,0,2\n");
  r = run_command(kBin + " train --data " + ok + " --id patient --time t --out " +
                  dir.file("m.hg"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.output, HasSubstr("no column named 'patient'"));

  r = run_command(kBin + " train --data " + ok + " --id pid --time t --out /nonexistent/dir/m.hg");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent/dir"));

  r = run_command(kBin + " info " + dir.write("junk.hg", "not a model"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.output, HasSubstr("not a healthgym checkpoint"));
}

TEST(Cli, SchemaTrainSampleInfo) {
  TempDir dir;
  const auto data = healthgym::testing::head_patients(
      dir, healthgym::testing::source_path("data/physionet2012_set_a.csv"), 24, "icu.csv");
  auto r = run_command(kBin + " schema --data " + data + " --id stay_id --time hour --out " +
                       dir.file("schema.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kBin + " train --data " + data + " --id stay_id --time hour --schema " +
                  dir.file("schema.json") + " --out " + dir.file("m.hg") +
                  " --epochs 2 --hidden 16 --n-steps 10 --batch 8 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("epoch 2/2"));
  r = run_command(kBin + " sample --model " + dir.file("m.hg") + " --n 5 --out " +
                  dir.file("syn.csv") + " --no-guardrail");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("wrote 5 synthetic patients"));
  EXPECT_THAT(r.output, HasSubstr("repeats: "));  // default preset: restored
  const auto syn = healthgym::testing::read_file(dir.file("syn.csv"));
  EXPECT_EQ(syn.substr(0, syn.find('\n')),
            "stay_id,hour,age,sex,height_cm,icu_type,in_hospital_death,HR,MAP,SysABP,DiasABP,"
            "NISysABP,NIDiasABP,NIMAP,Temp,RespRate,FiO2,SaO2,pH,PaCO2,PaO2,HCT,K,Platelets,"
            "Creatinine,BUN,Na,Mg,HCO3,Glucose,WBC,Lactate,Bilirubin,AST,ALT,ALP,Albumin,"
            "TroponinT,TroponinI,Cholesterol,Urine,Weight,GCS,MechVent");
  r = run_command(kBin + " info " + dir.file("m.hg"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("trained         2 of 2 epochs"));
  EXPECT_THAT(r.output, HasSubstr("an hour gate"));
  EXPECT_THAT(r.output, HasSubstr("sample restores them by default"));
}

namespace {

// A bench run at tiny shapes; its JSON line (exits the test on failure).
nlohmann::json tiny_bench(const std::string& extra) {
  auto r = run_command(kBin +
                       " bench --hidden 16 --features 5 --seq-len 12 --target-len 16 --batch 4 "
                       "--n-steps 20 --train-steps 2 --sample-batch 3 --sample-steps 4 "
                       "--threads 1 " +
                       extra + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output.substr(0, r.output.find('\n')));
}

}  // namespace

TEST(Cli, BenchPrintsOneJsonLine) {
  const auto j = tiny_bench("");
  for (const char* key : {"train_seq_per_s", "sample_seq_per_s", "precision", "threads", "device",
                          "peak_rss_mb", "params"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_GT(j["train_seq_per_s"].get<double>(), 0);
  EXPECT_GT(j["sample_seq_per_s"].get<double>(), 0);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["sample_layout"], "channels-first");  // the CPU default
  auto r = run_command(kBin + " bench --seq-len 200 --target-len 100");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--seq-len <= --target-len"));
  r = run_command(kBin + " bench --streams 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--streams must be in 1..64"));
}

// The channels-last prepared network on the CPU (its normalisation through
// LibTorch operations), the batch "split" across streams (one after the other here).
TEST(Cli, BenchTakesALayout) {
  const auto j = tiny_bench("--layout channels-last --streams 2");
  EXPECT_EQ(j["sample_layout"], "channels-last");
  EXPECT_EQ(j["sample_streams"], 2);
  auto r = run_command(kBin + " bench --layout nchw");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--layout"));
}
