// Portable, seedable random numbers. The standard library's distributions differ between
// implementations, so every draw that decides a result (partitions, client sampling, synthetic
// data, initial weights) goes through these, and the same seed gives the same numbers everywhere.
#pragma once

#include <cstdint>
#include <vector>

namespace fedml::core {

/// SplitMix64 finaliser: mixes a 64-bit value into a well-distributed one.
std::uint64_t Mix64(std::uint64_t x);

/// Derives an independent seed from a base seed and a list of coordinates, e.g.
/// DeriveSeed(seed, {round, client_id}) for a client's training in a round.
std::uint64_t DeriveSeed(std::uint64_t base, std::initializer_list<std::uint64_t> parts);

/// xoshiro256** generator. Not thread-safe; one per thread or task.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t NextU64();
  /// Uniform in [0, 1).
  double Uniform();
  /// Uniform integer in [0, n); n > 0.
  std::uint64_t UniformInt(std::uint64_t n);
  /// Standard normal (Box-Muller, no cached second value, so draws are position-independent).
  double Normal();
  /// Gamma(shape, 1) by Marsaglia-Tsang; shape > 0.
  double Gamma(double shape);
  /// A Dirichlet(alpha,...,alpha) draw of length k.
  std::vector<double> Dirichlet(double alpha, int k);
  /// Fisher-Yates shuffle.
  template <class T>
  void Shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(UniformInt(i));
      std::swap(v[i - 1], v[j]);
    }
  }
  /// k distinct values from [0, n), in the order drawn; k <= n.
  std::vector<std::int64_t> SampleWithoutReplacement(std::int64_t n, std::int64_t k);

 private:
  std::uint64_t s_[4];
};

}  // namespace fedml::core
