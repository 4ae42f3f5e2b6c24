#pragma once
// Reading a cohort file end to end: CSV -> schema (given or inferred) -> cohort.
#include <string>

#include "healthgym/cohort.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

struct LoadedData {
  Schema schema;
  Cohort cohort;
  std::string schema_source;  // "inferred" or the schema's path
};

// Every input error (CSV, schema, cells) is thrown before any training starts.
// With a schema, its id/time columns must match the ones given (when given).
LoadedData load_data(const std::string& data_path, const std::string& id_column,
                     const std::string& time_column, const std::string& schema_path,
                     const InferOptions& options = {});

// Reads data against a fixed schema (a checkpoint's): the columns must match.
Cohort load_data_with_schema(const std::string& data_path, const Schema& schema);

}  // namespace healthgym
