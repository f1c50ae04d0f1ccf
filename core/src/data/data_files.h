// Reading data set files (private to core/src/data): whole, and inflated when gzip-compressed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core::data {

/// The bytes of the file at `path`, inflated when they start with the gzip magic (the name is
/// not trusted: some mirrors store compressed data without ".gz" and vice versa; concatenated
/// members are read as one). `expected` names what the file should be, for messages ("an IDX
/// file"). NOT_FOUND for a missing file; INVALID_ARGUMENT for a directory; PERMISSION_DENIED or
/// UNAVAILABLE when it cannot be read; DATA_LOSS for a truncated or corrupt gzip stream. Every
/// message names the path.
Result<std::vector<std::uint8_t>> ReadDataFile(const std::string& path, const char* expected);

/// The first of directory/name or directory/name.gz, for each of `names` in order, that is a
/// regular file; "" when none is.
std::string FindDataFile(const std::string& directory, const std::vector<std::string>& names);

}  // namespace fedml::core::data
