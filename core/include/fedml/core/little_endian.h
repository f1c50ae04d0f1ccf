// Transitional: the little-endian helpers now live in fedml/core/bytes.h (StoreLe* / LoadLe* and
// ByteWriter, which replaces AppendLe*). Removed once no file includes it.
#pragma once

#include <cstdint>
#include <vector>

#include "fedml/core/bytes.h"

namespace fedml::core {

/// Appends `v` to `out`.
inline void AppendLe32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void AppendLe64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace fedml::core
