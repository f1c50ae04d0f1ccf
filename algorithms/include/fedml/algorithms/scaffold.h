// SCAFFOLD (Karimireddy et al. 2020), the server side. Clients correct every local gradient by
// (c - c_i), the server's and their own control variates, which cancels the client drift that
// non-i.i.d. data causes. Each client's task carries c and its c_i (TaskExtras); the client
// returns its model y_i and delta_c_i = c_i+ - c_i with c_i+ = c_i - c + (x - y_i) / (K eta)
// (the paper's option II) in extras[kScaffoldDeltaC]. The server then sets
//   x <- mean of the y_i (FedAvg's sample-weighted mean; the global step size eta_g is the
//        server optimizer's server_lr, which wraps this aggregator),
//   c <- c + (1 / N) sum_i delta_c_i     (N = client_num_in_total),
//   c_i <- c_i + delta_c_i for every client of the round.
//
// The server keeps every client's c_i (zero until its first round), so backends and workers
// stay stateless and any worker can train any client; memory is O(clients seen x model). The
// control variates travel in the checkpoint (SaveState), so a resumed run continues exactly.
#pragma once

#include <map>
#include <memory>

#include "fedml/algorithms/aggregator.h"
#include "fedml/algorithms/fedavg.h"

namespace fedml::algorithms {

/// Names of the side payloads: in a task, the server's c and the client's c_i; in an update,
/// delta_c_i. Each has the layout of the model.
inline constexpr const char* kScaffoldServerC = "scaffold_c";
inline constexpr const char* kScaffoldClientC = "scaffold_c_i";
inline constexpr const char* kScaffoldDeltaC = "scaffold_delta_c";

struct ScaffoldOptions {
  int client_num_in_total = 1;  // N, >= 1
  int fold_width = FedAvgOptions{}.fold_width;
};

class Scaffold final : public Aggregator {
 public:
  explicit Scaffold(ScaffoldOptions options);
  std::string name() const override { return "SCAFFOLD"; }
  bool is_linear() const override { return true; }
  bool needs_all_updates() const override { return false; }
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  /// Refuses (INVALID_ARGUMENT, state unchanged) an update without a finite delta_c_i of the
  /// model's layout, and whatever FedAvg refuses.
  Status Accumulate(ClientUpdate update) override;
  Result<core::ModelState> Finalize() override;
  int accepted() const override { return mean_.accepted(); }
  std::map<std::string, core::ModelState> TaskExtras(std::int64_t client_id) const override;
  std::map<std::string, double> RoundFigures() const override { return figures_; }
  /// "scaffold_c" and "scaffold_c_i/<client>" for every client seen.
  std::map<std::string, core::ModelState> SaveState() const override;
  Status RestoreState(const std::map<std::string, core::ModelState>& state) override;

 private:
  ScaffoldOptions options_;
  FedAvg mean_;
  core::ModelState server_c_;
  std::map<std::int64_t, core::ModelState> client_c_;
  std::map<std::int64_t, core::ModelState> pending_delta_;  // this round's accepted delta_c_i
  std::map<std::string, double> figures_;
};

}  // namespace fedml::algorithms
