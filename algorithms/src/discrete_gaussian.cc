// The discrete Gaussian mechanism of fedml/algorithms/dp.h: its plan, its exact sampler
// (Canonne, Kamath and Steinke 2020, Algorithms 1-3, in 128-bit integer arithmetic where the
// paper's reference code uses Python's unbounded integers) and the keyed noise stream.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "fedml/algorithms/dp.h"
#include "fedml/core/security/crypto.h"

namespace fedml::algorithms {
namespace {

using u128 = unsigned __int128;

// sigma2 above this would take (|Y| t - sigma2)^2 past 128 bits (see DiscreteGaussianSampler).
constexpr std::uint64_t kMaxSigma2 = std::uint64_t{1} << 48;
// A discrete Laplace draw beyond this many scales (probability < e^-255) is drawn again.
constexpr std::uint64_t kMaxLaplaceScales = 256;
// Snapped coordinates must stay below 2^52 grid steps, where float64 holds every integer.
constexpr double kMaxGridSteps = 4503599627370496.0;  // 2^52

// floor(sqrt(v)) exactly, for v <= 2^48.
std::uint64_t FloorSqrt(std::uint64_t v) {
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(v)));
  while (r * r > v) --r;
  while ((r + 1) * (r + 1) <= v) ++r;
  return r;
}

int BitLength(u128 v) {
  int bits = 0;
  while (v != 0) {
    ++bits;
    v >>= 1;
  }
  return bits;
}

}  // namespace

DiscreteGaussianPlan PlanDiscreteGaussian(double noise_multiplier, double clip, std::size_t n) {
  DiscreteGaussianPlan plan;
  if (!(noise_multiplier > 0.0) || !(clip > 0.0) || n == 0) return plan;
  const double root_n = std::sqrt(static_cast<double>(n));
  // The largest power of two with gamma sqrt(n) <= C / 1024.
  int exponent = 0;
  std::frexp(clip / (1024.0 * root_n), &exponent);  // value = m 2^exponent, m in [0.5, 1)
  double gamma = std::ldexp(1.0, exponent - 1);
  for (;;) {
    const long double sigma_units =
        static_cast<long double>(noise_multiplier) *
        (static_cast<long double>(clip) + static_cast<long double>(gamma) * root_n / 2.0L) /
        static_cast<long double>(gamma);
    const long double sigma2 = std::ceil(sigma_units * sigma_units);
    if (sigma2 <= static_cast<long double>(kMaxSigma2)) {
      plan.granularity = gamma;
      plan.sigma2 = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(sigma2));
      plan.stddev = std::sqrt(static_cast<double>(plan.sigma2)) * gamma;
      return plan;
    }
    gamma *= 2.0;
  }
}

DiscreteGaussianSampler::DiscreteGaussianSampler(std::uint64_t sigma2,
                                                 core::security::Keystream& stream)
    : sigma2_(std::min(std::max<std::uint64_t>(sigma2, 1), kMaxSigma2)),
      t_(FloorSqrt(sigma2_) + 1),
      stream_(stream) {}

// Uniform on [0, bound), bound >= 1: 128-bit words cut to bound's bit length, rejected until
// below it (at most 2 draws expected).
u128 DiscreteGaussianSampler::UniformBelow(u128 bound) {
  if (bound <= 1) return 0;
  const int bits = BitLength(bound - 1);
  const u128 mask = bits >= 128 ? ~u128{0} : ((u128{1} << bits) - 1);
  for (;;) {
    const u128 word = (static_cast<u128>(stream_.Next64()) << 64) | stream_.Next64();
    const u128 v = word & mask;
    if (v < bound) return v;
    if (!stream_.status().ok()) return 0;  // a dead stream gives zeros: stop rather than spin
  }
}

// Bernoulli(num / den), num <= den, den >= 1.
bool DiscreteGaussianSampler::Bernoulli(u128 num, u128 den) { return UniformBelow(den) < num; }

// Bernoulli(exp(-num / den)) for num / den in [0, 1] (CKS Algorithm 1, first case): draw
// A_k ~ Bernoulli(x / k) for k = 1, 2, ... until one is 0; the answer is whether that k is odd.
bool DiscreteGaussianSampler::BernoulliExpMinusAtMostOne(u128 num, u128 den) {
  // den <= 2^97 and each further k has probability <= 1/k!, so k never nears 2^30 and den k
  // stays within 128 bits; the cap only guards the arithmetic.
  constexpr std::uint64_t kMaxK = std::uint64_t{1} << 30;
  std::uint64_t k = 1;
  while (k < kMaxK && Bernoulli(num, den * k)) ++k;
  return (k & 1U) == 1U;
}

// Bernoulli(exp(-num / den)) for any num / den >= 0 (CKS Algorithm 1, second case): floor(x)
// trials of Bernoulli(exp(-1)), then one of exp(-(x - floor(x))), stopping at the first failure.
bool DiscreteGaussianSampler::BernoulliExpMinus(u128 num, u128 den) {
  while (num >= den) {
    if (!BernoulliExpMinusAtMostOne(1, 1)) return false;
    num -= den;
  }
  return BernoulliExpMinusAtMostOne(num, den);
}

// The discrete Laplace of scale t_ (CKS Algorithm 2 with s = 1): P(X = x) ~ exp(-|x| / t).
std::int64_t DiscreteGaussianSampler::DiscreteLaplace() {
  for (;;) {
    const auto u = static_cast<std::uint64_t>(UniformBelow(t_));
    if (!BernoulliExpMinus(u, t_)) continue;
    std::uint64_t v = 0;
    while (BernoulliExpMinus(1, 1)) ++v;
    const std::uint64_t x = u + t_ * v;  // v < 2^20 in any realistic run; x fits 64 bits
    const bool negative = (stream_.Next64() & 1U) != 0U;
    if (negative && x == 0) continue;
    return negative ? -static_cast<std::int64_t>(x) : static_cast<std::int64_t>(x);
  }
}

// CKS Algorithm 3: Y ~ DLap(t), kept with probability exp(-(|Y| - sigma2 / t)^2 / (2 sigma2)),
// i.e. exp(-(|Y| t - sigma2)^2 / (2 sigma2 t^2)): with |Y| <= 256 t and t <= 2^24 + 1 the
// numerator is below 2^114 and the denominator below 2^98.
std::int64_t DiscreteGaussianSampler::Next() {
  for (;;) {
    const std::int64_t y = DiscreteLaplace();
    const std::uint64_t magnitude =
        y < 0 ? static_cast<std::uint64_t>(-y) : static_cast<std::uint64_t>(y);
    if (magnitude > kMaxLaplaceScales * t_) continue;
    const u128 yt = static_cast<u128>(magnitude) * t_;
    const u128 diff = yt >= sigma2_ ? yt - sigma2_ : sigma2_ - yt;
    const u128 den = static_cast<u128>(2) * sigma2_ * t_ * t_;
    if (BernoulliExpMinus(diff * diff, den)) return y;
    if (!stream_.status().ok()) return 0;
  }
}

Status AddDiscreteGaussianNoise(double* x, std::size_t n, const DiscreteGaussianPlan& plan,
                                const core::Bytes& key32) {
  if (plan.sigma2 == 0) return Status::Ok();
  FEDML_ASSIGN_OR_RETURN(core::security::Keystream stream,
                         core::security::Keystream::Create(key32));
  DiscreteGaussianSampler sampler(plan.sigma2, stream);
  const double gamma = plan.granularity;
  for (std::size_t i = 0; i < n; ++i) {
    const double steps = std::nearbyint(x[i] / gamma);  // exact: gamma is a power of two
    if (!std::isfinite(x[i]) || std::fabs(steps) >= kMaxGridSteps) {
      return Status::InvalidArgument("DP noise: coordinate " + std::to_string(i) + " (" +
                                     std::to_string(x[i]) +
                                     ") is not finite or too large for the noise grid of step " +
                                     std::to_string(gamma) + " (at most 2^52 steps)");
    }
    x[i] = (steps + static_cast<double>(sampler.Next())) * gamma;
  }
  if (!stream.status().ok()) return stream.status();
  return Status::Ok();
}

Result<core::Bytes> DpNoiseKey(const DpOptions& options, const std::string& purpose,
                               std::initializer_list<std::uint64_t> context) {
  core::Bytes secret = options.noise_key;
  if (secret.empty()) {
    for (int i = 0; i < 8; ++i) {
      secret.push_back(static_cast<std::uint8_t>(options.seed >> (8 * i)));
    }
  }
  std::string info = "fedml-dp-noise " + purpose;
  for (std::uint64_t word : context) info += " " + std::to_string(word);
  return core::security::HkdfSha256(secret, {}, info, 32);
}

}  // namespace fedml::algorithms
