// FedNova (Wang et al. 2020, "Tackling the Objective Inconsistency Problem in Heterogeneous
// Federated Optimization"): clients that take more local steps move further, so FedAvg drifts
// towards the objectives of the clients with the most data. FedNova divides each client's
// cumulative update by its effective step count a_i before averaging and rescales by the mean
// effective step count:
//   d_i = (x - x_i) / a_i,   p_i = n_i / sum n,   tau_eff = sum p_i a_i,
//   x_new = x - tau_eff * sum p_i d_i.
// For local SGD with momentum rho and tau_i steps, a_i = (tau_i - rho (1 - rho^tau_i) /
// (1 - rho)) / (1 - rho) (the paper's appendix); rho = 0 gives a_i = tau_i. With equal step counts
// FedNova is FedAvg.
//
// tau_i comes from the update's metrics["steps"] (TorchClientTrainer reports it; a custom
// trainer must too). Streams: memory O(model) (a float64 running sum). Not linear in the sense
// secure aggregation needs (the weights n_i / a_i are per-client claims the server must see).
#pragma once

#include <vector>

#include "fedml/algorithms/aggregator.h"

namespace fedml::algorithms {

struct FedNovaOptions {
  double client_momentum = 0.0;  // the clients' SGD momentum rho, in [0, 1)
};

/// The effective number of steps a_i of local SGD with `steps` steps and momentum `rho`.
double FedNovaEffectiveSteps(double steps, double rho);

class FedNova final : public Aggregator {
 public:
  explicit FedNova(FedNovaOptions options = {});
  std::string name() const override { return "FedNova"; }
  bool is_linear() const override { return false; }
  bool needs_all_updates() const override { return false; }
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  /// INVALID_ARGUMENT (state unchanged) for a layout mismatch, num_samples <= 0, non-finite
  /// values, or metrics["steps"] missing or < 1.
  Status Accumulate(ClientUpdate update) override;
  Result<core::ModelState> Finalize() override;
  int accepted() const override { return accepted_; }
  std::map<std::string, double> RoundFigures() const override { return figures_; }

 private:
  FedNovaOptions options_;
  bool begun_ = false;
  core::ModelState global_;
  std::vector<double> sum_;      // sum n_i (x - x_i) / a_i
  double samples_ = 0.0;         // sum n_i
  double weighted_steps_ = 0.0;  // sum n_i a_i
  int accepted_ = 0;
  std::map<std::string, double> figures_;
};

}  // namespace fedml::algorithms
