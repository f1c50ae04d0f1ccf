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
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/bytes.h"
#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::core::security {
class Keystream;  // fedml/core/security/crypto.h
}

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

/// The noise of a release: the discrete Gaussian mechanism on a grid (Canonne, Kamath and
/// Steinke 2020, "The Discrete Gaussian for Differential Privacy"). A float Gaussian added in
/// floating point leaks its input through which outputs it can and cannot produce (Mironov
/// 2012's attack on the Laplace mechanism; Jin et al. 2022 for Gaussian samplers), so each
/// coordinate is snapped to a multiple of the granularity gamma (a power of two) and an exact
/// integer draw Z ~ N_Z(0, sigma2) is added: every release is (round(x / gamma) + Z) gamma,
/// computed exactly in float64, whatever the input. Snapping n coordinates moves a difference
/// of L2 norm 2C (clip C, replace one) by at most gamma sqrt(n), so the noise is planned for
/// sensitivity 2C + gamma sqrt(n): sigma2 gamma^2 >= (noise_multiplier (C + gamma sqrt(n) / 2))^2.
/// The discrete Gaussian of parameter sigma satisfies the Renyi DP curve of the continuous one
/// (CKS Theorem 4: alpha Delta^2 / (2 sigma^2) for integer queries of L2 sensitivity Delta),
/// which is all the without-replacement accountant uses, so DpEpsilon's figure holds for it.
struct DiscreteGaussianPlan {
  double granularity = 0.0;  // gamma, a power of two (0 when there is no noise)
  std::uint64_t sigma2 = 0;  // the integer noise's parameter sigma^2, in units of gamma^2; 0: none
  double stddev = 0.0;       // sqrt(sigma2) gamma, in the release's units
};

/// The plan for a release of n coordinates at clip C = `clip` (> 0) and `noise_multiplier`
/// (>= 0; 0 gives the empty plan: no snapping, no noise). gamma is the largest power of two with
/// gamma sqrt(n) <= C / 1024 (the snapping costs at most 0.1% more noise), doubled while
/// sigma2 would exceed 2^48 (the sampler's exact integer arithmetic stays within 128 bits);
/// sigma2 is rounded up, never down.
DiscreteGaussianPlan PlanDiscreteGaussian(double noise_multiplier, double clip, std::size_t n);

/// Exact sampler of N_Z(0, sigma2) (CKS Algorithms 1-3: rejection from a discrete Laplace
/// with Bernoulli(exp(-x)) trials for rational x, integer arithmetic only, so no floating-point
/// rounding shapes the distribution; a Laplace draw beyond 256 t, probability below e^-255, is
/// redrawn). sigma2 in [1, 2^48]. Randomness from `stream` (borrowed; it must outlive the
/// sampler); its failure shows in stream.status() and the draws are then not random.
/// Not thread-safe. Its run time depends on the values drawn (rejection sampling): a timing
/// side channel docs/security.md lists as a known gap.
class DiscreteGaussianSampler {
 public:
  DiscreteGaussianSampler(std::uint64_t sigma2, core::security::Keystream& stream);
  std::int64_t Next();

 private:
  unsigned __int128 UniformBelow(unsigned __int128 bound);
  bool Bernoulli(unsigned __int128 num, unsigned __int128 den);
  bool BernoulliExpMinusAtMostOne(unsigned __int128 num, unsigned __int128 den);
  bool BernoulliExpMinus(unsigned __int128 num, unsigned __int128 den);
  std::int64_t DiscreteLaplace();

  std::uint64_t sigma2_;
  std::uint64_t t_;  // floor(sigma) + 1, the Laplace scale
  core::security::Keystream& stream_;
};

/// Applies `plan` to x[0..n) in place: x[i] = (round(x[i] / gamma) + Z_i) gamma, Z_i drawn in
/// index order from a sampler over Keystream(key32). An empty plan (sigma2 0) leaves x as it is.
/// INVALID_ARGUMENT for a key other than 32 bytes or a coordinate that is not finite or too
/// large for the grid (|x| / gamma >= 2^52), x then unspecified; INTERNAL when OpenSSL fails.
Status AddDiscreteGaussianNoise(double* x, std::size_t n, const DiscreteGaussianPlan& plan,
                                const core::Bytes& key32);

struct DpOptions {
  double clipping_norm = 1.0;     // C, > 0
  double noise_multiplier = 1.0;  // sigma, >= 0 (0: clipping only, epsilon reported as inf)
  double delta = 1e-5;            // for the reported epsilon, in (0, 1)
  double sampling_rate = 0.1;     // q = clients per round / clients in total, in (0, 1]
  /// How the rounds sample: the round controller draws a fixed-size sample, accounted with
  /// replace-one neighbours (sensitivity 2C). kPoisson only for a caller that samples that way.
  DpSampling sampling = DpSampling::kWithoutReplacement;
  /// Where the noise's randomness comes from (DpNoiseKey): noise_key when set, else the seed.
  /// The guarantee holds only while that is secret: whoever knows it can regenerate and subtract
  /// the noise. Deployment sets noise_key to 32 bytes from OpenSSL's CSPRNG; simulation leaves it
  /// empty, so the run's seed makes it reproducible (and public).
  std::uint64_t seed = 0;
  core::Bytes noise_key;
};

/// The 32-byte key of one release's noise stream: HKDF-SHA256 of options.noise_key (or, when it
/// is empty, of the seed's 8 little-endian bytes) with the context string "fedml-dp-noise
/// <purpose> <context words...>", so every round and client draws from its own stream.
/// INTERNAL when OpenSSL fails.
Result<core::Bytes> DpNoiseKey(const DpOptions& options, const std::string& purpose,
                               std::initializer_list<std::uint64_t> context);

/// Central DP-FedAvg as an Aggregator (see the file comment). Streams: memory O(model): the
/// global model and a float64 sum of the clipped deltas, each formed in float64 as
/// min(1, C / ||x - g||) (x - g), so its norm is C up to double rounding. Finalize adds the
/// discrete Gaussian noise of PlanDiscreteGaussian(noise_multiplier, C, n) to that sum (key
/// DpNoiseKey(options, "central", {round})) and returns g + noised sum / count. Linear (the noise
/// is independent of the inputs), so secure aggregation may sit under it. As in Flower's
/// server-side fixed clipping, the mean divides by the number of updates received; the accountant's
/// figure is the guarantee of the noised sum (replace-one sensitivity 2C, noise sigma C), which
/// treats that count as public (McMahan et al. 2018 divide by the expected count instead).
/// RoundFigures(): "dp_epsilon", "dp_delta", "dp_noise_stddev", "dp_clipped_fraction" (updates
/// whose norm exceeded C), after each Finalize, epsilon counting every round finalized so far
/// (DpEpsilon(sampling_rate, noise_multiplier, rounds, delta, sampling); +inf with noise_multiplier
/// 0); empty before the first Finalize. A round abandoned by a second Begin releases nothing and is
/// not counted. Accumulate refuses (INVALID_ARGUMENT, round unchanged) a layout that differs from
/// the global model, num_samples <= 0 (the sample count is not used as a weight but must be valid)
/// and NaN/Inf; Begin refuses an empty or non-finite global model. INVALID_ARGUMENT from the
/// constructor helper for options out of range.
Result<std::unique_ptr<Aggregator>> CreateCentralDpAggregator(const DpOptions& options);

/// Local DP, on the client: clips `update` - `global` to options.clipping_norm in float64, adds
/// the discrete Gaussian noise of PlanDiscreteGaussian(noise_multiplier, C, n) drawn from
/// Keystream(noise_key32) (none when noise_multiplier is 0), and rounds global + delta to float32
/// once. noise_key32: DpNoiseKey(options, "local", {round, client}), 32 bytes. INVALID_ARGUMENT,
/// with `update` untouched, for options out of range (as for the central aggregator), layouts
/// that differ, or NaN/Inf in either model.
Status ApplyLocalDp(core::ModelState& update, const core::ModelState& global,
                    const DpOptions& options, const core::Bytes& noise_key32);

}  // namespace fedml::algorithms
