// Data set files read whole, plain or gzip-compressed (data_files.h).
//
// Files are read whole and, when compressed, inflated in memory with zlib's inflate rather than
// gzread: inflate reports a stream that ends early or fails its CRC, where gzread would quietly
// return a short read for a truncated file.
#include "data_files.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace fedml::core::data {
namespace {

Result<std::vector<std::uint8_t>> ReadWholeFile(const std::string& path, const char* expected) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) return Status::NotFound(path + ": not found");
  if (std::filesystem::is_directory(status)) {
    return Status::InvalidArgument(path + ": is a directory, expected " + std::string(expected));
  }
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    const int err = errno;
    const std::string why = path + ": cannot open: " + std::strerror(err);
    return err == EACCES ? Status::PermissionDenied(why) : Status::Unavailable(why);
  }
  // Read straight into a buffer of the reported size, then keep reading in case the size was
  // wrong (special files report 0) or the file grew.
  const auto reported = std::filesystem::file_size(path, ec);
  std::vector<std::uint8_t> bytes(ec ? std::size_t{1} << 16
                                     : static_cast<std::size_t>(reported) + 1);
  std::size_t size = 0;
  for (;;) {
    size += std::fread(bytes.data() + size, 1, bytes.size() - size, file.get());
    if (size < bytes.size()) break;
    bytes.resize(bytes.size() * 2);
  }
  bytes.resize(size);
  if (std::ferror(file.get())) {
    return Status::Unavailable(path + ": read error: " + std::strerror(errno));
  }
  return bytes;
}

bool IsGzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Inflates one or more concatenated gzip members (what `cat a.gz b.gz` or pigz may produce).
Result<std::vector<std::uint8_t>> Gunzip(const std::string& path,
                                         const std::vector<std::uint8_t>& in) {
  // Inflate straight into `out`, growing it as needed. The trailer's ISIZE (the uncompressed size
  // mod 2^32) is the right size for a single-member file under 4 GiB, so usually no growth
  // happens.
  std::vector<std::uint8_t> out;
  std::size_t capacity = 1 << 16;
  if (in.size() >= 18) {
    const std::uint8_t* t = in.data() + in.size() - 4;
    const std::size_t isize = std::uint32_t{t[0]} | (std::uint32_t{t[1]} << 8) |
                              (std::uint32_t{t[2]} << 16) | (std::uint32_t{t[3]} << 24);
    // +1 so that the stream's end fits without a final doubling; capped at deflate's maximum
    // ratio (about 1032:1) so that a forged trailer cannot demand gigabytes up front.
    capacity = std::max(capacity, std::min(isize + 1, in.size() * 1032));
  }
  out.resize(capacity);
  std::size_t out_size = 0;
  z_stream zs{};
  // 15 + 16: a gzip wrapper (not zlib or raw deflate), with the CRC-32 and length checked.
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    return Status::Internal(path + ": zlib inflateInit2 failed");
  }
  struct Ender {
    z_stream* zs;
    ~Ender() { inflateEnd(zs); }
  } ender{&zs};

  std::size_t in_pos = 0;  // how much of `in` has been handed to zlib
  const auto feed = [&](std::size_t from) {
    const std::size_t n = std::min<std::size_t>(in.size() - from, std::numeric_limits<uInt>::max());
    zs.next_in = const_cast<Bytef*>(in.data() + from);
    zs.avail_in = static_cast<uInt>(n);
    in_pos = from + n;
  };
  feed(0);
  for (;;) {
    if (zs.avail_in == 0 && in_pos < in.size()) feed(in_pos);
    if (out_size == out.size()) out.resize(out.size() * 2);
    const std::size_t space =
        std::min<std::size_t>(out.size() - out_size, std::numeric_limits<uInt>::max());
    zs.next_out = out.data() + out_size;
    zs.avail_out = static_cast<uInt>(space);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out_size += space - zs.avail_out;
    if (rc == Z_OK) continue;
    if (rc == Z_STREAM_END) {
      const std::size_t next = in_pos - zs.avail_in;
      if (next == in.size()) {
        out.resize(out_size);
        return out;
      }
      if (in.size() - next >= 2 && in[next] == 0x1f && in[next + 1] == 0x8b) {
        inflateReset(&zs);
        feed(next);
        continue;
      }
      return Status::DataLoss(path + ": " + std::to_string(in.size() - next) +
                              " bytes of trailing garbage after the gzip stream");
    }
    if (rc == Z_BUF_ERROR) {
      // Output space was offered, so no progress means the input ran out before the stream's
      // end marker and trailer.
      return Status::DataLoss(path + ": truncated gzip stream (ends after " +
                              std::to_string(out_size) + " uncompressed bytes)");
    }
    return Status::DataLoss(path + ": corrupt gzip data: " +
                            (zs.msg ? std::string(zs.msg) : "zlib error " + std::to_string(rc)));
  }
}

}  // namespace

Result<std::vector<std::uint8_t>> ReadDataFile(const std::string& path, const char* expected) {
  FEDML_ASSIGN_OR_RETURN(auto bytes, ReadWholeFile(path, expected));
  if (IsGzip(bytes)) return Gunzip(path, bytes);
  return bytes;
}

std::string FindDataFile(const std::string& directory, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    std::error_code ec;
    const std::filesystem::path p = std::filesystem::path(directory) / name;
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    if (std::filesystem::is_regular_file(p.string() + ".gz", ec)) return p.string() + ".gz";
  }
  return "";
}

}  // namespace fedml::core::data
