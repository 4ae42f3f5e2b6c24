// healthgym: learn from real longitudinal patient records, generate synthetic ones.
#include <csignal>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/checkpoint.hpp"
#include "healthgym/compat.hpp"
#include "launch.hpp"

int main(int argc, char** argv) {
  using namespace healthgym::cli;
  set_program_args(argc, argv);
  // Gloo writes to its sockets without MSG_NOSIGNAL: when a peer rank dies, the
  // default SIGPIPE would kill this rank silently (exit 141) instead of letting
  // it report the lost peer. Python ignores SIGPIPE at start-up, so PyTorch users
  // never see this; a failed write to a closed pipe becomes an error we report.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "healthgym: train a diffusion model (Health Gym v3) on a cohort of longitudinal patient "
      "records in long-format CSV, then sample synthetic patients in the same format.\n\n"
      "Typical use:\n"
      "  healthgym schema --data cohort.csv --id patient --time hour --out schema.json\n"
      "  healthgym train  --data cohort.csv --id patient --time hour --out model.hg\n"
      "  healthgym sample --model model.hg --n 1000 --out synthetic.csv\n"
      "  healthgym evaluate --real cohort.csv --synthetic synthetic.csv --id patient --time hour "
      "--out report/\n"
      "  healthgym info   model.hg\n\n"
      "Exit codes: 0 ok, 2 usage, 3 bad input, 4 file I/O, 5 runtime failure, 1 other.",
      "healthgym"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("healthgym ") + healthgym::kHealthgymVersion +
                                        " (LibTorch " + healthgym::compat::torch_version() + ")");
  std::map<CLI::App*, Action> actions;
  for (auto reg : {register_schema, register_train, register_sample, register_evaluate,
                   register_info, register_bench, register_merge}) {
    Action a = reg(app);
    actions[app.get_subcommands({}).back()] = a;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "healthgym: error: " << e.what() << "\n"
              << "Run 'healthgym --help' or 'healthgym <command> --help'.\n";
    return 2;
  }
  for (auto* sub : app.get_subcommands())
    if (auto it = actions.find(sub); it != actions.end()) return run_guarded(it->second);
  return 2;
}
