// Synchronous rounds: each round samples clients with the seed, sends them the global model,
// runs one fit stage (the plain one, with the verification gate when verified work is on, or
// secure aggregation's), evaluates when due and ends the row. A round variant that changes how
// updates are collected is a new FitStage, not a branch here (Flower's workflows are the model:
// secure aggregation replaces the fit stage of the default workflow).
//
// Contract: internal; runs on the controller's thread over the context's pool.
#pragma once

#include <cstdint>
#include <vector>

#include "server/server_context.h"

namespace fedml::api::server {

/// How one synchronous round collects its clients' work into the aggregator.
class FitStage {
 public:
  virtual ~FitStage() = default;
  /// The number of updates the aggregator receives for k sampled clients.
  virtual int Summands(int k) const { return k; }
  /// Runs the round's training over `sampled` (the aggregator has begun the round and the
  /// workers hold the model) and ends it with ServerContext::EndTraining.
  virtual Status Run(std::int64_t round, const std::vector<std::int64_t>& sampled,
                     core::ModelState& global, RoundMetrics& metrics) = 0;
};

/// Plain federated training: every sampled client's update goes to the aggregator in the order
/// of `sampled` (so the result is the same for any number of workers and on every backend),
/// through the verification gate when the context has one.
class PlainFit final : public FitStage {
 public:
  explicit PlainFit(ServerContext& ctx) : ctx_(ctx) {}
  Status Run(std::int64_t round, const std::vector<std::int64_t>& sampled, core::ModelState& global,
             RoundMetrics& metrics) override;

 private:
  ServerContext& ctx_;
};

class SyncRounds {
 public:
  SyncRounds(ServerContext& ctx, FitStage& fit) : ctx_(ctx), fit_(fit) {}
  /// Runs rounds start_round..comm_round-1 from `global`.
  Status Run(core::ModelState& global);

 private:
  Status RunRound(std::int64_t round, core::ModelState& global, RoundMetrics& metrics);

  ServerContext& ctx_;
  FitStage& fit_;
};

}  // namespace fedml::api::server
