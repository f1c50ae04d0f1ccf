#include "fedml/api/federated_data.h"

namespace fedml::api {

Result<std::shared_ptr<const FederatedData>> LoadFederatedData(const Config& config) {
  auto data = std::make_shared<FederatedData>();
  data->name = config.dataset;
  if (config.dataset == "synthetic") {
    core::data::SyntheticOptions o;
    o.num_clients = config.client_num_in_total;
    o.alpha = config.synthetic_alpha;
    o.beta = config.synthetic_beta;
    o.dimension = config.synthetic_dimension;
    o.seed = config.random_seed;
    FEDML_ASSIGN_OR_RETURN(core::data::SyntheticData syn, core::data::GenerateSynthetic(o));
    data->train = std::move(syn.train);
    data->test = std::move(syn.test);
    data->partition = std::move(syn.partition);
    return std::shared_ptr<const FederatedData>(std::move(data));
  }
  FEDML_ASSIGN_OR_RETURN(core::data::TrainTest tt,
                         core::data::LoadDatasetFiles(config.dataset, config.data_cache_dir));
  data->train = std::move(tt.train);
  data->test = std::move(tt.test);
  const int n = config.client_num_in_total;
  if (config.partition_method == "natural") {
    // The data set's own clients (LEAF's users, a tensor directory's client ids): the first n.
    const std::size_t have = tt.natural.num_clients();
    if (have == 0) {
      return Status::InvalidArgument("partition_method natural: dataset " + config.dataset +
                                     " has no natural partition (femnist, shakespeare and npy "
                                     "with client_train.npy have one); use homo, hetero or shards");
    }
    if (static_cast<std::size_t>(n) > have) {
      return Status::InvalidArgument("partition_method natural: client_num_in_total is " +
                                     std::to_string(n) + " but " + config.dataset + " in " +
                                     config.data_cache_dir + " has " + std::to_string(have) +
                                     " clients; allowed: 1.." + std::to_string(have));
    }
    tt.natural.client_indices.resize(static_cast<std::size_t>(n));
    data->partition = std::move(tt.natural);
  } else if (config.partition_method == "homo") {
    FEDML_ASSIGN_OR_RETURN(data->partition,
                           core::data::PartitionHomo(data->train.size(), n, config.random_seed));
  } else if (config.partition_method == "hetero") {
    FEDML_ASSIGN_OR_RETURN(data->partition, core::data::PartitionDirichlet(
                                                data->train.labels, data->train.num_classes, n,
                                                config.partition_alpha, config.random_seed));
  } else if (config.partition_method == "shards") {
    FEDML_ASSIGN_OR_RETURN(
        data->partition, core::data::PartitionShards(data->train.labels, n,
                                                     config.shards_per_client, config.random_seed));
  } else {
    return Status::InvalidArgument("partition_method '" + config.partition_method +
                                   "' is not known; allowed: homo, hetero, shards, natural");
  }
  return std::shared_ptr<const FederatedData>(std::move(data));
}

}  // namespace fedml::api
