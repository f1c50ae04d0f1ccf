// FedAvg (McMahan et al. 2017): the sample-weighted mean of the clients' models.
#pragma once

#include <cstdint>
#include <vector>

#include "fedml/algorithms/aggregator.h"

namespace fedml::algorithms {

struct FedAvgOptions {
  /// Updates held back and folded into the running mean in one pass over memory. A wider fold
  /// reads and writes the running mean fewer times per input (the aggregation is memory-bound);
  /// memory is (fold_width + 2) model copies at most, independent of the number of clients
  /// (unless order_independent).
  /// In [1, kMaxFoldWidth]; the constructor clamps other values (CreateAggregator refuses them).
  /// 8 keeps the held-back memory small; on one thread it measured 0.79-0.94 of the read loop
  /// (aggregation_bench, README). Where the fold is bandwidth-bound (every core) width 8 is capped
  /// near 8 / 10 of the read loop by the mean's own traffic (measured 0.77-0.86); 32 lifts the
  /// cap to 32 / 34 (measured 0.87-1.03 on 1 and 2 threads) for four times the held memory.
  int fold_width = 8;
  /// Threads a fold is split over, by ranges of parameters (at least 64K each), the caller's
  /// thread included; <= 0: every core (std::thread::hardware_concurrency). Each parameter's
  /// arithmetic is the same whichever thread folds it, so the result is the same bits for any
  /// count. 1 (the default) suits a simulation, whose workers train on the other cores while
  /// the server folds; a deployed server or MPI rank 0 has its cores to itself.
  int threads = 1;
  /// Hold every update until Finalize and fold them there in client-id order, fold_width at a
  /// time: the result is then the same bits in any arrival order (updates sharing a client id
  /// keep their arrival order among themselves). Costs memory, not speed: the round holds all
  /// its updates, O(clients x model) instead of O(fold_width x model), and the folds run at
  /// Finalize instead of as updates arrive (the same passes, so the same throughput: 32 x 1M
  /// floats, width 8, within run-to-run noise of the streaming fold on 1 and 2 threads). A server
  /// whose updates already arrive in a fixed order (the simulation's reorder buffer) does not
  /// need it.
  bool order_independent = false;
};

/// Widest fold. Any width runs as passes of at most 8 updates over an L1-sized block (fedavg.cc
/// says why), so the width is bounded by memory, not by the kernel; 32 is the widest measured.
inline constexpr int kMaxFoldWidth = 32;

/// Streams: memory O(fold_width x model), not O(clients x model). The running state is the
/// weighted mean so far in float32; each fold forms
///   mean' = (W / W') mean + sum_j (w_j / W') x_j        (W' = W + sum_j w_j)
/// in float64 registers and rounds once to float32. The error against a float64 reference is at
/// most half a float32 epsilon of the largest input at that coordinate per fold (plus one for the
/// float64 sums), whatever the inputs' dynamic range (tested with values from 1e-30 to 1e30 over
/// 10,000 updates). Because every fold is a convex combination, finite inputs never overflow,
/// whatever the sample counts.
///
/// Determinism. The result is the same bits for any FedAvgOptions::threads (each parameter's
/// arithmetic does not depend on which thread folds it) and on any x86-64 (the AVX2 and portable
/// kernels do the same float64 operations in the same order, no fused multiply-add). Within one
/// fold the updates are summed in client-id order, so a round of at most fold_width updates gives
/// the same bits in any arrival order. A longer round does not by default: which updates share a
/// fold depends on arrival order, and each fold rounds the mean to float32, so two arrival orders
/// differ by up to a float32 epsilon of the largest input per fold. That is a chosen trade-off:
/// order-independent bits need either every update held until Finalize (memory O(clients x
/// model); FedAvgOptions::order_independent does that) or an exact (wide fixed-point or binned)
/// running sum, whose state is two to three times the float32 mean's and is read and written on
/// every fold, which by the traffic count below would cost a third or more of the throughput.
///
/// Throughput. Each fold reads fold_width updates and the mean and writes the mean (streaming
/// stores, no read-for-ownership), so per input byte it moves (fold_width + 2) / fold_width
/// bytes: a bandwidth-bound fold (all cores) reaches at most 8 / 10 of a plain read of the inputs
/// at width 8 and 32 / 34 at width 32; one thread, bound by latency more than bandwidth, gets
/// closer (aggregation_bench and the README give the figures).
///
/// Finiteness is checked inside the fold pass, not on arrival: a separate scan would read every
/// update twice and roughly halve throughput (the fold is bound by memory read bandwidth). So an
/// update with NaN or Inf is found when its fold runs, which is the Accumulate that fills the
/// queue to fold_width, or Finalize (always Finalize with order_independent). The fold writes into
/// a second buffer and commits only when all its outputs are finite, so such an update never
/// touches the round's state: the call that ran the fold drops it (accepted() stops counting it),
/// keeps the other queued updates and returns INVALID_ARGUMENT naming the dropped client(s). The
/// round then goes on as if the dropped updates had never been given; after such an error from
/// Finalize, call Finalize again to aggregate the rest. Layout and sample-count errors are reported
/// by the Accumulate call itself.
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
  core::ModelState layout_;        // the global layout with no values, copied into mean_
  double folded_weight_ = 0.0;     // W: total samples behind mean_
  bool mean_initialised_ = false;  // false until the first fold (which writes without reading)
  std::vector<ClientUpdate> pending_;
  int accepted_ = 0;
};

}  // namespace fedml::algorithms
