// The server side of asynchronous aggregation: staleness weighting (FedBuff, Nguyen et al. 2022)
// and FedAsync's one-update mixing (Xie et al. 2019).
//
// In an asynchronous run the server's model moves on while clients train, so an update arrives
// trained from an older model version. Its staleness t = RoundInfo::model_version -
// ClientUpdate::base_version counts the versions it missed, and s(t) in (0, 1] says how much it
// still counts:
//   constant    s = 1
//   polynomial  s = (1 + t)^-a                          (a = 0.5: FedBuff's 1 / sqrt(1 + t))
//   hinge       s = 1 for t <= b, else 1 / (a (t - b) + 1)
//
// FedAsync makes one server version out of each update:  x <- (1 - a_t) x + a_t x_client,
// a_t = alpha * s(t). StalenessWeighted is FedBuff's rule around any averaging aggregator: each
// update x_i trained from base b_i is rebased onto the round's global x as x + s(t_i) (x_i - b_i)
// before `inner` sees it; with FedAvg as `inner` (and a ServerOptimizer around the whole) this is
// FedBuff's x <- x + eta sum_i w_i s(t_i) (x_i - b_i).
//
// Math per element in float64, stored as float32. Only floating-point tensors (core::
// IsFloatingPoint of the TensorSpec's dtype) are mixed or rebased; integer buffers (BatchNorm's
// num_batches_tracked) take the client's value.
//
// Thread safety: none. Both aggregators are driven from one thread, as every Aggregator.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// s(staleness): how much an update trained `staleness` model versions ago counts.
struct StalenessOptions {
  std::string function = "polynomial";  // constant | polynomial | hinge
  double a = 0.5;  // polynomial: s = (1 + t)^-a (a = 0.5 is FedBuff's 1/sqrt(1 + t)); hinge: slope
  double b = 4.0;  // hinge: s = 1 for t <= b, else 1 / (a (t - b) + 1)
};

/// The staleness function names, in documentation order: {"constant", "polynomial", "hinge"}.
std::vector<std::string> StalenessFunctionNames();

/// OK when `options` describes a staleness function; otherwise INVALID_ARGUMENT naming the field
/// (staleness_function, staleness_a, staleness_b) and what is allowed: an unknown function (the
/// message lists the known ones), a non-finite a or b (whatever the function), a < 0 for
/// polynomial, a <= 0 or b < 0 for hinge. constant reads neither a nor b.
Status ValidateStaleness(const StalenessOptions& options);

/// s(staleness) in (0, 1]; s(0) = 1 for every valid function. `options` must have passed
/// ValidateStaleness and `staleness` must be >= 0: otherwise the result is NaN (which every
/// aggregator here refuses), never a silently wrong weight.
double StalenessWeight(const StalenessOptions& options, std::int64_t staleness);

/// info.model_version - update.base_version: how many versions the global model moved on while
/// the client trained. INVALID_ARGUMENT naming the client when negative (an update from the
/// future: base_version is newer than the model being aggregated).
Result<std::int64_t> UpdateStaleness(const RoundInfo& info, const ClientUpdate& update);

struct FedAsyncOptions {
  double alpha = 0.6;  // the mixing weight a_t = alpha * s(staleness), alpha in (0, 1]
  StalenessOptions staleness;
};

/// OK when alpha is in (0, 1] and `staleness` passes ValidateStaleness; otherwise
/// INVALID_ARGUMENT naming the field (async_alpha, or as ValidateStaleness) and what is allowed.
Status ValidateFedAsync(const FedAsyncOptions& options);

/// FedAsync (Xie et al. 2019): each server version mixes exactly one client model,
///   x <- (1 - a_t) x + a_t x_client,   a_t = alpha * s(t),
/// with x the model given to Begin and t the update's staleness (UpdateStaleness). The client's
/// full model is mixed, so ClientUpdate::base is not used. The round controller calls Begin with
/// each new version, Accumulate with the one update that makes the next, then Finalize.
///
/// Memory: one copy of the global model (taken in Begin, mixed in place and returned by
/// Finalize) plus the accepted update until Finalize. Stateless across versions: SaveState gives
/// nothing. Not thread-safe.
class FedAsync final : public Aggregator {
 public:
  /// `options` should have passed ValidateFedAsync; if not, Begin refuses with its error.
  explicit FedAsync(FedAsyncOptions options = {});

  std::string name() const override { return "FedAsync"; }
  /// False: a_t depends on the one update's staleness and each version mixes a single update, so
  /// secure aggregation would have nothing to hide that update among (the server could read the
  /// client's model from two consecutive versions).
  bool is_linear() const override { return false; }
  bool needs_all_updates() const override { return false; }

  /// Copies `global` (the model of version info.model_version) and `info`; abandons any open
  /// version. INVALID_ARGUMENT for invalid options (ValidateFedAsync's message) or a global model
  /// with no tensors; the aggregator then stays closed (Accumulate answers FAILED_PRECONDITION).
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  /// Takes the update that makes the next version (moved in and kept until Finalize). Refuses,
  /// leaving the version's state as it was: FAILED_PRECONDITION before any Begin, after Finalize,
  /// or once an update was accepted since Begin ("FedAsync mixes one update per model version;
  /// call Begin first"); INVALID_ARGUMENT for a layout different from Begin's global, num_samples
  /// <= 0 (unused by the mix, but the sign of a broken client), a negative staleness, or a NaN or
  /// Inf value (one pass over the update).
  Status Accumulate(ClientUpdate update) override;
  /// The mixed model; the version is closed (Begin opens the next). FAILED_PRECONDITION before
  /// Begin, twice, or when no update was accepted (the version stays open for one).
  Result<core::ModelState> Finalize() override;
  /// 1 once an update was accepted since Begin, else 0.
  int accepted() const override { return accepted_ ? 1 : 0; }
  /// After a Finalize: "async_mixing_weight" (a_t), "staleness_mean" and "staleness_max" (both the
  /// one update's t). Empty before the first Finalize.
  std::map<std::string, double> RoundFigures() const override;

 private:
  FedAsyncOptions options_;
  bool begun_ = false;
  bool accepted_ = false;
  RoundInfo info_;
  core::ModelState global_;  // Begin's copy; mixed in place by Finalize
  core::ModelState client_;  // the accepted update's model
  std::int64_t staleness_ = 0;
  double mixing_weight_ = 0.0;
  std::map<std::string, double> figures_;  // of the last Finalize
};

/// FedBuff's staleness weighting around any averaging `inner` (FedAvg, a robust rule, possibly
/// inside a ServerOptimizer built by the caller; or the other way round, a ServerOptimizer around
/// this): each update x_i, trained from base b_i (ClientUpdate::base, or Begin's global when base
/// is null and the staleness is 0), is rebased onto the round's global x as x + s(t_i) (x_i - b_i)
/// and passed on to `inner`. An update of staleness 0 whose base is null or equal in value to
/// Begin's global is passed on untouched (s(0) = 1), so with every staleness 0 this is `inner`
/// bit for bit: FedBuff with zero staleness and server lr 1 equals FedAvg exactly.
///
/// Rebasing is in place on the moved-in update (no model copy); the base is read, never written
/// or kept. Memory: one copy of the global model besides what `inner` holds. Not thread-safe.
class StalenessWeighted final : public ForwardingAggregator {
 public:
  /// Owns `inner` (non-null). `options` should have passed ValidateStaleness; if not, Begin
  /// refuses with its error.
  StalenessWeighted(std::unique_ptr<Aggregator> inner, StalenessOptions options);

  /// The inner's name + "+staleness" ("FedAvg+staleness").
  std::string name() const override;
  /// The inner's: each update is rebased before the inner sees it, and the inner's rule over the
  /// rebased updates is unchanged.
  // is_linear, needs_all_updates, accepted, TaskExtras, SaveState and RestoreState are the
  // inner's (ForwardingAggregator): each update is rebased before the inner sees it, the inner's
  // rule over the rebased updates is unchanged, and staleness weighting carries nothing across
  // rounds.

  /// Copies `global` and keeps `info` (for the updates' staleness), then forwards to the inner.
  /// INVALID_ARGUMENT for invalid options (ValidateStaleness's message); the inner's error
  /// otherwise. After an error Accumulate answers FAILED_PRECONDITION until a Begin succeeds.
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  /// Rebases the update (see the class comment) and forwards it. Refuses, leaving the round's
  /// state as it was and not counting the update: FAILED_PRECONDITION before a successful Begin
  /// or after Finalize; INVALID_ARGUMENT for a negative staleness, a staleness > 0 without a base
  /// ("an update trained from model version V (staleness T) needs its base model"), a state or
  /// base whose layout differs from Begin's global, or a NaN or Inf in the update, in its base or
  /// in the rebased values (checked here, so that the staleness figures count exactly the updates
  /// the inner keeps); and whatever the inner refuses.
  Status Accumulate(ClientUpdate update) override;
  /// The inner's result. On success the round is closed and RoundFigures covers it; on an error
  /// the round stays as the inner leaves it.
  Result<core::ModelState> Finalize() override;
  /// The inner's figures plus "staleness_mean" and "staleness_max" over the updates accepted in
  /// the round last finalized (these two replace any the inner reports under those names).
  std::map<std::string, double> RoundFigures() const override;

 private:
  StalenessOptions options_;
  bool begun_ = false;
  RoundInfo info_;
  core::ModelState global_;              // x of the round begun
  std::vector<std::int64_t> staleness_;  // of the updates the inner accepted this round
  double last_mean_ = 0.0;               // over the round last finalized
  double last_max_ = 0.0;
  bool finalized_ = false;  // a round was finalized (the figures above exist)
};

}  // namespace fedml::algorithms
