// The strategy registry: maps FedML's `federated_optimizer` names to aggregators, and composes
// the server-side pipeline every strategy shares:
//
//   updates -> [FedBuff: staleness weighting]
//           -> [averaging: FedAvg | a robust rule (defense) | central DP | FedNova | SCAFFOLD]
//           -> [server optimizer: sgd (momentum) | adagrad | adam | yogi]   -> new global model
//
// FedAsync is a pipeline of its own (its mixing is the server step).
//
// One explicit table in registry.cc (no self-registering static initialisers), so the set of
// strategies a build offers is visible in one place and does not depend on link order.
// Client-side parts (FedProx's proximal term, SCAFFOLD's gradient correction, local DP, attacks)
// live with the trainer (fedml/api/torch_trainer.h, fedml/api/client_pipeline.h); the server's
// choice here and the clients' there are made from the same config.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/algorithms/async.h"
#include "fedml/algorithms/dp.h"
#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/robust.h"
#include "fedml/algorithms/server_optimizer.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// Settings for any strategy; each part reads the fields that concern it.
struct AggregatorOptions {
  /// FedAvg-style streaming fold width, in [1, kMaxFoldWidth].
  int fold_width = FedAvgOptions{}.fold_width;
  /// FedAvg's fold threads (FedAvgOptions::threads; <= 0: every core); a defense's too
  /// (RobustOptions::threads, which this overrides).
  int aggregation_threads = FedAvgOptions{}.threads;
  /// N, for SCAFFOLD's server control variate.
  int client_num_in_total = 1;
  /// The clients' local SGD momentum, for FedNova's effective step count.
  double client_momentum = 0.0;
  /// The server step. federated_optimizer FedOpt takes server.type as given; FedAvgM, FedAdam,
  /// FedAdagrad and FedYogi set it (and refuse a conflicting one); the others apply it when it is
  /// not the identity (sgd, lr 1, no momentum), e.g. SCAFFOLD's global step size eta_g.
  ServerOptimizerOptions server;
  /// True when the server_optimizer was given explicitly (so that FedAdam with server_optimizer
  /// yogi is an error rather than a silent choice).
  bool server_optimizer_given = false;
  /// Replaces FedAvg's mean by a robust rule (FedAvg, FedProx, FedOpt family only).
  bool enable_defense = false;
  RobustOptions defense;
  /// Central DP-FedAvg replaces FedAvg's mean (FedAvg, FedProx, FedOpt family only). Local DP
  /// (local_dp) runs on the clients; the server only reports its epsilon.
  bool central_dp = false;
  bool local_dp = false;
  DpOptions dp;
  /// Asynchronous strategies (FedAsync, FedBuff): how staleness discounts an update, and
  /// FedAsync's mixing weight alpha.
  StalenessOptions staleness;
  double async_alpha = FedAsyncOptions{}.alpha;
  /// Makes the plain sample-weighted mean (FedAvg, FedProx, FedBuff and the FedOpt family without
  /// a defense or central DP) in place of the host FedAvg: the api layer supplies one that averages
  /// on a GPU (fedml/api/device_aggregation.h). Called once, by CreateAggregator, whose error it
  /// becomes. Empty: the host FedAvg.
  std::function<Result<std::unique_ptr<Aggregator>>()> mean_factory;
};

/// The aggregation pipeline for `name`, spelled as FedML spells `federated_optimizer`
/// ("FedAvg"). INVALID_ARGUMENT for an unknown name (the message lists the known ones), an
/// option out of range, or a combination that does not exist (a defense under SCAFFOLD).
Result<std::unique_ptr<Aggregator>> CreateAggregator(const std::string& name,
                                                     const AggregatorOptions& options);

/// True for the strategies that aggregate as updates arrive rather than in rounds (FedAsync,
/// FedBuff): the controller runs them asynchronously, one model version per Finalize.
bool IsAsynchronous(const std::string& name);

/// The names CreateAggregator accepts, in table order.
std::vector<std::string> AggregatorNames();

/// The synchronous strategies whose averaging is the sample-weighted mean (a server optimizer may
/// step on it): the ones whose Aggregator::is_linear() holds without a defense or central DP, so
/// secure aggregation can stand in for their mean. In table order.
std::vector<std::string> LinearStrategyNames();

}  // namespace fedml::algorithms
