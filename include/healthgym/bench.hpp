#pragma once
// `healthgym bench`: times training steps and the reverse chain at given
// network shapes, with the same flags as the PyTorch reference
// (bench/seed_reference.py), so the two can be compared in one run.
#include <nlohmann/json.hpp>
#include <string>

#include "healthgym/samplers.hpp"
#include "healthgym/train.hpp"

namespace healthgym {

struct BenchConfig {
  int64_t hidden = 256;
  int64_t features = 22;
  int64_t seq_len = 60;
  int64_t target_len = 100;
  int64_t batch = 128;
  int64_t n_steps = 500;     // diffusion steps T
  int64_t train_steps = 20;  // optimiser steps timed (after 3 warm-up steps)
  int64_t sample_batch = 100;
  int64_t sample_steps = 0;  // denoising steps timed (0 = the whole chain), extrapolated
  int threads = 0;           // 0 = all cores
  std::string device = "cpu";
  Precision precision = Precision::kFp32;
  SamplerKind sampler = SamplerKind::kDdpm;
  int64_t ddim_steps = 0;  // K for --sampler ddim (0 = T)
  // "auto": on CUDA the sync-free fused step and denoising step, each replayed as
  // a CUDA graph; elsewhere the plain path. "on": the fused paths on any device.
  // "off": the plain path everywhere.
  std::string graph = "auto";
  // On the CPU: the U-Net's channels-last path through healthgym's kernels.
  bool cpu_kernels = true;
  // Sample through a PreparedUNet (weights cast once, FiLM tables, GroupNorm
  // and FiLM in one op) rather than the training module under autocast.
  bool prepared = true;
  // The prepared network's layout: auto (channels-last with healthgym's CUDA
  // kernels on a GPU that has them), channels-first or channels-last.
  std::string layout = "auto";
  int64_t streams = 1;  // CUDA streams the channels-last network splits the batch across
  // The channels-last network's convolutions: "library" (cuDNN's or oneDNN's)
  // or "gemm" (matrix products over taps: PreparedOptions::gemm_convs).
  std::string convs = "library";

  void validate() const;  // throws UsageError
};

// Runs the benchmark and returns one JSON object: train_seq_per_s,
// sample_seq_per_s (for a whole chain of the chosen sampler), precision,
// threads, device, params, peak_rss_mb and the shapes.
nlohmann::json run_bench(const BenchConfig& config);

}  // namespace healthgym
