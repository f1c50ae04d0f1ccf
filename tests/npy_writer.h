// Test helper: NumPy .npy files written byte for byte as numpy.save writes them (format 1.0, or
// 2.0 with its 4-byte header length), so loaders are tested against the real layout without
// NumPy on the machine.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fedml::testing {

/// The magic, the version, the header's length, the dict padded with spaces so that the data
/// start on a multiple of 64 bytes and ended by '\n', then `data`.
inline std::vector<std::uint8_t> Npy(const std::string& descr, const std::string& shape,
                                     const std::vector<std::uint8_t>& data, bool fortran = false,
                                     int major = 1) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shape + ", }";
  const std::size_t preamble = 6 + 2 + (major == 1 ? 2 : 4);
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<std::uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major),
                                   0};
  const std::size_t len = header.size();
  out.push_back(static_cast<std::uint8_t>(len & 0xff));
  out.push_back(static_cast<std::uint8_t>(len >> 8));
  if (major != 1) {
    out.push_back(0);
    out.push_back(0);
  }
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// `values` as little-endian bytes.
template <typename T>
std::vector<std::uint8_t> LittleEndian(const std::vector<T>& values) {
  std::vector<std::uint8_t> out;
  for (T v : values) {
    std::uint64_t raw = 0;
    std::memcpy(&raw, &v, sizeof(T));
    for (std::size_t b = 0; b < sizeof(T); ++b) {
      out.push_back(static_cast<std::uint8_t>(raw >> (8 * b)));
    }
  }
  return out;
}

/// Writes `bytes` to `path`, creating its directory.
inline void WriteBytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

}  // namespace fedml::testing
