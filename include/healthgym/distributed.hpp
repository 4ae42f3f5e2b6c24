#pragma once
// Data-parallel process groups over LibTorch's c10d (Gloo on CPU, NCCL on CUDA),
// configured the way PyTorch users know: RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT. The c10d headers stay out of this header (they need
// USE_C10D_GLOO / USE_C10D_NCCL and gloo's or NCCL's headers); everything goes
// through Communicator.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace healthgym {

struct DistConfig {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Bounds every rendezvous and collective: a rank that exits or hangs makes
  // the others fail with a clear message after at most this long.
  double timeout_s = 300;
  // "gloo" reduces host memory (CUDA tensors make a round trip); "nccl" reduces
  // on the GPUs, each rank on cuda:LOCAL_RANK. Training picks nccl for CUDA
  // devices when the build has it.
  std::string backend = "gloo";

  bool enabled() const { return world_size > 1; }
  void validate() const;  // throws UsageError
  // Reads the variables torchrun sets. Unset WORLD_SIZE means one process.
  // getenv is a parameter so tests can pass their own environment.
  static DistConfig from_env(const std::function<const char*(const char*)>& getenv_fn);
};

// "{rank}" in an output path, replaced by the rank: every rank writes its own file.
std::string path_for_rank(std::string path, int64_t rank);
bool names_rank(const std::string& path);

// Whether this build has c10d's Gloo backend (USE_C10D_GLOO and libgloo-dev).
bool distributed_available();
// Whether it has c10d's NCCL backend (a LibTorch with CUDA and NCCL's header).
bool nccl_available();

class Communicator {
 public:
  // Rendezvous through a TCPStore on master_addr:master_port (rank 0 serves
  // it). Throws RuntimeError naming the ranks still missing at the timeout.
  // The process should ignore SIGPIPE (the CLI does): Gloo's socket writes to a
  // dead peer otherwise kill it instead of raising the lost-peer error.
  explicit Communicator(const DistConfig& config);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return config_.rank; }
  // Where collectives reduce: the CPU for Gloo, the rank's GPU for NCCL. Tensors
  // elsewhere are copied there and back.
  torch::Device device() const;
  const std::string& backend() const { return config_.backend; }
  int world_size() const { return config_.world_size; }

  // In place, across all ranks.
  void all_reduce_sum(torch::Tensor& t, const char* what);
  void all_reduce_max(torch::Tensor& t, const char* what);
  void broadcast(torch::Tensor& t, int root, const char* what);

 private:
  struct Impl;
  DistConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace healthgym
