#include "fuzz_entries.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "healthgym/checkpoint.hpp"
#include "healthgym/cohort.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/encoder.hpp"
#include "healthgym/error.hpp"
#include "healthgym/schema.hpp"

namespace healthgym::fuzz {

namespace {

std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace

void csv_input(const uint8_t* data, size_t size) {
  try {
    const CsvTable table = parse_csv(text_of(data, size), "fuzz.csv");
    if (table.header.size() < 2 || table.rows.size() > 2000) return;
    const Schema schema = infer_schema(table, table.header[0], table.header[1]);
    const Cohort cohort = load_cohort(table, schema);
    const int64_t len = std::min<int64_t>(auto_working_length(cohort.max_length(), 2), 256);
    const Encoder enc = Encoder::fit(schema, cohort, len, 1e-3, TimeMode::kAuto);
    const EncodedCohort x = enc.encode(cohort);
    // Whatever was accepted must encode to finite values in [-1, 1].
    if (!torch::isfinite(x.x).all().item<bool>() || x.x.abs().max().item<float>() > 1.0f + 1e-5f)
      throw std::logic_error("accepted CSV encodes outside [-1, 1]");
  } catch (const Error&) {
  }
}

void schema_input(const uint8_t* data, size_t size) {
  try {
    const Schema s = Schema::parse(text_of(data, size), "fuzz.json");
    const Schema again = Schema::from_json(s.to_json(), "round-trip");
    if (again.to_json() != s.to_json())
      throw std::logic_error("schema changes in a to_json/from_json round trip");
  } catch (const Error&) {
  }
}

void checkpoint_input(const uint8_t* data, size_t size) {
  try {
    if (size > 0 && data[0] == '{') {
      const auto meta = nlohmann::json::parse(text_of(data, size), nullptr, false);
      if (meta.is_discarded()) return;
      model_from_meta(meta, "fuzz.hg");
      return;
    }
    const std::string path = "/tmp/healthgym_fuzz_" + std::to_string(getpid()) + ".hg";
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
      load_checkpoint(path);
    } catch (...) {
      std::remove(path.c_str());
      throw;
    }
    std::remove(path.c_str());
  } catch (const Error&) {
  }
}

}  // namespace healthgym::fuzz
