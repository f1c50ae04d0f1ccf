// IDX (LeCun's MNIST container) reading, plain or gzip-compressed (data_files.h).

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

#include "data_files.h"
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
  FEDML_ASSIGN_OR_RETURN(auto image_bytes, ReadDataFile(images_path, "an IDX file"));
  FEDML_ASSIGN_OR_RETURN(auto image_dims,
                         ParseIdxHeader(images_path, image_bytes, kImageMagic, "image"));
  FEDML_ASSIGN_OR_RETURN(auto label_bytes, ReadDataFile(labels_path, "an IDX file"));
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
    std::string path = FindDataFile(directory, {base});
    if (!path.empty()) return path;
    return Status::NotFound(dataset_name + ": " +
                            (std::filesystem::path(directory) / base).string() +
                            "[.gz] not found; " + hint);
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
