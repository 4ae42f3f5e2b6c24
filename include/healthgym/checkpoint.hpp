#pragma once
// One checkpoint file holds everything needed to sample again or resume:
// format version, schema and transforms (the encoder), configs, weights,
// optimizer and scaler state, epoch and RNG state. Written atomically.
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "healthgym/conditions.hpp"
#include "healthgym/diffusion.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/observation_model.hpp"
#include "healthgym/schedule_model.hpp"
#include "healthgym/unet.hpp"
#include "healthgym/value_repeats.hpp"

namespace healthgym {

constexpr int kCheckpointFormatVersion = 2;  // 2: checksummed container around the archive
constexpr const char* kHealthgymVersion = "0.1.0";

// What a trained model is: the data encoding, the network and its schedule.
struct DiffusionModel {
  Encoder encoder;
  ConditionSpec conditions;  // empty: an unconditional model
  UNetConfig unet_config;
  DiffusionConfig diffusion;
  UNet net{nullptr};
  UNet ema{nullptr};  // averaged weights for sampling, when trained with EMA
  NoiseSchedule schedule{nullptr};
  // Per channel and step, the training design tensor's mean and standard
  // deviation [C, L]: sampling can start from x_T's marginal instead of pure
  // noise (the original's schedule keeps 28% of x0 in x_T). Undefined in
  // checkpoints that predate them.
  torch::Tensor x0_mean, x0_std;
  // A Gaussian over whole patients (fit_start_basis), for the default start;
  // undefined tensors in checkpoints that predate it.
  StartBasis start;
  // record_fingerprints() of the training patients: sampling refuses exact copies.
  std::vector<uint64_t> training_fingerprints;
  // Where the training cohort's observations fall (sampling can draw the
  // schedules from it); empty in checkpoints that predate it.
  ObservationModel observations;
  // The schedules as sequences (sampling's default for sparse cohorts); empty
  // when not fitted (dense cohorts, the seed preset, older checkpoints).
  ScheduleModel schedules;
  // The training cohort's share of exact repeats per variable (sampling can
  // restore them); empty in checkpoints that predate it.
  ValueRepeats repeats;

  static DiffusionModel create(const Encoder& encoder, const UNetConfig& unet,
                               const DiffusionConfig& diffusion,
                               const ConditionSpec& conditions = {});
  void to(const torch::Device& device);
};

struct CheckpointContents {
  DiffusionModel model;
  nlohmann::json meta;  // format, versions, train config, epoch, scaler, history
  int64_t epoch = 0;
  torch::Tensor rng_state;  // CPU generator state at the end of `epoch`
  // The optimizer's saved state, restored with restore_optimizer().
  std::shared_ptr<torch::serialize::InputArchive> optimizer_archive;
};

// meta must hold "train_config", "epoch" and "scaler"; the encoder and model
// configs are added from `model`.
void save_checkpoint(const std::string& path, DiffusionModel& model, nlohmann::json meta,
                     torch::optim::Optimizer* optimizer, const torch::Tensor& rng_state);

// Throws InputError for a file that is not a healthgym checkpoint, is
// truncated, or comes from another format version; IoError if unreadable.
// The untrained model a checkpoint's metadata describes (format, version,
// encoder, network, schedule, conditions), checked before anything is
// allocated. InputError naming `path` when it cannot be.
DiffusionModel model_from_meta(const nlohmann::json& meta, const std::string& path);

CheckpointContents load_checkpoint(const std::string& path,
                                   const torch::Device& device = torch::kCPU);

void restore_optimizer(const CheckpointContents& ckpt, torch::optim::Optimizer& optimizer);

torch::Tensor cpu_rng_state();
void set_cpu_rng_state(const torch::Tensor& state);
// A generator state as hex text, for the checkpoint's metadata.
std::string rng_state_to_hex(const torch::Tensor& state);
torch::Tensor rng_state_from_hex(const std::string& hex);  // throws InputError

}  // namespace healthgym
