// The data of a federated simulation: a training set partitioned over clients and a test set.
#pragma once

#include <memory>

#include "fedml/api/config.h"
#include "fedml/core/data/dataset.h"

namespace fedml::api {

struct FederatedData {
  core::data::Dataset train;
  core::data::Dataset test;
  core::data::Partition partition;
  std::string name;
};

/// Loads `config.dataset` and partitions it (`partition_method`, `partition_alpha`,
/// `client_num_in_total`, `random_seed`). Errors name the missing path and its Debian package.
Result<std::shared_ptr<const FederatedData>> LoadFederatedData(const Config& config);

}  // namespace fedml::api
