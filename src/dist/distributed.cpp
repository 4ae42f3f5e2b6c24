#include "healthgym/distributed.hpp"

#include <chrono>
#include <cstdlib>
#include <sstream>

#include "healthgym/error.hpp"

// CMake defines HEALTHGYM_GLOO / HEALTHGYM_NCCL when it found the backend's
// headers. (PyTorch's LibTorch defines USE_C10D_GLOO for every user, whether or
// not it ships gloo's headers, so that macro cannot tell.)
#ifdef HEALTHGYM_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef HEALTHGYM_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if defined(HEALTHGYM_GLOO) || defined(HEALTHGYM_NCCL)
#define HEALTHGYM_C10D 1
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace healthgym {

namespace {

int parse_env_int(const char* name, const char* value, int min_value) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < min_value || v > 1 << 30)
    throw UsageError(std::string("environment variable ") + name + "='" + value +
                     "' is not an integer >= " + std::to_string(min_value));
  return static_cast<int>(v);
}

std::string seconds_text(double s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

}  // namespace

std::string path_for_rank(std::string path, int64_t rank) {
  const std::string key = "{rank}";
  for (auto pos = path.find(key); pos != std::string::npos; pos = path.find(key))
    path.replace(pos, key.size(), std::to_string(rank));
  return path;
}

bool names_rank(const std::string& path) { return path.find("{rank}") != std::string::npos; }

void DistConfig::validate() const {
  if (world_size < 1) throw UsageError("WORLD_SIZE must be >= 1, is " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw UsageError("RANK " + std::to_string(rank) + " is outside [0, WORLD_SIZE " +
                     std::to_string(world_size) + ")");
  if (local_rank < 0) throw UsageError("LOCAL_RANK must be >= 0");
  if (master_port < 1 || master_port > 65535)
    throw UsageError("MASTER_PORT " + std::to_string(master_port) + " is not a TCP port");
  if (master_addr.empty()) throw UsageError("MASTER_ADDR is empty");
  if (!(timeout_s > 0)) throw UsageError("--dist-timeout must be > 0 seconds");
  if (backend != "gloo" && backend != "nccl")
    throw UsageError("distributed backend must be gloo or nccl, is '" + backend + "'");
}

DistConfig DistConfig::from_env(const std::function<const char*(const char*)>& getenv_fn) {
  DistConfig c;
  const char* ws = getenv_fn("WORLD_SIZE");
  if (ws == nullptr || *ws == '\0') return c;
  c.world_size = parse_env_int("WORLD_SIZE", ws, 1);
  const char* r = getenv_fn("RANK");
  if (c.world_size > 1 && (r == nullptr || *r == '\0'))
    throw UsageError("WORLD_SIZE=" + std::string(ws) + " is set but RANK is not");
  if (r != nullptr && *r != '\0') c.rank = parse_env_int("RANK", r, 0);
  if (const char* lr = getenv_fn("LOCAL_RANK"); lr != nullptr && *lr != '\0')
    c.local_rank = parse_env_int("LOCAL_RANK", lr, 0);
  else
    c.local_rank = c.rank;
  if (const char* a = getenv_fn("MASTER_ADDR"); a != nullptr && *a != '\0') c.master_addr = a;
  if (const char* p = getenv_fn("MASTER_PORT"); p != nullptr && *p != '\0')
    c.master_port = parse_env_int("MASTER_PORT", p, 1);
  c.validate();
  return c;
}

bool distributed_available() {
#ifdef HEALTHGYM_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef HEALTHGYM_NCCL
  return true;
#else
  return false;
#endif
}

#ifdef HEALTHGYM_C10D

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
#ifdef HEALTHGYM_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef HEALTHGYM_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  torch::Device device{torch::kCPU};

  // Calls fn with the group this communicator built (the backends share no base
  // class in LibTorch 1.13).
  template <typename Fn>
  c10::intrusive_ptr<c10d::Work> with_group(Fn&& fn) {
#ifdef HEALTHGYM_NCCL
    if (nccl) return fn(*nccl);
#endif
#ifdef HEALTHGYM_GLOO
    if (gloo) return fn(*gloo);
#endif
    throw RuntimeError("no process group");
  }
};

Communicator::Communicator(const DistConfig& config) : config_(config), impl_(new Impl) {
  config_.validate();
  if (config_.backend == "nccl" && !nccl_available())
    throw UsageError(
        "the nccl backend is not in this build (it needs a LibTorch with CUDA and "
        "NCCL's header nccl.h)");
  if (config_.backend == "gloo" && !distributed_available())
    throw UsageError("WORLD_SIZE=" + std::to_string(config_.world_size) +
                     " asks for distributed training, but this build has no c10d Gloo backend "
                     "(install libgloo-dev and rebuild: CMake then finds gloo's headers)");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config_.timeout_s * 1000));
  const std::string where = config_.master_addr + ":" + std::to_string(config_.master_port);
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(config_.master_port);
    opts.isServer = config_.rank == 0;
    opts.numWorkers = static_cast<std::size_t>(config_.world_size);
    opts.waitWorkers = false;  // the process group's own rendezvous waits, with our timeout
    opts.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(config_.master_addr, opts);
#ifdef HEALTHGYM_NCCL
    if (config_.backend == "nccl") {
      // NCCL's waits return at once and fail only from a watchdog thread; blocking
      // waits make wait(timeout) throw, so a lost rank ends in our clear error.
      ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      impl_->device =
          torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(config_.local_rank));
      auto pg_opts = c10d::ProcessGroupNCCL::Options::create();
      pg_opts->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, config_.rank,
                                                                config_.world_size, pg_opts);
    }
#endif
#ifdef HEALTHGYM_GLOO
    if (config_.backend == "gloo") {
      auto pg_opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // Loopback and named hosts alike: bind where the master is reachable from.
      pg_opts->devices.push_back(config_.master_addr == "127.0.0.1" ||
                                         config_.master_addr == "localhost"
                                     ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
      pg_opts->threads = 2;
      impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, config_.rank,
                                                                config_.world_size, pg_opts);
    }
#endif
  } catch (const std::exception& e) {
    throw RuntimeError("rank " + std::to_string(config_.rank) + " of " +
                       std::to_string(config_.world_size) + ": could not join the group at " +
                       where + " within " + seconds_text(config_.timeout_s) +
                       " s (is every rank started, with the same MASTER_ADDR/MASTER_PORT?): " +
                       first_line(e.what()));
  }
}

Communicator::~Communicator() {
#ifdef HEALTHGYM_NCCL
  // NCCL's communicators are released explicitly (as destroy_process_group does).
  if (impl_ && impl_->nccl) {
    try {
      impl_->nccl->shutdown();
    } catch (...) {
    }
  }
#endif
}

torch::Device Communicator::device() const { return impl_->device; }

namespace {

template <typename Fn>
void run_collective(const DistConfig& cfg, const char* what, Fn&& fn) {
  try {
    auto work = fn();
    work->wait(std::chrono::milliseconds(static_cast<int64_t>(cfg.timeout_s * 1000)));
  } catch (const std::exception& e) {
    throw RuntimeError("rank " + std::to_string(cfg.rank) + " of " +
                       std::to_string(cfg.world_size) + ": lost the other ranks during " + what +
                       " (a rank exited or stalled for more than " + seconds_text(cfg.timeout_s) +
                       " s): " + first_line(e.what()));
  }
}

// Gloo reduces host memory, NCCL the rank's GPU: other tensors make a round trip.
template <typename Fn>
void on_device(const torch::Device& device, torch::Tensor& t, Fn&& fn) {
  if (t.device() == device && t.is_contiguous()) {
    fn(t);
    return;
  }
  auto staged = t.to(device).contiguous();
  fn(staged);
  t.copy_(staged);
}

}  // namespace

void Communicator::all_reduce_sum(torch::Tensor& t, const char* what) {
  on_device(impl_->device, t, [&](torch::Tensor& h) {
    std::vector<torch::Tensor> v{h};
    run_collective(config_, what, [&] {
      return impl_->with_group([&](auto& g) { return g.allreduce(v, c10d::AllreduceOptions()); });
    });
  });
}

void Communicator::all_reduce_max(torch::Tensor& t, const char* what) {
  on_device(impl_->device, t, [&](torch::Tensor& h) {
    std::vector<torch::Tensor> v{h};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    run_collective(config_, what,
                   [&] { return impl_->with_group([&](auto& g) { return g.allreduce(v, o); }); });
  });
}

void Communicator::broadcast(torch::Tensor& t, int root, const char* what) {
  on_device(impl_->device, t, [&](torch::Tensor& h) {
    std::vector<torch::Tensor> v{h};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run_collective(config_, what,
                   [&] { return impl_->with_group([&](auto& g) { return g.broadcast(v, o); }); });
  });
}

#else  // no c10d backend in this build

struct Communicator::Impl {};

Communicator::Communicator(const DistConfig& config) : config_(config) {
  if (config.backend == "nccl")
    throw UsageError(
        "the nccl backend is not in this build (it needs a LibTorch with CUDA and "
        "NCCL's header nccl.h)");
  throw UsageError("WORLD_SIZE=" + std::to_string(config.world_size) +
                   " asks for distributed training, but this build has no c10d Gloo backend "
                   "(install libgloo-dev and rebuild: CMake then finds gloo's headers)");
}
Communicator::~Communicator() = default;
torch::Device Communicator::device() const { return torch::kCPU; }
void Communicator::all_reduce_sum(torch::Tensor&, const char*) {}
void Communicator::all_reduce_max(torch::Tensor&, const char*) {}
void Communicator::broadcast(torch::Tensor&, int, const char*) {}

#endif

}  // namespace healthgym
