// Aggregator: the server-side strategy interface. Every strategy (FedAvg, FedOpt, robust
// aggregators, asynchronous mixing) implements it, and the round controller drives it the same
// way in simulation and deployment. Torch-free: the math runs over flat float buffers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// What the controller tells an aggregator about the round it starts.
struct RoundInfo {
  std::int64_t round = 0;
  std::int64_t model_version = 0;  // version of the global model handed to begin()
  int expected_updates = 0;        // clients sampled this round (0 when unknown: async)
};

/// One client's contribution. `state` is the client's full local model after training (not a
/// delta); aggregators that need deltas subtract the global model they were given in Begin().
struct ClientUpdate {
  std::int64_t client_id = -1;
  std::int64_t round = -1;
  std::int64_t base_version = -1;  // model version the client trained from
  std::int64_t num_samples = 0;    // FedAvg weight; must be > 0
  core::ModelState state;
  std::map<std::string, double> metrics;
  std::map<std::string, core::ModelState> extras;  // e.g. SCAFFOLD control-variate deltas
  /// Asynchronous rounds: the global model of version base_version, which the client trained
  /// from, when that is older than the model given to Begin (the update's staleness is
  /// RoundInfo::model_version - base_version). Shared read-only with the other updates of that
  /// version; null when the client trained from Begin's model.
  std::shared_ptr<const core::ModelState> base;
};

/// Thread safety: not thread-safe; the controller calls it from one thread.
/// Lifecycle per round: Begin -> Accumulate* -> Finalize. Begin may be called again after
/// Finalize (next round) or to abandon a round.
class Aggregator {
 public:
  virtual ~Aggregator() = default;

  virtual std::string name() const = 0;
  /// True when the result is a weighted sum of the updates (secure aggregation accepts only
  /// these).
  virtual bool is_linear() const = 0;
  /// True when the strategy must see all updates at once (median, Krum), so memory is
  /// O(clients x model); false when it streams in O(model).
  virtual bool needs_all_updates() const = 0;

  /// Starts a round from the current global model (copied as needed).
  virtual Status Begin(const core::ModelState& global, const RoundInfo& info) = 0;
  /// Takes one update (moved in; the aggregator may keep it until Finalize). Errors for a layout
  /// that differs from the global model, a non-positive sample count or non-finite values; a
  /// refused update leaves the round's state as it was.
  virtual Status Accumulate(ClientUpdate update) = 0;
  /// Produces the new global model. FAILED_PRECONDITION when no update was accepted.
  virtual Result<core::ModelState> Finalize() = 0;
  /// Updates accepted since Begin.
  virtual int accepted() const = 0;

  /// Side payloads the training task of `client_id` carries to the client this round, asked
  /// after Begin (SCAFFOLD: the server's and the client's control variates). The controller
  /// copies them into the task; most strategies send none.
  virtual std::map<std::string, core::ModelState> TaskExtras(std::int64_t /*client_id*/) const {
    return {};
  }
  /// Figures of the round last finalized (for example "dp_epsilon"), merged into the round's
  /// metrics under these names. Asked after Finalize.
  virtual std::map<std::string, double> RoundFigures() const { return {}; }

  /// What the strategy carries from one round to the next (server optimizer moments, SCAFFOLD's
  /// control variates, the DP accountant's round count), as named states, so that a checkpoint
  /// resumes the run exactly. Asked between rounds (after Finalize). Stateless strategies: none.
  virtual std::map<std::string, core::ModelState> SaveState() const { return {}; }
  /// Restores what SaveState gave, before the first Begin of a resumed run. Names a strategy does
  /// not know are ignored (a wrapper passes the map on to what it wraps); INVALID_ARGUMENT for a
  /// known name whose contents do not fit.
  virtual Status RestoreState(const std::map<std::string, core::ModelState>& /*state*/) {
    return Status::Ok();
  }
};

/// The base of an aggregator that wraps another (a server optimizer, staleness weighting, DP
/// accounting): every call goes to the wrapped one unless the wrapper overrides it, so a wrapper
/// states only what it changes. Owns `inner` (non-null). Not thread-safe.
class ForwardingAggregator : public Aggregator {
 public:
  explicit ForwardingAggregator(std::unique_ptr<Aggregator> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  bool is_linear() const override { return inner_->is_linear(); }
  bool needs_all_updates() const override { return inner_->needs_all_updates(); }
  Status Begin(const core::ModelState& global, const RoundInfo& info) override {
    return inner_->Begin(global, info);
  }
  Status Accumulate(ClientUpdate update) override { return inner_->Accumulate(std::move(update)); }
  Result<core::ModelState> Finalize() override { return inner_->Finalize(); }
  int accepted() const override { return inner_->accepted(); }
  std::map<std::string, core::ModelState> TaskExtras(std::int64_t client_id) const override {
    return inner_->TaskExtras(client_id);
  }
  std::map<std::string, double> RoundFigures() const override { return inner_->RoundFigures(); }
  std::map<std::string, core::ModelState> SaveState() const override { return inner_->SaveState(); }
  Status RestoreState(const std::map<std::string, core::ModelState>& state) override {
    return inner_->RestoreState(state);
  }

 protected:
  std::unique_ptr<Aggregator> inner_;
};

/// A one-element state holding `value` (counters travel with the model-sized states).
core::ModelState CounterState(double value);
/// The value of a CounterState; INVALID_ARGUMENT naming `name` when `state` is not one.
Result<double> CounterValue(const core::ModelState& state, const std::string& name);

}  // namespace fedml::algorithms
