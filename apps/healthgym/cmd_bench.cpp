#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/bench.hpp"

namespace healthgym::cli {

Action register_bench(CLI::App& app) {
  struct Opts {
    BenchConfig cfg;
    std::string precision = "fp32";
    std::string sampler = "ddpm";
    std::string prepared = "on";
    std::string cpu_kernels = "on";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "bench",
      "Time training steps and the reverse chain at given shapes; prints one JSON line. Takes "
      "the flags of the PyTorch reference (bench/seed_reference.py) for side-by-side runs.");
  auto& c = o->cfg;
  sub->add_option("--hidden", c.hidden, "U-Net width")->capture_default_str();
  sub->add_option("--features", c.features, "Channels of the design tensor")->capture_default_str();
  sub->add_option("--seq-len", c.seq_len, "Valid steps per sequence")->capture_default_str();
  sub->add_option("--target-len", c.target_len, "Working (padded) length")->capture_default_str();
  sub->add_option("--batch", c.batch, "Training batch")->capture_default_str();
  sub->add_option("--n-steps", c.n_steps, "Diffusion steps T")->capture_default_str();
  sub->add_option("--train-steps", c.train_steps, "Optimiser steps timed")->capture_default_str();
  sub->add_option("--sample-batch", c.sample_batch, "Sequences denoised together")
      ->capture_default_str();
  sub->add_option("--sample-steps", c.sample_steps,
                  "Denoising steps timed (0 = the whole chain); the rate is for a whole chain")
      ->capture_default_str();
  sub->add_option("--threads", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  sub->add_option("--device", c.device, "cpu or cuda[:N]")->capture_default_str();
  sub->add_option("--precision", o->precision,
                  "fp32 | bf16 | fp16 (CUDA) | auto (bf16 on a CPU with native bf16, else fp32)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16", "auto"}))
      ->capture_default_str();
  sub->add_option("--sampler", o->sampler, "ddpm (T steps) or ddim (--ddim-steps)")
      ->check(CLI::IsMember({"ddpm", "ddim"}))
      ->capture_default_str();
  sub->add_option("--graph", c.graph,
                  "auto: on CUDA, the sync-free fused training step and denoising step, each "
                  "replayed as a CUDA graph; on: those paths on any device; off: the plain path")
      ->capture_default_str();
  sub->add_option("--cpu-kernels", o->cpu_kernels,
                  "on: on the CPU the training step's U-Net runs channels-last through "
                  "healthgym's fused kernels; off: through LibTorch's modules")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  sub->add_option("--prepared", o->prepared,
                  "on: sample through the prepared network (weights cast once, FiLM as tables, "
                  "GroupNorm and FiLM in one op); off: the training module under autocast")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  sub->add_option("--layout", c.layout,
                  "the prepared network's activations: auto (channels-last on a GPU when "
                  "healthgym's CUDA kernels are built), channels-first or channels-last")
      ->check(CLI::IsMember({"auto", "channels-first", "channels-last"}))
      ->capture_default_str();
  sub->add_option("--streams", c.streams,
                  "CUDA streams the channels-last network splits each sample batch across "
                  "(parallel branches of the denoising step's graph)")
      ->capture_default_str();
  sub->add_option("--convs", c.convs,
                  "the channels-last network's convolutions: library (cuDNN's or oneDNN's) or "
                  "gemm (each one matrix product over the taps that the kernel before it writes: "
                  "the residual blocks' and, with biases folded as on a GPU, all but a pooling at "
                  "an odd length)")
      ->check(CLI::IsMember({"library", "gemm"}))
      ->capture_default_str();
  sub->add_option("--ddim-steps", c.ddim_steps, "K for --sampler ddim (0 = T)")
      ->capture_default_str();
  return [o] {
    apply_threads(o->cfg.threads);
    BenchConfig cfg = o->cfg;
    cfg.precision = precision_from_string(o->precision);
    cfg.sampler = sampler_kind_from_string(o->sampler);
    cfg.prepared = o->prepared == "on";
    cfg.cpu_kernels = o->cpu_kernels == "on";
    std::cout << run_bench(cfg).dump() << "\n";
  };
}

}  // namespace healthgym::cli
