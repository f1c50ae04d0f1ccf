// Lowercase hex of a byte string (core::HexEncode), for tests that pin exact encodings
// (tests/core's and tests/algorithms' pinning tests): a mismatch then prints both forms readably.
#pragma once

#include <string>

#include "fedml/core/bytes.h"

namespace fedml::testing {

inline std::string Hex(const core::Bytes& b) { return core::HexEncode(b); }

}  // namespace fedml::testing
