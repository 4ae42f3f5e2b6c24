// Every input the fuzzers keep (seeds and what they found, tests/fuzz/corpus/)
// goes through the same entries as under libFuzzer: each is accepted or
// rejected with a healthgym::Error, never anything else.
#include <gtest/gtest.h>

#include <filesystem>

#include "fuzz/fuzz_entries.hpp"
#include "test_util.hpp"

namespace healthgym {
namespace {

namespace fs = std::filesystem;
using Entry = void (*)(const uint8_t*, size_t);

int run_corpus(const std::string& name, Entry entry) {
  const std::string dir = testing::source_path("tests/fuzz/corpus/" + name);
  int n = 0;
  for (const auto& f : testing::list_directory(dir)) {
    const std::string bytes = testing::read_file(dir + "/" + f);
    EXPECT_NO_THROW(entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) << f;
    ++n;
  }
  return n;
}

TEST(FuzzRegressions, CsvReader) { EXPECT_GT(run_corpus("csv", fuzz::csv_input), 5); }
TEST(FuzzRegressions, SchemaParser) { EXPECT_GT(run_corpus("schema", fuzz::schema_input), 2); }
TEST(FuzzRegressions, CheckpointLoader) {
  EXPECT_GT(run_corpus("checkpoint", fuzz::checkpoint_input), 2);
}

}  // namespace
}  // namespace healthgym
