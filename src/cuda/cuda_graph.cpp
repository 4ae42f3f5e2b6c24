#include "healthgym/cuda_graph.hpp"

#include <optional>
#include <vector>

#include "healthgym/compat.hpp"

#ifdef HEALTHGYM_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace healthgym {

bool built_with_cuda() {
#ifdef HEALTHGYM_CUDA
  return true;
#else
  return false;
#endif
}

void prepare_device(const torch::Device& device) {
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
}

#ifdef HEALTHGYM_CUDA
struct GraphedCall::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  bool captured = false;
  // Warm-up and capture share one side stream: what the first calls set up
  // lazily (cuBLAS workspaces, per stream) is then in place for the capture.
  std::optional<c10::cuda::CUDAStream> side;
};
#else
struct GraphedCall::Impl {};
#endif

GraphedCall::GraphedCall(const torch::Device& device, std::function<void()> body, bool use_graph,
                         int warmup)
    : body_(std::move(body)),
      use_graph_(use_graph && device.is_cuda() && built_with_cuda()),
      warmup_(std::max(warmup, 1)),
      impl_(new Impl) {
  if (use_graph && device.is_cuda() && !built_with_cuda())
    fallback_reason_ = "this LibTorch has no CUDA graphs";
}

GraphedCall::~GraphedCall() = default;

bool GraphedCall::graphed() const {
#ifdef HEALTHGYM_CUDA
  return use_graph_ && impl_->captured;
#else
  return false;
#endif
}

void GraphedCall::operator()() {
  ++calls_;
#ifdef HEALTHGYM_CUDA
  if (use_graph_ && impl_->captured) {
    impl_->graph->replay();
    return;
  }
  if (use_graph_ && !impl_->side) impl_->side = c10::cuda::getStreamFromPool();
  if (use_graph_ && calls_ <= warmup_) {
    torch::cuda::synchronize();
    {
      c10::cuda::CUDAStreamGuard guard(*impl_->side);
      body_();
    }
    torch::cuda::synchronize();
    return;
  }
  if (use_graph_) {
    // Capture on the side stream (the default stream cannot be captured), with
    // autocast's weight cache off: a cached cast would outlive the capture.
    torch::cuda::synchronize();
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    try {
      {
        c10::cuda::CUDAStreamGuard guard(*impl_->side);
        graph->capture_begin();
        try {
          body_();
        } catch (...) {
          try {
            graph->capture_end();
          } catch (...) {
          }
          throw;
        }
        graph->capture_end();
      }
      torch::cuda::synchronize();
      impl_->graph = std::move(graph);
      impl_->captured = true;
    } catch (const std::exception& e) {
      use_graph_ = false;
      fallback_reason_ = std::string("CUDA graph capture failed, running eagerly: ") + e.what();
      const auto nl = fallback_reason_.find('\n');
      if (nl != std::string::npos) fallback_reason_.resize(nl);
    }
    at::autocast::set_autocast_cache_enabled(cache);
    if (impl_->captured) {
      impl_->graph->replay();
      return;
    }
  }
#endif
  body_();
}

#ifdef HEALTHGYM_CUDA
struct ParallelStreams::Impl {
  bool cuda = false;
  std::vector<c10::cuda::CUDAStream> streams;
  // Made once and recorded again at every run: no event is created or
  // destroyed while a graph is being captured.
  at::cuda::CUDAEvent fork;
  std::vector<at::cuda::CUDAEvent> done;
};
#else
struct ParallelStreams::Impl {};
#endif

ParallelStreams::ParallelStreams(const torch::Device& device, int64_t n)
    : n_(std::max<int64_t>(n, 1)), impl_(new Impl) {
#ifdef HEALTHGYM_CUDA
  impl_->cuda = device.is_cuda();
  if (impl_->cuda) {
    for (int64_t i = 0; i < n_; ++i)
      impl_->streams.push_back(c10::cuda::getStreamFromPool(false, device.index()));
    impl_->done.resize(static_cast<size_t>(n_));
  }
#else
  (void)device;
#endif
}

ParallelStreams::~ParallelStreams() = default;

void ParallelStreams::run(const std::function<void(int64_t)>& body) {
#ifdef HEALTHGYM_CUDA
  if (impl_->cuda && n_ > 1) {
    auto current = c10::cuda::getCurrentCUDAStream(impl_->streams.front().device_index());
    impl_->fork.record(current);
    for (int64_t i = 0; i < n_; ++i) {
      const auto& stream = impl_->streams[static_cast<size_t>(i)];
      impl_->fork.block(stream);
      {
        c10::cuda::CUDAStreamGuard guard(stream);
        body(i);
      }
      impl_->done[static_cast<size_t>(i)].record(stream);
    }
    for (auto& e : impl_->done) e.block(current);
    return;
  }
#endif
  for (int64_t i = 0; i < n_; ++i) body(i);
}

}  // namespace healthgym
