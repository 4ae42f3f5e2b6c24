#include "healthgym/error.hpp"

#include <cstddef>
#include <string>

#include "utf8.hpp"

namespace healthgym {

namespace {

using detail::utf8_sequence_length;

constexpr std::size_t kMaxShownUnits = 60;

void append_hex_byte(std::string& out, unsigned char c) {
  static const char kDigits[] = "0123456789ABCDEF";
  out += "\\x";
  out += kDigits[c >> 4];
  out += kDigits[c & 0x0F];
}

// Valid UTF-8 text is shown as is (so names with accents stay readable); control characters and
// bytes that are not UTF-8 become \xNN so the message is one clean line that shows the bad bytes.
std::string printable(const std::string& value) {
  const auto* s = reinterpret_cast<const unsigned char*>(value.data());
  const std::size_t n = value.size();
  std::string out;
  out.reserve(n < 2 * kMaxShownUnits ? n + 8 : 2 * kMaxShownUnits);
  std::size_t units = 0;
  std::size_t i = 0;
  while (i < n) {
    if (units == kMaxShownUnits) {
      out += "...";
      break;
    }
    const unsigned char c = s[i];
    const std::size_t len = utf8_sequence_length(s, i, n);
    if (len == 0 || c < 0x20 || c == 0x7F) {
      append_hex_byte(out, c);
      ++i;
    } else {
      out.append(value, i, len);
      i += len;
    }
    ++units;
  }
  return out;
}

}  // namespace

std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

std::string located(const std::string& file, long line, long col, const std::string& message,
                    const std::string& value) {
  std::string out = file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (col > 0) out += ':' + std::to_string(col);
  }
  out += ": ";
  out += message;
  if (value.empty()) {
    out += " (empty value)";
  } else {
    out += " (value '";
    out += printable(value);
    out += "')";
  }
  return out;
}

}  // namespace healthgym
