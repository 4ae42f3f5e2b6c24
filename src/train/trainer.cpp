#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "healthgym/atomic_file.hpp"
#include "healthgym/checkpoint.hpp"
#include "healthgym/compat.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/dataset.hpp"
#include "healthgym/error.hpp"
#include "healthgym/samplers.hpp"
#include "healthgym/train.hpp"
#include "healthgym/train_step.hpp"

namespace healthgym {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

torch::Device parse_device(const std::string& name) {
  torch::Device d(name);
  if (d.is_cuda() && !torch::cuda::is_available())
    throw UsageError("--device " + name + " asked for, but no CUDA device is available");
  return d;
}

// Ranks must run the same job: compare a fingerprint of what they will train.
void check_same_job(Communicator& comm, const std::string& description) {
  const double h = static_cast<double>(fnv1a(description.data(), description.size()) >>
                                       12);  // exact in a double
  auto hi = torch::tensor({h, -h}, torch::kDouble);
  comm.all_reduce_max(hi, "the start-up check");
  if (hi[0].item<double>() != h || -hi[1].item<double>() != h)
    throw UsageError("rank " + std::to_string(comm.rank()) +
                     ": the ranks were started with different data or settings (every rank "
                     "needs the same arguments and input file)");
}

// All gradients and then `extra` in one flat host buffer (one copy), for one
// collective per step.
torch::Tensor flat_grads(const std::vector<torch::Tensor>& params, const torch::Tensor& extra) {
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size() + 1);
  for (const auto& p : params)
    parts.push_back(p.grad().defined() ? p.grad().reshape(-1).to(torch::kFloat)
                                       : torch::zeros({p.numel()}, p.options()));
  for (auto& t : parts) t = t.to(extra.device());
  parts.push_back(extra);
  return torch::cat(parts);
}

void unflatten_into_grads(const torch::Tensor& flat, std::vector<torch::Tensor>& params) {
  int64_t off = 0;
  for (auto& p : params) {
    const int64_t k = p.numel();
    auto src = flat.slice(0, off, off + k).view(p.sizes());
    if (p.grad().defined())
      p.mutable_grad().copy_(src);
    else
      p.mutable_grad() = src.clone();
    off += k;
  }
}

}  // namespace

TrainResult train(const TrainConfig& given, const TrainCallbacks& cb) {
  given.validate();
  TrainConfig cfg = given;
  CheckpointContents resumed;
  const bool resuming = !given.resume_path.empty();
  if (resuming) {
    resumed = load_checkpoint(given.resume_path);
    TrainConfig saved = TrainConfig::from_json(resumed.meta.at("train_config"));
    // A resumed run keeps the model, data encoding and optimisation settings;
    // only how long to run and where to write may change.
    saved.epochs = given.epochs;
    saved.out_path = given.out_path;
    saved.log_path = given.log_path;
    saved.checkpoint_every = given.checkpoint_every;
    saved.time_limit_s = given.time_limit_s;
    saved.fused_step = given.fused_step;
    saved.cpu_kernels = given.cpu_kernels;
    saved.resume_path = given.resume_path;
    if (!given.data_path.empty()) saved.data_path = given.data_path;
    cfg = saved;
    if (cfg.epochs <= resumed.epoch)
      throw UsageError("--epochs " + std::to_string(cfg.epochs) + " is not beyond the " +
                       std::to_string(resumed.epoch) + " epochs already in " + given.resume_path);
  }
  torch::Device device = parse_device(cfg.device);
  cfg.precision = resolve_precision(cfg.precision, device);  // checkpoints hold the result
  if (given.dist.enabled() && device.is_cuda() && !device.has_index())
    device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(given.dist.local_rank));
  prepare_device(device);
  std::unique_ptr<Communicator> comm;
  if (given.dist.enabled()) {
    DistConfig dist = given.dist;
    // GPUs reduce among themselves when the build has NCCL, else through Gloo on the host.
    if (device.is_cuda() && nccl_available()) {
      dist.backend = "nccl";
      dist.local_rank = device.index();
    }
    comm = std::make_unique<Communicator>(dist);
  }
  const int rank = comm ? comm->rank() : 0;
  const int world = comm ? comm->world_size() : 1;
  // Rank 0 writes, or every rank when the path names its rank.
  const bool writer = rank == 0 || names_rank(cfg.out_path);
  cfg.out_path = path_for_rank(cfg.out_path, rank);
  const std::string log_path =
      cfg.log_path.empty() ? cfg.out_path + ".log.csv" : path_for_rank(cfg.log_path, rank);
  if (writer) {
    check_writable(cfg.out_path);
    check_writable(log_path);
  }
  if (cfg.precision == Precision::kFp16 && !device.is_cuda() &&
      !compat::cpu_autocast_supports(torch::kHalf))
    throw UsageError("--precision fp16 needs a CUDA device with this LibTorch (" +
                     compat::torch_version() + "); on CPU use bf16 or fp32");

  // All input is read and checked before any training starts.
  DiffusionModel model;
  double schedule_s = 0;        // the schedule model's fit, out of the time limit
  int64_t schedule_epochs = 0;  // fitted in this run (a resumed one keeps its model)
  EncodedCohort data;
  torch::Tensor cond_rows;  // [N, k] condition indices per patient
  TrainInfo info;
  // Rank r keeps patients r, r + world, ...: the transforms are fitted on the
  // whole cohort (every rank the same), the design tensor only on the shard.
  int64_t n_global = 0;
  std::string job_description;
  // The shard's loss mask when world > 1, cut from the whole cohort's: channel
  // balance weighs channels by their share of the whole cohort, not of a shard.
  torch::Tensor shard_mask;
  auto cut_mask = [&](const EncodedCohort& whole) {
    const int64_t n = whole.x.size(0);
    return fill_weighted_mask(whole, cfg.fill_weight, cfg.channel_balance)
        .index_select(0, torch::arange(rank, n, world, torch::kLong));
  };
  auto shard = [&](const Cohort& cohort) {
    n_global = cohort.n_patients();
    if (world == 1) return cohort;
    std::vector<int64_t> mine;
    for (int64_t p = rank; p < n_global; p += world) mine.push_back(p);
    return subset_patients(cohort, mine);
  };
  if (resuming) {
    model = std::move(resumed.model);
    Cohort full = load_data_with_schema(cfg.data_path, model.encoder.schema());
    if (model.repeats.empty()) model.repeats = ValueRepeats::fit(full, model.encoder.schema());
    // Checkpoints from before the observation model get one on resume.
    if (model.observations.empty() || world > 1) {
      const EncodedCohort whole = model.encoder.encode(full);  // encoded once for both
      if (model.observations.empty())
        model.observations =
            ObservationModel::fit(model.encoder, whole, 24, 4.0, cfg.partner_jaccard);
      if (world > 1) shard_mask = cut_mask(whole);
    }
    Cohort cohort = shard(full);
    data = model.encoder.encode(cohort);
    cond_rows = model.conditions.indices(cohort);
    info.schema_source = "checkpoint";
  } else {
    InferOptions opts;
    opts.shift = cfg.shift;
    LoadedData loaded =
        load_data(cfg.data_path, cfg.id_column, cfg.time_column, cfg.schema_path, opts);
    const int64_t max_len = loaded.cohort.max_length();
    const int64_t len =
        cfg.working_length > 0
            ? cfg.working_length
            : auto_working_length(static_cast<int64_t>(std::ceil(
                                      static_cast<double>(max_len) * cfg.length_ratio - 1e-9)),
                                  cfg.levels);
    if (len < (int64_t{1} << cfg.levels))
      throw UsageError("--working-length " + std::to_string(len) + " is too short for " +
                       std::to_string(cfg.levels) +
                       " U-Net levels (needs >= " + std::to_string(int64_t{1} << cfg.levels) + ")");
    torch::manual_seed(cfg.seed);
    Encoder encoder =
        Encoder::fit(loaded.schema, loaded.cohort, len, cfg.shift,
                     time_mode_from_string(cfg.time_mode), cfg.range_tail, cfg.missing_groups);
    UNetConfig unet;
    unet.hidden = cfg.hidden;
    unet.levels = cfg.levels;
    unet.groups = cfg.groups;
    unet.dropout = cfg.dropout;
    auto conditions = ConditionSpec::fit(loaded.schema, loaded.cohort, cfg.condition_on, len);
    model = DiffusionModel::create(encoder, unet, cfg.diffusion, conditions);
    model.training_fingerprints = record_fingerprints(loaded.cohort, loaded.schema);
    model.repeats = ValueRepeats::fit(loaded.cohort, model.encoder.schema());
    // The observations are counted on the whole cohort, the design tensor is
    // the shard's: one encoding serves both on a single process.
    EncodedCohort whole = model.encoder.encode(loaded.cohort);
    model.observations = ObservationModel::fit(model.encoder, whole, 24, 4.0, cfg.partner_jaccard);
    if (cfg.schedule_epochs > 0 && model.observations.sparse()) {
      // Every rank fits it (the same model for a seed), so none waits on
      // another's fit at the first collective below.
      const auto t0 = Clock::now();
      ScheduleFitConfig sc;
      sc.max_epochs = cfg.schedule_epochs;
      sc.seed = cfg.seed;
      if (cfg.time_limit_s > 0) sc.time_limit_s = 0.4 * cfg.time_limit_s;
      // Given the labels the chain will be given, so a subgroup gets its own schedules.
      ScheduleLabels labels;
      if (!conditions.empty())
        labels = {conditions.indices(loaded.cohort), conditions.label_sizes()};
      model.schedules = ScheduleModel::fit(model.encoder, whole, model.observations, labels, sc,
                                           cb.on_schedule_progress, cb.should_stop);
      schedule_s = seconds_since(t0);
      schedule_epochs = model.schedules.epochs();
    }
    const torch::Tensor whole_x = whole.x;  // for the start basis, after `whole` moves
    if (world > 1) shard_mask = cut_mask(whole);
    Cohort mine = shard(loaded.cohort);
    loaded.cohort = Cohort();  // the shard is all this rank keeps
    data = world == 1 ? std::move(whole) : model.encoder.encode(mine);
    cond_rows = conditions.indices(mine);
    if (comm) {
      // Per-cell mean and variance over all ranks' patients.
      auto x = data.x.to(torch::kDouble);
      auto s1 = x.sum(0), s2 = (x * x).sum(0);
      comm->all_reduce_sum(s1, "the data statistics");
      comm->all_reduce_sum(s2, "the data statistics");
      auto mean = s1 / static_cast<double>(n_global);
      model.x0_mean = mean.to(torch::kFloat);
      model.x0_std = (s2 / static_cast<double>(n_global) - mean * mean)
                         .clamp_min(0.0)
                         .sqrt()
                         .to(torch::kFloat);
    } else {
      model.x0_mean = data.x.mean(0);
      model.x0_std = data.x.std(0, /*unbiased=*/false);
    }
    // Every rank encodes the whole cohort, so all fit the same start.
    model.start = fit_start_basis(whole_x, model.x0_mean);
    info.schema_source = loaded.schema_source;
  }
  model.to(device);
  model.net->set_cpu_kernels(cfg.cpu_kernels);
  const int64_t n = n_global;  // patients over all ranks: the epoch's shuffle is of these
  if (comm && n_global < world)
    throw UsageError("the cohort has " + std::to_string(n_global) + " patients, fewer than the " +
                     std::to_string(world) + " ranks");
  if (comm) {
    json job = cfg.to_json();
    job["patients"] = n_global;
    job["channels"] = model.encoder.channels();
    job["epoch"] = resuming ? resumed.epoch : 0;
    job["world_size"] = world;
    job.erase("out_path");
    job.erase("log_path");
    job.erase("resume_path");
    check_same_job(*comm, job.dump());
    // Every rank starts from rank 0's weights.
    torch::NoGradGuard ng;
    for (auto& p : model.net->parameters()) comm->broadcast(p, 0, "the initial weights");
  }
  data.loss_mask = shard_mask.defined()
                       ? shard_mask
                       : fill_weighted_mask(data, cfg.fill_weight, cfg.channel_balance);
  auto x_all = data.x.to(device);
  auto mask_all = data.loss_mask.to(device);
  const bool conditional = !model.conditions.empty();
  torch::Tensor cond_all, null_row;
  if (conditional) {
    cond_all = cond_rows.to(device);
    null_row = model.conditions.null_row().to(device);
  }
  // Validity along time, broadcast into the per-channel loss mask already.
  // Each patient's mask sum over all ranks: a global batch's loss denominator.
  torch::Tensor mask_sums;
  if (comm) {
    mask_sums = torch::zeros({n_global}, torch::kDouble);
    mask_sums.index_copy_(0, torch::arange(rank, n_global, world, torch::kLong),
                          data.loss_mask.sum({1, 2}).to(torch::kDouble));
    comm->all_reduce_sum(mask_sums, "the mask sums");
  }

  torch::optim::Adam optimizer(model.net->parameters(), torch::optim::AdamOptions(cfg.lr).betas(
                                                            {cfg.adam_beta1, cfg.adam_beta2}));
  GradScalerConfig scfg = cfg.scaler;
  scfg.enabled = cfg.precision == Precision::kFp16;
  GradScaler scaler(scfg);
  std::unique_ptr<Ema> ema;
  if (cfg.ema_decay > 0) {
    ema = std::make_unique<Ema>(model.net, cfg.ema_decay);
    if (resuming) {
      if (!model.ema) throw InputError(given.resume_path + ": EMA weights are missing");
      torch::NoGradGuard ng;
      auto src = model.ema->named_parameters();
      for (auto& kv : ema->averaged()->named_parameters()) kv.value().copy_(src[kv.key()]);
      ema->set_updates(resumed.meta.value("ema_updates", int64_t{0}));
    }
    model.ema = ema->averaged();
  }
  int64_t start_epoch = 0;
  // A checkpoint saved mid-epoch: the steps done, the generator state the
  // epoch's shuffle came from, and the epoch's running loss sums.
  bool resume_mid_epoch = false;
  int64_t resume_step = 0;
  torch::Tensor resume_epoch_rng;
  json resume_sums;
  if (resuming) {
    restore_optimizer(resumed, optimizer);
    if (resumed.meta.contains("scaler")) scaler.load_state(resumed.meta.at("scaler"));
    set_cpu_rng_state(resumed.rng_state);
    start_epoch = resumed.epoch;
    resume_mid_epoch = resumed.meta.contains("epoch_rng");
    if (resume_mid_epoch) {
      resume_step = resumed.meta.at("epoch_step").get<int64_t>();
      resume_epoch_rng = rng_state_from_hex(resumed.meta.at("epoch_rng").get<std::string>());
      resume_sums = resumed.meta.at("epoch_sums");
    }
  }

  // One GPU process: the whole step without host synchronisation, as a CUDA graph.
  // (fp16 needs the loss scaler's host decisions; ranks need their collective.)
  std::unique_ptr<FusedTrainStep> fused;
  std::unique_ptr<FlatParameters> ema_flat;
  const int64_t fused_batch = std::min(cfg.batch, n);
  const bool want_fused = cfg.fused_step == "on" || (cfg.fused_step == "auto" && device.is_cuda());
  if (!comm && want_fused && cfg.precision != Precision::kFp16) {
    FusedStepConfig fc;
    fc.lr = cfg.lr;
    fc.beta1 = cfg.adam_beta1;
    fc.beta2 = cfg.adam_beta2;
    fc.clip = cfg.clip;
    fc.autocast = cfg.precision != Precision::kFp32;
    fc.amp_dtype = cfg.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kHalf;
    fc.cond_drop = cfg.cond_drop;
    fused = std::make_unique<FusedTrainStep>(model.net, model.schedule, cfg.diffusion, x_all,
                                             mask_all, fused_batch, fc, cond_all, null_row);
    if (resuming) fused->optimizer().load_state_from(optimizer);
    // The EMA weights as one buffer too: their update is two kernels, not two per tensor.
    if (ema) ema_flat = std::make_unique<FlatParameters>(ema->averaged()->parameters(), false);
  }
  // The fused step's loss sums since the last read (one host read), then zeroed.
  auto drain_fused_sums = [&] {
    auto sums = fused->loss_sums().to(torch::kCPU, torch::kDouble);
    fused->reset_sums();
    return std::array<double, 3>{sums[0].item<double>(), sums[1].item<double>(),
                                 sums[2].item<double>()};
  };

  info.patients = n;
  info.channels = model.encoder.channels();
  info.working_length = model.encoder.working_length();
  info.parameters = count_parameters(*model.net);
  info.start_epoch = start_epoch;
  info.conditions = model.conditions.names();
  if (cb.on_start) cb.on_start(info);

  // Per-epoch loss log: rewritten whole each epoch so it is never partial.
  std::string log_text = "epoch,loss,diffusion,recon,seconds,skipped_steps\n";
  if (resuming && resumed.meta.contains("log"))
    log_text = resumed.meta.at("log").get<std::string>();

  const bool autocast = cfg.precision != Precision::kFp32;
  const auto amp_dtype = cfg.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kHalf;
  const int64_t steps_per_epoch = (n + cfg.batch - 1) / cfg.batch;
  const auto t_start = Clock::now();
  // The time limit covers the schedule model's fit too.
  const double limit_s = cfg.time_limit_s > 0 ? std::max(cfg.time_limit_s - schedule_s, 1e-3) : 0.0;
  TrainResult result;
  result.schedule_seconds = schedule_s;
  result.schedule_epochs = schedule_epochs;
  result.epochs_done = start_epoch;
  int64_t seqs_done = 0;
  model.net->train();

  auto params = model.net->parameters();
  bool stop_requested = false;  // distributed: agreed on in the last step's collective
  auto save = [&](int64_t epochs_done, const json& extra) {
    if (!writer) return;
    json meta = extra;
    meta["train_config"] = cfg.to_json();
    meta["epoch"] = epochs_done;
    meta["scaler"] = scaler.state();
    if (ema) meta["ema_updates"] = ema->updates();
    meta["log"] = log_text;
    if (fused) fused->optimizer().store_state_into(optimizer);
    save_checkpoint(cfg.out_path, model, meta, &optimizer, cpu_rng_state());
  };

  for (int64_t epoch = start_epoch; epoch < cfg.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    const bool continuing = epoch == start_epoch && resume_mid_epoch;
    // The shuffle is drawn from the state at the epoch's start; a resumed
    // epoch redraws the same one, then goes on from the saved state.
    torch::Tensor epoch_rng = continuing ? resume_epoch_rng : cpu_rng_state();
    torch::Tensor after_perm_rng;
    if (continuing) {
      after_perm_rng = cpu_rng_state();
      set_cpu_rng_state(epoch_rng);
    }
    auto perm = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong));
    if (continuing) set_cpu_rng_state(after_perm_rng);
    if (device.is_cuda()) perm = perm.to(device);
    double sum_loss = 0, sum_diff = 0, sum_rec = 0;
    int64_t skipped = 0;
    if (continuing) {
      sum_loss = resume_sums.at("loss").get<double>();
      sum_diff = resume_sums.at("diffusion").get<double>();
      sum_rec = resume_sums.at("recon").get<double>();
      skipped = resume_sums.at("skipped").get<int64_t>();
    }
    int64_t counted = continuing ? resume_step : 0;  // steps in the loss sums
    TrainProgress pr;
    pr.epoch = epoch + 1;
    pr.epochs = cfg.epochs;
    pr.steps_per_epoch = steps_per_epoch;
    for (int64_t s = continuing ? resume_step : 0; s < steps_per_epoch; ++s) {
      if (comm ? stop_requested : (cb.should_stop && cb.should_stop())) {
        result.stopped_early = true;
        result.stopped_at_step = s;
        if (fused) {  // the steps since the last read
          const auto sums = drain_fused_sums();
          sum_loss += sums[0];
          sum_diff += sums[1];
          sum_rec += sums[2];
        }
        // Saved even between epochs: this epoch's shuffle is already drawn, and
        // --checkpoint-every may have skipped the last one.
        json extra;
        extra["epoch_step"] = s;
        extra["epoch_rng"] = rng_state_to_hex(epoch_rng);
        extra["epoch_sums"] = {
            {"loss", sum_loss}, {"diffusion", sum_diff}, {"recon", sum_rec}, {"skipped", skipped}};
        save(epoch, extra);
        break;
      }
      const int64_t b0 = s * cfg.batch, b1 = std::min(n, b0 + cfg.batch);
      auto idx = perm.slice(0, b0, b1);
      double step_loss = 0, step_diff = 0, step_rec = 0;
      // Whether the sums include this step (the fused step reads them now and then).
      bool sums_current = true;
      if (fused) {
        // Full batches only: the last one wraps around to the shuffle's start.
        auto rows = b1 - b0 == fused_batch
                        ? idx
                        : torch::cat({idx, perm.slice(0, 0, fused_batch - (b1 - b0))});
        fused->step(rows);
        if (ema) {  // Ema::update's arithmetic over the flat buffers
          torch::NoGradGuard ng;
          const double d = ema->current_decay();
          ema_flat->values.mul_(d).add_(fused->parameters().values, 1.0 - d);
          ema->set_updates(ema->updates() + 1);
        }
        // The loss sums stay on the device; read them now and then, not every step.
        const bool read = s == 0 || (s + 1) % 16 == 0 || s + 1 == steps_per_epoch;
        sums_current = read;
        if (read) {
          const auto sums = drain_fused_sums();
          step_loss = sums[0];
          step_diff = sums[1];
          step_rec = sums[2];
        }
      } else if (!comm) {
        auto xb = x_all.index_select(0, idx);
        auto mb = mask_all.index_select(0, idx);
        torch::Tensor cond_b;
        if (conditional) {
          // Drop every condition of a sequence at once, so the same network
          // learns the unconditional model classifier-free guidance needs.
          auto drop = torch::rand({b1 - b0, 1}, xb.options()) < cfg.cond_drop;
          cond_b = torch::where(drop, null_row.unsqueeze(0), cond_all.index_select(0, idx));
        }
        LossTerms loss;
        {
          compat::AutocastScope amp(device.type(), autocast, amp_dtype);
          loss = diffusion_loss(model.net, model.schedule, cfg.diffusion, xb, mb, cond_b);
        }
        optimizer.zero_grad();
        scaler.scale(loss.total).backward();
        step_loss = loss.total.item<double>();
        step_diff = loss.diffusion.item<double>();
        step_rec = loss.recon.item<double>();
      } else {
        // Every rank draws the whole global batch's randomness from the same
        // generator and uses its own patients' rows: the summed gradient is
        // the one a single process would compute.
        auto gidx = idx.to(torch::kCPU);
        torch::Tensor drop;
        if (conditional) drop = torch::rand({b1 - b0, 1}) < cfg.cond_drop;
        const LossDraws draws = draw_loss_noise(cfg.diffusion, model.schedule->n_steps(),
                                                {b1 - b0, x_all.size(1), x_all.size(2)});
        auto denom = mask_sums.index_select(0, gidx).sum().clamp_min(1.0).to(torch::kFloat);
        auto pos = (gidx.remainder(world) == rank).nonzero().view(-1);
        optimizer.zero_grad();
        if (pos.numel() > 0) {
          auto local = gidx.index_select(0, pos).div(world, "floor").to(device);
          auto xb = x_all.index_select(0, local);
          auto mb = mask_all.index_select(0, local);
          torch::Tensor cond_b;
          if (conditional)
            cond_b = torch::where(drop.index_select(0, pos).to(device), null_row.unsqueeze(0),
                                  cond_all.index_select(0, local));
          // Dropout draws from a rank's own stream, so the shared one stays in step.
          torch::Tensor shared_rng;
          if (cfg.dropout > 0) {
            shared_rng = cpu_rng_state();
            torch::manual_seed(
                cfg.seed ^
                (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch * steps_per_epoch + s + 1)) ^
                static_cast<uint64_t>(rank));
          }
          LossTerms loss;
          {
            compat::AutocastScope amp(device.type(), autocast, amp_dtype);
            loss = diffusion_loss(model.net, model.schedule, cfg.diffusion, xb, mb, cond_b,
                                  draws.rows(pos), denom);
          }
          scaler.scale(loss.total).backward();
          if (shared_rng.defined()) set_cpu_rng_state(shared_rng);
          step_loss = loss.total.item<double>();
          step_diff = loss.diffusion.item<double>();
          step_rec = loss.recon.item<double>();
        }
        // One collective: the gradients, this step's loss terms and any rank's stop request.
        const bool stop_here = cb.should_stop && cb.should_stop();
        auto flat = flat_grads(
            params, torch::tensor({static_cast<float>(step_loss), static_cast<float>(step_diff),
                                   static_cast<float>(step_rec), stop_here ? 1.0F : 0.0F})
                        .to(comm->device()));
        comm->all_reduce_sum(flat, "a training step");
        const int64_t k = flat.size(0) - 4;
        unflatten_into_grads(flat.slice(0, 0, k).to(device), params);
        step_loss = flat[k].item<double>();
        step_diff = flat[k + 1].item<double>();
        step_rec = flat[k + 2].item<double>();
        if (flat[k + 3].item<float>() > 0) stop_requested = true;
      }
      if (!fused) {
        scaler.unscale(optimizer);
        if (cfg.clip > 0) torch::nn::utils::clip_grad_norm_(model.net->parameters(), cfg.clip);
        if (!scaler.step(optimizer))
          ++skipped;
        else if (ema)
          ema->update(model.net);
        scaler.update();
      }

      sum_loss += step_loss;
      sum_diff += step_diff;
      sum_rec += step_rec;
      seqs_done += b1 - b0;
      if (!std::isfinite(sum_loss))
        throw RuntimeError("training diverged at epoch " + std::to_string(epoch + 1) +
                           " (loss is not finite); lower --lr or use --precision fp32");
      pr.step = s + 1;
      if (sums_current) counted = s + 1;
      const double denom = static_cast<double>(std::max<int64_t>(counted, 1));
      pr.loss = sum_loss / denom;
      pr.diffusion = sum_diff / denom;
      pr.recon = sum_rec / denom;
      pr.skipped_steps = skipped;
      const double el = seconds_since(t_start);
      pr.seq_per_s = seqs_done / std::max(el, 1e-9);
      const double remaining_seqs =
          static_cast<double>(cfg.epochs - epoch - 1) * n + static_cast<double>(n - b1);
      pr.eta_s = remaining_seqs / std::max(pr.seq_per_s, 1e-9);
      // A time limit ends the run first when it comes before the last epoch.
      if (limit_s > 0) pr.eta_s = std::min(pr.eta_s, std::max(0.0, limit_s - el));
      if (cb.on_progress) cb.on_progress(pr);
    }
    if (result.stopped_early) break;

    std::ostringstream line;
    line.precision(8);
    line << epoch + 1 << ',' << pr.loss << ',' << pr.diffusion << ',' << pr.recon << ','
         << seconds_since(t_epoch) << ',' << skipped << '\n';
    log_text += line.str();
    if (writer) write_text_atomically(log_path, log_text);

    // Whole epochs only: stop when the next one would end past the limit.
    const double epoch_s = seconds_since(t_epoch);
    bool out_of_time =
        limit_s > 0 && epoch + 1 < cfg.epochs && seconds_since(t_start) + epoch_s > limit_s;
    if (comm && limit_s > 0) {  // one rank out of time stops them all
      auto flag = torch::tensor({out_of_time ? 1.0F : 0.0F});
      comm->all_reduce_max(flag, "the time-limit check");
      out_of_time = flag.item<float>() > 0;
    }
    const bool last = epoch + 1 == cfg.epochs || out_of_time;
    if (last || (epoch + 1 - start_epoch) % cfg.checkpoint_every == 0) {
      save(epoch + 1, json::object());
      pr.checkpoint_saved = true;
    }
    pr.epoch_done = true;
    if (cb.on_progress) cb.on_progress(pr);
    result.epochs_done = epoch + 1;
    result.final_loss = pr.loss;
    if (out_of_time) {
      result.time_limited = true;
      break;
    }
  }
  if (comm) {
    // The invariant data parallelism rests on: every rank holds rank 0's weights.
    torch::NoGradGuard ng;
    auto mine = torch::cat([&] {
      std::vector<torch::Tensor> v;
      for (const auto& p : params) v.push_back(p.detach().reshape(-1).to(torch::kCPU));
      return v;
    }());
    auto root = mine.clone();
    comm->broadcast(root, 0, "the final weight check");
    if (!torch::equal(mine, root))
      throw RuntimeError("rank " + std::to_string(rank) +
                         ": parameters differ from rank 0's after training");
  }
  result.world_size = world;
  result.seconds = seconds_since(t_start);
  return result;
}

}  // namespace healthgym
