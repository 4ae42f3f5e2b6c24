#pragma once
// Training: data in, checkpoint out. Progress goes through a callback; errors
// through exceptions. The CLI fills TrainConfig and calls train().
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "healthgym/diffusion.hpp"
#include "healthgym/distributed.hpp"
#include "healthgym/grad_scaler.hpp"
#include "healthgym/observation_model.hpp"
#include "healthgym/schedule_model.hpp"
#include "healthgym/unet.hpp"

namespace healthgym {

// kAuto: resolved by auto_precision() when a run starts (checkpoints hold the result).
enum class Precision { kFp32, kBf16, kFp16, kAuto };
std::string to_string(Precision p);
Precision precision_from_string(const std::string& s);  // throws UsageError
// Whether this CPU does bf16 arithmetic natively (AVX-512 BF16 or AMX, read from
// /proc/cpuinfo; false where that cannot be read).
bool cpu_has_native_bf16();
// What kAuto means on `device`: bf16 on a CPU with native bf16 (the same
// training quality in 52-61% of fp32's time: docs/PRECISION.md), fp32 elsewhere
// (bf16 without hardware support, and bf16's quality on CUDA, are unmeasured).
Precision auto_precision(const torch::Device& device);
// p, or auto_precision(device) when p is kAuto.
Precision resolve_precision(Precision p, const torch::Device& device);

struct TrainConfig {
  // Data
  std::string data_path;
  std::string id_column;
  std::string time_column;
  std::string schema_path;  // empty: infer
  double shift = 1e-3;      // Box-Cox eps
  // Output
  std::string out_path;
  std::string log_path;     // empty: out_path + ".log.csv"
  std::string resume_path;  // empty: start fresh
  // Model
  int64_t hidden = 256;
  int64_t levels = 3;
  int64_t groups = 8;
  double dropout = 0.0;
  DiffusionConfig diffusion;
  // Working length: explicit when > 0, else max length * length_ratio rounded
  // up to a multiple of 2^levels.
  int64_t working_length = 0;
  double length_ratio = 1.0;
  std::string time_mode = "auto";  // auto | grid | gaps (see TimeMode)
  // Classifier-free guidance: the static label variables the network is
  // conditioned on ("auto" = every one, "none", or a comma list), and the
  // probability that a training sequence sees them all dropped.
  std::string condition_on = "none";
  double cond_drop = 0.1;
  // Loss weight of the value channels of unobserved cells, whose target is the
  // fill (0). 0 leaves them out, as the original does; then the network's
  // output there is unconstrained, and at sampling those guesses feed back into
  // the observed cells (values pushed to the ends of their range).
  double fill_weight = 0.0;
  // fill_weighted_mask's balance: each channel's observed cells weigh f^-balance,
  // f the share of valid cells it is observed in (0: every cell alike, as the original).
  double channel_balance = 0.0;
  // ObservationModel::fit's partner_jaccard: the co-observation (Jaccard index)
  // at which a unit's chances follow an earlier unit's. Both presets: the
  // schedules are counted either way, and sampled only from default-preset models.
  double partner_jaccard = ObservationModel::kPartnerJaccard;
  // Most epochs of the ScheduleModel (a GRU over each stay's observation
  // schedule), fitted before the network when the training cohort is sparse
  // (ObservationModel::sparse); it stops earlier when held-out patients stop
  // improving and, under a time limit, after 40% of it. 0: none (the seed preset).
  int64_t schedule_epochs = 60;
  // RealTransform::tail for every real variable (0: min-max, the original).
  double range_tail = 0.0;
  // Encoder::fit's missing_groups: the Jaccard index of observed cells at which
  // variables share a group observed channel (0: none, as the original).
  double missing_groups = 0.0;
  // Optimisation
  int64_t epochs = 100;
  int64_t batch = 128;
  double lr = 1e-3;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double clip = 1.0;       // <= 0 disables clipping
  double ema_decay = 0.0;  // 0: no EMA weights; else their decay (e.g. 0.999)
  Precision precision = Precision::kFp32;
  GradScalerConfig scaler;
  uint64_t seed = 0;
  std::string device = "cpu";
  // The sync-free fused step (train_step.hpp), replayed as a CUDA graph on CUDA:
  // "auto" on CUDA for one process in fp32 or bf16, "on" also on CPU (same
  // arithmetic as the plain step, for tests), "off" never. Every batch then has
  // `batch` rows (an epoch's last batch is filled up from the start of its
  // shuffle). Not saved: a run choice.
  std::string fused_step = "auto";
  // On the CPU the U-Net runs channels-last through healthgym's own fused
  // kernels (cpu_kernels.hpp); false: LibTorch's modules (the same function).
  // Not saved: a run choice.
  bool cpu_kernels = true;
  // Checkpoints: every `checkpoint_every` epochs, and always at the end.
  int64_t checkpoint_every = 1;
  // > 0: stop (and save) before an epoch that would end past this many
  // seconds of training, so runs can be compared at equal training time.
  double time_limit_s = 0;
  std::string preset = "default";
  // Data-parallel ranks (not saved: a run may resume on another world size).
  // With world_size > 1 every rank runs train() with the same settings; rank 0
  // writes the checkpoint and log unless out_path holds "{rank}", which then
  // gives every rank its own file.
  DistConfig dist;

  void validate() const;  // throws UsageError
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
};

// The original Health Gym v3 hyperparameters.
TrainConfig seed_preset();
// healthgym's defaults for this machine class (see docs).
TrainConfig default_preset();
TrainConfig preset_by_name(const std::string& name);  // throws UsageError

struct TrainProgress {
  int64_t epoch = 0;  // 1-based, current
  int64_t epochs = 0;
  int64_t step = 0;  // within the epoch, 1-based
  int64_t steps_per_epoch = 0;
  double loss = 0, diffusion = 0, recon = 0;  // running means over the epoch
  double seq_per_s = 0;
  double eta_s = 0;
  bool epoch_done = false;
  bool checkpoint_saved = false;
  int64_t skipped_steps = 0;  // fp16 steps skipped by the scaler, this epoch
};

struct TrainInfo {  // reported once before the first step
  int64_t patients = 0, channels = 0, working_length = 0, parameters = 0, start_epoch = 0;
  std::string schema_source;            // "inferred" or the schema path
  std::vector<std::string> conditions;  // conditioning variables, if any
};

struct TrainCallbacks {
  std::function<void(const TrainInfo&)> on_start;
  std::function<void(const TrainProgress&)> on_progress;
  // Each epoch of the schedule model's fit, before the network's first.
  std::function<void(const ScheduleFitProgress&)> on_schedule_progress;
  // Polled between steps. A stop mid-epoch saves a checkpoint that resumes at
  // the next step, so stop + resume ends with the weights of an unbroken run.
  std::function<bool()> should_stop;
};

struct TrainResult {
  int64_t epochs_done = 0;
  double final_loss = 0;
  double seconds = 0;           // the network's training
  double schedule_seconds = 0;  // the schedule model's fit (0 when none)
  int64_t schedule_epochs = 0;  // its epochs (0: none fitted in this run)
  bool stopped_early = false;   // should_stop asked
  int64_t stopped_at_step = 0;  // then: steps of the unfinished epoch kept in the checkpoint
  bool time_limited = false;    // the time limit ended the run before --epochs
  int world_size = 1;           // ranks that trained together (parameters checked equal)
};

TrainResult train(const TrainConfig& config, const TrainCallbacks& callbacks = {});

}  // namespace healthgym
