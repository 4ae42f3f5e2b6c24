#pragma once
// Replays a fixed-shape piece of GPU work as one CUDA graph: the U-Net's
// training step and denoising step are hundreds of small kernels, and launching
// them one by one from the host, not the arithmetic, bounds their speed on a GPU.
// The CUDA headers stay in src/cuda/cuda_graph.cpp; elsewhere the call runs eagerly.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace healthgym {

// Whether this build links a LibTorch with CUDA (CMake defines HEALTHGYM_CUDA).
bool built_with_cuda();

// Before work on `device`: on CUDA, lets cuDNN time its convolution algorithms
// once per shape (every shape here repeats thousands of times). No-op elsewhere.
void prepare_device(const torch::Device& device);

// The body must be the same work every time on tensors that exist before the
// first call (static buffers: it reads inputs from them and copies results into
// them), with no host synchronisation (.item(), printing, CPU tensors).
// The first `warmup` calls run it eagerly (they are real calls: a training step
// done then is a step), the next one captures it and replays the capture, and
// every later call only replays. Off CUDA, or with use_graph false, every call
// runs the body eagerly. A capture that fails falls back to eager calls and says
// why in fallback_reason().
class GraphedCall {
 public:
  GraphedCall(const torch::Device& device, std::function<void()> body, bool use_graph,
              int warmup = 2);
  ~GraphedCall();
  GraphedCall(const GraphedCall&) = delete;
  GraphedCall& operator=(const GraphedCall&) = delete;

  void operator()();
  bool graphed() const;  // the last call replayed a capture
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  struct Impl;
  std::function<void()> body_;
  bool use_graph_;
  int warmup_;
  int calls_ = 0;
  std::string fallback_reason_;
  std::unique_ptr<Impl> impl_;
};

// Runs body(0), ..., body(n - 1) each on its own CUDA stream, after the work
// already queued on the current stream and before any queued after (fork and
// join by events, so a CUDA graph capture records them as parallel branches):
// small kernels of independent pieces of a batch then share the GPU. The n
// streams are taken once. Off CUDA the bodies run one after the other. Work in
// a body must only write memory allocated before the call or inside the body.
class ParallelStreams {
 public:
  ParallelStreams(const torch::Device& device, int64_t n);
  ~ParallelStreams();
  ParallelStreams(const ParallelStreams&) = delete;
  ParallelStreams& operator=(const ParallelStreams&) = delete;

  int64_t size() const { return n_; }
  void run(const std::function<void(int64_t)>& body);

 private:
  struct Impl;
  int64_t n_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace healthgym
