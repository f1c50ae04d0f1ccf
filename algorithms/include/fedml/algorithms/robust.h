// Robust (Byzantine-tolerant) aggregation: rules that bound what a minority of attacking clients
// can do to the global model. Each is an Aggregator, selected by FedML's `defense_type` names.
//
// All but norm-difference clipping must see every update at once (needs_all_updates()), so the
// server holds the round's n updates: memory O(n x model). They are unweighted, as in the papers
// and in FedML (a sample count is a claim an attacker controls); norm-difference clipping is the
// exception: it clips, then takes FedAvg's sample-weighted mean.
//
// Every rule works on the deltas x_i - g against the global model g given to Begin (the
// coordinate-wise rules and the distance-based selections are translation-equivariant, so this
// equals working on the models themselves), accumulates in float64 and rounds once to float32.
// Updates are kept in arrival order; ties (equal distances or scores) are broken by that order,
// so the result is a pure function of the inputs in order.
//
// The rules, with n accepted updates:
//   wise_median      per coordinate, the middle value; for even n the float64 mean of the two
//                    middle values.
//   trimmed_mean     per coordinate, drops floor(beta * n) smallest and as many largest values
//                    and takes the mean of the rest.
//   krum             the update with the lowest Krum score (see KrumScores), returned exactly.
//   multikrum        the mean of the m lowest-scored updates (scores computed once, over all n).
//   bulyan           selects theta = n - 2f updates by applying Krum theta times to the updates
//                    not yet selected (one distance matrix; a remaining set of r scores with
//                    max(r - f - 2, 0) neighbours), then per coordinate takes the mean of the
//                    theta - 2f selected values closest to their median; between a value below
//                    and one above the median at the same distance, the one below.
//   geo_median       smoothed Weiszfeld from the mean of the deltas z_i: z <- sum w_i z_i /
//                    sum w_i with w_i = 1 / max(nu, ||z - z_i||); stops after the first step
//                    with ||z' - z|| <= tolerance * ||z'|| (norms of deltas) or after
//                    geo_median_max_iterations steps.
//   norm_diff_clipping  each delta scaled by 1 / max(1, ||x_i - g|| / norm_bound) over the whole
//                    flat model (FedML skips BatchNorm statistics; this clips every tensor), then
//                    g + the num_samples-weighted mean of the clipped deltas. Memory O(model):
//                    a float64 running sum and up to 8 held-back updates.
//
// Lifecycle as FedAvg: Begin (refuses an empty or non-finite global model) -> Accumulate* ->
// Finalize; Begin again starts a new round. Accumulate refuses, leaving the round as it was, an
// update whose layout differs from the global model's, a non-positive num_samples, or a NaN or
// Inf (checked on arrival, one pass over the update). A FAILED_PRECONDITION from Finalize (too
// few updates) leaves the round open for more. After a Finalize, RoundFigures() reports
// "krum_selected_client", "multikrum_selected", "bulyan_selected",
// "trimmed_mean_trimmed_per_side", "geo_median_iterations" or "norm_diff_clipped".
//
// Accuracy: order statistics and selections are exact; means are float64 sums rounded once.
// Pairwise distances (krum, multikrum, bulyan) use float32 partial sums of 16 squares folded
// into float64, a relative error of a few float32 ulps (differences below ~1e-19 lose precision
// to float underflow; overflowing pairs are redone in float64).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// Settings of FedML's `defense_args`; each rule reads the fields that concern it.
struct RobustOptions {
  /// wise_median | trimmed_mean | krum | multikrum | bulyan | geo_median | norm_diff_clipping.
  std::string defense_type;
  /// f, the number of attackers tolerated (krum, multikrum, bulyan). >= 0.
  int byzantine_client_num = 0;
  /// multikrum: how many of the best-scored updates are averaged (m). 0 means n - f. krum
  /// ignores it (it keeps exactly one).
  int krum_param_m = 0;
  /// trimmed_mean: the fraction of updates dropped at each end of every coordinate,
  /// floor(beta * n) each side; in [0, 0.5).
  double beta = 0.1;
  /// norm_diff_clipping: the largest L2 norm of x_i - g let through; > 0.
  double norm_bound = 5.0;
  /// geo_median (Weiszfeld with smoothing nu): iteration cap and the relative change of the
  /// estimate at which it stops.
  int geo_median_max_iterations = 100;
  double geo_median_tolerance = 1e-6;
  double geo_median_nu = 1e-6;
  /// Threads a round's work is split over, the caller's included; <= 0: every core. Split by
  /// ranges of parameters (at least 64K each) or by fixed chunks of them whose partial sums are
  /// added in chunk order, so the result is the same bits for any count. Used by wise_median,
  /// trimmed_mean, bulyan's coordinate stage, the pairwise distances of krum, multikrum and
  /// bulyan, and multikrum's mean; geo_median and norm_diff_clipping run on the caller's thread.
  /// The arrival checks (one scan of each update for NaN and Inf) run in Accumulate, on the
  /// caller's thread.
  int threads = 1;
};

/// The rule named by options.defense_type. INVALID_ARGUMENT for an unknown name (the message
/// lists the allowed ones) or an option out of range (the message names the option and its
/// allowed range). Preconditions that depend on the number of updates n are checked by
/// Finalize, which returns FAILED_PRECONDITION saying what the rule needs, e.g.
/// "krum needs n >= 2f + 3 updates (f = 2: at least 7), got 5".
Result<std::unique_ptr<Aggregator>> CreateRobustAggregator(const RobustOptions& options);

/// The defense_type names CreateRobustAggregator accepts.
std::vector<std::string> DefenseTypeNames();

/// Krum scores (Blanchard et al. 2017): for each update, the sum of squared L2 distances to its
/// n - f - 2 nearest other updates. Exposed for tests and for Bulyan. `updates` are flat vectors
/// of length `dim` (finite values). FAILED_PRECONDITION unless n >= 2f + 3; INVALID_ARGUMENT for
/// f < 0. Duplicated updates get bit-identical scores. The distances are split over up to
/// `threads` threads (<= 0: one) by fixed chunks of coordinates whose partial sums are added in
/// chunk order, so the scores are the same bits for any thread count.
Result<std::vector<double>> KrumScores(const std::vector<const float*>& updates, std::size_t dim,
                                       int f, int threads = 1);

}  // namespace fedml::algorithms
