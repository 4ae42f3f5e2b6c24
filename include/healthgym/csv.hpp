#pragma once
// RFC 4180 CSV reading and writing with exact source positions for errors.
#include <cstddef>
#include <string>
#include <vector>

namespace healthgym {

struct CsvTable {
  std::string path;  // for error messages
  std::vector<std::string> header;
  bool header_quoted = false;  // were the header fields quoted (keep the style on output)
  std::vector<std::vector<std::string>> rows;  // each row has header.size() cells
  std::vector<long> line_of_row;               // 1-based source line where each row starts
  std::vector<std::vector<char>> quoted;       // quoted[r][c]: was this cell quoted in the source
  long column_of(const std::string& name) const;  // -1 if absent
};

// Reads a whole CSV file. Throws InputError naming file, line, column and the
// offending text for: empty file, header only, ragged rows, bad quoting, bytes
// that are not UTF-8, duplicate or empty header names. Throws IoError if the
// file cannot be opened.
CsvTable read_csv(const std::string& path);
CsvTable parse_csv(const std::string& text, const std::string& path_for_errors);

// Quotes a field when it needs it (comma, quote, newline) or when force is set.
std::string csv_field(const std::string& s, bool force_quote = false);

}  // namespace healthgym
