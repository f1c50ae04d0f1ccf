// CIFAR-10 / CIFAR-100, binary version (fedml/core/data/dataset.h).
#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "data_files.h"
#include "fedml/core/data/dataset.h"

namespace fedml::core::data {
namespace {

constexpr std::size_t kPixels = 3 * 32 * 32;

struct CifarFormat {
  const char* name;
  const char* subdirectory;  // what the archive unpacks into
  std::vector<std::string> train_files;
  std::string test_file;
  std::size_t label_bytes;  // bytes before the pixels; the last one is the label used
  int num_classes;
  std::array<float, 3> mean;  // per channel, of the training set scaled to [0, 1]
  std::array<float, 3> stddev;
};

const CifarFormat& Cifar10() {
  static const CifarFormat f{"cifar10",
                             "cifar-10-batches-bin",
                             {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                              "data_batch_4.bin", "data_batch_5.bin"},
                             "test_batch.bin",
                             1,
                             10,
                             {0.4914F, 0.4822F, 0.4465F},
                             {0.2470F, 0.2435F, 0.2616F}};
  return f;
}

const CifarFormat& Cifar100() {
  static const CifarFormat f{"cifar100",
                             "cifar-100-binary",
                             {"train.bin"},
                             "test.bin",
                             2,
                             100,
                             {0.5071F, 0.4865F, 0.4409F},
                             {0.2673F, 0.2564F, 0.2762F}};
  return f;
}

// Appends the records of one file to `out`.
Status AppendRecords(const std::string& path, const CifarFormat& format, Dataset& out) {
  FEDML_ASSIGN_OR_RETURN(const std::vector<std::uint8_t> bytes,
                         ReadDataFile(path, "a CIFAR binary batch"));
  const std::size_t record = format.label_bytes + kPixels;
  if (bytes.empty() || bytes.size() % record != 0) {
    return Status::DataLoss(path + ": " + std::to_string(bytes.size()) +
                            " bytes, not a whole number of " + std::to_string(record) +
                            "-byte records (" + std::to_string(format.label_bytes) +
                            " label byte(s) + 3072 pixel bytes) of " + format.name);
  }
  const std::size_t n = bytes.size() / record;
  const std::size_t first = out.labels.size();
  out.labels.resize(first + n);
  out.features.resize((first + n) * kPixels);
  // 256 pixel values per channel: a table does the scaling and normalisation.
  std::array<std::array<float, 256>, 3> table{};
  for (std::size_t c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      table[c][static_cast<std::size_t>(v)] =
          (static_cast<float>(v) / 255.0F - format.mean[c]) / format.stddev[c];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* r = bytes.data() + i * record;
    const int label = r[format.label_bytes - 1];
    if (label >= format.num_classes || (format.label_bytes == 2 && r[0] >= 20)) {
      return Status::DataLoss(
          path + ": record " + std::to_string(i) + " has label " + std::to_string(label) +
          (format.label_bytes == 2 ? " (coarse " + std::to_string(r[0]) + ")" : std::string()) +
          "; " + format.name + " labels are 0.." + std::to_string(format.num_classes - 1) +
          (format.label_bytes == 2 ? " (coarse 0..19)" : ""));
    }
    out.labels[first + i] = label;
    float* x = out.features.data() + (first + i) * kPixels;
    const std::uint8_t* p = r + format.label_bytes;
    for (std::size_t k = 0; k < kPixels; ++k) x[k] = table[k / 1024][p[k]];
  }
  return Status::Ok();
}

Result<Dataset> LoadSplit(const std::string& directory, const std::vector<std::string>& files,
                          const CifarFormat& format) {
  Dataset ds;
  ds.sample_shape = {3, 32, 32};
  ds.num_classes = format.num_classes;
  for (const std::string& file : files) {
    const std::string path = FindDataFile(directory, {file});
    if (path.empty()) {
      return Status::NotFound(std::string(format.name) + ": " +
                              (std::filesystem::path(directory) / file).string() +
                              " not found; unpack the binary version (" + format.subdirectory +
                              ") from https://www.cs.toronto.edu/~kriz/cifar.html into "
                              "data_cache_dir");
    }
    FEDML_RETURN_IF_ERROR(AppendRecords(path, format, ds));
  }
  return ds;
}

}  // namespace

Result<TrainTest> LoadCifar(const std::string& directory, const std::string& dataset_name) {
  const CifarFormat* format = nullptr;
  if (dataset_name == "cifar10") format = &Cifar10();
  if (dataset_name == "cifar100") format = &Cifar100();
  if (format == nullptr) {
    return Status::InvalidArgument("unknown CIFAR data set \"" + dataset_name +
                                   "\"; allowed: cifar10, cifar100");
  }
  // The archive's own directory, or the directory it was unpacked into.
  std::string dir = directory;
  const std::filesystem::path sub = std::filesystem::path(directory) / format->subdirectory;
  std::error_code ec;
  if (FindDataFile(dir, {format->test_file}).empty() && std::filesystem::is_directory(sub, ec)) {
    dir = sub.string();
  }
  TrainTest out;
  FEDML_ASSIGN_OR_RETURN(out.train, LoadSplit(dir, format->train_files, *format));
  FEDML_ASSIGN_OR_RETURN(out.test, LoadSplit(dir, {format->test_file}, *format));
  return out;
}

}  // namespace fedml::core::data
