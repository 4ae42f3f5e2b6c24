// Tests for CSV parsing/quoting, located() messages and atomic file output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "healthgym/atomic_file.hpp"
#include "healthgym/csv.hpp"
#include "healthgym/error.hpp"
#include "test_util.hpp"

namespace hg = healthgym;
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

// A fresh directory per test (pid + test name), removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("healthgym_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
             std::to_string(static_cast<long>(::getpid())));
    healthgym::testing::remove_tree(path_.string());
    healthgym::make_directories(path_.string());
  }
  ~TempDir() { healthgym::testing::remove_tree(path_.string()); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }
  std::vector<std::string> entries() const {
    return healthgym::testing::list_directory(path_.string());
  }

 private:
  fs::path path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The message of the InputError that parsing text throws ("" if none is thrown).
std::string parse_error(const std::string& text) {
  try {
    hg::parse_csv(text, "in.csv");
  } catch (const hg::InputError& e) {
    EXPECT_EQ(e.exit_code(), 3);
    return e.what();
  }
  ADD_FAILURE() << "no InputError for: " << text;
  return "";
}

}  // namespace

// ---- located() --------------------------------------------------------------------------------

TEST(Csv, LocatedFormat) {
  EXPECT_EQ(hg::located("a.csv", 3, 2, "bad number", "x1"), "a.csv:3:2: bad number (value 'x1')");
  EXPECT_EQ(hg::located("a.csv", 3, 0, "bad", "v"), "a.csv:3: bad (value 'v')");
  EXPECT_EQ(hg::located("a.csv", 0, 5, "bad", "v"), "a.csv: bad (value 'v')");
  EXPECT_EQ(hg::located("a.csv", 1, 1, "missing", ""), "a.csv:1:1: missing (empty value)");
}

TEST(Csv, LocatedEscapesAndTruncates) {
  EXPECT_EQ(hg::located("f", 1, 1, "m", std::string("a\tb\x01\xff", 5)),
            "f:1:1: m (value 'a\\x09b\\x01\\xFF')");
  EXPECT_EQ(hg::located("f", 1, 1, "m", "caf\xC3\xA9"), "f:1:1: m (value 'caf\xC3\xA9')");
  const std::string long_value(70, 'z');
  EXPECT_EQ(hg::located("f", 1, 1, "m", long_value),
            "f:1:1: m (value '" + std::string(60, 'z') + "...')");
  EXPECT_EQ(hg::located("f", 1, 1, "m", std::string(60, 'z')),
            "f:1:1: m (value '" + std::string(60, 'z') + "')");
}

// ---- parsing ----------------------------------------------------------------------------------

TEST(Csv, ParsesUnquotedAndQuoted) {
  const auto t =
      hg::parse_csv("id,name,note\n1,alice,\"hi, there\"\n2,\"bob \"\"b\"\"\",\n", "x.csv");
  EXPECT_EQ(t.path, "x.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"id", "name", "note"}));
  EXPECT_FALSE(t.header_quoted);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "alice", "hi, there"}));
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"2", "bob \"b\"", ""}));
  EXPECT_EQ(t.quoted[0], (std::vector<char>{0, 0, 1}));
  EXPECT_EQ(t.quoted[1], (std::vector<char>{0, 1, 0}));
  EXPECT_EQ(t.line_of_row, (std::vector<long>{2, 3}));
  EXPECT_EQ(t.column_of("name"), 1);
  EXPECT_EQ(t.column_of("absent"), -1);
}

TEST(Csv, QuotedHeaderIsRecorded) {
  const auto t = hg::parse_csv("\"a\",b\n1,2", "x.csv");
  EXPECT_TRUE(t.header_quoted);
  EXPECT_EQ(t.header, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "2"}));  // no trailing newline
}

TEST(Csv, CrlfLineEndings) {
  const auto t = hg::parse_csv("a,b\r\n1,\"x\"\r\n3,4\r\n", "x.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "x"}));
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(t.line_of_row, (std::vector<long>{2, 3}));
}

TEST(Csv, EmbeddedNewlineAndLineOfRow) {
  const auto t = hg::parse_csv("a,b\n1,\"two\nlines\"\n2,\"three\r\nmore\nlines\"\n3,z\n", "x.csv");
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][1], "two\nlines");
  EXPECT_EQ(t.rows[1][1], "three\r\nmore\nlines");
  EXPECT_EQ(t.line_of_row, (std::vector<long>{2, 4, 7}));
}

TEST(Csv, SkipsBom) {
  const auto t = hg::parse_csv("\xEF\xBB\xBFid,v\n1,2\n", "x.csv");
  EXPECT_EQ(t.header[0], "id");
  EXPECT_EQ(t.column_of("id"), 0);
}

TEST(Csv, SkipsBlankLines) {
  const auto t = hg::parse_csv("a,b\n1,2\n\n\r\n3,4\n\n\n", "x.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(t.line_of_row, (std::vector<long>{2, 5}));
}

TEST(Csv, TrailingCommaIsEmptyLastField) {
  const auto t = hg::parse_csv("a,b\n1,\n", "x.csv");
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", ""}));
}

TEST(Csv, AcceptsValidUtf8) {
  const auto t = hg::parse_csv("name,v\ncaf\xC3\xA9,\xF0\x9F\x98\x80\n", "x.csv");
  EXPECT_EQ(t.rows[0][0], "caf\xC3\xA9");
  EXPECT_EQ(t.rows[0][1], "\xF0\x9F\x98\x80");
}

// ---- errors -----------------------------------------------------------------------------------

TEST(Csv, ErrorEmptyFile) {
  EXPECT_EQ(parse_error(""), "in.csv: file is empty");
  EXPECT_EQ(parse_error("\xEF\xBB\xBF"), "in.csv: file is empty");
  EXPECT_EQ(parse_error("\n\r\n"), "in.csv: file is empty");
}

TEST(Csv, ErrorHeaderOnly) {
  EXPECT_EQ(parse_error("a,b\n"), "in.csv:1: header only, no data rows");
  EXPECT_EQ(parse_error("a,b\n\n\n"), "in.csv:1: header only, no data rows");
}

TEST(Csv, ErrorEmptyHeaderName) {
  EXPECT_EQ(parse_error("a,,c\n1,2,3\n"), "in.csv:1:2: empty header name (empty value)");
}

TEST(Csv, ErrorDuplicateHeaderName) {
  EXPECT_EQ(parse_error("a,b,a\n1,2,3\n"),
            "in.csv:1:3: duplicate header name, same as column 1 (value 'a')");
}

TEST(Csv, ErrorRaggedRows) {
  EXPECT_EQ(parse_error("a,b\n1,2\n3,4,5,6\n"),
            "in.csv:3:3: row has 4 fields, header has 2 (value '5')");
  EXPECT_EQ(parse_error("a,b,c\n1,2,3\n\n4,5\n"),
            "in.csv:4:2: row has 2 fields, header has 3 (value '5')");
}

TEST(Csv, ErrorQuoteInsideUnquotedField) {
  EXPECT_EQ(parse_error("a,b\n1,ab\"c\n"),
            "in.csv:2:2: bad quoting: quote inside unquoted field (value 'ab\"c')");
}

TEST(Csv, ErrorTextAfterClosingQuote) {
  EXPECT_EQ(parse_error("a,b\n1,2\n\"x\"y,2\n"),
            "in.csv:3:1: bad quoting: text after closing quote (value '\"x\"y')");
}

TEST(Csv, ErrorUnterminatedQuote) {
  const std::string msg = parse_error("a,b\n1,2\n3,\"open\nstill open\n");
  EXPECT_THAT(msg, StartsWith("in.csv:3:2: bad quoting: unterminated quote"));
  EXPECT_THAT(msg, HasSubstr("'\"open')"));
}

TEST(Csv, ErrorInvalidUtf8) {
  // Stray continuation byte.
  EXPECT_EQ(parse_error("a,b\n1,x\x80y\n"), "in.csv:2:2: not valid UTF-8 (value 'x\\x80y')");
  // Overlong encoding of '/'.
  EXPECT_EQ(parse_error("a,b\n\xC0\xAF,1\n"), "in.csv:2:1: not valid UTF-8 (value '\\xC0\\xAF')");
  // UTF-16 surrogate U+D800 encoded in UTF-8.
  EXPECT_THAT(parse_error("a,b\n1,\xED\xA0\x80\n"), StartsWith("in.csv:2:2: not valid UTF-8"));
  // Truncated sequence at the end of a field and at the end of the file.
  // (The UTF-8 error wins over the ragged row because it is found first.)
  EXPECT_EQ(parse_error("a,b\n1,\xC3,\n"), "in.csv:2:2: not valid UTF-8 (value '\\xC3')");
  EXPECT_EQ(parse_error("a,b\n1,\xE2\x82"), "in.csv:2:2: not valid UTF-8 (value '\\xE2\\x82')");
  // Inside a quoted field spanning lines: reported at the field's first line.
  EXPECT_EQ(parse_error("a,b\n1,\"x\ny\xFF\"\n"),
            "in.csv:2:2: not valid UTF-8 (value 'x\\x0Ay\\xFF')");
  // In the header.
  EXPECT_EQ(parse_error("a,\xF5\x80\x80\x80\n1,2\n"),
            "in.csv:1:2: not valid UTF-8 (value '\\xF5\\x80\\x80\\x80')");
}

TEST(Csv, ReadCsvFromFile) {
  TempDir dir;
  const std::string path = dir.file("t.csv");
  {
    std::ofstream out(path, std::ios::binary);
    out << "a,b\n1,2\n";
  }
  const auto t = hg::read_csv(path);
  EXPECT_EQ(t.path, path);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "2"}));
}

TEST(Csv, ReadCsvMissingFile) {
  TempDir dir;
  const std::string path = dir.file("missing.csv");
  try {
    hg::read_csv(path);
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot open " + path + ": No such file or directory");
    EXPECT_EQ(e.exit_code(), 4);
  }
}

TEST(Csv, ReadCsvDirectory) {
  TempDir dir;
  try {
    hg::read_csv(dir.path().string());
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot open " + dir.path().string() + ": Is a directory");
  }
}

TEST(Csv, ErrorMessagesUseTheFilePath) {
  TempDir dir;
  const std::string path = dir.file("bad.csv");
  {
    std::ofstream out(path, std::ios::binary);
    out << "a,b\n1\n";
  }
  try {
    hg::read_csv(path);
    FAIL() << "expected InputError";
  } catch (const hg::InputError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":2:1: row has 1 fields, header has 2 (value '1')");
  }
}

TEST(Csv, CsvFieldQuoting) {
  EXPECT_EQ(hg::csv_field("plain"), "plain");
  EXPECT_EQ(hg::csv_field(""), "");
  EXPECT_EQ(hg::csv_field("", true), "\"\"");
  EXPECT_EQ(hg::csv_field("plain", true), "\"plain\"");
  EXPECT_EQ(hg::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(hg::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(hg::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(hg::csv_field("cr\r"), "\"cr\r\"");
}

TEST(Csv, RoundTrip) {
  const std::vector<std::string> header = {"id", "text, with comma", "q\"uote"};
  const std::vector<std::vector<std::string>> rows = {
      {"1", "plain", ""},
      {"2", "multi\nline", "\"quoted\""},
      {"3", "crlf\r\ninside", "caf\xC3\xA9, ok"},
  };
  std::string text;
  const auto append_row = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) text += ',';
      text += hg::csv_field(cells[c]);
    }
    text += "\r\n";
  };
  append_row(header);
  for (const auto& r : rows) append_row(r);

  const auto t = hg::parse_csv(text, "rt.csv");
  EXPECT_EQ(t.header, header);
  EXPECT_EQ(t.rows, rows);
  EXPECT_EQ(t.line_of_row, (std::vector<long>{2, 3, 5}));
}

// ---- atomic files -----------------------------------------------------------------------------

TEST(AtomicFile, MakeDirectoriesCreatesParentsAndNamesWhatBlocksIt) {
  TempDir dir;
  const std::string deep = dir.file("a/b/c");
  hg::make_directories(deep);
  EXPECT_TRUE(fs::is_directory(deep));
  hg::make_directories(deep + "/");  // already there: nothing to do
  hg::write_text_atomically(dir.file("a/f"), "x");
  try {
    hg::make_directories(dir.file("a/f/g"));
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot create directory " + dir.file("a/f/g") + ": " +
                                         dir.file("a/f") + " is not a directory");
  }
  EXPECT_THROW(hg::make_directories(""), hg::IoError);
}

TEST(AtomicFile, WritesText) {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  hg::write_text_atomically(path, std::string("hello\r\nworld\0!", 14));
  EXPECT_EQ(slurp(path), std::string("hello\r\nworld\0!", 14));
  hg::write_text_atomically(path, "replaced");
  EXPECT_EQ(slurp(path), "replaced");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"out.txt"}));
}

TEST(AtomicFile, CallbackGetsTemporaryBesideDestination) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  std::string seen;
  hg::write_atomically(path, [&](const std::string& tmp) {
    seen = tmp;
    std::ofstream(tmp, std::ios::binary) << "data";
  });
  EXPECT_THAT(seen, StartsWith(path + ".tmp."));
  EXPECT_EQ(slurp(path), "data");
  EXPECT_FALSE(fs::exists(seen));
}

TEST(AtomicFile, ThrowingCallbackLeavesDestinationUntouched) {
  TempDir dir;
  const std::string path = dir.file("keep.csv");
  hg::write_text_atomically(path, "original");
  EXPECT_THROW(hg::write_atomically(path,
                                    [](const std::string& tmp) {
                                      std::ofstream(tmp, std::ios::binary) << "partial";
                                      throw hg::RuntimeError("boom");
                                    }),
               hg::RuntimeError);
  EXPECT_EQ(slurp(path), "original");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"keep.csv"}));
}

TEST(AtomicFile, MissingDirectoryFails) {
  TempDir dir;
  const std::string missing = dir.file("nope");
  const std::string path = missing + "/out.csv";
  try {
    hg::write_text_atomically(path, "x");
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_THAT(std::string(e.what()), StartsWith("cannot write " + path + ": "));
  }
  EXPECT_FALSE(fs::exists(missing));
}

TEST(AtomicFile, CheckWritableMissingDirectory) {
  TempDir dir;
  const std::string missing = dir.file("nope");
  const std::string path = missing + "/out.csv";
  try {
    hg::check_writable(path);
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot write " + path + ": directory " + missing + " does not exist");
  }
}

TEST(AtomicFile, CheckWritableAcceptsDirectoryAndRejectsDirectoryTarget) {
  TempDir dir;
  EXPECT_NO_THROW(hg::check_writable(dir.file("fine.csv")));
  try {
    hg::check_writable(dir.path().string());
    FAIL() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()), dir.path().string() + " is a directory");
  }
}

TEST(AtomicFile, CheckWritableReadOnlyDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write anywhere";
  TempDir dir;
  const fs::path ro = dir.path() / "ro";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string path = (ro / "out.csv").string();
  try {
    hg::check_writable(path);
    ADD_FAILURE() << "expected IoError";
  } catch (const hg::IoError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot write " + path + ": directory " + ro.string() + " is not writable");
  }
  fs::permissions(ro, fs::perms::owner_all);
}
