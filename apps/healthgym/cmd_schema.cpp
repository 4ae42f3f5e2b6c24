#include <iostream>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "healthgym/atomic_file.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/schema.hpp"

namespace healthgym::cli {

Action register_schema(CLI::App& app) {
  struct Opts {
    std::string data, id, time, out;
    InferOptions infer;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "schema",
      "Infer a schema (variable types, labels, static flags, transforms) from a CSV, for you to "
      "read, edit and pass to 'train --schema'.");
  sub->add_option("--data", o->data, "Long-format CSV: one row per patient and time step")
      ->required();
  sub->add_option("--id", o->id, "Column naming the patient")->required();
  sub->add_option("--time", o->time, "Column giving the time step")->required();
  sub->add_option("--out", o->out, "Write the schema here (default: standard output)");
  sub->add_option("--max-codes", o->infer.max_categorical_codes,
                  "Numeric columns with at most this many distinct values are categorical")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--shift", o->infer.shift,
                  "Box-Cox shift eps; reals with values <= -eps get Yeo-Johnson")
      ->capture_default_str();
  return [o] {
    if (!o->out.empty()) check_writable(o->out);
    const CsvTable table = read_csv(o->data);
    Schema s = infer_schema(table, o->id, o->time, o->infer);
    if (o->out.empty()) {
      std::cout << s.to_json().dump(2) << "\n";
    } else {
      s.save(o->out);
      std::cerr << "wrote schema of " << s.variables.size() << " variables (" << s.n_channels
                << " channels) to " << o->out << "\n";
    }
  };
}

}  // namespace healthgym::cli
