// FedAvg (McMahan et al. 2017): the sample-weighted mean of the clients' models.
#pragma once

#include <cstdint>
#include <vector>

#include "fedml/algorithms/aggregator.h"

namespace fedml::algorithms {

struct FedAvgOptions {
  /// Updates held back and folded into the running mean in one pass over memory. A wider fold
  /// reads the accumulator fewer times (the aggregation is memory-bound); memory is
  /// (fold_width + 2) model copies at most, independent of the number of clients.
  /// In [1, kMaxFoldWidth]; the constructor clamps other values (CreateAggregator refuses them).
  /// 8 because the fold is then within ~10% of the machine's single-thread read bandwidth: on the
  /// reference machine (aggregation_bench, 32 x 4M floats, a shared 2-core VM) widths 8 / 16 gave
  /// 0.49-0.51 / 0.52-0.56 of memcpy's read+write rate, and a pure read loop tops out at ~0.58,
  /// so 16 buys ~5% for twice the held-back memory; 4 ran ~10% slower than 8.
  int fold_width = 8;
  /// Threads a fold is split over, by ranges of parameters (at least 64K each), the caller's
  /// thread included; <= 0: every core (std::thread::hardware_concurrency). Each parameter's
  /// arithmetic is the same whichever thread folds it, so the result is the same bits for any
  /// count. 1 (the default) suits a simulation, whose workers train on the other cores while
  /// the server folds; a deployed server or MPI rank 0 has its cores to itself.
  int threads = 1;
};

/// Widest fold: each width has its own register-resident kernel, and past 16 input streams the
/// hardware prefetchers stop keeping up (32 measured slower than 16).
inline constexpr int kMaxFoldWidth = 16;

/// Streams: memory O(fold_width x model), not O(clients x model). The running state is the
/// weighted mean so far in float32; each fold forms
///   mean' = (W / W') mean + sum_j (w_j / W') x_j        (W' = W + sum_j w_j)
/// in float64 registers and rounds once to float32. The error against a float64 reference is a
/// few float32 ulps of the largest input per fold, and a permutation of the arrival order changes
/// the result by about that much. Because every fold is a convex combination, finite inputs never
/// overflow, whatever the sample counts.
///
/// Finiteness is checked inside the fold pass, not on arrival: a separate scan would read every
/// update twice and roughly halve throughput (the fold is bound by memory read bandwidth). So an
/// update with NaN or Inf is found when its fold runs, which is the Accumulate that fills the
/// queue to fold_width, or Finalize. The fold writes into a second buffer and commits only when
/// all its outputs are finite, so such an update never touches the round's state: the call that
/// ran the fold drops it (accepted() stops counting it), keeps the other queued updates and
/// returns INVALID_ARGUMENT naming the dropped client(s). The round then goes on as if the dropped
/// updates had never been given; after such an error from Finalize, call Finalize again to
/// aggregate the rest. Layout and sample-count errors are reported by the Accumulate call itself.
class FedAvg final : public Aggregator {
 public:
  explicit FedAvg(FedAvgOptions options = {});
  std::string name() const override { return "FedAvg"; }
  bool is_linear() const override { return true; }
  bool needs_all_updates() const override { return false; }
  Status Begin(const core::ModelState& global, const RoundInfo& info) override;
  Status Accumulate(ClientUpdate update) override;
  Result<core::ModelState> Finalize() override;
  int accepted() const override { return accepted_; }
  /// The fold width in use (after clamping).
  int fold_width() const { return options_.fold_width; }

 private:
  /// Folds the queued updates into mean_. On a non-finite value leaves mean_ as it was, drops the
  /// offending updates and returns INVALID_ARGUMENT.
  Status Fold();

  FedAvgOptions options_;
  bool begun_ = false;
  core::ModelState mean_;          // the global layout; values: weighted mean of folded updates
  std::vector<float> scratch_;     // the fold's output, swapped into mean_ on commit
  double folded_weight_ = 0.0;     // W: total samples behind mean_
  bool mean_initialised_ = false;  // false until the first fold (which writes without reading)
  std::vector<ClientUpdate> pending_;
  int accepted_ = 0;
};

}  // namespace fedml::algorithms
