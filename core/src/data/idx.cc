// IDX (LeCun's MNIST container) reading, plain or gzip-compressed.
//
// Files are read whole and, when compressed, inflated in memory with zlib's inflate rather than
// gzread: inflate reports a stream that ends early or fails its CRC, where gzread would quietly
// return a short read for a truncated file.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"

namespace fedml::core::data {
namespace {

constexpr std::uint32_t kImageMagic = 0x00000803;  // u8 data, 3 dimensions
constexpr std::uint32_t kLabelMagic = 0x00000801;  // u8 data, 1 dimension
constexpr int kNumClasses = 10;

std::string Hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::uint32_t ReadBigEndian32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

Result<std::vector<std::uint8_t>> ReadWholeFile(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) return Status::NotFound(path + ": not found");
  if (std::filesystem::is_directory(status)) {
    return Status::InvalidArgument(path + ": is a directory, expected an IDX file");
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

// The file's bytes, decompressed when they start with the gzip magic (the name is not trusted:
// some mirrors store compressed data without ".gz" and vice versa).
Result<std::vector<std::uint8_t>> ReadMaybeGzipped(const std::string& path) {
  FEDML_ASSIGN_OR_RETURN(auto bytes, ReadWholeFile(path));
  if (IsGzip(bytes)) return Gunzip(path, bytes);
  return bytes;
}

// Checks the magic and the dimension count, and that the payload is exactly the size the
// dimensions promise. Returns the dimensions.
Result<std::vector<std::uint32_t>> ParseIdxHeader(const std::string& path,
                                                  const std::vector<std::uint8_t>& bytes,
                                                  std::uint32_t expected_magic, const char* kind) {
  const int ndims = static_cast<int>(expected_magic & 0xff);
  const std::size_t header_size = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() < 4) {
    return Status::DataLoss(path + ": truncated: " + std::to_string(bytes.size()) +
                            " bytes, too short for the IDX magic number");
  }
  const std::uint32_t magic = ReadBigEndian32(bytes.data());
  if (magic != expected_magic) {
    std::string hint;
    if (magic == kImageMagic || magic == kLabelMagic) {
      hint = magic == kImageMagic ? " (this is an image file)" : " (this is a label file)";
    }
    return Status::DataLoss(path + ": bad magic number " + Hex32(magic) + ", expected " +
                            Hex32(expected_magic) + " for an IDX u8 " + kind + " file" + hint);
  }
  if (bytes.size() < header_size) {
    return Status::DataLoss(path + ": truncated: " + std::to_string(bytes.size()) +
                            " bytes, the IDX header needs " + std::to_string(header_size));
  }
  std::vector<std::uint32_t> dims(static_cast<std::size_t>(ndims));
  std::uint64_t expected_payload = 1;
  bool overflow = false;
  for (int d = 0; d < ndims; ++d) {
    dims[static_cast<std::size_t>(d)] = ReadBigEndian32(bytes.data() + 4 + 4 * d);
    const std::uint64_t dim = dims[static_cast<std::size_t>(d)];
    if (dim != 0 && expected_payload > std::numeric_limits<std::uint64_t>::max() / dim) {
      overflow = true;
    }
    expected_payload *= dim;
  }
  const std::uint64_t payload = bytes.size() - header_size;
  if (overflow || payload < expected_payload) {
    std::string shape;
    for (std::size_t d = 0; d < dims.size(); ++d) {
      shape += (d ? " x " : "") + std::to_string(dims[d]);
    }
    return Status::DataLoss(path + ": truncated: header promises " + shape + " bytes of " + kind +
                            " data but the file holds " + std::to_string(payload));
  }
  if (payload > expected_payload) {
    return Status::DataLoss(path + ": " + std::to_string(payload - expected_payload) +
                            " unexpected trailing bytes after the " + kind + " data");
  }
  return dims;
}

}  // namespace

Result<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                        const IdxNormalization& norm) {
  if (norm.enabled &&
      !(std::isfinite(norm.mean) && std::isfinite(norm.stddev) && norm.stddev > 0.0f)) {
    return Status::InvalidArgument(
        "IDX normalisation needs a finite mean and a stddev > 0, got "
        "mean " +
        std::to_string(norm.mean) + ", stddev " + std::to_string(norm.stddev));
  }
  FEDML_ASSIGN_OR_RETURN(auto image_bytes, ReadMaybeGzipped(images_path));
  FEDML_ASSIGN_OR_RETURN(auto image_dims,
                         ParseIdxHeader(images_path, image_bytes, kImageMagic, "image"));
  FEDML_ASSIGN_OR_RETURN(auto label_bytes, ReadMaybeGzipped(labels_path));
  FEDML_ASSIGN_OR_RETURN(auto label_dims,
                         ParseIdxHeader(labels_path, label_bytes, kLabelMagic, "label"));

  const std::uint32_t num_images = image_dims[0];
  const std::uint32_t rows = image_dims[1];
  const std::uint32_t cols = image_dims[2];
  if (rows == 0 || cols == 0) {
    return Status::DataLoss(images_path + ": images of " + std::to_string(rows) + " x " +
                            std::to_string(cols) + " pixels; both sides must be >= 1");
  }
  if (label_dims[0] != num_images) {
    return Status::DataLoss("image/label count mismatch: " + images_path + " holds " +
                            std::to_string(num_images) + " images but " + labels_path + " holds " +
                            std::to_string(label_dims[0]) + " labels");
  }

  Dataset ds;
  ds.num_classes = kNumClasses;
  ds.sample_shape = {1, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)};
  ds.labels.resize(num_images);
  const std::uint8_t* label_data = label_bytes.data() + 8;
  for (std::uint32_t i = 0; i < num_images; ++i) {
    if (label_data[i] >= kNumClasses) {
      return Status::DataLoss(labels_path + ": label " + std::to_string(label_data[i]) +
                              " of sample " + std::to_string(i) + " is out of range; expected 0.." +
                              std::to_string(kNumClasses - 1));
    }
    ds.labels[i] = label_data[i];
  }

  // Only 256 distinct pixel values exist, so a lookup table does the scaling and normalisation.
  std::array<float, 256> table;
  for (int v = 0; v < 256; ++v) {
    const float x = static_cast<float>(v) / 255.0f;
    table[static_cast<std::size_t>(v)] = norm.enabled ? (x - norm.mean) / norm.stddev : x;
  }
  const std::size_t numel = std::size_t{num_images} * rows * cols;
  ds.features.resize(numel);
  const std::uint8_t* pixels = image_bytes.data() + 16;
  for (std::size_t i = 0; i < numel; ++i) ds.features[i] = table[pixels[i]];
  return ds;
}

Result<TrainTest> LoadMnistFormat(const std::string& directory, const std::string& dataset_name) {
  IdxNormalization norm;
  std::string hint;
  if (dataset_name == "fashion_mnist") {
    hint =
        "install the Debian package dataset-fashion-mnist (apt-get install "
        "dataset-fashion-mnist), or set data_cache_dir";
  } else if (dataset_name == "mnist") {
    norm.mean = 0.1307f;
    norm.stddev = 0.3081f;
    hint =
        "put MNIST's train/t10k images-idx3/labels-idx1 files (optionally .gz) there, or set "
        "data_cache_dir";
  } else {
    return Status::InvalidArgument("unknown MNIST-format dataset \"" + dataset_name +
                                   "\"; allowed: fashion_mnist, mnist");
  }

  const auto find = [&](const std::string& base) -> Result<std::string> {
    const std::filesystem::path dir(directory);
    for (const std::string& name : {base, base + ".gz"}) {
      std::error_code ec;
      if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
    }
    return Status::NotFound(dataset_name + ": " + (dir / base).string() + "[.gz] not found; " +
                            hint);
  };
  FEDML_ASSIGN_OR_RETURN(auto train_images, find("train-images-idx3-ubyte"));
  FEDML_ASSIGN_OR_RETURN(auto train_labels, find("train-labels-idx1-ubyte"));
  FEDML_ASSIGN_OR_RETURN(auto test_images, find("t10k-images-idx3-ubyte"));
  FEDML_ASSIGN_OR_RETURN(auto test_labels, find("t10k-labels-idx1-ubyte"));

  TrainTest out;
  {
    auto train = LoadIdx(train_images, train_labels, norm);
    if (!train.ok()) return train.status().WithContext(dataset_name + " training split");
    out.train = std::move(train).value();
  }
  {
    auto test = LoadIdx(test_images, test_labels, norm);
    if (!test.ok()) return test.status().WithContext(dataset_name + " test split");
    out.test = std::move(test).value();
  }
  if (out.train.sample_shape != out.test.sample_shape) {
    return Status::DataLoss(
        dataset_name + ": training images are " + std::to_string(out.train.sample_shape[1]) + "x" +
        std::to_string(out.train.sample_shape[2]) + " but test images are " +
        std::to_string(out.test.sample_shape[1]) + "x" + std::to_string(out.test.sample_shape[2]));
  }
  return out;
}

}  // namespace fedml::core::data
