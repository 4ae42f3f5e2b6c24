#include "healthgym/schema.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "healthgym/atomic_file.hpp"
#include "healthgym/cohort.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

std::string to_string(VarType t) {
  switch (t) {
    case VarType::kReal:
      return "real";
    case VarType::kBinary:
      return "binary";
    case VarType::kCategorical:
      return "categorical";
  }
  return "?";
}

VarType var_type_from_string(const std::string& s) {
  if (s == "real") return VarType::kReal;
  if (s == "binary") return VarType::kBinary;
  if (s == "categorical") return VarType::kCategorical;
  throw InputError("unknown variable type '" + s + "' (expected real, binary or categorical)");
}

long Variable::label_index(const std::string& label) const {
  auto it = std::find(labels.begin(), labels.end(), label);
  return it == labels.end() ? -1 : static_cast<long>(it - labels.begin());
}

long Schema::variable_index(const std::string& name) const {
  for (size_t i = 0; i < variables.size(); ++i)
    if (variables[i].name == name) return static_cast<long>(i);
  return -1;
}

void Schema::compute_layout() {
  int c = 0;
  for (auto& v : variables) {
    v.value_offset = c;
    v.value_width = v.is_one_hot() ? static_cast<int>(v.labels.size()) : 1;
    c += v.value_width;
    v.observed_channel = v.has_missing ? c++ : -1;
    v.group_channel = -1;
  }
  // One channel per missing group, after every variable's own, in order of first member.
  std::vector<std::pair<std::string, int>> groups;
  for (auto& v : variables) {
    if (v.missing_group.empty() || !v.has_missing) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == v.missing_group; });
    if (it == groups.end()) {
      groups.emplace_back(v.missing_group, c);
      v.group_channel = c++;
    } else {
      v.group_channel = it->second;
    }
  }
  n_channels = c;
}

void Schema::validate() const {
  if (id_column.empty()) throw InputError("schema: id_column is empty");
  if (time_column.empty()) throw InputError("schema: time_column is empty");
  if (id_column == time_column) throw InputError("schema: id and time columns are the same");
  if (variables.empty()) throw InputError("schema: no variables besides id and time");
  std::set<std::string> seen;
  for (const auto& v : variables) {
    const std::string where = "schema: variable '" + v.name + "'";
    if (v.name.empty()) throw InputError("schema: a variable has an empty name");
    if (!seen.insert(v.name).second) throw InputError(where + " appears twice");
    if (v.name == id_column || v.name == time_column)
      throw InputError(where + " is also the id or time column");
    if (v.type == VarType::kBinary && v.labels.size() != 2)
      throw InputError(where + ": binary needs exactly 2 labels, has " +
                       std::to_string(v.labels.size()));
    if (v.type == VarType::kCategorical && v.labels.empty())
      throw InputError(where + ": categorical needs at least 1 label");
    if (v.type == VarType::kReal && !v.labels.empty())
      throw InputError(where + ": real variables take no labels");
    std::set<std::string> ls(v.labels.begin(), v.labels.end());
    if (ls.size() != v.labels.size()) throw InputError(where + ": repeated label");
    if (v.decimals < 0 || v.decimals > 17)
      throw InputError(where + ": decimals must be in 0..17, is " + std::to_string(v.decimals));
  }
  if (!columns.empty()) {
    if (std::find(columns.begin(), columns.end(), id_column) == columns.end())
      throw InputError("schema: columns do not include the id column '" + id_column + "'");
    if (std::find(columns.begin(), columns.end(), time_column) == columns.end())
      throw InputError("schema: columns do not include the time column '" + time_column + "'");
    if (columns.size() != variables.size() + 2)
      throw InputError("schema: 'columns' lists " + std::to_string(columns.size()) +
                       " names but there are " + std::to_string(variables.size()) +
                       " variables plus id and time");
    for (const auto& v : variables)
      if (std::find(columns.begin(), columns.end(), v.name) == columns.end())
        throw InputError("schema: variable '" + v.name + "' is not in 'columns'");
  }
}

json Schema::to_json() const {
  json vars = json::array();
  for (const auto& v : variables) {
    json jv;
    jv["name"] = v.name;
    jv["type"] = to_string(v.type);
    if (v.is_one_hot()) jv["labels"] = v.labels;
    jv["static"] = v.is_static;
    if (v.type == VarType::kReal) {
      jv["transform"] = to_string(v.transform);
      jv["decimals"] = v.decimals;
    }
    jv["has_missing"] = v.has_missing;
    if (n_channels > 0) {
      // Informational: where this variable lives in the design tensor.
      jv["channels"] = {{"value_offset", v.value_offset},
                        {"value_width", v.value_width},
                        {"observed_channel", v.observed_channel}};
      if (v.group_channel >= 0) jv["channels"]["group_channel"] = v.group_channel;
    }
    if (!v.missing_group.empty()) jv["missing_group"] = v.missing_group;
    vars.push_back(jv);
  }
  json j;
  j["format"] = "healthgym-schema";
  j["version"] = 1;
  j["id_column"] = id_column;
  j["time_column"] = time_column;
  j["columns"] = columns;
  j["time_decimals"] = time_decimals;
  j["csv_style"] = {{"header_quoted", header_quoted}, {"quoted_columns", quoted_columns}};
  j["variables"] = vars;
  if (n_channels > 0) j["n_channels"] = n_channels;
  return j;
}

namespace {

template <typename T>
T get_field(const json& j, const std::string& key, const std::string& where, const T& fallback,
            bool required) {
  if (!j.contains(key)) {
    if (required) throw InputError(where + ": missing key '" + key + "'");
    return fallback;
  }
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw InputError(where + ": key '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}

}  // namespace

Schema Schema::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source + ": schema must be a JSON object");
  Schema s;
  const int version = get_field<int>(j, "version", source, 1, false);
  if (version != 1)
    throw InputError(source + ": schema version " + std::to_string(version) +
                     " is not supported (this build reads version 1)");
  s.id_column = get_field<std::string>(j, "id_column", source, "", true);
  s.time_column = get_field<std::string>(j, "time_column", source, "", true);
  s.columns = get_field<std::vector<std::string>>(j, "columns", source, {}, false);
  s.time_decimals = get_field<int>(j, "time_decimals", source, 0, false);
  if (j.contains("csv_style")) {
    const json& st = j.at("csv_style");
    s.header_quoted = get_field<bool>(st, "header_quoted", source + ": csv_style", false, false);
    s.quoted_columns = get_field<std::vector<std::string>>(st, "quoted_columns",
                                                           source + ": csv_style", {}, false);
  }
  if (!j.contains("variables") || !j.at("variables").is_array())
    throw InputError(source + ": missing array 'variables'");
  size_t k = 0;
  for (const auto& jv : j.at("variables")) {
    const std::string where = source + ": variables[" + std::to_string(k++) + "]";
    if (!jv.is_object()) throw InputError(where + ": must be an object");
    Variable v;
    v.name = get_field<std::string>(jv, "name", where, "", true);
    const std::string w2 = source + ": variable '" + v.name + "'";
    try {
      v.type = var_type_from_string(get_field<std::string>(jv, "type", w2, "", true));
    } catch (const InputError& e) {
      throw InputError(w2 + ": " + e.what());
    }
    v.labels = get_field<std::vector<std::string>>(jv, "labels", w2, {}, false);
    v.is_static = get_field<bool>(jv, "static", w2, false, false);
    if (v.type == VarType::kReal) {
      try {
        v.transform = power_kind_from_string(
            get_field<std::string>(jv, "transform", w2, std::string("boxcox"), false));
      } catch (const InputError& e) {
        throw InputError(w2 + ": " + e.what());
      }
      v.decimals = get_field<int>(jv, "decimals", w2, 6, false);
    }
    v.has_missing = get_field<bool>(jv, "has_missing", w2, false, false);
    v.missing_group = get_field<std::string>(jv, "missing_group", w2, std::string(), false);
    s.variables.push_back(std::move(v));
  }
  if (s.columns.empty()) {
    s.columns = {s.id_column, s.time_column};
    for (const auto& v : s.variables) s.columns.push_back(v.name);
  }
  try {
    s.validate();
  } catch (const InputError& e) {
    throw InputError(source + ": " + std::string(e.what()).substr(std::string("schema: ").size()));
  }
  s.compute_layout();
  return s;
}

Schema Schema::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open schema " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

Schema Schema::parse(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann reports a byte offset; turn it into line and column.
    const size_t at = std::min(static_cast<size_t>(e.byte), text.size());
    long line = 1, col = 1;
    for (size_t i = 0; i + 1 < at; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string msg = e.what();
    const auto p = msg.find("parse error");
    throw InputError(
        path + ":" + std::to_string(line) + ":" + std::to_string(col) +
        ": schema is not valid JSON: " + (p == std::string::npos ? msg : msg.substr(p)));
  } catch (const json::exception& e) {
    // Valid syntax nlohmann cannot hold, such as a number beyond double's range.
    throw InputError(path + ": schema is not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

void Schema::save(const std::string& path) const {
  write_text_atomically(path, to_json().dump(2) + "\n");
}

namespace {

int count_decimals(const std::string& s) {
  // Digits after the point, ignoring exponents (1e-3 counts as 3).
  const auto e = s.find_first_of("eE");
  const std::string mant = s.substr(0, e);
  const auto dot = mant.find('.');
  int d = dot == std::string::npos ? 0 : static_cast<int>(mant.size() - dot - 1);
  if (e != std::string::npos) {
    const int exp = std::atoi(s.c_str() + e + 1);
    d = std::max(0, d - exp);
  }
  return std::min(d, 17);
}

}  // namespace

namespace {

// NaN and infinities as strtod spells them: numbers, but never valid data.
bool is_nonfinite_token(const std::string& cell) {
  std::string t;
  for (char ch : cell) t += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) t.erase(0, 1);
  return t == "nan" || t == "inf" || t == "infinity";
}

}  // namespace

Schema infer_schema(const CsvTable& table, const std::string& id_column,
                    const std::string& time_column, const InferOptions& options) {
  const long id_col = table.column_of(id_column);
  const long time_col = table.column_of(time_column);
  if (id_col < 0)
    throw InputError(table.path + ":1: no column named '" + id_column + "' (the --id column)");
  if (time_col < 0)
    throw InputError(table.path + ":1: no column named '" + time_column + "' (the --time column)");
  Schema s;
  s.id_column = id_column;
  s.time_column = time_column;
  s.columns = table.header;
  s.header_quoted = table.header_quoted;
  const size_t n_rows = table.rows.size();

  for (size_t r = 0; r < n_rows; ++r)
    s.time_decimals = std::max(s.time_decimals, count_decimals(table.rows[r][time_col]));

  for (size_t c = 0; c < table.header.size(); ++c) {
    if (static_cast<long>(c) == id_col || static_cast<long>(c) == time_col) continue;
    Variable v;
    v.name = table.header[c];
    bool all_numeric = true;
    size_t n_quoted = 0, n_present = 0;
    std::map<std::string, double> distinct;  // text -> numeric value (if numeric)
    std::vector<double> values;
    values.reserve(n_rows);
    int decimals = 0;
    long nonfinite_row = -1;  // first NaN/inf token in an otherwise numeric column
    for (size_t r = 0; r < n_rows; ++r) {
      const std::string& cell = table.rows[r][c];
      if (cell.empty()) {
        v.has_missing = true;
        continue;
      }
      ++n_present;
      if (table.quoted[r][c]) ++n_quoted;
      double x = 0;
      if (all_numeric && parse_double(cell, &x)) {
        values.push_back(x);
        decimals = std::max(decimals, count_decimals(cell));
      } else if (all_numeric && is_nonfinite_token(cell)) {
        if (nonfinite_row < 0) nonfinite_row = static_cast<long>(r);
        continue;
      } else {
        all_numeric = false;
      }
      if (distinct.size() <= 64) distinct.emplace(cell, x);
    }
    if (all_numeric && nonfinite_row >= 0)
      throw InputError(located(table.path, table.line_of_row[static_cast<size_t>(nonfinite_row)],
                               static_cast<long>(c + 1),
                               "non-finite value in numeric column '" + v.name +
                                   "'; leave the cell empty for a missing value",
                               table.rows[static_cast<size_t>(nonfinite_row)][c]));
    if (n_present == 0)
      throw InputError(table.path + ":1:" + std::to_string(c + 1) + ": column '" + v.name +
                       "' has no values at all; drop it or give a schema");
    if (n_quoted * 2 > n_present) s.quoted_columns.push_back(v.name);

    if (!all_numeric) {
      v.type = VarType::kCategorical;
      for (const auto& kv : distinct) v.labels.push_back(kv.first);
      if (distinct.size() > 64)
        throw InputError(table.path + ":1:" + std::to_string(c + 1) + ": column '" + v.name +
                         "' has text values with more than 64 distinct labels; a categorical "
                         "that wide is unlikely to be intended (give a schema)");
    } else {
      std::set<double> codes;
      bool integral_small = distinct.size() <= static_cast<size_t>(options.max_categorical_codes);
      for (const auto& kv : distinct) codes.insert(kv.second);
      if (integral_small && codes.size() == distinct.size()) {
        // Order labels by numeric value, keeping the text as written.
        std::vector<std::pair<double, std::string>> ordered;
        for (const auto& kv : distinct) ordered.emplace_back(kv.second, kv.first);
        std::sort(ordered.begin(), ordered.end());
        for (const auto& o : ordered) v.labels.push_back(o.second);
        const bool zero_one = codes.size() == 2 && *codes.begin() == 0.0 && *codes.rbegin() == 1.0;
        v.type = zero_one ? VarType::kBinary : VarType::kCategorical;
      } else {
        v.type = VarType::kReal;
        v.decimals = decimals;
        v.transform = choose_power_kind(values, options.shift);
      }
    }
    s.variables.push_back(std::move(v));
  }

  // Static: every patient's cells in this column are identical (missing included).
  std::vector<bool> is_static(s.variables.size(), true);
  size_t r = 0;
  while (r < n_rows) {
    size_t e = r + 1;
    while (e < n_rows && table.rows[e][id_col] == table.rows[r][id_col]) ++e;
    size_t vi = 0;
    for (size_t c = 0; c < table.header.size(); ++c) {
      if (static_cast<long>(c) == id_col || static_cast<long>(c) == time_col) continue;
      if (is_static[vi])
        for (size_t k = r + 1; k < e; ++k)
          if (table.rows[k][c] != table.rows[r][c]) {
            is_static[vi] = false;
            break;
          }
      ++vi;
    }
    r = e;
  }
  for (size_t i = 0; i < s.variables.size(); ++i) s.variables[i].is_static = is_static[i];
  s.validate();
  s.compute_layout();
  return s;
}

void check_columns(const Schema& schema, const CsvTable& table) {
  for (const auto& name : {schema.id_column, schema.time_column})
    if (table.column_of(name) < 0)
      throw InputError(table.path + ":1: no column named '" + name + "', which the schema needs");
  for (const auto& v : schema.variables)
    if (table.column_of(v.name) < 0)
      throw InputError(table.path + ":1: no column named '" + v.name + "', which the schema needs");
  for (size_t c = 0; c < table.header.size(); ++c) {
    const auto& h = table.header[c];
    if (h != schema.id_column && h != schema.time_column && schema.variable_index(h) < 0)
      throw InputError(table.path + ":1:" + std::to_string(c + 1) + ": column '" + h +
                       "' is not in the schema");
  }
}

}  // namespace healthgym
