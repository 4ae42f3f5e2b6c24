#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/sample.hpp"

namespace healthgym::cli {

Action register_merge(CLI::App& app) {
  struct Opts {
    std::vector<std::string> parts;
    std::string out;
    std::string id = "id";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "merge",
      "Join synthetic cohort parts written by 'sample --shard K/N' (or by ranks) into one CSV. "
      "Checks that the headers match and that no patient id is in two parts.");
  sub->add_option("parts", o->parts, "Part CSVs, in order")->required();
  sub->add_option("--out", o->out, "Merged CSV (written atomically)")->required();
  sub->add_option("--id", o->id, "Patient id column")->capture_default_str();
  return [o] {
    const int64_t n = merge_csv_shards(o->parts, o->id, o->out);
    std::cout << "merged " << o->parts.size() << " parts: " << n << " patients in " << o->out
              << "\n";
  };
}

}  // namespace healthgym::cli
