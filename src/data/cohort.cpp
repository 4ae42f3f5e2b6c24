#include "healthgym/cohort.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "healthgym/error.hpp"

namespace healthgym {

int64_t Cohort::max_length() const {
  int64_t m = 0;
  for (auto l : length) m = std::max(m, l);
  return m;
}

uint64_t fnv1a(const char* data, size_t size, uint64_t h) {
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

Cohort subset_patients(const Cohort& co, const std::vector<int64_t>& which) {
  Cohort out;
  out.n_vars = co.n_vars;
  for (int64_t p : which) {
    const auto i = static_cast<size_t>(p);
    out.patient_ids.push_back(co.patient_ids.at(i));
    out.start.push_back(out.n_rows());
    out.length.push_back(co.length[i]);
    const int64_t r0 = co.start[i], r1 = r0 + co.length[i];
    out.times.insert(out.times.end(), co.times.begin() + r0, co.times.begin() + r1);
    out.cells.insert(out.cells.end(), co.cells.begin() + r0 * co.n_vars,
                     co.cells.begin() + r1 * co.n_vars);
  }
  return out;
}

std::vector<uint64_t> record_fingerprints(const Cohort& co, const Schema& schema) {
  std::vector<uint64_t> out;
  out.reserve(static_cast<size_t>(co.n_patients()));
  Cohort one;  // one patient at a time: quoted labels may hold newlines
  one.n_vars = co.n_vars;
  one.patient_ids = {std::string()};
  one.start = {0};
  for (int64_t p = 0; p < co.n_patients(); ++p) {
    const int64_t r0 = co.start[p], n = co.length[p];
    one.length = {n};
    one.times.assign(co.times.begin() + r0, co.times.begin() + r0 + n);
    one.cells.assign(co.cells.begin() + r0 * co.n_vars, co.cells.begin() + (r0 + n) * co.n_vars);
    const std::string text = format_cohort_csv(one, schema);
    const size_t body = text.find('\n') + 1;  // past the header
    out.push_back(fnv1a(text.data() + body, text.size() - body));
  }
  return out;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  // strtod accepts "nan", "inf", hex and leading spaces; data files must not.
  const char c0 = s[0];
  if (!(c0 == '-' || c0 == '+' || c0 == '.' || (c0 >= '0' && c0 <= '9'))) return false;
  for (char ch : s)
    if (ch == 'x' || ch == 'X' || ch == 'n' || ch == 'N' || ch == 'i' || ch == 'I') return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

namespace {

bool looks_non_finite(const std::string& s) {
  std::string t;
  for (char ch : s) t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) t = t.substr(1);
  return t == "nan" || t == "inf" || t == "infinity";
}

}  // namespace

Cohort load_cohort(const CsvTable& table, const Schema& schema) {
  check_columns(schema, table);
  const long id_col = table.column_of(schema.id_column);
  const long time_col = table.column_of(schema.time_column);
  const size_t n_vars = schema.variables.size();
  std::vector<long> var_col(n_vars);
  for (size_t i = 0; i < n_vars; ++i) var_col[i] = table.column_of(schema.variables[i].name);

  Cohort co;
  co.n_vars = static_cast<int64_t>(n_vars);
  const size_t n_rows = table.rows.size();
  co.times.resize(n_rows);
  co.cells.resize(n_rows * n_vars);
  std::unordered_map<std::string, long> first_line;  // id -> line of its first row

  auto fail = [&](size_t r, long col, const std::string& msg, const std::string& value) {
    throw InputError(located(table.path, table.line_of_row[r], col + 1, msg, value));
  };

  for (size_t r = 0; r < n_rows; ++r) {
    const auto& row = table.rows[r];
    const std::string& id = row[id_col];
    if (id.empty()) fail(r, id_col, "empty patient id in column '" + schema.id_column + "'", id);
    const bool new_patient = co.patient_ids.empty() || co.patient_ids.back() != id;
    if (new_patient) {
      auto [it, inserted] = first_line.emplace(id, table.line_of_row[r]);
      if (!inserted)
        fail(r, id_col,
             "rows of patient '" + id + "' are not contiguous (first seen at line " +
                 std::to_string(it->second) + "); sort the file by patient, then time",
             id);
      co.patient_ids.push_back(id);
      co.start.push_back(static_cast<int64_t>(r));
      co.length.push_back(0);
    }
    ++co.length.back();

    double t = 0;
    const std::string& ts = row[time_col];
    if (!parse_double(ts, &t))
      fail(r, time_col,
           ts.empty() ? "missing time in column '" + schema.time_column + "'"
                      : "time in column '" + schema.time_column + "' is not a finite number",
           ts);
    if (!new_patient) {
      const double prev = co.times[r - 1];
      if (t == prev)
        fail(r, time_col, "duplicate time for patient '" + id + "' (same as the row before)", ts);
      if (t < prev)
        fail(r, time_col,
             "time goes backwards for patient '" + id +
                 "' (previous row has a later time); "
                 "sort each patient's rows by time",
             ts);
    }
    co.times[r] = t;

    for (size_t i = 0; i < n_vars; ++i) {
      const Variable& v = schema.variables[i];
      const std::string& cell = row[var_col[i]];
      double value = kMissing;
      if (!cell.empty()) {
        if (v.type == VarType::kReal) {
          if (!parse_double(cell, &value))
            fail(r, var_col[i],
                 looks_non_finite(cell) ? "non-finite value in real column '" + v.name +
                                              "' (leave the cell empty "
                                              "for a missing value)"
                                        : "not a number in real column '" + v.name + "'",
                 cell);
        } else {
          const long k = v.label_index(cell);
          if (k < 0) {
            std::string known;
            for (size_t q = 0; q < v.labels.size() && q < 8; ++q)
              known += (q ? ", " : "") + v.labels[q];
            if (v.labels.size() > 8) known += ", ...";
            fail(r, var_col[i], "unknown label in column '" + v.name + "' (known: " + known + ")",
                 cell);
          }
          value = static_cast<double>(k);
        }
      }
      co.cells[r * n_vars + i] = value;
      if (v.is_static && !new_patient) {
        const double prev = co.cells[(r - 1) * n_vars + i];
        const bool same = (is_missing(prev) && is_missing(value)) || prev == value;
        if (!same)
          fail(r, var_col[i],
               "static variable '" + v.name + "' changes within patient '" + id +
                   "' (mark it \"static\": false in the schema if it may change)",
               cell);
      }
    }
  }
  return co;
}

namespace {

std::string format_number(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  std::string s(buf);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

}  // namespace

std::string format_cohort_csv(const Cohort& co, const Schema& schema) {
  const auto quoted = [&](const std::string& col) {
    return std::find(schema.quoted_columns.begin(), schema.quoted_columns.end(), col) !=
           schema.quoted_columns.end();
  };
  std::vector<long> var_of_col(schema.columns.size(), -1);
  std::vector<bool> quote_col(schema.columns.size());
  for (size_t c = 0; c < schema.columns.size(); ++c) {
    var_of_col[c] = schema.variable_index(schema.columns[c]);
    quote_col[c] = quoted(schema.columns[c]);
  }
  std::string out;
  out.reserve(static_cast<size_t>(co.n_rows()) * (schema.columns.size() * 8 + 1) + 256);
  for (size_t c = 0; c < schema.columns.size(); ++c) {
    if (c) out += ',';
    out += csv_field(schema.columns[c], schema.header_quoted);
  }
  out += '\n';
  for (int64_t p = 0; p < co.n_patients(); ++p) {
    for (int64_t k = 0; k < co.length[p]; ++k) {
      const int64_t r = co.start[p] + k;
      for (size_t c = 0; c < schema.columns.size(); ++c) {
        if (c) out += ',';
        const std::string& col = schema.columns[c];
        if (col == schema.id_column) {
          out += csv_field(co.patient_ids[p], quote_col[c]);
        } else if (col == schema.time_column) {
          out += format_number(co.times[r], schema.time_decimals);
        } else {
          const Variable& v = schema.variables[var_of_col[c]];
          const double x = co.cell(r, var_of_col[c]);
          if (is_missing(x)) continue;
          if (v.type == VarType::kReal)
            out += format_number(x, v.decimals);
          else
            out += csv_field(v.labels[static_cast<size_t>(x)], quote_col[c]);
        }
      }
      out += '\n';
    }
  }
  return out;
}

}  // namespace healthgym
