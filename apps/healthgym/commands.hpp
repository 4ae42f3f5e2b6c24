#pragma once
// Each subcommand registers its options and returns the action to run after parsing.
#include <CLI/CLI.hpp>
#include <functional>

namespace healthgym::cli {

using Action = std::function<void()>;
Action register_schema(CLI::App& app);
Action register_train(CLI::App& app);
Action register_sample(CLI::App& app);
Action register_info(CLI::App& app);
Action register_evaluate(CLI::App& app);
Action register_bench(CLI::App& app);
Action register_merge(CLI::App& app);

}  // namespace healthgym::cli
