// Lowercase hex of a byte string, for tests that pin exact encodings (tests/core's and
// tests/algorithms' pinning tests): a mismatch then prints both forms readably.
#pragma once

#include <cstdint>
#include <string>

#include "fedml/core/bytes.h"

namespace fedml::testing {

inline std::string Hex(const core::Bytes& b) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * b.size());
  for (std::uint8_t v : b) {
    out.push_back(kDigits[v >> 4]);
    out.push_back(kDigits[v & 0xf]);
  }
  return out;
}

}  // namespace fedml::testing
