#pragma once
// UTF-8 validation shared by the CSV reader (rejects bad bytes) and error
// messages (shows them as \xNN).
#include <cstddef>

namespace healthgym::detail {

// Length of the well-formed UTF-8 sequence starting at s[i] (Unicode Table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one.
inline std::size_t utf8_sequence_length(const unsigned char* s, std::size_t i, std::size_t n) {
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

}  // namespace healthgym::detail
