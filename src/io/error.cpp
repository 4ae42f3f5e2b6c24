#include "healthgym/error.hpp"

#include <cstddef>
#include <string>

namespace healthgym {

namespace {

constexpr std::size_t kMaxShownUnits = 60;

// Length of the well-formed UTF-8 sequence starting at s[i] (Unicode Table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one.
std::size_t utf8_sequence_length(const unsigned char* s, std::size_t i, std::size_t n) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c == 0xE0) {
    len = 3;
    lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    len = 3;
  } else if (c == 0xED) {
    len = 3;
    hi = 0x9F;
  } else if (c == 0xF0) {
    len = 4;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    len = 4;
  } else if (c == 0xF4) {
    len = 4;
    hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if ((s[i + k] & 0xC0) != 0x80) return 0;
  }
  return len;
}

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
