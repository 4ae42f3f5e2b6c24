#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/checkpoint.hpp"

namespace healthgym::cli {

Action register_info(CLI::App& app) {
  struct Opts {
    std::string model;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("info", "Describe a trained model checkpoint.");
  sub->add_option("model", o->model, "Checkpoint written by 'train'")->required();
  sub->add_flag("--json", o->json,
                "Print the checkpoint's metadata as JSON (the observation model as its size)");
  return [o] {
    CheckpointContents c = load_checkpoint(o->model);
    const auto& meta = c.meta;
    if (o->json) {
      nlohmann::json m = meta;
      m.erase("log");
      // The observation model's tables run to tens of thousands of numbers: its shape only.
      if (m.contains("observations"))
        m["observations"] = {{"units", c.model.observations.units().size()},
                             {"max_gap", c.model.observations.max_gap()},
                             {"length", c.model.observations.length()},
                             {"observed_share", c.model.observations.observed_share()},
                             {"hour_gate", c.model.observations.has_hour()}};
      std::cout << m.dump(2) << "\n";
      return;
    }
    const auto& tc = meta.at("train_config");
    const Schema& s = c.model.encoder.schema();
    std::cout << "checkpoint      " << o->model << "\n"
              << "format          version " << meta.value("format_version", 0) << ", healthgym "
              << meta.value("healthgym_version", std::string("?")) << ", LibTorch "
              << meta.value("torch_version", std::string("?")) << "\n"
              << "trained         " << c.epoch << " of " << tc.at("epochs") << " epochs, preset "
              << tc.value("preset", std::string("?")) << ", precision "
              << tc.value("precision", std::string("?")) << ", seed " << tc.at("seed") << "\n"
              << "data            " << tc.value("data_path", std::string("?")) << " (id "
              << s.id_column << ", time " << s.time_column << ")\n"
              << "network         U-Net hidden " << c.model.unet_config.hidden << ", levels "
              << c.model.unet_config.levels << ", " << count_parameters(*c.model.net)
              << " parameters\n"
              << "diffusion       T " << c.model.diffusion.n_steps << ", beta "
              << c.model.diffusion.beta_min << ".." << c.model.diffusion.beta_max
              << ", recon weight " << c.model.diffusion.recon_weight << "\n"
              << "design tensor   " << s.n_channels << " channels x "
              << c.model.encoder.working_length() << " steps\n";
    if (!c.model.conditions.empty()) {
      std::cout << "conditions      ";
      for (const auto& n : c.model.conditions.names()) std::cout << n << ' ';
      std::cout << "(sample --condition COLUMN=VALUE)"
                << (c.model.conditions.has_lengths() ? "; lengths drawn per label combination" : "")
                << "\n";
    }
    const bool sequence = !c.model.schedules.empty();
    const bool by_default =
        c.model.observations.sparse() && tc.value("preset", std::string()) != "seed";
    if (!c.model.observations.empty()) {
      char share[32];
      std::snprintf(share, sizeof share, "%.1f%%", 100.0 * c.model.observations.observed_share());
      std::cout << "observations    " << c.model.observations.units().size()
                << " schedules counted on the training cohort, " << share
                << " of their cells observed"
                << (c.model.observations.has_hour() ? ", an hour gate" : "")
                << (by_default && !sequence ? "; sample draws from them by default"
                                            : "; sample --observations chains draws from them")
                << "\n";
    }
    if (sequence) {
      char nll[64] = "";
      if (std::isfinite(c.model.schedules.validation_nll()))
        std::snprintf(nll, sizeof nll, ", held-out NLL %.4f per cell",
                      c.model.schedules.validation_nll());
      std::cout << "schedule model  GRU over " << c.model.schedules.units() << " units"
                << (c.model.schedules.label_sizes().empty() ? "" : " given the labels") << ", "
                << c.model.schedules.epochs() << " epochs" << nll
                << (by_default ? "; sample draws schedules from it by default"
                               : "; sample --observations sequence draws from it")
                << "\n";
    }
    if (!c.model.repeats.empty()) {
      int with = 0;
      double most = 0;
      for (size_t i = 0; i < s.variables.size(); ++i) {
        const double r = c.model.repeats.share(i);
        if (!(r > 0)) continue;
        ++with;
        most = std::max(most, r);
      }
      char line[160];
      std::snprintf(line, sizeof line,
                    "%d time-varying reals repeat their previous value (up to %.1f%% of "
                    "consecutive pairs); ",
                    with, 100.0 * most);
      std::cout << "repeats         " << line
                << (tc.value("preset", "") != "seed" ? "sample restores them by default"
                                                     : "sample --repeats match restores them")
                << "\n";
    }
    if (c.model.start.basis.defined())
      std::cout << "start           a Gaussian over whole patients, " << c.model.start.basis.size(0)
                << " principal directions; "
                << (tc.value("preset", "") != "seed" ? "sample starts from it by default"
                                                     : "sample --start gaussian starts from it")
                << "\n";
    std::string log = meta.value("log", std::string());
    const auto last_nl = log.find_last_of('\n', log.size() >= 2 ? log.size() - 2 : 0);
    if (last_nl != std::string::npos && log.size() > last_nl + 1)
      std::cout << "last epoch      " << log.substr(last_nl + 1, log.size() - last_nl - 2)
                << "  (epoch,loss,diffusion,recon,seconds,skipped)\n";
    std::cout << "variables       " << s.variables.size() << "\n";
    const auto& reals = c.model.encoder.real_transforms();
    for (size_t i = 0; i < s.variables.size(); ++i) {
      const auto& v = s.variables[i];
      std::cout << "  " << std::left << std::setw(20) << v.name << std::setw(12)
                << to_string(v.type) << (v.is_static ? "static  " : "        ")
                << (v.has_missing ? "missing " : "        ");
      if (v.type == VarType::kReal)
        std::cout << to_string(reals[i].kind) << " lambda=" << reals[i].lambda;
      else {
        std::cout << "labels:";
        for (const auto& l : v.labels) std::cout << ' ' << l;
      }
      if (!v.missing_group.empty()) std::cout << "  measured with group " << v.missing_group;
      std::cout << "\n";
    }
  };
}

}  // namespace healthgym::cli
