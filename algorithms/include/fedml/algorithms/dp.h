// Differential privacy for federated averaging: per-client clipping, Gaussian noise and an RDP
// accountant for the subsampled Gaussian mechanism.
//
// Central DP (DP-FedAvg, McMahan et al. 2018, in the fixed-clipping form Flower and Opacus use):
// the server clips each client's delta x_i - g to L2 norm <= C, averages the clipped deltas
// without weights (a sample count would let one client outweigh the clipping), adds Gaussian
// noise of standard deviation noise_multiplier * C / n to every coordinate of the mean, and
// returns g + that. Local DP: each client clips its own delta and adds noise of standard
// deviation noise_multiplier * C before the update leaves it, so the server never sees a clean
// update.
//
// What is accounted is the mechanism that runs (DpSampling): the round controller draws a
// uniformly random sample of fixed size m out of N clients, so the sample's size is public and
// two neighbouring federations differ in one client's data (replace one), not in whether it is
// there. Replacing one clipped delta by another moves the sum by up to 2C, and the accountant
// composes the Renyi DP of that subsampled Gaussian (Wang, Balle and Kasiviswanathan 2019, with
// q = m / N; for local DP q = 1, a client's release in every round, inputs 2C apart). The Poisson
// accountant (Mironov, Talwar and Zhang 2019; add or remove one client, sensitivity C) is kept
// for callers whose sampling is Poisson. Both convert to (epsilon, delta) by the conversion
// TensorFlow Privacy and Opacus use (Balle et al. 2020, Theorem 21), minimised over a fixed set
// of orders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "fedml/core/status.h"

namespace fedml::algorithms {

/// The orders alpha over which the accountant minimises: TF Privacy's compute_dp_sgd_privacy
/// list, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, then 5, 6, ..., 63 and 128, 256, 512
/// (72 orders). Chosen over Opacus's list (1.1, 1.2, ..., 10.9, 12, ..., 63) because its large
/// orders keep the bound tight for the small epsilons of heavily noised runs.
const std::vector<double>& DefaultRdpOrders();

/// How a round samples clients, and with it the neighbouring relation the guarantee is stated for.
enum class DpSampling {
  /// Each client independently with probability q; neighbours add or remove one client, so the
  /// noised sum moves by at most C. The guarantee needs the draws to be secret.
  kPoisson,
  /// A uniformly random subset of fixed size m = q N (what SampleClients draws); neighbours
  /// replace one client's data by another's, so the noised sum moves by at most 2C. The
  /// amplification by sampling needs the draw to be secret from the observer.
  kWithoutReplacement,
};

/// RDP of one step of the sampled Gaussian mechanism at order `alpha` (> 1), sampling rate q in
/// [0, 1] and noise multiplier sigma >= 0. q = 1 is the plain Gaussian mechanism, alpha / (2
/// sigma^2). Exact for integer alpha, by the series of Mironov et al. for fractional alpha.
/// q = 0 gives 0; sigma = 0 (q > 0) or alpha = inf gives +inf; so does a fractional-order series
/// that fails numerically (no privacy is claimed rather than a wrong one). NaN for arguments
/// outside those ranges.
double SampledGaussianRdp(double q, double sigma, double alpha);

/// RDP of one step of the Gaussian mechanism on a sample drawn without replacement, at order
/// `alpha` (> 1), sampling fraction q = m / N in [0, 1] and noise multiplier sigma >= 0, where
/// sigma is the noise's standard deviation over the replace-one L2 sensitivity (for a sum of
/// deltas clipped to C: noise_multiplier / 2). Wang, Balle and Kasiviswanathan 2019 ("Subsampled
/// Renyi differential privacy and analytical moments accountant"), Theorem 27 of the arXiv
/// version (1808.00087) for integer orders up to 256, its general bound (Theorem 9) above, and
/// the linear interpolation of the cumulant (Corollary 10) for fractional orders: the bound
/// Google's dp_accounting computes for SampledWithoutReplacementDpEvent. q = 1 is the plain
/// Gaussian mechanism, alpha / (2 sigma^2). q = 0 gives 0; sigma = 0 (q > 0) or alpha = inf gives
/// +inf; NaN for arguments outside those ranges.
double SampledWithoutReplacementGaussianRdp(double q, double sigma, double alpha);

/// epsilon after `steps` compositions at `delta`, minimised over DefaultRdpOrders(), clamped at
/// >= 0, for a noise of standard deviation sigma * C added to a sum of contributions clipped to
/// C, sampled as `sampling` says with rate (or fraction) q: kPoisson composes
/// SampledGaussianRdp(q, sigma), kWithoutReplacement SampledWithoutReplacementGaussianRdp(q,
/// sigma / 2) (replace-one sensitivity 2C). Per order: Balle et al. 2020 Theorem 21, rdp - (log
/// delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha), and 0 where delta^2 > 1 -
/// exp(-rdp) (the KL bound; as TF Privacy's dp_accounting does). 0 when steps or q is 0; +inf
/// when sigma is 0 (otherwise). INVALID_ARGUMENT for q outside [0, 1], sigma < 0 or not finite,
/// steps < 0 or delta outside (0, 1). The default is the accountant of the published figures;
/// the library's own mechanisms pass kWithoutReplacement.
Result<double> DpEpsilon(double q, double sigma, std::int64_t steps, double delta,
                         DpSampling sampling = DpSampling::kPoisson);

/// The smallest noise multiplier (to 1e-4 relative, erring high: DpEpsilon of the result is at
/// most `epsilon`) whose epsilon after `steps` steps, accounted as `sampling` says, is at most
/// `epsilon`; 0 when steps or q is 0 or epsilon is +inf. INVALID_ARGUMENT for non-positive
/// epsilon, bad arguments as above, or a target no noise multiplier up to 1e6 reaches.
Result<double> DpNoiseMultiplierFor(double q, std::int64_t steps, double epsilon, double delta,
                                    DpSampling sampling = DpSampling::kPoisson);

/// Scales x - g (flat, length n) so its L2 norm is at most `clip` (> 0), in place on x; returns
/// the norm before clipping (computed in float64). x is untouched when the norm is within `clip`,
/// or is NaN/Inf (a non-finite value: the caller refuses such an update). The clipped x is
/// rounded to float32, so its delta's norm is `clip` up to float32 ulps of |g|.
double ClipDeltaInPlace(float* x, const float* g, std::size_t n, double clip);

/// Adds N(0, stddev^2) (stddev >= 0) to each of x[0..n), drawing one core::Rng::Normal() per
/// element in index order; draws nothing when stddev is 0.
void AddGaussianNoise(float* x, std::size_t n, double stddev, core::Rng& rng);

struct DpOptions {
  double clipping_norm = 1.0;     // C, > 0
  double noise_multiplier = 1.0;  // sigma, >= 0 (0: clipping only, epsilon reported as inf)
  double delta = 1e-5;            // for the reported epsilon, in (0, 1)
  double sampling_rate = 0.1;     // q = clients per round / clients in total, in (0, 1]
  /// How the rounds sample: the round controller draws a fixed-size sample, accounted with
  /// replace-one neighbours (sensitivity 2C). kPoisson only for a caller that samples that way.
  DpSampling sampling = DpSampling::kWithoutReplacement;
  /// Noise of round r is drawn from core::Rng(DeriveSeed(seed, {r})), r = RoundInfo::round.
  /// The guarantee holds only while the seed is secret: whoever knows it can regenerate and
  /// subtract the noise (and core::Rng is not a cryptographic generator). Set it from a secret
  /// random source in deployment; the fixed default is for reproducible simulation.
  std::uint64_t seed = 0;
};

/// Central DP-FedAvg as an Aggregator (see the file comment). Streams: memory O(model): the
/// global model and a float64 sum of the clipped deltas, each formed in float64 as
/// min(1, C / ||x - g||) (x - g), so its norm is C up to double rounding. Linear (the noise is
/// independent of the inputs), so secure aggregation may sit under it.
/// As in Flower's server-side fixed clipping, the mean divides by the number of updates received;
/// the accountant's figure is the guarantee of the noised sum (replace-one sensitivity 2C, noise
/// sigma C), which treats that count as public (McMahan et al. 2018 divide by the expected count
/// instead). RoundFigures(): "dp_epsilon", "dp_delta", "dp_noise_stddev", "dp_clipped_fraction"
/// (updates whose norm exceeded C), after each Finalize, epsilon counting every round finalized so
/// far (DpEpsilon(sampling_rate, noise_multiplier, rounds, delta, sampling); +inf with
/// noise_multiplier 0); empty before the first Finalize. A round abandoned by a second Begin
/// releases nothing and is not counted. Accumulate refuses (INVALID_ARGUMENT, round unchanged) a
/// layout that differs from the global model, num_samples <= 0 (the sample count is not used as
/// a weight but must be valid) and NaN/Inf; Begin refuses an empty or non-finite global model.
/// INVALID_ARGUMENT from the constructor helper for options out of range.
Result<std::unique_ptr<Aggregator>> CreateCentralDpAggregator(const DpOptions& options);

/// Local DP, on the client: clips `update` - `global` to options.clipping_norm and adds noise of
/// standard deviation noise_multiplier * clipping_norm from `rng` (one Normal() per element, in
/// index order; none when noise_multiplier is 0), rounding to float32 once. INVALID_ARGUMENT,
/// with `update` untouched, for options out of range (as for the central aggregator), layouts
/// that differ, or NaN/Inf in either model.
Status ApplyLocalDp(core::ModelState& update, const core::ModelState& global,
                    const DpOptions& options, core::Rng& rng);

}  // namespace fedml::algorithms
