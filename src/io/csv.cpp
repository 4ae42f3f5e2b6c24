#include "healthgym/csv.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "healthgym/error.hpp"
#include "utf8.hpp"

namespace healthgym {

namespace {

using detail::utf8_sequence_length;

constexpr std::size_t kNone = std::string::npos;
// Enough raw text for located() to show its 60 characters and the "..." marker.
constexpr std::size_t kMaxRawContext = 256;

// Offset of the first byte that does not start a valid UTF-8 sequence, or kNone. Validating the
// whole buffer up front keeps the per-field parse loop free of UTF-8 logic; the parser then only
// has to notice when a field spans this offset.
std::size_t first_invalid_utf8(const std::string& text, std::size_t start) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = start;
  while (i < n) {
    // Clinical CSVs are almost entirely ASCII: skip eight such bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const std::size_t len = utf8_sequence_length(s, i, n);
    if (len == 0) return i;
    i += len;
  }
  return kNone;
}

// A position-prefixed message with no offending value ("file:line: message").
std::string bare(const std::string& file, long line, const std::string& message) {
  std::string out = file;
  if (line > 0) out += ':' + std::to_string(line);
  return out + ": " + message;
}

// Raw source text of a field from begin up to the next delimiter, capped for messages.
std::string raw_context(const std::string& text, std::size_t begin) {
  std::size_t end = begin;
  const std::size_t limit = std::min(text.size(), begin + kMaxRawContext);
  while (end < limit && text[end] != ',' && text[end] != '\n' && text[end] != '\r') ++end;
  return text.substr(begin, end - begin);
}

// Lines inside a quoted chunk: "\r\n", "\n" and a lone "\r" each end one line, matching how
// record ends are counted.
long count_line_breaks(const char* begin, const char* end) {
  long lines = 0;
  for (const char* p = begin; p < end; ++p) {
    if (*p == '\n') {
      ++lines;
    } else if (*p == '\r' && (p + 1 == end || p[1] != '\n')) {
      ++lines;
    }
  }
  return lines;
}

void check_header(const CsvTable& table, long header_line) {
  std::unordered_map<std::string, std::size_t> seen;
  seen.reserve(table.header.size() * 2);
  for (std::size_t c = 0; c < table.header.size(); ++c) {
    const std::string& name = table.header[c];
    const long col = static_cast<long>(c) + 1;
    if (name.empty()) {
      throw InputError(located(table.path, header_line, col, "empty header name", ""));
    }
    const auto inserted = seen.emplace(name, c);
    if (!inserted.second) {
      throw InputError(located(
          table.path, header_line, col,
          "duplicate header name, same as column " + std::to_string(inserted.first->second + 1),
          name));
    }
  }
}

}  // namespace

long CsvTable::column_of(const std::string& name) const {
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (header[c] == name) return static_cast<long>(c);
  }
  return -1;
}

CsvTable parse_csv(const std::string& text, const std::string& path_for_errors) {
  CsvTable table;
  table.path = path_for_errors;
  const std::string& path = table.path;
  const char* s = text.data();
  const std::size_t n = text.size();

  std::size_t i = 0;
  if (n >= 3 && std::memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
  const std::size_t bad_utf8 = first_invalid_utf8(text, i);

  // One row per line is the common case, so this reserve avoids regrowing the row vectors.
  const std::size_t line_estimate = static_cast<std::size_t>(std::count(s + i, s + n, '\n')) + 1;
  table.rows.reserve(line_estimate);
  table.line_of_row.reserve(line_estimate);
  table.quoted.reserve(line_estimate);

  long line = 1;
  long header_line = 0;
  bool have_header = false;
  std::size_t ncols = 0;

  while (i < n) {
    // Blank lines (including a bare "\r") are not rows.
    if (s[i] == '\n') {
      ++i;
      ++line;
      continue;
    }
    if (s[i] == '\r') {
      ++i;
      if (i < n && s[i] == '\n') ++i;
      ++line;
      continue;
    }

    const long row_line = line;
    std::vector<std::string> cells;
    std::vector<char> cell_quoted;
    cells.reserve(have_header ? ncols : 16);
    cell_quoted.reserve(have_header ? ncols : 16);

    for (;;) {
      const long col = static_cast<long>(cells.size()) + 1;
      const long field_line = line;
      const std::size_t field_begin = i;
      std::string value;
      bool was_quoted = false;

      if (i < n && s[i] == '"') {
        was_quoted = true;
        ++i;
        for (;;) {
          const void* hit = std::memchr(s + i, '"', n - i);
          if (hit == nullptr) {
            throw InputError(located(path, field_line, col, "bad quoting: unterminated quote",
                                     raw_context(text, field_begin)));
          }
          const std::size_t q = static_cast<std::size_t>(static_cast<const char*>(hit) - s);
          line += count_line_breaks(s + i, s + q);
          value.append(s + i, q - i);
          i = q + 1;
          if (i < n && s[i] == '"') {  // "" is an escaped quote
            value.push_back('"');
            ++i;
            continue;
          }
          break;
        }
        if (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
          throw InputError(located(path, field_line, col, "bad quoting: text after closing quote",
                                   raw_context(text, field_begin)));
        }
      } else {
        std::size_t j = i;
        while (j < n) {
          const char c = s[j];
          if (c == ',' || c == '\n' || c == '\r' || c == '"') break;
          ++j;
        }
        if (j < n && s[j] == '"') {
          throw InputError(located(path, field_line, col,
                                   "bad quoting: quote inside unquoted field",
                                   raw_context(text, field_begin)));
        }
        value.assign(s + i, j - i);
        i = j;
      }

      // Delimiters are ASCII, so the first invalid byte always lies inside some field.
      if (bad_utf8 != kNone && i > bad_utf8) {
        throw InputError(located(path, field_line, col, "not valid UTF-8", value));
      }

      cells.push_back(std::move(value));
      cell_quoted.push_back(was_quoted ? 1 : 0);

      if (i < n && s[i] == ',') {
        ++i;
        continue;
      }
      if (i < n) {  // end of record: "\r\n", "\n" or a lone "\r"
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ++i;
        ++i;
        ++line;
      }
      break;
    }

    if (!have_header) {
      table.header = std::move(cells);
      table.header_quoted =
          std::any_of(cell_quoted.begin(), cell_quoted.end(), [](char q) { return q != 0; });
      header_line = row_line;
      have_header = true;
      ncols = table.header.size();
      check_header(table, header_line);
      continue;
    }

    if (cells.size() != ncols) {
      const bool too_many = cells.size() > ncols;
      const long col = too_many ? static_cast<long>(ncols) + 1 : static_cast<long>(cells.size());
      const std::string& shown = too_many ? cells[ncols] : cells.back();
      throw InputError(located(path, row_line, col,
                               "row has " + std::to_string(cells.size()) + " fields, header has " +
                                   std::to_string(ncols),
                               shown));
    }
    table.rows.push_back(std::move(cells));
    table.quoted.push_back(std::move(cell_quoted));
    table.line_of_row.push_back(row_line);
  }

  if (!have_header) throw InputError(bare(path, 0, "file is empty"));
  if (table.rows.empty()) throw InputError(bare(path, header_line, "header only, no data rows"));
  return table;
}

CsvTable read_csv(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + path + ": " + std::strerror(errno));
  // Close on every exit path, including the throws below.
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError("cannot open " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw IoError("cannot open " + path + ": " + std::strerror(EISDIR));

  // Read the whole file in one go; the size is a hint only (pipes and /proc report 0).
  std::string text;
  text.resize(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 65536);
  std::size_t used = 0;
  for (;;) {
    if (used == text.size()) text.resize(text.size() * 2);
    const ssize_t got = ::read(fd, &text[used], text.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot read " + path + ": " + std::strerror(errno));
    }
    if (got == 0) break;
    used += static_cast<std::size_t>(got);
  }
  text.resize(used);
  return parse_csv(text, path);
}

std::string csv_field(const std::string& s, bool force_quote) {
  const bool needs = force_quote || s.find_first_of(",\"\r\n") != std::string::npos;
  if (!needs) return s;
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (const char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace healthgym
