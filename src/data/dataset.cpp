#include "healthgym/dataset.hpp"

#include "healthgym/csv.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

LoadedData load_data(const std::string& data_path, const std::string& id_column,
                     const std::string& time_column, const std::string& schema_path,
                     const InferOptions& options) {
  const CsvTable table = read_csv(data_path);
  LoadedData out;
  if (schema_path.empty()) {
    out.schema = infer_schema(table, id_column, time_column, options);
    out.schema_source = "inferred";
  } else {
    out.schema = Schema::load(schema_path);
    out.schema_source = schema_path;
    if (!id_column.empty() && id_column != out.schema.id_column)
      throw UsageError("--id '" + id_column + "' differs from the schema's id_column '" +
                       out.schema.id_column + "' (" + schema_path + ")");
    if (!time_column.empty() && time_column != out.schema.time_column)
      throw UsageError("--time '" + time_column + "' differs from the schema's time_column '" +
                       out.schema.time_column + "' (" + schema_path + ")");
    // Output follows the data file's own column order and style.
    out.schema.columns = table.header;
    out.schema.header_quoted = table.header_quoted;
  }
  out.cohort = load_cohort(table, out.schema);
  return out;
}

Cohort load_data_with_schema(const std::string& data_path, const Schema& schema) {
  const CsvTable table = read_csv(data_path);
  return load_cohort(table, schema);
}

}  // namespace healthgym
