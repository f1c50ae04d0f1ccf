#include "fedml/algorithms/registry.h"

#include <utility>

namespace fedml::algorithms {
namespace {

using Factory = Result<std::unique_ptr<Aggregator>> (*)(const AggregatorOptions&);

Result<std::unique_ptr<Aggregator>> MakeFedAvg(const AggregatorOptions& options) {
  if (options.fold_width < 1 || options.fold_width > kMaxFoldWidth) {
    return Status::InvalidArgument("FedAvg: fold_width is " + std::to_string(options.fold_width) +
                                   "; allowed: 1.." + std::to_string(kMaxFoldWidth));
  }
  FedAvgOptions fedavg;
  fedavg.fold_width = options.fold_width;
  return std::unique_ptr<Aggregator>(std::make_unique<FedAvg>(fedavg));
}

struct Entry {
  const char* name;
  Factory factory;
};

// Every strategy this build offers. Add a row here when a strategy lands.
constexpr Entry kStrategies[] = {
    {"FedAvg", &MakeFedAvg},
};

}  // namespace

Result<std::unique_ptr<Aggregator>> CreateAggregator(const std::string& name,
                                                     const AggregatorOptions& options) {
  for (const Entry& e : kStrategies) {
    if (name == e.name) return e.factory(options);
  }
  std::string allowed;
  for (const std::string& n : AggregatorNames()) allowed += (allowed.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("unknown federated_optimizer '" + name + "'; allowed: " + allowed +
                                 " (names are case-sensitive)");
}

std::vector<std::string> AggregatorNames() {
  std::vector<std::string> names;
  for (const Entry& e : kStrategies) names.emplace_back(e.name);
  return names;
}

}  // namespace fedml::algorithms
