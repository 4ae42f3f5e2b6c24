#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/error.hpp"
#include "healthgym/train.hpp"
#include "launch.hpp"

namespace healthgym::cli {

namespace {

// Options that override the chosen preset only when given on the command line.
class Overrides {
 public:
  template <typename T, typename Set>
  CLI::Option* add(CLI::App* app, const std::string& name, const std::string& help, T def,
                   Set set) {
    auto value = std::make_shared<T>(def);
    CLI::Option* opt = app->add_option(name, *value, help);
    opt->default_val(def);
    apply_.push_back([opt, value, set](TrainConfig& c) {
      if (opt->count() > 0) set(c, *value);
    });
    return opt;
  }
  void apply(TrainConfig& c) const {
    for (const auto& f : apply_) f(c);
  }

 private:
  std::vector<std::function<void(TrainConfig&)>> apply_;
};

volatile std::sig_atomic_t g_stop_signal = 0;

// First SIGINT/SIGTERM: finish the current step, save, exit. SA_RESETHAND makes
// a second one end the process at once.
void on_stop_signal(int sig) { g_stop_signal = sig; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

Action register_train(CLI::App& app) {
  struct Opts {
    std::string preset = "default";
    std::string resume;
    std::string precision;
    bool no_blend = false;
    int threads = 0;
    int nproc = 1;
    double dist_timeout = 300;
    Overrides ov;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "train",
      "Train a diffusion model on a cohort CSV and write one checkpoint file holding "
      "everything needed to sample or resume. A preset sets every hyperparameter; flags "
      "given override it.");
  const TrainConfig d = default_preset();
  const TrainConfig s = seed_preset();
  auto& ov = o->ov;
  sub->add_option("--preset", o->preset,
                  "default: the original's network with a CPU-sized epoch count and the data's "
                  "own length; seed: the original Health Gym v3 values exactly (3000 epochs, "
                  "length padded by 100/60)")
      ->check(CLI::IsMember({"default", "seed"}))
      ->capture_default_str();
  ov.add(sub, "--data", "Long-format CSV: one row per patient and time step", std::string(),
         [](TrainConfig& c, const std::string& v) { c.data_path = v; });
  ov.add(sub, "--id", "Column naming the patient", std::string(),
         [](TrainConfig& c, const std::string& v) { c.id_column = v; });
  ov.add(sub, "--time", "Column giving the time step", std::string(),
         [](TrainConfig& c, const std::string& v) { c.time_column = v; });
  ov.add(sub, "--schema", "Schema JSON (from 'healthgym schema'); inferred when absent",
         std::string(), [](TrainConfig& c, const std::string& v) { c.schema_path = v; });
  ov.add(sub, "--out", "Checkpoint to write (replaced atomically at each save)", std::string(),
         [](TrainConfig& c, const std::string& v) { c.out_path = v; });
  ov.add(sub, "--log", "Per-epoch loss CSV (default: OUT.log.csv)", std::string(),
         [](TrainConfig& c, const std::string& v) { c.log_path = v; });
  sub->add_option("--resume", o->resume,
                  "Continue the run saved in this checkpoint up to --epochs (data, id and time "
                  "default to the checkpoint's; --out defaults to this file)");
  ov.add(sub, "--epochs", "Passes over the data (seed preset: " + std::to_string(s.epochs) + ")",
         d.epochs, [](TrainConfig& c, int64_t v) { c.epochs = v; });
  ov.add(sub, "--batch", "Sequences per optimiser step", d.batch,
         [](TrainConfig& c, int64_t v) { c.batch = v; });
  ov.add(sub, "--lr", "Adam learning rate", d.lr, [](TrainConfig& c, double v) { c.lr = v; });
  ov.add(sub, "--adam-beta1", "Adam beta1", d.adam_beta1,
         [](TrainConfig& c, double v) { c.adam_beta1 = v; });
  ov.add(sub, "--adam-beta2", "Adam beta2", d.adam_beta2,
         [](TrainConfig& c, double v) { c.adam_beta2 = v; });
  ov.add(sub, "--clip", "Gradient-norm clipping threshold (0 = off)", d.clip,
         [](TrainConfig& c, double v) { c.clip = v; });
  ov.add(sub, "--ema-decay",
         "Keep an exponential moving average of the weights for sampling (0 = off; seed "
         "preset: off)",
         d.ema_decay, [](TrainConfig& c, double v) { c.ema_decay = v; });
  ov.add(sub, "--hidden", "U-Net width C", d.hidden,
         [](TrainConfig& c, int64_t v) { c.hidden = v; });
  ov.add(sub, "--levels", "U-Net down/up stages", d.levels,
         [](TrainConfig& c, int64_t v) { c.levels = v; });
  ov.add(sub, "--groups", "GroupNorm groups", d.groups,
         [](TrainConfig& c, int64_t v) { c.groups = v; });
  ov.add(sub, "--dropout", "Dropout in residual blocks", d.dropout,
         [](TrainConfig& c, double v) { c.dropout = v; });
  ov.add(sub, "--n-steps", "Diffusion steps T", d.diffusion.n_steps,
         [](TrainConfig& c, int64_t v) { c.diffusion.n_steps = v; });
  ov.add(sub, "--beta-min", "First beta of the linear schedule", d.diffusion.beta_min,
         [](TrainConfig& c, double v) { c.diffusion.beta_min = v; });
  ov.add(sub, "--beta-max", "Last beta of the linear schedule", d.diffusion.beta_max,
         [](TrainConfig& c, double v) { c.diffusion.beta_max = v; });
  ov.add(sub, "--recon-weight", "Weight of the x0 reconstruction MSE", d.diffusion.recon_weight,
         [](TrainConfig& c, double v) { c.diffusion.recon_weight = v; });
  sub->add_flag("--no-noise-blend", o->no_blend,
                "Reconstruct x0 from the predicted noise only (the original blends true and "
                "predicted noise with U(0,1) weights)");
  ov.add(sub, "--working-length",
         "U-Net length in steps (0 = data's longest sequence x preset ratio, rounded up to a "
         "multiple of 2^levels)",
         d.working_length, [](TrainConfig& c, int64_t v) { c.working_length = v; });
  ov.add(sub, "--time-mode",
         "auto: generate visit times as gaps when they differ between patients, else use the "
         "grid; grid: each step's training time (the original); gaps: always generate",
         d.time_mode, [](TrainConfig& c, const std::string& v) { c.time_mode = v; });
  ov.add(sub, "--condition-on",
         "Static label columns the network is conditioned on, for 'sample --condition': "
         "auto (every static binary/categorical column), none, or a comma list (seed preset: "
         "none)",
         d.condition_on, [](TrainConfig& c, const std::string& v) { c.condition_on = v; });
  ov.add(sub, "--cond-drop",
         "Probability that a training sequence sees no conditions (classifier-free guidance)",
         d.cond_drop, [](TrainConfig& c, double v) { c.cond_drop = v; });
  ov.add(sub, "--fill-weight",
         "Loss weight of unobserved cells' value channels, trained towards the fill value (0: "
         "left out of the loss, as the original; seed preset: 0)",
         d.fill_weight, [](TrainConfig& c, double v) { c.fill_weight = v; });
  ov.add(sub, "--channel-balance",
         "Loss weight of each channel's observed cells as f^-b, f the share of steps it is "
         "observed in: 0 weighs every cell alike (the original); 1 gives each channel about "
         "the same share of the loss, however rarely measured",
         d.channel_balance, [](TrainConfig& c, double v) { c.channel_balance = v; });
  ov.add(sub, "--partner-jaccard",
         "Observation schedules: a variable's chance of being measured follows an earlier "
         "one's (a lab panel) when their measured steps overlap with Jaccard index >= J "
         "(1: only variables always measured together)",
         d.partner_jaccard, [](TrainConfig& c, double v) { c.partner_jaccard = v; });
  ov.add(sub, "--schedule-epochs",
         "Sparse cohorts (most time-varying cells missing, as ICU charts): most epochs of the "
         "schedule model, a small GRU over each stay's observation schedule fitted before the "
         "network (it stops once held-out patients stop improving, and under --time-limit "
         "after 40% of it); sampling draws the schedules from it. 0: none (seed preset: 0)",
         d.schedule_epochs, [](TrainConfig& c, int64_t v) { c.schedule_epochs = v; });
  ov.add(sub, "--range-tail",
         "Share of [0,1] given to the values beyond each real variable's 0.5% and 99.5% "
         "quantiles, the rest spread linearly over the middle (0: plain min-max, as the "
         "original; seed preset: 0)",
         d.range_tail, [](TrainConfig& c, double v) { c.range_tail = v; });
  ov.add(sub, "--missing-groups",
         "Variables measured together (observed cells overlapping with Jaccard index >= J with "
         "every other member, e.g. systolic and diastolic pressure) share a group observed "
         "channel, so they are generated as measured together (0: one channel each, as the "
         "original; seed preset: 0)",
         d.missing_groups, [](TrainConfig& c, double v) { c.missing_groups = v; });
  ov.add(sub, "--shift", "Box-Cox shift eps (x + eps is transformed)", d.shift,
         [](TrainConfig& c, double v) { c.shift = v; });
  sub->add_option("--precision", o->precision,
                  "auto: bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX), fp32 elsewhere "
                  "| fp32 | bf16 (autocast, no scaler) | fp16 (autocast + gradient scaler; "
                  "CUDA). The checkpoint records the one used")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}))
      ->default_str("auto (seed preset: fp32)");
  ov.add(sub, "--seed", "Random seed (same seed and data: same weights on CPU)", d.seed,
         [](TrainConfig& c, uint64_t v) { c.seed = v; });
  ov.add(sub, "--device", "cpu or cuda[:N]", d.device,
         [](TrainConfig& c, const std::string& v) { c.device = v; });
  ov.add(sub, "--fused-step",
         "auto: on CUDA (one process, fp32/bf16) the sync-free fused step replayed as a CUDA "
         "graph; on: that step on any device; off: the plain step (torch::optim::Adam, the "
         "loss read every step)",
         d.fused_step, [](TrainConfig& c, const std::string& v) { c.fused_step = v; });
  ov.add(sub, "--cpu-kernels",
         "on: on the CPU the U-Net runs channels-last through healthgym's fused GroupNorm-FiLM-"
         "SiLU kernels (about 1.4x faster bf16 training at the reference shapes); off: through "
         "LibTorch's modules (the same function, for comparison)",
         std::string(d.cpu_kernels ? "on" : "off"),
         [](TrainConfig& c, const std::string& v) { c.cpu_kernels = v == "on"; })
      ->check(CLI::IsMember({"on", "off"}));
  ov.add(sub, "--checkpoint-every", "Save every N epochs (always at the end)", d.checkpoint_every,
         [](TrainConfig& c, int64_t v) { c.checkpoint_every = v; });
  ov.add(sub, "--time-limit",
         "Stop before an epoch that would end past this many seconds, saving the checkpoint "
         "(0 = none; resume to continue)",
         d.time_limit_s, [](TrainConfig& c, double v) { c.time_limit_s = v; });
  add_threads_option(sub, &o->threads);
  sub->add_option("--nproc", o->nproc,
                  "Data-parallel training in N local processes (c10d/Gloo over loopback), each "
                  "with its share of the patients and cores. For several machines start one "
                  "process per rank with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set instead "
                  "(docs/SCALING.md)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--dist-timeout", o->dist_timeout,
                  "Seconds a rank waits for the others (start-up and every step) before it "
                  "fails, naming what it waited for")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  return [o] {
    if (o->nproc > 1) {
      const LaunchResult lr = launch_local(o->nproc);
      std::cout << "all " << lr.world_size << " ranks finished in " << format_duration(lr.seconds)
                << "\n";
      return;
    }
    apply_threads(o->threads);
    TrainConfig cfg = preset_by_name(o->preset);
    o->ov.apply(cfg);
    if (!o->precision.empty()) cfg.precision = precision_from_string(o->precision);
    if (o->no_blend) cfg.diffusion.noise_blend = false;
    if (!o->resume.empty()) {
      cfg.resume_path = o->resume;
      if (cfg.out_path.empty()) cfg.out_path = o->resume;
    }
    cfg.dist = DistConfig::from_env([](const char* k) { return std::getenv(k); });
    cfg.dist.timeout_s = o->dist_timeout;
    // Rank 0 speaks for the group; the others report only their own failures.
    const bool speaker = cfg.dist.rank == 0;
    StatusLine status;
    TrainCallbacks cb;
    install_stop_handlers();
    cb.should_stop = [] { return g_stop_signal != 0; };
    cb.on_start = [&](const TrainInfo& info) {
      if (!speaker) return;
      std::cerr << "training on " << info.patients << " patients: " << info.channels
                << " channels x " << info.working_length << " steps, " << info.parameters
                << " parameters, schema " << info.schema_source << ", " << torch::get_num_threads()
                << " threads"
                << (info.conditions.empty() ? std::string()
                                            : ", conditioned on " + join(info.conditions))
                << (cfg.dist.enabled()
                        ? ", " + std::to_string(cfg.dist.world_size) + " ranks (this is rank 0)"
                        : std::string())
                << (info.start_epoch > 0
                        ? ", resuming after epoch " + std::to_string(info.start_epoch)
                        : std::string())
                << "\n";
    };
    cb.on_progress = [&](const TrainProgress& p) {
      if (!speaker) return;
      std::string line = "epoch " + std::to_string(p.epoch) + "/" + std::to_string(p.epochs) +
                         (p.epoch_done ? ""
                                       : " step " + std::to_string(p.step) + "/" +
                                             std::to_string(p.steps_per_epoch)) +
                         "  loss " + fmt_num(p.loss) + " (diff " + fmt_num(p.diffusion) +
                         ", recon " + fmt_num(p.recon) + ")  " + fmt_num(p.seq_per_s) +
                         " seq/s  ETA " + format_duration(p.eta_s) +
                         (p.skipped_steps ? "  skipped " + std::to_string(p.skipped_steps) : "") +
                         (p.checkpoint_saved ? "  [saved]" : "");
      status.update(line, p.epoch_done);
    };
    cb.on_schedule_progress = [&](const ScheduleFitProgress& p) {
      if (!speaker) return;
      status.update(
          "schedule model: epoch " + std::to_string(p.epoch) + "/" + std::to_string(p.max_epochs) +
              "  train NLL " + fmt_num(p.train_nll) +
              (std::isnan(p.validation_nll) ? std::string()
                                            : "  held-out NLL " + fmt_num(p.validation_nll)) +
              (p.best ? "" : "  (no better: step halved)"),
          true);
    };
    const TrainResult r = train(cfg, cb);
    status.finish();
    cfg.out_path = path_for_rank(cfg.out_path, cfg.dist.rank);
    if (r.stopped_early)
      throw Interrupted(std::string("stopped by ") +
                        (g_stop_signal == SIGTERM ? "SIGTERM" : "SIGINT") + " after " +
                        std::to_string(r.epochs_done) + " epochs and " +
                        std::to_string(r.stopped_at_step) + " steps; checkpoint saved to " +
                        cfg.out_path + ". Continue with: healthgym train --resume " + cfg.out_path +
                        " --epochs " + std::to_string(cfg.epochs));
    if (!speaker) return;
    if (r.schedule_epochs > 0)
      std::cout << "schedule model: " << r.schedule_epochs << " epochs in "
                << format_duration(r.schedule_seconds) << "\n";
    std::cout << "trained " << r.epochs_done << " epochs in " << format_duration(r.seconds)
              << ", final loss " << fmt_num(r.final_loss) << "; checkpoint " << cfg.out_path
              << (r.time_limited ? " (stopped at the time limit)" : "") << "\n";
  };
}

}  // namespace healthgym::cli
