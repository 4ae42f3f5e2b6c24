#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/atomic_file.hpp"
#include "healthgym/checkpoint.hpp"
#include "healthgym/distributed.hpp"
#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "launch.hpp"

namespace healthgym::cli {

Action register_sample(CLI::App& app) {
  struct Opts {
    SampleConfig cfg;
    std::string categorical = "argmax";
    std::string precision = "auto";
    bool no_guardrail = false;
    std::string statics;
    std::string sampler = "ddpm";
    std::string clip_x0;
    std::string fill;
    std::string ema;
    std::string prepared;
    std::string observations;
    std::string repeats;
    std::string start;
    std::string shard;
    int nproc = 1;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "sample",
      "Generate synthetic patients from a trained checkpoint and write them as CSV in the "
      "training data's format (same columns, labels and time grid; fresh patient ids).");
  auto& c = o->cfg;
  sub->add_option("--model", c.model_path, "Checkpoint written by 'train'")->required();
  sub->add_option("--n", c.n, "Number of synthetic patients")->required();
  sub->add_option("--out", c.out_path, "CSV to write (written atomically)")->required();
  sub->add_option("--batch", c.batch, "Sequences denoised together")->capture_default_str();
  sub->add_flag("--no-guardrail", o->no_guardrail,
                "Keep every sequence (out-of-range reals are clamped) instead of rejecting "
                "those whose real values leave [-1,1]");
  sub->add_option("--max-attempts", c.max_attempts,
                  "Give up after this many generated sequences (0 = 20 x --n)")
      ->capture_default_str();
  sub->add_option("--categorical", o->categorical,
                  "argmax over each one-hot block, or sample from its softmax")
      ->check(CLI::IsMember({"argmax", "sample"}))
      ->capture_default_str();
  sub->add_option("--temperature", c.temperature, "Softmax temperature for --categorical sample")
      ->capture_default_str();
  sub->add_option("--seed", c.seed, "Random seed (same seed and model: same patients)")
      ->capture_default_str();
  sub->add_option("--first-id", c.first_id, "Number of the first synthetic patient")
      ->capture_default_str();
  sub->add_option("--device", c.device, "cpu or cuda[:N]")->capture_default_str();
  sub->add_option("--precision", o->precision,
                  "the network's: auto (bf16 on a CPU with native bf16, AVX-512 BF16 or AMX; "
                  "fp32 elsewhere and for seed-preset models, whose samples stay the "
                  "original's) | fp32 | bf16 | fp16 (CUDA)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16", "auto"}))
      ->capture_default_str();
  sub->add_option("--statics", o->statics,
                  "chain: static variables held to one value per patient at every denoising "
                  "step and when decoding; hold: only when decoding (the median over the "
                  "patient's steps); free: per step, as the original (default: free for a "
                  "seed-preset model, chain otherwise)")
      ->check(CLI::IsMember({"chain", "hold", "free"}));
  sub->add_option("--sampler", o->sampler,
                  "ddpm: ancestral over all T steps (the original); ddim: K steps (--sample-steps)")
      ->check(CLI::IsMember({"ddpm", "ddim"}))
      ->capture_default_str();
  sub->add_option("--sample-steps", c.sample_steps, "DDIM denoising steps K (0 = T)")
      ->capture_default_str();
  sub->add_option("--eta", c.eta, "DDIM noise: 0 deterministic, 1 like DDPM")
      ->capture_default_str();
  sub->add_option("--clip-x0", o->clip_x0,
                  "on: clamp the predicted x0 to the data range at every step, so nothing is "
                  "rejected; off: the original (default: off for a seed-preset model, else on)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--fill", o->fill,
                  "on: at every step, hold the cells the network never trained on (steps past "
                  "a patient's length, values of cells generated as not observed) at their "
                  "training fill, so its own guesses there do not feed back; off: the original "
                  "(default: off for a seed-preset model, else on)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--ema", o->ema,
                  "on: sample with the averaged (EMA) weights; off: the last weights (default: "
                  "on when the checkpoint has them)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--prepared", o->prepared,
                  "on: denoise through the network prepared once per batch (weights cast to "
                  "--precision, FiLM as tables, GroupNorm and FiLM in one op): faster, the same "
                  "function rounded differently; off: the training module, as the original "
                  "(default: off for a seed-preset model, else on)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--start", o->start,
                  "noise: start the chain from N(0, I) (the original); marginal: from x_T's "
                  "distribution given the training data's per-cell mean and variance, which the "
                  "original's schedule (28% of x0 left at T) needs; gaussian: as if x0 were "
                  "Gaussian over whole patients (the training data's mean and principal "
                  "directions), so what a patient keeps over its steps, as age, keeps its "
                  "spread (default: gaussian unless the model is seed-preset or predates it, "
                  "then marginal)")
      ->check(CLI::IsMember({"noise", "marginal", "gaussian"}));
  sub->add_option("--repeats", o->repeats,
                  "match: make each time-varying real's smallest changes between consecutive "
                  "observations exact repeats, as many as the training cohort repeats (charts "
                  "carry a weight or a score on unchanged); off: values as the network "
                  "generates them, as the original (default: match unless the model is "
                  "seed-preset or predates the counts)")
      ->check(CLI::IsMember({"match", "off"}));
  sub->add_option("--observations", o->observations,
                  "Where each patient is observed. sequence: draw its whole schedule from the "
                  "schedule model learned on the training cohort (a GRU over the stay's "
                  "measurements), then let the network generate the values there; chains: "
                  "draw it from the per-variable chains counted on the training cohort (the "
                  "chance of a measurement at each step given the steps since the last); "
                  "model: sequence where the checkpoint holds a schedule model, else chains; "
                  "network: the network places them too, as the original (default: model when "
                  "most of the training cohort's time-varying cells are missing, as in ICU "
                  "charts, unless the model is seed-preset; see 'healthgym info')")
      ->check(CLI::IsMember({"model", "sequence", "chains", "network"}));
  sub->add_option("--condition", c.conditions,
                  "COLUMN=VALUE: generate only patients with this label of a conditioning "
                  "variable (see 'healthgym info'); repeat to combine. Other conditioning "
                  "variables follow the training cohort's shares")
      ->take_all();
  sub->add_option("--guidance", c.guidance,
                  "Classifier-free guidance scale w: 1 = the conditional model as trained, > 1 "
                  "sharper subgroups (two network calls per step), 0 = unconditional")
      ->capture_default_str();
  sub->add_flag("--allow-copies", c.allow_copies,
                "Write the cohort even if some synthetic patients are exact copies of training "
                "patients (a warning names them); by default nothing is written then");
  sub->add_option("--shard", o->shard,
                  "K/N: write only part K (from 0) of N: its share of --n, ids numbered from "
                  "where it starts, a seed of its own; 'healthgym merge' joins the parts. "
                  "Under RANK/WORLD_SIZE the part is the rank's, written to OUT.part-K-of-N "
                  "(or OUT with {rank} replaced)");
  sub->add_option("--nproc", o->nproc,
                  "Sample in N local processes (each with its share of the cores), then merge "
                  "their parts into --out")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  add_threads_option(sub, &o->threads);

  return [o] {
    if (o->nproc > 1) {
      if (!o->shard.empty()) throw UsageError("--nproc and --shard cannot be combined");
      SampleConfig probe = o->cfg;
      probe.shard_count = o->nproc;
      probe.validate();
      check_writable(probe.out_path);
      const LaunchResult lr = launch_local(o->nproc);
      std::vector<std::string> parts;
      for (int k = 0; k < o->nproc; ++k) parts.push_back(shard_path(probe.out_path, k, o->nproc));
      const std::string id_column =
          load_checkpoint(probe.model_path).model.encoder.schema().id_column;
      const int64_t n = merge_csv_shards(parts, id_column, probe.out_path);
      for (const auto& p : parts) std::remove(p.c_str());
      std::cout << "merged " << o->nproc << " parts: " << n << " synthetic patients in "
                << probe.out_path << " (" << format_duration(lr.seconds) << ")\n";
      return;
    }
    apply_threads(o->threads);
    SampleConfig cfg = o->cfg;
    if (!o->shard.empty()) {
      std::tie(cfg.shard_index, cfg.shard_count) = parse_shard(o->shard);
    } else {
      const DistConfig dist = DistConfig::from_env([](const char* k) { return std::getenv(k); });
      if (dist.enabled()) {
        cfg.shard_index = dist.rank;
        cfg.shard_count = dist.world_size;
        cfg.out_path = shard_path(cfg.out_path, dist.rank, dist.world_size);
      }
    }
    cfg.guardrail = !o->no_guardrail;
    cfg.categorical =
        o->categorical == "sample" ? CategoricalDecode::kSample : CategoricalDecode::kArgmax;
    cfg.precision = precision_from_string(o->precision);
    if (!o->statics.empty()) {
      cfg.hold_static = o->statics != "free";
      cfg.static_chain = o->statics == "chain";
    }
    cfg.sampler = sampler_kind_from_string(o->sampler);
    if (!o->clip_x0.empty()) cfg.clip_x0 = o->clip_x0 == "on";
    if (!o->fill.empty()) cfg.fill = o->fill == "on";
    if (!o->ema.empty()) cfg.use_ema = o->ema == "on";
    if (!o->prepared.empty()) cfg.prepared = o->prepared == "on";
    if (!o->start.empty()) cfg.start = start_mode_from_string(o->start);
    if (!o->observations.empty())
      cfg.observations = observation_source_from_string(o->observations);
    if (!o->repeats.empty()) cfg.repeats = o->repeats == "match";
    const bool quiet = is_launched_secondary_rank();
    StatusLine status;
    const SampleResult r = sample_to_csv(cfg, [&](const SampleProgress& p) {
      if (quiet) return;
      char buf[160];
      std::snprintf(buf, sizeof buf, "accepted %lld/%lld (tried %lld)  denoising step %lld/%lld",
                    static_cast<long long>(p.accepted), static_cast<long long>(p.target),
                    static_cast<long long>(p.attempted), static_cast<long long>(p.step),
                    static_cast<long long>(p.steps));
      status.update(buf, false);
    });
    status.finish();
    if (is_launched_rank()) return;  // the launcher reports the merged cohort
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "wrote %lld synthetic patients to %s in %s; guardrail acceptance %.1f%% "
                  "(%lld of %lld generated)",
                  static_cast<long long>(r.accepted), cfg.out_path.c_str(),
                  format_duration(r.seconds).c_str(), 100.0 * r.acceptance_rate,
                  static_cast<long long>(r.passed), static_cast<long long>(r.attempted));
    std::cout << buf << "\n";
    if (r.observations == ObservationSource::kSequence)
      std::cout << "observations: placed on schedules drawn from the schedule model learned on "
                   "the training cohort (--observations network leaves it to the network)\n";
    if (r.observations == ObservationSource::kChains)
      std::cout << "observations: placed on schedules drawn from those counted on the training "
                   "cohort (--observations network leaves it to the network)\n";
    if (r.repeats_set >= 0)
      std::cout << "repeats: " << r.repeats_set
                << " values set equal to the one before, as often as the training cohort "
                   "repeats (--repeats off keeps the network's)\n";
    if (r.copies > 0)
      std::cerr << "WARNING: " << r.copies
                << " synthetic patients are exact copies of training patients; do not share "
                   "this cohort as de-identified\n";
    else if (!r.copies_checked)
      std::cerr << "note: this checkpoint holds no training fingerprints; copies of training "
                   "patients were not checked (run 'healthgym evaluate')\n";
    if (r.conditional) {
      std::snprintf(buf, sizeof buf,
                    "conditions: %.1f%% of patients came out with the labels they were generated "
                    "for (set on the rest); requested subgroup is %.1f%% of the training cohort",
                    100.0 * r.condition_match, 100.0 * r.subgroup_share_real);
      std::cout << buf << "\n";
    }
  };
}

}  // namespace healthgym::cli
