#include "fedml/algorithms/dp.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fedml::algorithms {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Log-space arithmetic. 0 is -inf. A port of TF Privacy's rdp_accountant helpers
// (tensorflow_privacy/privacy/analysis/rdp_accountant.py, kept in Google's dp_accounting).

// log(exp(a) + exp(b)).
double LogAdd(double a, double b) {
  const double lo = std::min(a, b);
  const double hi = std::max(a, b);
  if (lo == -kInf) return hi;
  return std::log1p(std::exp(lo - hi)) + hi;
}

// log(exp(a) - exp(b)) for a >= b. False when a < b (the series went wrong numerically); the
// caller then reports no privacy rather than a made-up figure.
bool LogSub(double a, double b, double* out) {
  if (a < b) return false;
  if (b == -kInf) {
    *out = a;
  } else if (a == b) {
    *out = -kInf;
  } else {
    // expm1 overflows only when a - b > ~709, where exp(b) is negligible next to exp(a).
    const double d = std::expm1(a - b);
    *out = std::isinf(d) ? a : std::log(d) + b;
  }
  return true;
}

// log(erfc(x)), accurate in the far right tail where erfc underflows. erfc(20) is ~5e-176, still
// a normal double with full relative precision; beyond that the Laurent series at infinity TF
// Privacy falls back on (error O(x^-10), < 1e-13 at x = 20) takes over.
double LogErfc(double x) {
  if (x < 20.0) return std::log(std::erfc(x));
  const double x2 = x * x;
  const double r = 1.0 / x2;
  return -0.5 * std::log(M_PI) - std::log(x) - x2 +
         r * (-0.5 + r * (0.625 + r * (-37.0 / 24.0 + r * (353.0 / 64.0))));
}

// log(A_alpha) for integer alpha >= 2 and 0 < q < 1 (Mironov, Talwar, Zhang 2019, Section 3.3):
//   A_alpha = sum_{i=0}^{alpha} C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2)).
// The binomial coefficients are formed incrementally in log space (std::lgamma writes the global
// signgam and so is not thread-safe).
double LogAInt(double q, double sigma, std::int64_t alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double two_s2 = 2.0 * sigma * sigma;
  double log_a = -kInf;
  double log_binom = 0.0;  // log C(alpha, 0)
  for (std::int64_t i = 0; i <= alpha; ++i) {
    if (i > 0) {
      log_binom += std::log(static_cast<double>(alpha - i + 1)) - std::log(static_cast<double>(i));
    }
    const double di = static_cast<double>(i);
    const double s =
        log_binom + di * log_q + static_cast<double>(alpha - i) * log_1mq + (di * di - di) / two_s2;
    log_a = LogAdd(log_a, s);
  }
  return log_a;
}

// log(A_alpha) for fractional alpha > 1 and 0 < q < 1: the two half-line integrals split at z0,
// each expanded in the generalised binomial series, summed until both terms fall below e^-30
// (the stopping rule of TF Privacy). +inf (no privacy claimed) if the series misbehaves
// numerically or has not converged after kMaxTerms terms.
double LogAFrac(double q, double sigma, double alpha) {
  constexpr int kMaxTerms = 100000;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double s2 = sigma * sigma;
  const double z0 = s2 * (std::log(1.0 / q - 1.0)) + 0.5;
  const double sqrt2_sigma = std::sqrt(2.0) * sigma;
  const double log_half = std::log(0.5);
  double log_a0 = -kInf;
  double log_a1 = -kInf;
  double log_abs_coef = 0.0;  // log |C(alpha, 0)|
  bool positive = true;       // sign of C(alpha, i)
  for (int i = 0; i < kMaxTerms; ++i) {
    if (i > 0) {
      // C(alpha, i) = C(alpha, i-1) (alpha - i + 1) / i.
      const double f = alpha - static_cast<double>(i) + 1.0;
      if (f == 0.0) return kInf;  // unreachable for fractional alpha
      log_abs_coef += std::log(std::fabs(f)) - std::log(static_cast<double>(i));
      if (f < 0.0) positive = !positive;
    }
    const double di = static_cast<double>(i);
    const double j = alpha - di;
    const double log_t0 = log_abs_coef + di * log_q + j * log_1mq;
    const double log_t1 = log_abs_coef + j * log_q + di * log_1mq;
    const double log_e0 = log_half + LogErfc((di - z0) / sqrt2_sigma);
    const double log_e1 = log_half + LogErfc((z0 - j) / sqrt2_sigma);
    const double log_s0 = log_t0 + (di * di - di) / (2.0 * s2) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * s2) + log_e1;
    if (positive) {
      log_a0 = LogAdd(log_a0, log_s0);
      log_a1 = LogAdd(log_a1, log_s1);
    } else if (!LogSub(log_a0, log_s0, &log_a0) || !LogSub(log_a1, log_s1, &log_a1)) {
      return kInf;
    }
    if (std::max(log_s0, log_s1) < -30.0) return LogAdd(log_a0, log_a1);
  }
  return kInf;
}

// ---------------------------------------------------------------------------------------------
// Sampling without replacement (Wang, Balle, Kasiviswanathan 2019, arXiv 1808.00087), as Google's
// dp_accounting computes it (_compute_rdp_sample_wor_gaussian). sigma is the noise over the
// replace-one sensitivity, so the base mechanism's RDP is eps(l) = l / (2 sigma^2).

// Integer orders up to this use Theorem 27's forward differences; larger ones the general bound.
constexpr int kWorMaxDiffOrder = 256;

// log |Delta^k h(0)| for k = 0..n, h(l) = exp((l - 1) eps(l)) = exp((l - 1) l / (2 sigma^2)): n
// rounds of neighbour differences of log h(0..n), each value kept as a sign and a log magnitude
// (differences of nearly equal values lose precision, as in dp_accounting; an exact cancellation
// gives -inf, which the caller does not trust: see LogAWor).
std::vector<double> WorLogForwardDiffs(double sigma, int n) {
  const double two_s2 = 2.0 * sigma * sigma;
  std::vector<double> mag(static_cast<std::size_t>(n) + 1);
  std::vector<char> pos(static_cast<std::size_t>(n) + 1, 1);
  for (int j = 0; j <= n; ++j) {
    mag[static_cast<std::size_t>(j)] = static_cast<double>(j - 1) * static_cast<double>(j) / two_s2;
  }
  std::vector<double> out(static_cast<std::size_t>(n) + 1);
  out[0] = mag[0];
  for (int k = 1; k <= n; ++k) {
    for (int j = 0; j + k <= n; ++j) {  // v[j] = v[j + 1] - v[j]
      const auto a = static_cast<std::size_t>(j);
      const auto b = a + 1;
      if (pos[a] == pos[b]) {
        const double hi = std::max(mag[a], mag[b]);
        const double lo = std::min(mag[a], mag[b]);
        const bool b_larger = mag[b] > mag[a];
        const double m = hi == lo ? -kInf : hi + std::log1p(-std::exp(lo - hi));
        // Both positive: the sign is that of mag[b] - mag[a]; both negative: the opposite.
        pos[a] = static_cast<char>(pos[b] ? b_larger || hi == lo : !b_larger);
        mag[a] = m;
      } else {
        mag[a] = LogAdd(mag[a], mag[b]);
        pos[a] = pos[b];
      }
    }
    out[static_cast<std::size_t>(k)] = mag[0];
  }
  return out;
}

// (alpha - 1) times the RDP bound at integer alpha >= 2, 0 < q < 1: log of
//   1 + q^2 C(alpha, 2) min(4 (e^eps(2) - 1), 2 e^eps(2))
//     + sum_{i=3}^{alpha} q^i C(alpha, i) min(4 sqrt(D_lo D_hi), 2 e^((i - 1) eps(i)))
// with D_lo, D_hi the forward differences of h at the even orders 2 floor(i/2), 2 ceil(i/2)
// (Theorem 27). `diffs` from WorLogForwardDiffs, at least alpha + 1 long, or empty for the
// general bound (Theorem 9: the second term of each min). A difference that cancelled to -inf is
// not believed: that term takes the general bound, which is never smaller.
double LogAWor(double q, double sigma, std::int64_t alpha, const std::vector<double>& diffs) {
  const double two_s2 = 2.0 * sigma * sigma;
  const double log_q = std::log(q);
  const double eps2 = 2.0 / two_s2;
  const bool use_diffs = alpha <= kWorMaxDiffOrder && !diffs.empty();
  double log_a = 0.0;      // log 1
  double log_binom = 0.0;  // log C(alpha, i), formed incrementally (lgamma is not thread-safe)
  for (std::int64_t i = 1; i <= alpha; ++i) {
    log_binom += std::log(static_cast<double>(alpha - i + 1)) - std::log(static_cast<double>(i));
    if (i == 1) continue;
    const double di = static_cast<double>(i);
    double t;
    if (i == 2) {
      t = std::min(std::log(4.0) + std::log(std::expm1(eps2)), eps2 + std::log(2.0));
    } else {
      t = std::log(2.0) + (di - 1.0) * di / two_s2;
      if (use_diffs) {
        const double d_lo = diffs[static_cast<std::size_t>(2 * (i / 2))];
        const double d_hi = diffs[static_cast<std::size_t>(2 * ((i + 1) / 2))];
        if (d_lo > -kInf && d_hi > -kInf) t = std::min(t, std::log(4.0) + 0.5 * (d_lo + d_hi));
      }
    }
    log_a = LogAdd(log_a, t + di * log_q + log_binom);
  }
  return log_a;
}

// The RDP at `alpha` > 1 for 0 < q < 1, sigma > 0, finite alpha; `diffs` as for LogAWor, long
// enough for ceil(alpha) + 1 when ceil(alpha) <= kWorMaxDiffOrder.
double WorRdp(double q, double sigma, double alpha, const std::vector<double>& diffs) {
  if (alpha == std::floor(alpha)) {
    return LogAWor(q, sigma, static_cast<std::int64_t>(alpha), diffs) / (alpha - 1.0);
  }
  // Corollary 10: the cumulant (alpha - 1) eps(alpha) is convex, so the chord between the
  // neighbouring integers bounds it; order 1's cumulant is 0.
  const auto lo = static_cast<std::int64_t>(std::floor(alpha));
  const double x = lo == 1 ? 0.0 : LogAWor(q, sigma, lo, diffs);
  const double y = LogAWor(q, sigma, lo + 1, diffs);
  const double t = alpha - static_cast<double>(lo);
  return ((1.0 - t) * x + t * y) / (alpha - 1.0);
}

// The RDP -> (epsilon, delta) conversion for one order, or +inf. Balle et al. 2020 ("Hypothesis
// testing interpretations and Renyi differential privacy", Theorem 21), the same bound as
// Canonne, Kamath and Steinke 2020 Proposition 12 that TF Privacy / dp_accounting use:
//   eps = rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha).
// As in dp_accounting, a tiny divergence is bounded through KL instead: KL <= D_alpha for alpha
// >= 1, and TV <= sqrt(1 - exp(-KL)) (Bretagnolle-Huber), so delta^2 > 1 - exp(-rdp) gives
// (0, delta)-DP.
double EpsilonAtOrder(double alpha, double rdp, double delta) {
  if (!(rdp < kInf)) return kInf;
  if (delta * delta + std::expm1(-rdp) > 0.0) return 0.0;
  return rdp - (std::log(delta) + std::log(alpha)) / (alpha - 1.0) +
         std::log((alpha - 1.0) / alpha);
}

Status CheckAccountantArgs(double q, std::int64_t steps, double delta) {
  if (!(q >= 0.0 && q <= 1.0)) {
    return Status::InvalidArgument("DP accountant: sampling rate q is " + std::to_string(q) +
                                   "; allowed: [0, 1]");
  }
  if (steps < 0) {
    return Status::InvalidArgument("DP accountant: steps is " + std::to_string(steps) +
                                   "; allowed: >= 0");
  }
  if (!(delta > 0.0 && delta < 1.0)) {
    return Status::InvalidArgument("DP accountant: delta is " + std::to_string(delta) +
                                   "; allowed: (0, 1)");
  }
  return Status::Ok();
}

Status CheckOptions(const DpOptions& o, const std::string& who) {
  if (!(o.clipping_norm > 0.0 && std::isfinite(o.clipping_norm))) {
    return Status::InvalidArgument(who + ": clipping_norm is " + std::to_string(o.clipping_norm) +
                                   "; allowed: > 0 (finite)");
  }
  if (!(o.noise_multiplier >= 0.0 && std::isfinite(o.noise_multiplier))) {
    return Status::InvalidArgument(who + ": noise_multiplier is " +
                                   std::to_string(o.noise_multiplier) +
                                   "; allowed: >= 0 (finite; 0 = clipping only, no privacy)");
  }
  if (!(o.delta > 0.0 && o.delta < 1.0)) {
    return Status::InvalidArgument(who + ": delta is " + std::to_string(o.delta) +
                                   "; allowed: (0, 1)");
  }
  if (!(o.sampling_rate > 0.0 && o.sampling_rate <= 1.0)) {
    return Status::InvalidArgument(who + ": sampling_rate is " + std::to_string(o.sampling_rate) +
                                   "; allowed: (0, 1]");
  }
  return Status::Ok();
}

// L2 norm of x - g in float64. NaN or Inf when a value of x or g is not finite: the squares of
// finite floats (< 1.2e77) cannot overflow a double sum of any realistic length.
double DeltaNorm(const float* x, const float* g, std::size_t n) {
  double ss = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(g[i]);
    ss += d * d;
  }
  return std::sqrt(ss);
}

// The factor that brings a delta of L2 norm `norm` within `clip`.
double ClipScale(double norm, double clip) { return norm > clip ? clip / norm : 1.0; }

// ---------------------------------------------------------------------------------------------
// Central DP-FedAvg.

class CentralDpAggregator final : public Aggregator {
 public:
  explicit CentralDpAggregator(const DpOptions& options) : options_(options) {}

  std::string name() const override { return "DP-FedAvg"; }
  bool is_linear() const override { return true; }
  bool needs_all_updates() const override { return false; }

  Status Begin(const core::ModelState& global, const RoundInfo& info) override {
    if (global.empty())
      return Status::InvalidArgument("DP-FedAvg: the global model has no tensors");
    FEDML_RETURN_IF_ERROR(global.CheckFinite().WithContext("DP-FedAvg: the global model"));
    global_ = global;
    // assign() keeps the capacity across rounds of one model (no re-faulting model-sized pages).
    sum_.assign(global.numel(), 0.0);
    round_ = info.round;
    accepted_ = 0;
    clipped_ = 0;
    begun_ = true;
    return Status::Ok();
  }

  Status Accumulate(ClientUpdate update) override {
    if (!begun_) {
      return Status::FailedPrecondition(
          "DP-FedAvg: Accumulate called before Begin (or after Finalize)");
    }
    const std::string who = "DP-FedAvg: update from client " + std::to_string(update.client_id);
    FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(update.state, who));
    if (update.num_samples <= 0) {
      return Status::InvalidArgument(who + " has num_samples " +
                                     std::to_string(update.num_samples) +
                                     "; the sample count must be > 0");
    }
    const float* x = update.state.data();
    const float* g = global_.data();
    const std::size_t n = global_.numel();
    // One read pass for the norm, which also finds NaN/Inf (the global model is finite, so a
    // non-finite norm means a non-finite update) before anything is added.
    const double norm = DeltaNorm(x, g, n);
    if (!std::isfinite(norm)) {
      Status finite = update.state.CheckFinite();
      return Status::InvalidArgument(
          who + " refused: " + (finite.ok() ? "its delta norm is not finite" : finite.message()));
    }
    // The clipped delta goes straight into the float64 sum: scale * (x - g) in double, so the
    // contribution's norm is C up to double rounding (writing the clipped model back to float32
    // first would perturb it by float32 ulps of |g|, not of the delta).
    const double scale = ClipScale(norm, options_.clipping_norm);
    double* s = sum_.data();
    for (std::size_t i = 0; i < n; ++i) {
      s[i] += scale * (static_cast<double>(x[i]) - static_cast<double>(g[i]));
    }
    if (norm > options_.clipping_norm) ++clipped_;
    ++accepted_;
    return Status::Ok();
  }

  Result<core::ModelState> Finalize() override {
    if (!begun_) {
      return Status::FailedPrecondition("DP-FedAvg: Finalize called before Begin (or twice)");
    }
    if (accepted_ == 0) {
      return Status::FailedPrecondition("DP-FedAvg: no update was accepted this round");
    }
    const double count = static_cast<double>(accepted_);
    const std::size_t n = global_.numel();
    const DiscreteGaussianPlan plan =
        PlanDiscreteGaussian(options_.noise_multiplier, options_.clipping_norm, n);
    FEDML_ASSIGN_OR_RETURN(const core::Bytes key,
                           DpNoiseKey(options_, "central", {static_cast<std::uint64_t>(round_)}));
    // Noise on the sum (whose replace-one sensitivity is 2C), then the mean: post-processing.
    FEDML_RETURN_IF_ERROR(
        AddDiscreteGaussianNoise(sum_.data(), n, plan, key)
            .WithContext("DP-FedAvg: the noised sum of round " + std::to_string(round_)));
    const double stddev = plan.stddev / count;
    core::ModelState out = std::move(global_);
    float* v = out.data();
    const double* s = sum_.data();
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = static_cast<float>(static_cast<double>(v[i]) + s[i] / count);
    }
    ++rounds_;
    last_.clear();
    last_["dp_delta"] = options_.delta;
    last_["dp_noise_stddev"] = stddev;
    last_["dp_clipped_fraction"] = static_cast<double>(clipped_) / count;
    Result<double> eps = DpEpsilon(options_.sampling_rate, options_.noise_multiplier, rounds_,
                                   options_.delta, options_.sampling);
    // The options were validated at construction, so the accountant cannot refuse them.
    last_["dp_epsilon"] = eps.ok() ? eps.value() : kInf;
    begun_ = false;
    return out;
  }

  int accepted() const override { return accepted_; }

  std::map<std::string, double> RoundFigures() const override { return last_; }
  // The accountant's count travels in the checkpoint, so a resumed run keeps its budget.
  std::map<std::string, core::ModelState> SaveState() const override {
    return {{"dp_rounds", CounterState(static_cast<double>(rounds_))}};
  }
  Status RestoreState(const std::map<std::string, core::ModelState>& state) override {
    const auto it = state.find("dp_rounds");
    if (it == state.end()) return Status::Ok();
    FEDML_ASSIGN_OR_RETURN(double rounds, CounterValue(it->second, it->first));
    rounds_ = static_cast<std::int64_t>(rounds);
    return Status::Ok();
  }

 private:
  DpOptions options_;
  bool begun_ = false;
  core::ModelState global_;
  std::vector<double> sum_;  // sum of the clipped deltas accepted this round
  std::int64_t round_ = 0;
  int accepted_ = 0;
  int clipped_ = 0;          // accepted updates whose delta norm exceeded C
  std::int64_t rounds_ = 0;  // rounds finalized: the compositions the accountant counts
  std::map<std::string, double> last_;
};

}  // namespace

const std::vector<double>& DefaultRdpOrders() {
  static const std::vector<double> orders = [] {
    std::vector<double> o = {1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5};
    for (int a = 5; a < 64; ++a) o.push_back(a);
    for (double a : {128.0, 256.0, 512.0}) o.push_back(a);
    return o;
  }();
  return orders;
}

// The cases both sampled Gaussians share: arguments out of range (NaN), no sampling, no noise,
// every client sampled (the plain Gaussian), an infinite order. nullopt for the rest.
static std::optional<double> EdgeCaseRdp(double q, double sigma, double alpha) {
  if (!(q >= 0.0 && q <= 1.0) || !(sigma >= 0.0) || !(alpha > 1.0)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (q == 0.0) return 0.0;
  if (sigma == 0.0) return kInf;
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  if (std::isinf(alpha)) return kInf;
  return std::nullopt;
}

double SampledGaussianRdp(double q, double sigma, double alpha) {
  if (auto edge = EdgeCaseRdp(q, sigma, alpha)) return *edge;
  // Integer orders up to 2^53 are exact in a double; past ~1e6 the O(alpha) sum is pointless.
  if (alpha == std::floor(alpha) && alpha <= 1e6) {
    return LogAInt(q, sigma, static_cast<std::int64_t>(alpha)) / (alpha - 1.0);
  }
  return LogAFrac(q, sigma, alpha) / (alpha - 1.0);
}

double SampledWithoutReplacementGaussianRdp(double q, double sigma, double alpha) {
  if (auto edge = EdgeCaseRdp(q, sigma, alpha)) return *edge;
  const double top = std::ceil(alpha);
  std::vector<double> diffs;
  if (top <= kWorMaxDiffOrder) diffs = WorLogForwardDiffs(sigma, static_cast<int>(top) + 1);
  return WorRdp(q, sigma, alpha, diffs);
}

Result<double> DpEpsilon(double q, double sigma, std::int64_t steps, double delta,
                         DpSampling sampling) {
  FEDML_RETURN_IF_ERROR(CheckAccountantArgs(q, steps, delta));
  if (!(sigma >= 0.0 && std::isfinite(sigma))) {
    return Status::InvalidArgument("DP accountant: noise multiplier sigma is " +
                                   std::to_string(sigma) + "; allowed: >= 0 (finite)");
  }
  if (steps == 0 || q == 0.0) return 0.0;  // nothing about anyone was released
  if (sigma == 0.0) return kInf;
  // Without replacement: replace-one neighbours move the sum by 2C, so the noise is sigma / 2
  // of the sensitivity. The forward differences are shared by every order.
  const bool wor = sampling == DpSampling::kWithoutReplacement;
  const double wor_sigma = sigma / 2.0;
  std::vector<double> diffs;
  if (wor && q < 1.0) diffs = WorLogForwardDiffs(wor_sigma, kWorMaxDiffOrder + 1);
  double best = kInf;
  for (double alpha : DefaultRdpOrders()) {
    double per_step;
    if (!wor) {
      per_step = SampledGaussianRdp(q, sigma, alpha);
    } else if (q == 1.0) {
      per_step = alpha / (2.0 * wor_sigma * wor_sigma);
    } else {
      per_step = WorRdp(q, wor_sigma, alpha, diffs);
    }
    best = std::min(best, EpsilonAtOrder(alpha, static_cast<double>(steps) * per_step, delta));
  }
  return std::max(0.0, best);
}

Result<double> DpNoiseMultiplierFor(double q, std::int64_t steps, double epsilon, double delta,
                                    DpSampling sampling) {
  FEDML_RETURN_IF_ERROR(CheckAccountantArgs(q, steps, delta));
  if (!(epsilon > 0.0)) {
    return Status::InvalidArgument("DP accountant: target epsilon is " + std::to_string(epsilon) +
                                   "; allowed: > 0");
  }
  if (steps == 0 || q == 0.0 || std::isinf(epsilon)) return 0.0;
  auto eps_at = [&](double sigma) { return DpEpsilon(q, sigma, steps, delta, sampling).value(); };
  // Bracket: eps(lo) > epsilon >= eps(hi). Epsilon falls as sigma grows (each order's RDP does).
  constexpr double kMaxSigma = 1e6;
  constexpr double kMinSigma = 1e-6;
  double hi = 1.0;
  while (eps_at(hi) > epsilon) {
    hi *= 2.0;
    if (hi > kMaxSigma) {
      return Status::InvalidArgument("DP accountant: target epsilon " + std::to_string(epsilon) +
                                     " is not reached by any noise multiplier up to 1e6 for q " +
                                     std::to_string(q) + ", " + std::to_string(steps) +
                                     " steps and delta " + std::to_string(delta));
    }
  }
  double lo = hi / 2.0;
  while (eps_at(lo) <= epsilon) {
    hi = lo;
    lo /= 2.0;
    if (lo < kMinSigma) return hi;  // any noise at all will do
  }
  // Geometric bisection to 1e-4 relative; hi always satisfies the target.
  while (hi / lo - 1.0 > 1e-4) {
    const double mid = std::sqrt(lo * hi);
    if (eps_at(mid) <= epsilon) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

double ClipDeltaInPlace(float* x, const float* g, std::size_t n, double clip) {
  const double norm = DeltaNorm(x, g, n);
  if (!(norm > clip)) return norm;  // within the bound (or NaN: left for the caller to refuse)
  const double scale = clip / norm;
  for (std::size_t i = 0; i < n; ++i) {
    const double gi = static_cast<double>(g[i]);
    x[i] = static_cast<float>(gi + scale * (static_cast<double>(x[i]) - gi));
  }
  return norm;
}

Result<std::unique_ptr<Aggregator>> CreateCentralDpAggregator(const DpOptions& options) {
  FEDML_RETURN_IF_ERROR(CheckOptions(options, "DP-FedAvg"));
  return std::unique_ptr<Aggregator>(std::make_unique<CentralDpAggregator>(options));
}

Status ApplyLocalDp(core::ModelState& update, const core::ModelState& global,
                    const DpOptions& options, const core::Bytes& noise_key32) {
  FEDML_RETURN_IF_ERROR(CheckOptions(options, "local DP"));
  FEDML_RETURN_IF_ERROR(global.CheckSameLayout(update, "local DP: the update"));
  FEDML_RETURN_IF_ERROR(global.CheckFinite().WithContext("local DP: the global model"));
  FEDML_RETURN_IF_ERROR(update.CheckFinite().WithContext("local DP: the update"));
  float* x = update.data();
  const float* g = global.data();
  const std::size_t n = update.numel();
  // The clipped delta in float64, noised on the grid, then rounded to float32 once.
  const double scale = ClipScale(DeltaNorm(x, g, n), options.clipping_norm);
  std::vector<double> delta(n);
  for (std::size_t i = 0; i < n; ++i) {
    delta[i] = scale * (static_cast<double>(x[i]) - static_cast<double>(g[i]));
  }
  const DiscreteGaussianPlan plan =
      PlanDiscreteGaussian(options.noise_multiplier, options.clipping_norm, n);
  FEDML_RETURN_IF_ERROR(
      AddDiscreteGaussianNoise(delta.data(), n, plan, noise_key32).WithContext("local DP"));
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(static_cast<double>(g[i]) + delta[i]);
  }
  return Status::Ok();
}

}  // namespace fedml::algorithms
