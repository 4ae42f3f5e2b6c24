#include <chrono>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "healthgym/atomic_file.hpp"
#include "healthgym/compat.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/cuda_graph.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/samplers.hpp"

namespace healthgym {

StartMode start_mode_from_string(const std::string& s) {
  if (s == "noise") return StartMode::kNoise;
  if (s == "marginal") return StartMode::kMarginal;
  if (s == "gaussian") return StartMode::kGaussian;
  throw UsageError("unknown start '" + s + "' (expected noise, marginal or gaussian)");
}

ObservationSource observation_source_from_string(const std::string& s) {
  if (s == "network") return ObservationSource::kNetwork;
  if (s == "chains") return ObservationSource::kChains;
  if (s == "sequence") return ObservationSource::kSequence;
  if (s == "model") return ObservationSource::kModel;
  throw UsageError("unknown observations '" + s +
                   "' (expected model, sequence, chains or network)");
}

void SampleConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError(msg);
  };
  need(!model_path.empty(), "--model is required");
  need(!out_path.empty(), "--out is required");
  need(n >= 1, "--n must be >= 1, is " + std::to_string(n));
  need(batch >= 1, "--batch must be >= 1, is " + std::to_string(batch));
  need(max_attempts >= 0, "--max-attempts must be >= 0 (0 = 20 x --n)");
  need(temperature > 0.0, "--temperature must be > 0");
  need(device == "cpu" || device == "cuda" || device.rfind("cuda:", 0) == 0,
       "--device must be cpu or cuda[:N], is '" + device + "'");
  need(first_id >= 0, "--first-id must be >= 0");
  need(guidance >= 0.0 && std::isfinite(guidance), "--guidance must be >= 0");
  need(shard_count >= 1 && shard_index >= 0 && shard_index < shard_count,
       "--shard K/N needs 0 <= K < N");
  need(n >= shard_count, "--n " + std::to_string(n) + " is smaller than the " +
                             std::to_string(shard_count) + " shards it is split into");
}

std::pair<int64_t, int64_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto num = [&](const std::string& s, int64_t* out) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    *out = std::stoll(s);
    return true;
  };
  int64_t k = 0, n = 0;
  if (slash == std::string::npos || !num(text.substr(0, slash), &k) ||
      !num(text.substr(slash + 1), &n) || n < 1 || k >= n)
    throw UsageError("--shard '" + text + "' is not K/N with 0 <= K < N (e.g. 0/4)");
  return {k, n};
}

std::string shard_path(const std::string& out_path, int64_t index, int64_t count) {
  if (names_rank(out_path)) return path_for_rank(out_path, index);
  return out_path + ".part-" + std::to_string(index) + "-of-" + std::to_string(count);
}

uint64_t shard_seed(uint64_t seed, int64_t index, int64_t count) {
  if (count == 1) return seed;
  // splitmix64 of (seed, index): neighbouring seeds and parts stay far apart.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(index) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t merge_csv_shards(const std::vector<std::string>& parts, const std::string& id_column,
                         const std::string& out_path) {
  if (parts.empty()) throw UsageError("merge needs at least one shard file");
  check_writable(out_path);
  std::unordered_map<std::string, std::pair<size_t, long>> seen;  // id -> (part, line)
  std::string out;
  std::vector<std::string> header;
  int64_t patients = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const CsvTable t = read_csv(parts[i]);
    if (i == 0) {
      header = t.header;
      for (size_t c = 0; c < t.header.size(); ++c)
        out += (c ? "," : "") + csv_field(t.header[c], t.header_quoted);
      out += '\n';
    } else if (t.header != header) {
      throw InputError(located(parts[i], 1, 1,
                               "header differs from " + parts[0] +
                                   "'s; shards must come from "
                                   "one model",
                               ""));
    }
    const long id_col = t.column_of(id_column);
    if (id_col < 0)
      throw InputError(located(parts[i], 1, 1, "no patient id column '" + id_column + "'", ""));
    std::string prev;
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const auto& row = t.rows[r];
      const std::string& id = row[static_cast<size_t>(id_col)];
      if (r == 0 || id != prev) {
        auto [it, fresh] = seen.emplace(id, std::make_pair(i, t.line_of_row[r]));
        if (!fresh)
          throw InputError(located(parts[i], t.line_of_row[r], id_col + 1,
                                   "patient id also used in " + parts[it->second.first] + " line " +
                                       std::to_string(it->second.second) +
                                       "; shards must be sampled with distinct --shard K/N",
                                   id));
        ++patients;
        prev = id;
      }
      for (size_t c = 0; c < row.size(); ++c)
        out += (c ? "," : "") + csv_field(row[c], t.quoted[r][c] != 0);
      out += '\n';
    }
  }
  write_text_atomically(out_path, out);
  return patients;
}

Cohort generate_cohort(DiffusionModel& model, const SampleConfig& cfg, SampleResult* result,
                       const std::function<void(const SampleProgress&)>& on_progress) {
  cfg.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const auto device = model.schedule->betas.device();
  const Precision precision = resolve_precision(cfg.precision, device);
  const bool autocast = precision != Precision::kFp32;
  const auto amp_dtype = precision == Precision::kBf16 ? torch::kBFloat16 : torch::kHalf;
  if (precision == Precision::kFp16 && !device.is_cuda() &&
      !compat::cpu_autocast_supports(torch::kHalf))
    throw UsageError("--precision fp16 needs a CUDA device with this LibTorch; use bf16 or fp32");
  const bool prepared = cfg.prepared.value_or(false);
  const auto compute_dtype = autocast ? amp_dtype : torch::kFloat;
  const int64_t max_attempts =
      cfg.max_attempts > 0 ? cfg.max_attempts : std::max<int64_t>(20 * cfg.n, cfg.batch);
  SamplerOptions sopt;
  sopt.kind = cfg.sampler;
  sopt.steps = cfg.sample_steps;
  sopt.eta = cfg.eta;
  sopt.clip_x0 = cfg.clip_x0.value_or(false);
  sopt.validate(model.schedule->n_steps());
  const bool ema = cfg.use_ema.value_or(false);
  if (ema && !model.ema)
    throw UsageError("this checkpoint has no EMA weights (trained with --ema-decay 0)");
  UNet net = ema ? model.ema : model.net;
  ObservationSource source = cfg.observations.value_or(ObservationSource::kNetwork);
  if (source == ObservationSource::kModel)
    source = model.schedules.empty() ? ObservationSource::kChains : ObservationSource::kSequence;
  if (source == ObservationSource::kChains && model.observations.empty())
    throw UsageError(
        "this checkpoint holds no observation model (trained before healthgym fitted "
        "one); use --observations network");
  if (source == ObservationSource::kSequence && model.schedules.empty())
    throw UsageError(
        "this checkpoint holds no schedule model (default-preset training fits one for sparse "
        "cohorts, unless --schedule-epochs 0); use --observations chains or network");
  const bool observe = source != ObservationSource::kNetwork;
  if (cfg.repeats.value_or(false) && model.repeats.empty())
    throw UsageError(
        "this checkpoint holds no repeat shares (trained before healthgym counted them); "
        "use --repeats off");
  const StartMode start = cfg.start.value_or(StartMode::kNoise);
  if (start != StartMode::kNoise && !model.x0_mean.defined())
    throw UsageError(
        "this checkpoint holds no start statistics (trained before they were "
        "saved); use --start noise");
  if (start == StartMode::kGaussian && !model.start.basis.defined())
    throw UsageError(
        "this checkpoint holds no start basis (trained before healthgym fitted one); use "
        "--start marginal");
  const double ab_T = model.schedule->alpha_bar[-1].item<double>();
  torch::Tensor start_mean, start_std;
  if (start == StartMode::kMarginal) {
    start_mean = std::sqrt(ab_T) * model.x0_mean;
    start_std = (ab_T * model.x0_std.square() + (1.0 - ab_T)).sqrt();
  }
  net->eval();
  torch::manual_seed(cfg.seed);
  const int64_t c = model.encoder.channels(), len = model.encoder.working_length();
  const ConditionSpec& spec = model.conditions;
  const auto fixed = spec.parse(cfg.conditions);
  const auto null_row = spec.empty() ? torch::Tensor() : spec.null_row();

  std::vector<torch::Tensor> kept_x, kept_len, kept_cond;
  int64_t passed = 0;  // sequences the guardrail let through, surplus included
  SampleProgress pr;
  pr.target = cfg.n;
  while (pr.accepted < cfg.n) {
    if (pr.attempted >= max_attempts) {
      const double rate = static_cast<double>(pr.accepted) / std::max<int64_t>(1, pr.attempted);
      throw RuntimeError("the guardrail accepted only " + std::to_string(pr.accepted) + " of " +
                         std::to_string(cfg.n) + " sequences in " + std::to_string(pr.attempted) +
                         " attempts (acceptance " + std::to_string(100.0 * rate) +
                         "%); train longer, raise --max-attempts, or pass --no-guardrail");
    }
    // Generate what is still missing, scaled up by the acceptance seen so far
    // (only once something was rejected: otherwise exactly what is missing).
    int64_t want = cfg.n - pr.accepted;
    if (passed > 0 && passed < pr.attempted)
      want = static_cast<int64_t>(std::ceil(want * 1.1 * pr.attempted / passed));
    const int64_t b = std::min({cfg.batch, want, max_attempts - pr.attempted});
    // Labels first: a subgroup's lengths and schedules follow from them.
    // Checkpoints without lengths per label combination draw in the order they
    // did, so a seed gives them the same cohort as before.
    torch::Tensor cond, lengths;
    if (spec.has_lengths()) {
      cond = spec.draw(b, fixed);
      lengths = spec.draw_lengths(cond, model.encoder.length_counts());
    } else {
      lengths = model.encoder.sample_lengths(b);
      if (!spec.empty()) cond = spec.draw(b, fixed);
    }
    auto denoise = prepared ? prepared_denoiser(net, compute_dtype, cond, null_row, cfg.guidance)
                            : guided_denoiser(net, cond, null_row, cfg.guidance);
    std::function<torch::Tensor(const torch::Tensor&)> fill, place;
    if (cfg.fill.value_or(false)) fill = model.encoder.fill_projection(lengths, device);
    if (source == ObservationSource::kChains)
      place = ObservationModel::projection(model.observations.sample(lengths), device);
    else if (source == ObservationSource::kSequence)
      place = ObservationModel::projection(model.schedules.sample(lengths, cond), device);
    if (cfg.static_chain.value_or(false)) {
      auto hold = model.encoder.static_projection(lengths, device);
      if (cond.defined()) {
        auto labels = spec.projection(model.encoder.schema(), cond, lengths, c, len, device);
        hold = [hold, labels](const torch::Tensor& x0) { return labels(hold(x0)); };
      }
      place = place ? [hold, place](const torch::Tensor& x0) { return place(hold(x0)); } : hold;
    }
    if (fill && place)
      sopt.project_x0 = [fill, place](const torch::Tensor& x0) { return fill(place(x0)); };
    else
      sopt.project_x0 = place ? place : fill;
    torch::Tensor x;
    {
      compat::AutocastScope amp(device.type(), autocast && !prepared, amp_dtype);
      torch::Tensor x_t;
      if (start == StartMode::kGaussian) {
        x_t = draw_start(model.start, model.x0_mean.to(device), ab_T, b);
      } else {
        x_t = torch::randn({b, c, len}, torch::TensorOptions().device(device));
        if (start == StartMode::kMarginal) x_t = start_mean + start_std * x_t;
      }
      x = reverse_diffusion_from(denoise, model.schedule, x_t, sopt, [&](int64_t k, int64_t steps) {
        pr.step = k;
        pr.steps = steps;
        if (on_progress) on_progress(pr);
      });
    }
    // The chain ends on a projected x0 already; placing once more makes the
    // schedules exact whatever the sampler's last step rounds.
    if (place) x = place(x);
    x = x.to(torch::kCPU, torch::kFloat);
    pr.attempted += b;
    torch::Tensor keep =
        cfg.guardrail ? model.encoder.within_range(x, lengths) : torch::ones({b}, torch::kBool);
    auto idx = keep.nonzero().view(-1);
    passed += idx.size(0);
    const int64_t room = cfg.n - pr.accepted;
    if (idx.size(0) > room) idx = idx.slice(0, 0, room);
    kept_x.push_back(x.index_select(0, idx));
    kept_len.push_back(lengths.index_select(0, idx));
    if (cond.defined()) kept_cond.push_back(cond.index_select(0, idx));
    pr.accepted += idx.size(0);
    if (on_progress) on_progress(pr);
  }
  auto x = torch::cat(kept_x, 0);
  auto lengths = torch::cat(kept_len, 0);
  DecodeOptions dopt;
  dopt.categorical = cfg.categorical;
  dopt.temperature = cfg.temperature;
  dopt.first_id = cfg.first_id;
  dopt.hold_static = cfg.hold_static.value_or(true);
  Cohort cohort = model.encoder.decode(x, lengths, dopt);
  double match = 1.0;
  if (!spec.empty()) match = spec.apply(cohort, torch::cat(kept_cond, 0));
  int64_t repeats_set = -1;
  if (cfg.repeats.value_or(false))
    repeats_set = model.repeats.apply(cohort, model.encoder.schema());
  if (result) {
    result->observation_model = observe;
    result->observations = source;
    result->repeats_set = repeats_set;
    result->conditional = !spec.empty();
    result->condition_match = match;
    result->subgroup_share_real = spec.empty() ? 1.0 : spec.share(fixed);
    result->accepted = pr.accepted;
    result->attempted = pr.attempted;
    // The guardrail's rate: surplus sequences of the last batch passed it too.
    result->passed = passed;
    result->acceptance_rate = static_cast<double>(passed) / std::max<int64_t>(1, pr.attempted);
    result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return cohort;
}

SampleResult sample_to_csv(const SampleConfig& cfg,
                           const std::function<void(const SampleProgress&)>& on_progress) {
  cfg.validate();
  check_writable(cfg.out_path);
  torch::Device device(cfg.device);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw UsageError("--device " + cfg.device + " asked for, but no CUDA device is available");
  prepare_device(device);
  CheckpointContents ckpt = load_checkpoint(cfg.model_path, device);
  SampleConfig resolved = cfg;
  if (cfg.shard_count > 1) {
    const int64_t lo = cfg.n * cfg.shard_index / cfg.shard_count;
    const int64_t hi = cfg.n * (cfg.shard_index + 1) / cfg.shard_count;
    resolved.n = hi - lo;
    resolved.first_id = cfg.first_id + lo;
    resolved.seed = shard_seed(cfg.seed, cfg.shard_index, cfg.shard_count);
  }
  const bool seed_preset =
      ckpt.meta.at("train_config").value("preset", std::string("default")) == "seed";
  if (!resolved.hold_static.has_value()) resolved.hold_static = !seed_preset;
  if (!resolved.static_chain.has_value()) resolved.static_chain = *resolved.hold_static;
  if (!resolved.clip_x0.has_value()) resolved.clip_x0 = !seed_preset;
  if (!resolved.fill.has_value()) resolved.fill = !seed_preset;
  if (!resolved.use_ema.has_value()) resolved.use_ema = !seed_preset && ckpt.model.ema;
  if (!resolved.prepared.has_value()) resolved.prepared = !seed_preset;
  if (resolved.precision == Precision::kAuto && seed_preset) resolved.precision = Precision::kFp32;
  if (!resolved.observations.has_value())
    resolved.observations = !seed_preset && ckpt.model.observations.sparse()
                                ? ObservationSource::kModel
                                : ObservationSource::kNetwork;
  if (!resolved.repeats.has_value()) resolved.repeats = !seed_preset && !ckpt.model.repeats.empty();
  if (!resolved.start.has_value())
    resolved.start = seed_preset || !ckpt.model.x0_mean.defined() ? StartMode::kNoise
                     : ckpt.model.start.basis.defined()           ? StartMode::kGaussian
                                                                  : StartMode::kMarginal;
  SampleResult result;
  Cohort cohort = generate_cohort(ckpt.model, resolved, &result, on_progress);
  const Schema& schema = ckpt.model.encoder.schema();
  const auto& known = ckpt.model.training_fingerprints;
  result.copies_checked = !known.empty();
  if (result.copies_checked) {
    const std::unordered_set<uint64_t> train(known.begin(), known.end());
    const auto mine = record_fingerprints(cohort, schema);
    std::string ids;
    for (size_t p = 0; p < mine.size(); ++p) {
      if (!train.count(mine[p])) continue;
      if (++result.copies <= 5) ids += (ids.empty() ? "" : ", ") + cohort.patient_ids[p];
    }
    if (result.copies > 0 && !cfg.allow_copies)
      throw RuntimeError(
          std::to_string(result.copies) + " of " + std::to_string(cohort.n_patients()) +
          " synthetic patients are exact copies of training patients (ids " + ids +
          (result.copies > 5 ? ", ..." : "") + "); nothing was written to " + cfg.out_path +
          ". Sample with another --seed, or pass --allow-copies to write them");
  }
  write_text_atomically(cfg.out_path, format_cohort_csv(cohort, schema));
  return result;
}

}  // namespace healthgym
