// Server optimizers on the aggregated pseudo-gradient (Reddi et al. 2021, "Adaptive Federated
// Optimization"): FedAvgM, FedAdagrad, FedAdam and FedYogi, as a wrapper around any aggregator.
//
// The inner aggregator produces the round's aggregate x_bar from the updates (a mean, a robust
// estimate, FedNova's normalised step, ...); the wrapper takes the pseudo-gradient
// delta = x_bar - x (a descent direction, the negative of the paper's gradient sign convention
// where it writes x + eta * m / (sqrt(v) + tau)) and steps:
//   sgd      v = momentum * v + delta;              x += lr * v      (FedAvgM; momentum 0, lr 1
//                                                                    is the inner result itself)
//   adagrad  m = b1 m + (1 - b1) delta; v = v + delta^2;            x += lr m / (sqrt(v) + tau)
//   adam     m = b1 m + (1 - b1) delta; v = b2 v + (1 - b2) delta^2; x += lr m / (sqrt(v) + tau)
//   yogi     m as adam; v = v - (1 - b2) delta^2 sign(v - delta^2);  x += lr m / (sqrt(v) + tau)
// with m and v starting at 0 and tau^2 (the paper's Algorithm 2 asks v_{-1} >= tau^2) and no
// bias correction, as in the paper. Per-element math in float64, state kept in float32.
//
// Only floating-point tensors step; integer buffers (BatchNorm's num_batches_tracked) take the
// inner aggregate as it is. The state (m, v) lives in the wrapper across rounds and travels in
// the checkpoint (SaveState), so a resumed run continues exactly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"

namespace fedml::algorithms {

struct ServerOptimizerOptions {
  std::string type = "sgd";  // sgd | adagrad | adam | yogi (FedML's server_optimizer names)
  double lr = 1.0;           // server_lr, > 0
  double momentum = 0.0;     // server_momentum (sgd only), in [0, 1)
  double beta1 = 0.9;        // in [0, 1)
  double beta2 = 0.99;       // in [0, 1)
  double tau = 1e-3;         // adaptivity, > 0
  /// True for sgd with lr 1 and momentum 0, which leaves the inner aggregate unchanged.
  bool is_identity() const { return type == "sgd" && lr == 1.0 && momentum == 0.0; }
};

/// The server_optimizer names, in documentation order.
std::vector<std::string> ServerOptimizerNames();

/// Checks the ranges above; INVALID_ARGUMENT naming the option and what is allowed.
Status ValidateServerOptimizer(const ServerOptimizerOptions& options);

/// Wraps `inner` (owned). is_linear and needs_all_updates are the inner's: the step acts on the
/// aggregate only, so secure aggregation under a linear inner stays possible. TaskExtras and
/// RoundFigures pass through. Not thread-safe.
class ServerOptimizer final : public ForwardingAggregator {
 public:
  /// `options` must have passed ValidateServerOptimizer.
  ServerOptimizer(std::unique_ptr<Aggregator> inner, ServerOptimizerOptions options);
  std::string name() const override;
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  Result<core::ModelState> Finalize() override;
  std::map<std::string, double> RoundFigures() const override;
  /// "server_opt_m" and "server_opt_v" (the global model's layout), plus the inner's state.
  std::map<std::string, core::ModelState> SaveState() const override;
  Status RestoreState(const std::map<std::string, core::ModelState>& state) override;

 private:
  enum class Kind { kSgd, kAdagrad, kAdam, kYogi };  // options_.type, resolved once

  ServerOptimizerOptions options_;
  Kind kind_;
  core::ModelState global_;  // x of the round begun
  std::vector<float> m_;     // first moment (sgd: the momentum buffer)
  std::vector<float> v_;     // second moment (adaptive types)
  double last_step_norm_ = 0.0;
};

}  // namespace fedml::algorithms
