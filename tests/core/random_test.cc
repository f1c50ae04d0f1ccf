// fedml::core::Rng: range and moments of each distribution, and reproducibility.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

#include "fedml/core/random.h"

using fedml::core::DeriveSeed;
using fedml::core::Rng;

namespace {

constexpr int kDraws = 100000;

struct Moments {
  double mean;
  double var;
};

template <class Draw>
Moments Measure(Draw draw) {
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const double x = draw();
    sum += x;
    sum_sq += x * x;
  }
  const double mean = sum / kDraws;
  return {mean, sum_sq / kDraws - mean * mean};
}

}  // namespace

TEST_CASE("Rng is reproducible for a seed and differs between seeds", "[random]") {
  Rng a(123), b(123), c(124);
  std::vector<std::uint64_t> va, vb, vc;
  for (int i = 0; i < 100; ++i) {
    va.push_back(a.NextU64());
    vb.push_back(b.NextU64());
    vc.push_back(c.NextU64());
  }
  CHECK(va == vb);
  CHECK(va != vc);
}

TEST_CASE("DeriveSeed depends on the base and on every part, in order", "[random]") {
  CHECK(DeriveSeed(1, {2, 3}) == DeriveSeed(1, {2, 3}));
  CHECK(DeriveSeed(1, {2, 3}) != DeriveSeed(1, {3, 2}));
  CHECK(DeriveSeed(1, {2, 3}) != DeriveSeed(2, {2, 3}));
  CHECK(DeriveSeed(1, {2}) != DeriveSeed(1, {2, 0}));
  std::set<std::uint64_t> seeds;
  for (std::uint64_t round = 0; round < 50; ++round) {
    for (std::uint64_t client = 0; client < 50; ++client) {
      seeds.insert(DeriveSeed(7, {round, client}));
    }
  }
  CHECK(seeds.size() == 2500);
}

TEST_CASE("Rng::Uniform lies in [0, 1) with mean 1/2 and variance 1/12", "[random]") {
  Rng rng(1);
  double lo = 1.0, hi = 0.0;
  const Moments m = Measure([&] {
    const double u = rng.Uniform();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    return u;
  });
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(m.mean == Approx(0.5).margin(0.005));
  CHECK(m.var == Approx(1.0 / 12.0).margin(0.002));
}

TEST_CASE("Rng::UniformInt stays below n and hits every value about equally", "[random]") {
  Rng rng(2);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const std::uint64_t v = rng.UniformInt(7);
    REQUIRE(v < 7);
    ++counts[v];
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);  // sd ~ 93
  CHECK(rng.UniformInt(1) == 0);
}

TEST_CASE("Rng::Normal has mean 0 and variance 1", "[random]") {
  Rng rng(3);
  const Moments m = Measure([&] { return rng.Normal(); });
  // Standard errors: 0.0032 for the mean, 0.0045 for the variance.
  CHECK(std::abs(m.mean) < 0.02);
  CHECK(m.var == Approx(1.0).margin(0.03));
}

TEST_CASE("Rng::Gamma(shape) has mean and variance equal to shape", "[random]") {
  for (double shape : {0.1, 0.5, 1.0, 2.5, 10.0}) {
    Rng rng(4);
    double lo = 1e300;
    const Moments m = Measure([&] {
      const double g = rng.Gamma(shape);
      lo = std::min(lo, g);
      return g;
    });
    INFO("shape " << shape << ": mean " << m.mean << ", var " << m.var);
    CHECK(lo >= 0.0);
    // Standard error of the mean is sqrt(shape / 1e5); allow about six of them.
    CHECK(m.mean == Approx(shape).margin(6.0 * std::sqrt(shape / kDraws)));
    CHECK(m.var == Approx(shape).epsilon(0.1));
  }
}

TEST_CASE("Rng::Dirichlet draws are non-negative and sum to 1", "[random]") {
  Rng rng(5);
  for (double alpha : {1e-3, 0.1, 0.5, 1.0, 100.0}) {
    for (int k : {1, 2, 10, 100}) {
      for (int rep = 0; rep < 20; ++rep) {
        const std::vector<double> p = rng.Dirichlet(alpha, k);
        REQUIRE(p.size() == static_cast<std::size_t>(k));
        for (double x : p) REQUIRE(x >= 0.0);
        CHECK(std::accumulate(p.begin(), p.end(), 0.0) == Approx(1.0).margin(1e-9));
      }
    }
  }
  // Symmetric: each coordinate has mean 1/k.
  std::vector<double> mean(4, 0.0);
  for (int rep = 0; rep < 20000; ++rep) {
    const auto p = rng.Dirichlet(0.5, 4);
    for (int j = 0; j < 4; ++j) mean[j] += p[j] / 20000.0;
  }
  for (double m : mean) CHECK(m == Approx(0.25).margin(0.01));
}

TEST_CASE("Rng::SampleWithoutReplacement gives distinct values in range", "[random]") {
  Rng rng(6);
  for (auto [n, k] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {10, 0}, {10, 1}, {10, 5}, {10, 10}, {1000, 100}, {1, 1}}) {
    const auto s = rng.SampleWithoutReplacement(n, k);
    REQUIRE(s.size() == static_cast<std::size_t>(k));
    const std::set<std::int64_t> distinct(s.begin(), s.end());
    CHECK(distinct.size() == s.size());
    for (auto v : s) CHECK((v >= 0 && v < n));
  }
  // Every element is equally likely to be chosen.
  std::vector<int> hits(10, 0);
  for (int rep = 0; rep < 20000; ++rep) {
    for (auto v : rng.SampleWithoutReplacement(10, 3)) ++hits[static_cast<std::size_t>(v)];
  }
  for (int h : hits) CHECK(std::abs(h - 6000) < 400);
}

TEST_CASE("Rng::Shuffle permutes", "[random]") {
  Rng rng(7);
  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 0);
  auto shuffled = v;
  rng.Shuffle(shuffled);
  CHECK(shuffled != v);
  std::sort(shuffled.begin(), shuffled.end());
  CHECK(shuffled == v);
  std::vector<int> empty;
  rng.Shuffle(empty);
  CHECK(empty.empty());
}
