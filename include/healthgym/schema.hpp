#pragma once
// The schema: what each CSV column is and how it is encoded. Users may infer
// one (`healthgym schema`), read and edit it, and pass it to `train`.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "healthgym/csv.hpp"
#include "healthgym/power_transform.hpp"

namespace healthgym {

enum class VarType { kReal, kBinary, kCategorical };
std::string to_string(VarType t);
VarType var_type_from_string(const std::string& s);  // throws InputError

struct Variable {
  std::string name;
  VarType type = VarType::kReal;
  std::vector<std::string> labels;           // binary/categorical, in one-hot order
  bool is_static = false;                    // constant within every patient
  PowerKind transform = PowerKind::kBoxCox;  // reals only
  int decimals = 0;                          // reals: digits after the point written on output
  bool has_missing = false;                  // set from the training data: adds an observed channel
  // Variables measured together (a blood-pressure line, a blood-gas draw) share a
  // group observed channel, so their co-observation is one event to learn; each
  // member's own observed channel then says whether it was measured when its
  // group was. Set from the training data (Encoder::fit); empty: no group.
  std::string missing_group;

  // Channel layout in the design tensor, computed by Schema::compute_layout().
  int value_offset = -1;
  int value_width = 0;        // 1 for reals, labels.size() for one-hot blocks
  int observed_channel = -1;  // -1 when the variable never misses in training
  int group_channel = -1;     // the missing group's shared channel, -1 without a group

  bool is_one_hot() const { return type != VarType::kReal; }
  long label_index(const std::string& label) const;  // -1 if unknown
};

struct Schema {
  std::string id_column;
  std::string time_column;
  std::vector<std::string> columns;  // the CSV's column order, id and time included
  std::vector<Variable> variables;   // every column but id and time, in CSV order
  // Output style, so synthetic CSVs look like the input.
  bool header_quoted = false;
  std::vector<std::string> quoted_columns;  // columns whose text values were quoted
  int time_decimals = 0;

  int n_channels = 0;  // after compute_layout()

  void compute_layout();
  // Checks internal consistency; throws InputError naming the variable.
  void validate() const;
  long variable_index(const std::string& name) const;  // -1 if absent

  nlohmann::json to_json() const;
  // `source` names the file for error messages.
  static Schema from_json(const nlohmann::json& j, const std::string& source);
  static Schema load(const std::string& path);  // InputError/IoError
  // A schema file's text; `source` names it in errors (InputError).
  static Schema parse(const std::string& text, const std::string& source);
  void save(const std::string& path) const;  // atomic
};

struct InferOptions {
  int max_categorical_codes = 5;  // numeric columns with at most this many distinct values
  double shift = 1e-3;            // Box-Cox shift; values <= -shift get Yeo-Johnson
};

// Infers types, labels, static flags, transforms, decimals and missingness.
// Throws InputError if id or time columns are missing.
Schema infer_schema(const CsvTable& table, const std::string& id_column,
                    const std::string& time_column, const InferOptions& options = {});

// Checks that a table has the columns a schema expects (names and, for a
// checkpoint's schema, the same set); throws InputError naming the column.
void check_columns(const Schema& schema, const CsvTable& table);

}  // namespace healthgym
