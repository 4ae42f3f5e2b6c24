#pragma once
// A cohort: patients as ordered sequences of time steps, parsed and checked
// against a schema. Missing cells are NaN; one-hot variables hold label indices.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "healthgym/csv.hpp"
#include "healthgym/schema.hpp"

namespace healthgym {

struct Cohort {
  std::vector<std::string> patient_ids;
  std::vector<int64_t> start;   // first row of each patient in times/cells
  std::vector<int64_t> length;  // steps of each patient
  std::vector<double> times;    // per row
  std::vector<double> cells;    // per row, per variable (row-major); NaN = missing
  int64_t n_vars = 0;

  int64_t n_patients() const { return static_cast<int64_t>(patient_ids.size()); }
  int64_t n_rows() const { return static_cast<int64_t>(times.size()); }
  double cell(int64_t row, int64_t var) const { return cells[row * n_vars + var]; }
  int64_t max_length() const;
};

inline bool is_missing(double v) { return v != v; }
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// Parses every cell against the schema. Throws InputError naming file, line,
// column and value for: a non-numeric or non-finite value in a real or time
// column, an unknown label, an empty id, a repeated or decreasing time within a
// patient, rows of one patient that are not contiguous, a static variable that
// changes within a patient.
Cohort load_cohort(const CsvTable& table, const Schema& schema);

// The given patients (indices into cohort), in that order.
Cohort subset_patients(const Cohort& cohort, const std::vector<int64_t>& which);

// Writes a cohort as CSV in the schema's column order and output style.
std::string format_cohort_csv(const Cohort& cohort, const Schema& schema);

// 64-bit FNV-1a of bytes, continuing from h.
uint64_t fnv1a(const char* data, size_t size, uint64_t h = 0xcbf29ce484222325ULL);

// One 64-bit FNV-1a hash per patient of its rows as the CSV would write them,
// id left out: two patients with the same hash print the same record. Lets a
// checkpoint recognise copies of training patients without holding their data.
std::vector<uint64_t> record_fingerprints(const Cohort& cohort, const Schema& schema);

// Parses a number the way the CSV reader needs: the whole text, finite.
bool parse_double(const std::string& s, double* out);

}  // namespace healthgym
