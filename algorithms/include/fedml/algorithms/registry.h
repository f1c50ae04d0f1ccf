// The strategy registry: maps FedML's `federated_optimizer` names to aggregator factories.
// One explicit table in registry.cc (no self-registering static initialisers), so the set of
// strategies a build offers is visible in one place and does not depend on link order.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/algorithms/fedavg.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// Settings for any strategy; each factory reads the fields that concern it.
struct AggregatorOptions {
  /// FedAvg-style streaming fold width, in [1, kMaxFoldWidth].
  int fold_width = FedAvgOptions{}.fold_width;
};

/// A new aggregator for `name`, spelled as FedML spells `federated_optimizer` ("FedAvg").
/// INVALID_ARGUMENT for an unknown name (the message lists the known ones) or an option out of
/// range.
Result<std::unique_ptr<Aggregator>> CreateAggregator(const std::string& name,
                                                     const AggregatorOptions& options);

/// The names CreateAggregator accepts, in table order.
std::vector<std::string> AggregatorNames();

}  // namespace fedml::algorithms
