#pragma once
// Sampling: reverse diffusion from pure noise, the guardrail, decoding back to
// clinical units and labels, and the synthetic CSV in the input's format.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "healthgym/checkpoint.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/samplers.hpp"
#include "healthgym/train.hpp"

namespace healthgym {

// kNoise: x_T ~ N(0, I). kMarginal: sqrt(abar_T) mean + sqrt(abar_T var + 1 -
// abar_T) z with the training data's per-cell mean and variance. kGaussian:
// x_T as if x0 were Gaussian over whole patients (StartBasis), so what a
// patient shares across its steps keeps its spread.
enum class StartMode { kNoise, kMarginal, kGaussian };
StartMode start_mode_from_string(const std::string& s);  // throws UsageError

// Where each patient's observations (which cells are measured) come from.
// kNetwork: the network places them with the values (the original). kChains:
// drawn from the checkpoint's ObservationModel; kSequence: from its
// ScheduleModel; kModel: the ScheduleModel where the checkpoint holds one,
// else the ObservationModel. Drawn schedules are held fixed while the network
// generates the values.
enum class ObservationSource { kNetwork, kChains, kSequence, kModel };
ObservationSource observation_source_from_string(const std::string& s);  // throws UsageError

struct SampleConfig {
  std::string model_path;
  std::string out_path;
  int64_t n = 0;        // synthetic patients wanted
  int64_t batch = 256;  // sequences generated together
  bool guardrail = true;
  // Sequences tried before giving up; 0 means 20 * n (at least one batch).
  int64_t max_attempts = 0;
  CategoricalDecode categorical = CategoricalDecode::kArgmax;
  double temperature = 0.1;
  uint64_t seed = 0;
  std::string device = "cpu";
  // kAuto: bf16 on a CPU with native bf16, fp32 elsewhere and for seed-preset
  // checkpoints (sample_to_csv), whose samples stay the original's.
  Precision precision = Precision::kFp32;
  int64_t first_id = 1;
  // Hold static variables constant per patient; unset follows the checkpoint's
  // preset (the seed preset reproduces the original, which does not).
  std::optional<bool> hold_static;
  // Hold static variables to one value per patient through the chain too
  // (Encoder::static_projection at every step). Unset: as hold_static.
  std::optional<bool> static_chain;
  // The reverse chain. Unset choices follow the checkpoint's preset: the seed
  // preset samples as the original (DDPM, no clamping); the default preset
  // clamps x0-hat and uses the EMA weights when the checkpoint has them.
  SamplerKind sampler = SamplerKind::kDdpm;
  int64_t sample_steps = 0;  // DDIM steps (0 = T)
  double eta = 0.0;
  std::optional<bool> clip_x0;
  // Keep padded steps and the values of unobserved cells at their training fill
  // (Encoder::project_fill) at every step. Unset: on unless the seed preset.
  std::optional<bool> fill;
  std::optional<bool> use_ema;
  // Denoise through a PreparedUNet (weights cast once per batch, FiLM tables,
  // GroupNorm and FiLM in one op): the same function, rounded differently.
  // Unset: on unless the seed preset (whose samples stay the original's, bit
  // for bit).
  std::optional<bool> prepared;
  // Where the chain starts. Unset: kGaussian for default-preset checkpoints
  // that hold its basis, else kMarginal where they hold the statistics; kNoise
  // for the seed preset (the original starts from pure noise).
  std::optional<StartMode> start;
  // Where observations fall. Unset: kModel for default-preset checkpoints
  // whose training cohort is sparse (ObservationModel::sparse), else kNetwork
  // (dense records, and the seed preset: the original).
  std::optional<ObservationSource> observations;
  // Make each time-varying real's smallest steps exact repeats, as many as the
  // training cohort repeats (ValueRepeats). Unset: on for default-preset
  // checkpoints that hold the shares, off for the seed preset.
  std::optional<bool> repeats;
  // "COLUMN=VALUE" requests on the model's conditioning variables; the others
  // follow the training cohort's joint shares. guidance: classifier-free
  // guidance scale w (1 = the conditional model as trained; > 1 sharper).
  std::vector<std::string> conditions;
  double guidance = 1.0;
  // A synthetic patient identical to a training patient (as written) stops the
  // run before anything is written, unless allowed (then it is reported).
  bool allow_copies = false;
  // Part K of N (K from 0): patients [n K / N, n (K + 1) / N) of the n asked
  // for, numbered from first_id + n K / N, drawn from a seed of their own.
  // The N parts, merged (merge_csv_shards), hold n patients with unique ids.
  int64_t shard_index = 0;
  int64_t shard_count = 1;

  void validate() const;  // throws UsageError
};

// "K/N" -> {K, N}; throws UsageError unless 0 <= K < N.
std::pair<int64_t, int64_t> parse_shard(const std::string& text);
// The file a rank writes when sampling is split by rank: OUT with "{rank}"
// replaced, else OUT.part-K-of-N.
std::string shard_path(const std::string& out_path, int64_t index, int64_t count);
// The seed part K of N uses: the seed itself for one part, else a 64-bit mix
// of both (disjoint streams).
uint64_t shard_seed(uint64_t seed, int64_t index, int64_t count);

struct SampleProgress {
  int64_t accepted = 0, attempted = 0, target = 0;
  int64_t step = 0, steps = 0;  // denoising step within the current batch
};

struct SampleResult {
  int64_t accepted = 0, attempted = 0;
  int64_t passed = 0;          // passed the guardrail (accepted plus the last batch's surplus)
  double acceptance_rate = 0;  // passed / attempted
  // Conditional models: the share of patients whose generated labels already
  // matched the conditions they were generated for (they are then set to
  // them), and the requested subgroup's share of the training cohort.
  bool conditional = false;
  double condition_match = 1.0;
  double subgroup_share_real = 1.0;
  // Where the observations came from (kModel resolved); observation_model:
  // drawn from a model (chains or sequence), not left to the network.
  ObservationSource observations = ObservationSource::kNetwork;
  bool observation_model = false;
  int64_t repeats_set = -1;     // cells made repeats (ValueRepeats); -1 when off
  bool copies_checked = false;  // the checkpoint holds training fingerprints
  int64_t copies = 0;           // synthetic patients identical to a training patient
  double seconds = 0;
};

// Generates `n` accepted sequences (decoded to a cohort). Throws RuntimeError
// when the guardrail rejects too many.
Cohort generate_cohort(DiffusionModel& model, const SampleConfig& config, SampleResult* result,
                       const std::function<void(const SampleProgress&)>& on_progress = {});

// Concatenates shard CSVs into one, written atomically: the headers must
// match and no patient id may appear in two parts (InputError naming both
// files and lines). Returns the number of patients.
int64_t merge_csv_shards(const std::vector<std::string>& parts, const std::string& id_column,
                         const std::string& out_path);

// Loads the checkpoint, generates, and writes the CSV atomically.
SampleResult sample_to_csv(const SampleConfig& config,
                           const std::function<void(const SampleProgress&)>& on_progress = {});

}  // namespace healthgym
