// The file-based data sets by name (fedml/core/data/dataset.h).
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"

namespace fedml::core::data {

const std::vector<std::string>& DatasetFileNames() {
  static const std::vector<std::string> kNames = {
      "fashion_mnist", "mnist", "cifar10", "cifar100", "femnist", "shakespeare", "npy"};
  return kNames;
}

Result<TrainTest> LoadDatasetFiles(const std::string& dataset_name, const std::string& directory) {
  if (dataset_name == "fashion_mnist" || dataset_name == "mnist") {
    return LoadMnistFormat(directory, dataset_name);
  }
  if (dataset_name == "cifar10" || dataset_name == "cifar100") {
    return LoadCifar(directory, dataset_name);
  }
  if (dataset_name == "femnist" || dataset_name == "shakespeare") {
    return LoadLeaf(directory, dataset_name);
  }
  if (dataset_name == "npy") return LoadNpyDirectory(directory);
  std::string allowed;
  for (const std::string& n : DatasetFileNames()) allowed += (allowed.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("unknown data set \"" + dataset_name + "\"; allowed: " + allowed);
}

}  // namespace fedml::core::data
