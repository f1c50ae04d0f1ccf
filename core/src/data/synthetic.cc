// LEAF's synthetic(alpha, beta) data, after generate_synthetic() in Li et al.'s FedProx code
// (data/synthetic_*/generate_synthetic.py). As there, alpha and beta are standard deviations
// (numpy.random.normal's scale): alpha controls how much the clients' models differ, beta how
// much their feature distributions differ.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"
#include "fedml/core/random.h"

namespace fedml::core::data {
namespace {

constexpr std::uint64_t kClientStream = 0x73796e74;  // "synt"

// floor(0.9 * n) training samples, the rest held out, as FedProx's train_len = int(0.9 * n).
std::size_t TrainCount(std::size_t n) { return n * 9 / 10; }

}  // namespace

Result<SyntheticData> GenerateSynthetic(const SyntheticOptions& o) {
  const auto bad = [](const std::string& what) {
    return Status::InvalidArgument("GenerateSynthetic: " + what);
  };
  if (o.num_clients < 1)
    return bad("num_clients must be >= 1, got " + std::to_string(o.num_clients));
  if (!(o.alpha >= 0.0) || !std::isfinite(o.alpha)) {
    return bad("alpha must be finite and >= 0, got " + std::to_string(o.alpha));
  }
  if (!(o.beta >= 0.0) || !std::isfinite(o.beta)) {
    return bad("beta must be finite and >= 0, got " + std::to_string(o.beta));
  }
  if (o.dimension < 1) return bad("dimension must be >= 1, got " + std::to_string(o.dimension));
  if (o.num_classes < 2) {
    return bad("num_classes must be >= 2, got " + std::to_string(o.num_classes));
  }
  // 10 is the smallest count whose 90/10 split leaves a sample on both sides.
  if (o.min_samples < 10) {
    return bad(
        "min_samples must be >= 10 (so that each client's 90/10 train/test split is "
        "non-empty on both sides), got " +
        std::to_string(o.min_samples));
  }
  if (o.max_samples < o.min_samples) {
    return bad("max_samples (" + std::to_string(o.max_samples) + ") must be >= min_samples (" +
               std::to_string(o.min_samples) + ")");
  }

  const auto dim = static_cast<std::size_t>(o.dimension);
  const auto classes = static_cast<std::size_t>(o.num_classes);
  // Sigma_jj = (j + 1)^-1.2 for j = 0..dimension-1; x = v + sqrt(Sigma) * z.
  std::vector<double> sigma_sqrt(dim);
  for (std::size_t j = 0; j < dim; ++j) {
    sigma_sqrt[j] = std::sqrt(std::pow(static_cast<double>(j + 1), -1.2));
  }

  SyntheticData out;
  out.train.sample_shape = {static_cast<std::int64_t>(dim)};
  out.test.sample_shape = out.train.sample_shape;
  out.train.num_classes = o.num_classes;
  out.test.num_classes = o.num_classes;
  out.partition.client_indices.resize(static_cast<std::size_t>(o.num_clients));

  std::vector<double> v(dim), w(dim * classes), b(classes), x(dim);
  for (int k = 0; k < o.num_clients; ++k) {
    // One stream per client: client k's data do not depend on how many clients there are.
    Rng rng(DeriveSeed(o.seed, {kClientStream, static_cast<std::uint64_t>(k)}));
    // numpy's lognormal(4, 2) + min_samples, truncated to an integer; capped before the cast
    // because exp() of a large normal draw overflows any integer type.
    const double drawn = std::floor(std::exp(4.0 + 2.0 * rng.Normal())) + o.min_samples;
    const auto count =
        static_cast<std::size_t>(std::min(drawn, static_cast<double>(o.max_samples)));

    const double u = o.alpha * rng.Normal();  // mean of W_k and b_k
    const double big_b = o.beta * rng.Normal();
    for (auto& vj : v) vj = big_b + rng.Normal();
    for (auto& wij : w) wij = u + rng.Normal();  // w[j * classes + c]: dimension x classes
    for (auto& bc : b) bc = u + rng.Normal();

    const std::size_t train_count = TrainCount(count);
    auto& indices = out.partition.client_indices[static_cast<std::size_t>(k)];
    for (std::size_t s = 0; s < count; ++s) {
      for (std::size_t j = 0; j < dim; ++j) x[j] = v[j] + sigma_sqrt[j] * rng.Normal();
      // argmax(softmax(x W + b)) == argmax(x W + b): softmax is monotone.
      std::size_t best = 0;
      double best_logit = 0.0;
      for (std::size_t c = 0; c < classes; ++c) {
        double logit = b[c];
        for (std::size_t j = 0; j < dim; ++j) logit += x[j] * w[j * classes + c];
        if (c == 0 || logit > best_logit) {
          best = c;
          best_logit = logit;
        }
      }
      Dataset& target = s < train_count ? out.train : out.test;
      if (s < train_count) indices.push_back(static_cast<std::int64_t>(out.train.size()));
      for (double xj : x) target.features.push_back(static_cast<float>(xj));
      target.labels.push_back(static_cast<std::int64_t>(best));
    }
  }
  return out;
}

}  // namespace fedml::core::data
