// Data-parallel training over c10d/Gloo on loopback, sharded sampling and the
// merge step. Multi-process cases run the CLI, as users do.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <set>
#include <sstream>

#include "healthgym/checkpoint.hpp"
#include "healthgym/distributed.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "test_util.hpp"

namespace healthgym {
namespace {

using testing::head_patients;
using testing::read_file;
using testing::run_command;
using testing::source_path;
using testing::TempDir;

const std::string kBin = HEALTHGYM_BINARY;

DistConfig from_map(const std::map<std::string, std::string>& env) {
  return DistConfig::from_env([&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::vector<std::vector<double>> log_rows(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> r;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) r.push_back(std::stod(cell));
    rows.push_back(r);
  }
  return rows;
}

torch::Tensor flat_weights(const std::string& ckpt) {
  auto c = load_checkpoint(ckpt);
  std::vector<torch::Tensor> v;
  for (const auto& p : c.model.net->parameters()) v.push_back(p.detach().reshape(-1));
  return torch::cat(v);
}

TEST(DistConfig, ReadsTorchrunVariables) {
  EXPECT_FALSE(from_map({}).enabled());
  auto c = from_map({{"WORLD_SIZE", "4"},
                     {"RANK", "3"},
                     {"LOCAL_RANK", "1"},
                     {"MASTER_ADDR", "10.0.0.7"},
                     {"MASTER_PORT", "29555"}});
  EXPECT_TRUE(c.enabled());
  EXPECT_EQ(c.world_size, 4);
  EXPECT_EQ(c.rank, 3);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.master_addr, "10.0.0.7");
  EXPECT_EQ(c.master_port, 29555);
}

TEST(DistConfig, BadVariablesAreUsageErrors) {
  auto msg = [](const std::map<std::string, std::string>& env) {
    try {
      from_map(env);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg({{"WORLD_SIZE", "2"}}), "WORLD_SIZE=2 is set but RANK is not");
  EXPECT_EQ(msg({{"WORLD_SIZE", "two"}, {"RANK", "0"}}),
            "environment variable WORLD_SIZE='two' is not an integer >= 1");
  EXPECT_EQ(msg({{"WORLD_SIZE", "2"}, {"RANK", "2"}}), "RANK 2 is outside [0, WORLD_SIZE 2)");
  EXPECT_EQ(msg({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}}),
            "MASTER_PORT 70000 is not a TCP port");
}

TEST(DistConfig, UnknownBackendIsAUsageError) {
  DistConfig c;
  c.backend = "mpi";
  EXPECT_THROW(c.validate(), UsageError);
}

// One rank on the GPU: the NCCL group forms and its collectives are right,
// for tensors on the GPU and for host tensors staged through it. (Two ranks
// need two GPUs: NCCL refuses two ranks on one device.)
TEST(DistNccl, OneRankReducesOnTheGpu) {
  if (!nccl_available() || !torch::cuda::is_available())
    GTEST_SKIP() << "no NCCL in this build or no CUDA device";
  DistConfig c;
  c.backend = "nccl";
  c.master_port = free_port();
  c.timeout_s = 60;
  Communicator comm(c);
  EXPECT_TRUE(comm.device().is_cuda());
  auto g = torch::arange(6, torch::kFloat).to(torch::kCUDA);
  comm.all_reduce_sum(g, "a test");
  EXPECT_TRUE(torch::equal(g.cpu(), torch::arange(6, torch::kFloat)));
  auto h = torch::tensor({1.5, -2.0}, torch::kDouble);
  comm.all_reduce_max(h, "a test");
  comm.broadcast(h, 0, "a test");
  EXPECT_TRUE(h.device().is_cpu());
  EXPECT_TRUE(torch::equal(h, torch::tensor({1.5, -2.0}, torch::kDouble)));
}

TEST(DistNccl, BackendMissingFromTheBuildIsAUsageError) {
  if (nccl_available()) GTEST_SKIP() << "this build has NCCL";
  DistConfig c;
  c.world_size = 2;
  c.backend = "nccl";
  c.master_port = free_port();
  try {
    Communicator comm(c);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("nccl backend is not in this build"), std::string::npos);
  }
}

TEST(Shards, ParseNameSeed) {
  EXPECT_EQ(parse_shard("1/4"), std::make_pair(int64_t{1}, int64_t{4}));
  for (const char* bad : {"4/4", "1", "a/2", "-1/2", "1/0", "1/2/3", ""})
    EXPECT_THROW(parse_shard(bad), UsageError) << bad;
  EXPECT_EQ(shard_path("out.csv", 2, 4), "out.csv.part-2-of-4");
  EXPECT_EQ(shard_path("out-{rank}.csv", 2, 4), "out-2.csv");
  EXPECT_EQ(shard_seed(7, 0, 1), 7u);
  std::set<uint64_t> seeds;
  for (int k = 0; k < 8; ++k) seeds.insert(shard_seed(7, k, 8));
  EXPECT_EQ(seeds.size(), 8u);
  EXPECT_EQ(seeds.count(7), 0u);
}

TEST(Shards, MergeChecksHeadersAndIds) {
  TempDir dir;
  auto a = dir.write("a.csv", "id,t,x\n1,0,5\n1,1,6\n2,0,\"7\"\n");
  auto b = dir.write("b.csv", "id,t,x\n3,0,1\n");
  auto out = dir.file("m.csv");
  EXPECT_EQ(merge_csv_shards({a, b}, "id", out), 3);
  EXPECT_EQ(read_file(out), "id,t,x\n1,0,5\n1,1,6\n2,0,\"7\"\n3,0,1\n");

  auto dup = dir.write("dup.csv", "id,t,x\n3,0,1\n2,0,1\n");
  try {
    merge_csv_shards({a, dup}, "id", dir.file("m2.csv"));
    FAIL() << "duplicate id accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(dup + ":3:1: patient id also used in " + a + " line 4"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("m2.csv")));
  auto other = dir.write("o.csv", "id,t,y\n9,0,1\n");
  EXPECT_THROW(merge_csv_shards({a, other}, "id", dir.file("m3.csv")), InputError);
  EXPECT_THROW(merge_csv_shards({a}, "patient", dir.file("m4.csv")), InputError);
}

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!distributed_available()) GTEST_SKIP() << "built without c10d Gloo (libgloo-dev)";
    data_ = head_patients(dir_, source_path("data/pbcseq.csv"), 30, "pbc.csv");
  }
  std::string train_args(int epochs, int batch = 16) const {
    return " train --data " + data_ +
           " --id id --time day --hidden 16 --n-steps 20 --seed 5 --threads 1 --precision fp32 "
           "--batch " +
           std::to_string(batch) + " --epochs " + std::to_string(epochs);
  }
  TempDir dir_;
  std::string data_;
};

TEST_F(Distributed, TwoRanksHoldIdenticalWeightsAndFollowOneProcess) {
  auto one = run_command(kBin + train_args(3) + " --out " + dir_.file("one.hg"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = run_command(kBin + train_args(3) + " --nproc 2 --out " + dir_.file("two-{rank}.hg"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("2 ranks (this is rank 0)"), std::string::npos) << two.output;

  // Every rank holds the same parameters, bit for bit.
  auto w0 = flat_weights(dir_.file("two-0.hg"));
  auto w1 = flat_weights(dir_.file("two-1.hg"));
  EXPECT_TRUE(torch::equal(w0, w1));
  // The ranks draw one global batch's noise and divide by its mask sum, so
  // the trajectory is one process's up to summation order.
  auto l1 = log_rows(dir_.file("one.hg.log.csv"));
  auto l2 = log_rows(dir_.file("two-0.hg.log.csv"));
  ASSERT_EQ(l1.size(), 3u);
  ASSERT_EQ(l2.size(), 3u);
  for (size_t e = 0; e < 3; ++e)
    for (size_t k = 1; k <= 3; ++k) EXPECT_NEAR(l1[e][k], l2[e][k], 1e-4 * std::abs(l1[e][k]));
  auto w = flat_weights(dir_.file("one.hg"));
  EXPECT_LT((w - w0).abs().max().item<double>(), 1e-3);
}

TEST_F(Distributed, ResumeOnAnotherWorldSizeContinuesTheRun) {
  auto a = run_command(kBin + train_args(2) + " --nproc 2 --out " + dir_.file("a.hg"));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("a.hg.tmp")));
  auto b = run_command(kBin + " train --resume " + dir_.file("a.hg") + " --epochs 3 --threads 1");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  auto full = run_command(kBin + train_args(3) + " --out " + dir_.file("full.hg"));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  EXPECT_LT((flat_weights(dir_.file("a.hg")) - flat_weights(dir_.file("full.hg")))
                .abs()
                .max()
                .item<double>(),
            1e-3);
}

TEST_F(Distributed, DropoutKeepsRanksInStep) {
  // Dropout draws differ per rank; the shared stream (shuffle, noise) must
  // not, or the ranks would train on different batches. train() checks the
  // ranks' weights are equal at the end and fails otherwise.
  auto r = run_command(kBin + train_args(2) + " --dropout 0.2 --nproc 2 --out " +
                       dir_.file("d-{rank}.hg"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(torch::equal(flat_weights(dir_.file("d-0.hg")), flat_weights(dir_.file("d-1.hg"))));
}

TEST_F(Distributed, SigintStopsEveryRankAtOneStepAndResumes) {
  const std::string ck = dir_.file("s.hg");
  const std::string script = kBin + train_args(80, 4) + " --nproc 2 --out " + ck + " > " +
                             dir_.file("s.txt") + " 2>&1 & p=$!; for i in $(seq 600); do [ -f " +
                             ck + " ] && break; sleep 0.1; done; kill -INT $p; wait $p";
  auto r = run_command("bash -c '" + script + "'");
  const std::string out = read_file(dir_.file("s.txt"));
  ASSERT_EQ(r.exit_code, 130) << out;
  EXPECT_NE(out.find("stopped by SIGINT after"), std::string::npos) << out;
  auto resumed = run_command(kBin + " train --resume " + ck + " --epochs 80 --threads 1 --nproc 2");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  auto full = run_command(kBin + train_args(80, 4) + " --nproc 2 --out " + dir_.file("f.hg"));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  // The interrupted run ends with the uninterrupted run's weights.
  EXPECT_TRUE(torch::equal(flat_weights(ck), flat_weights(dir_.file("f.hg"))));
}

TEST_F(Distributed, MissingRankTimesOutWithAClearMessage) {
  const std::string env =
      "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " ";
  auto r = run_command(env + kBin + train_args(1) + " --dist-timeout 2 --out " + dir_.file("x.hg"));
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: could not join the group at 127.0.0.1:"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("within 2 s"), std::string::npos) << r.output;
}

TEST_F(Distributed, KilledRankMakesTheOtherFailInsteadOfHanging) {
  // Rank 1 is killed once training runs; rank 0 must exit with an error
  // naming the lost peer, well before the 120 s the shell waits.
  const std::string port = std::to_string(free_port());
  const std::string args = train_args(100000) + " --dist-timeout 60 --out " + dir_.file("k.hg");
  const std::string script =
      "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + "; RANK=0 " + kBin + args +
      " > " + dir_.file("r0.txt") + " 2>&1 & p0=$!; RANK=1 " + kBin + args +
      " > /dev/null 2>&1 & p1=$!; for i in $(seq 600); do [ -f " + dir_.file("k.hg") +
      " ] && break; sleep 0.1; done; grep SigIgn /proc/$p0/status > " + dir_.file("ign.txt") +
      "; kill -9 $p1; "
      "( sleep 120; kill -9 $p0 ) >/dev/null 2>&1 & w=$!; wait $p0; rc=$?; kill $w 2>/dev/null; "
      "exit $rc";
  auto r = run_command("bash -c '" + script + "'");
  const std::string log = read_file(dir_.file("r0.txt"));
  EXPECT_EQ(r.exit_code, 5) << log;
  EXPECT_NE(log.find("rank 0 of 2: lost the other ranks during"), std::string::npos) << log;
  // Whether rank 0 next reads or writes the dead socket is a race; a write would
  // raise SIGPIPE (exit 141), so the process must ignore it (bit 13 of SigIgn).
  const std::string ign = read_file(dir_.file("ign.txt"));
  ASSERT_NE(ign.find("SigIgn:"), std::string::npos) << ign;
  const auto mask = std::stoull(ign.substr(ign.find(':') + 1), nullptr, 16);
  EXPECT_TRUE(mask & (1ull << (SIGPIPE - 1))) << ign;
}

TEST_F(Distributed, ShardedSamplingEqualsOneCohortOfTheRequestedSize) {
  auto t = run_command(kBin + train_args(1) + " --out " + dir_.file("m.hg"));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  const std::string s = kBin + " sample --model " + dir_.file("m.hg") +
                        " --n 9 --sampler ddim --sample-steps 4 --threads 1 --seed 2";
  auto all = run_command(s + " --nproc 3 --out " + dir_.file("all.csv"));
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_NE(all.output.find("merged 3 parts: 9 synthetic patients"), std::string::npos)
      << all.output;
  for (int k = 0; k < 3; ++k)
    EXPECT_FALSE(std::filesystem::exists(dir_.file("all.csv.part-" + std::to_string(k) + "-of-3")));
  // The same parts sampled one by one and merged are the same file.
  std::vector<std::string> parts;
  for (int k = 0; k < 3; ++k) {
    parts.push_back(dir_.file("p" + std::to_string(k) + ".csv"));
    auto r = run_command(s + " --shard " + std::to_string(k) + "/3 --out " + parts.back());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(merge_csv_shards(parts, "id", dir_.file("merged.csv")), 9);
  EXPECT_EQ(read_file(dir_.file("merged.csv")), read_file(dir_.file("all.csv")));
  // Ids 1..9, each once.
  std::set<std::string> ids;
  std::istringstream in(read_file(dir_.file("all.csv")));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) ids.insert(line.substr(0, line.find(',')));
  EXPECT_EQ(ids.size(), 9u);
}

}  // namespace
}  // namespace healthgym
