// The one table of features that cannot run together. The config reader consults it before
// anything starts (RunFeaturesOf a Config, fedml/api/options.h), and the round controller again
// for a program that builds its ServerOptions and aggregator itself, so both refuse the same
// combinations with the same words.
#pragma once

#include <string>

#include "fedml/core/status.h"

namespace fedml::api {

/// What a run combines, as far as compatibility goes.
struct RunFeatures {
  std::string strategy;  // federated_optimizer, or the aggregator's name
  bool asynchronous = false;
  /// The aggregation is the sample-weighted mean (Aggregator::is_linear), so secure aggregation
  /// can stand in for it.
  bool linear = true;
  std::string secure;  // "" (none), "secagg", "secagg_plus"
  bool verification = false;
  std::string defense;  // "" (none) or the robust rule
  std::string dp;       // "" (none), "cdp" (central), "ldp" (local)
  std::string client_optimizer = "sgd";
  double client_momentum = 0.0;
  std::string server_optimizer = "sgd";
  /// ServerOptions::over_selection (1 = none).
  double over_selection = 1.0;
  /// An aggregation tier (ServerOptions::aggregators > 0): the server sees one partial mean per
  /// aggregator, never a client's update.
  bool tier = false;
};

/// OK, or INVALID_ARGUMENT naming the first two features that cannot run together and what
/// each combines with instead. Pure; thread-safe.
Status CheckCompatible(const RunFeatures& features);

}  // namespace fedml::api
