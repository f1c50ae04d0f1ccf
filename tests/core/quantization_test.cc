// Fixed-point quantization into Z_{2^k} for secure aggregation: error bounds of one vector and of
// a sum, unbiased stochastic rounding, clipping, the overflow limit on both sides, NaN/Inf, and
// masked sums (pairwise masks cancel) with moduli 2^32 and 2^16.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "fedml/core/random.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"

using fedml::StatusCode;
using fedml::core::Bytes;
using fedml::core::DeriveSeed;
using fedml::core::Rng;
using namespace fedml::core::security;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<float> RandomVector(std::size_t n, double scale, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(scale * rng.Normal());
  return v;
}

double Clip(double v, double c) { return v < -c ? -c : (v > c ? c : v); }

double Step(const QuantizationOptions& o) {
  return 2.0 * o.clipping_range / static_cast<double>(o.quantization_range - 1);
}

// Half a float ulp at |x|: what converting the double result to float may add.
double HalfUlp(double x) {
  const float f = static_cast<float>(std::fabs(x));
  return 0.5 * (static_cast<double>(std::nextafter(f, std::numeric_limits<float>::max())) - f);
}

Bytes SeedBytes(std::uint64_t seed) {
  Rng rng(seed);
  Bytes out(32);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng.NextU64());
  return out;
}

}  // namespace

TEST_CASE("Quantize then DequantizeSum of one vector is within one step", "[secagg][quant]") {
  const QuantizationOptions options;
  Rng rng(1);
  const std::size_t n = 20000;
  const std::vector<float> values = RandomVector(n, 4.0, rng);  // some beyond +-8: clipped
  std::vector<std::uint32_t> q(n);
  REQUIRE(Quantize(values.data(), n, options, 42, q.data()).ok());
  std::vector<float> back(n);
  REQUIRE(DequantizeSum(q.data(), n, 1, options, back.data()).ok());
  const double step = Step(options);
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(q[i] < options.quantization_range);
    const double clipped = Clip(values[i], options.clipping_range);
    const double err = std::fabs(back[i] - clipped);
    if (err > step + HalfUlp(clipped)) {
      FAIL("element " << i << ": " << values[i] << " -> " << back[i] << ", error " << err);
    }
  }
  // Reproducible for a seed, different for another.
  std::vector<std::uint32_t> again(n), other(n);
  REQUIRE(Quantize(values.data(), n, options, 42, again.data()).ok());
  REQUIRE(Quantize(values.data(), n, options, 43, other.data()).ok());
  CHECK(again == q);
  CHECK(other != q);
}

TEST_CASE("The ring sum of 50 quantized vectors dequantizes to the float sum", "[secagg][quant]") {
  const QuantizationOptions options;
  const int kClients = 50;
  const std::size_t n = 5000;
  Rng rng(2);
  std::vector<double> float_sum(n, 0.0);
  std::vector<std::uint32_t> ring_sum(n, 0), q(n);
  for (int c = 0; c < kClients; ++c) {
    const std::vector<float> v = RandomVector(n, 3.0, rng);
    for (std::size_t i = 0; i < n; ++i) float_sum[i] += Clip(v[i], options.clipping_range);
    REQUIRE(Quantize(v.data(), n, options, DeriveSeed(5, {std::uint64_t(c)}), q.data()).ok());
    AddModInPlace(ring_sum.data(), q.data(), n, options.modulus);
  }
  std::vector<float> back(n);
  REQUIRE(DequantizeSum(ring_sum.data(), n, kClients, options, back.data()).ok());
  const double bound = kClients * Step(options);
  for (std::size_t i = 0; i < n; ++i) {
    const double err = std::fabs(back[i] - float_sum[i]);
    if (err > bound + HalfUlp(float_sum[i])) {
      FAIL("element " << i << ": sum " << float_sum[i] << " -> " << back[i] << ", error " << err);
    }
  }
}

TEST_CASE("Stochastic rounding is unbiased", "[secagg][quant]") {
  const QuantizationOptions options;
  const std::size_t kDraws = 100000;
  const float value = 0.3f;
  const double exact = (static_cast<double>(value) + options.clipping_range) *
                       static_cast<double>(options.quantization_range - 1) /
                       (2.0 * options.clipping_range);
  const double frac = exact - std::floor(exact);
  REQUIRE(frac > 0.1);  // a value between two grid points, so rounding has work to do
  REQUIRE(frac < 0.9);
  const std::vector<float> values(kDraws, value);
  std::vector<std::uint32_t> q(kDraws);
  REQUIRE(Quantize(values.data(), kDraws, options, 2024, q.data()).ok());
  double mean = 0.0;
  for (std::uint32_t v : q) {
    REQUIRE((v == std::floor(exact) || v == std::floor(exact) + 1));
    mean += v;
  }
  mean /= kDraws;
  // Each draw has variance frac (1 - frac) <= 1/4: the mean's standard deviation is at most
  // 0.0016 grid steps, so 0.01 is over 6 of them; always rounding down would be off by `frac`.
  CHECK(std::fabs(mean - exact) < 0.01);
}

TEST_CASE("Quantize clips to [-c, c]", "[secagg][quant]") {
  QuantizationOptions options;
  options.clipping_range = 2.0;
  const std::vector<float> values = {-1e30f, -100.f, -2.f, 0.f, 2.f, 100.f, 1e30f};
  std::vector<std::uint32_t> q(values.size());
  REQUIRE(Quantize(values.data(), values.size(), options, 1, q.data()).ok());
  const std::uint32_t top = static_cast<std::uint32_t>(options.quantization_range - 1);
  CHECK(q[0] == 0);
  CHECK(q[1] == 0);
  CHECK(q[2] == 0);
  CHECK(q[4] == top);
  CHECK(q[5] == top);
  CHECK(q[6] == top);
  std::vector<float> back(values.size());
  REQUIRE(DequantizeSum(q.data(), q.size(), 1, options, back.data()).ok());
  CHECK(back[0] == Approx(-2.0).margin(1e-6));
  CHECK(back[6] == Approx(2.0).margin(1e-6));
  CHECK(std::fabs(back[3]) <= Step(options));
}

TEST_CASE("The overflow limit is exact on both sides", "[secagg][quant]") {
  QuantizationOptions options;  // q = 2^22, M = 2^32
  // N (q - 1) <= M - 1  <=>  N <= floor((2^32 - 1) / (2^22 - 1)) = 1024.
  CHECK(MaxSummands(options) == 1024);
  CHECK(ValidateQuantization(options, 1024).ok());
  const fedml::Status over = ValidateQuantization(options, 1025);
  REQUIRE(over.code() == StatusCode::kInvalidArgument);
  INFO(over.message());
  CHECK(Contains(over.message(), "1025"));
  CHECK(Contains(over.message(), "4299160575"));  // 1025 * (2^22 - 1)
  CHECK(Contains(over.message(), "at most 1024"));
  CHECK(Contains(over.message(), "lower quantization_range"));

  // 2^32 - 1 = (2^16 - 1)(2^16 + 1): with q = 2^16 exactly 65537 vectors fit.
  options.quantization_range = 1 << 16;
  CHECK(MaxSummands(options) == 65537);
  CHECK(ValidateQuantization(options, 65537).ok());
  CHECK(ValidateQuantization(options, 65538).code() == StatusCode::kInvalidArgument);

  // The largest possible sum at the limit does dequantize: 1024 vectors all at +c.
  QuantizationOptions d;
  std::vector<std::uint32_t> sum(1, static_cast<std::uint32_t>(1024 * (d.quantization_range - 1)));
  float out = 0.f;
  REQUIRE(DequantizeSum(sum.data(), 1, 1024, d, &out).ok());
  CHECK(out == Approx(1024 * 8.0).margin(1e-3));
  CHECK(DequantizeSum(sum.data(), 1, 1025, d, &out).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Quantization options are validated", "[secagg][quant]") {
  auto refused = [](QuantizationOptions o, int summands) {
    return ValidateQuantization(o, summands).code() == StatusCode::kInvalidArgument;
  };
  QuantizationOptions o;
  CHECK(ValidateQuantization(o, 1).ok());
  CHECK(refused(o, 0));
  for (std::uint64_t m : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{3},
                          std::uint64_t{1} << 33, (std::uint64_t{1} << 32) - 1}) {
    QuantizationOptions bad;
    bad.modulus = m;
    bad.quantization_range = 2;
    CHECK(refused(bad, 1));
  }
  for (std::uint64_t q : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1} << 32}) {
    QuantizationOptions bad;
    bad.quantization_range = q;
    CHECK(refused(bad, 1));
  }
  for (double c : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    QuantizationOptions bad;
    bad.clipping_range = c;
    CHECK(refused(bad, 1));
  }
  QuantizationOptions smallest;
  smallest.modulus = 4;
  smallest.quantization_range = 2;
  CHECK(ValidateQuantization(smallest, 3).ok());  // 3 * 1 <= 3
  CHECK(refused(smallest, 4));
}

TEST_CASE("Quantize refuses NaN and Inf, naming the index", "[secagg][quant]") {
  const QuantizationOptions options;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> values = {0.f, 1.f, 2.f, 3.f, 4.f};
    values[3] = bad;
    std::vector<std::uint32_t> q(values.size(), 77u);
    const fedml::Status s = Quantize(values.data(), values.size(), options, 1, q.data());
    REQUIRE(s.code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s.message(), "values[3]"));
    CHECK(Contains(s.message(), std::isnan(bad) ? "NaN" : "infinite"));
    CHECK(q == std::vector<std::uint32_t>(values.size(), 77u));  // untouched
  }
  CHECK(Quantize(nullptr, 0, options, 1, nullptr).ok());
  CHECK(Quantize(nullptr, 3, options, 1, nullptr).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("DequantizeSum refuses sums no quantized vectors add up to", "[secagg][quant]") {
  QuantizationOptions options;
  options.modulus = 1 << 16;
  options.quantization_range = 1 << 10;
  std::vector<std::uint32_t> sum = {0, 1000, 1 << 16};
  std::vector<float> out(3, -1.f);
  const fedml::Status unreduced = DequantizeSum(sum.data(), 3, 2, options, out.data());
  CHECK(unreduced.code() == StatusCode::kInvalidArgument);
  CHECK(Contains(unreduced.message(), "sum[2]"));
  sum[2] = 2 * 1023 + 1;  // above what 2 vectors can reach
  const fedml::Status too_big = DequantizeSum(sum.data(), 3, 2, options, out.data());
  CHECK(too_big.code() == StatusCode::kDataLoss);
  CHECK(Contains(too_big.message(), "sum[2]"));
  CHECK(out == std::vector<float>(3, -1.f));
  sum[2] = 2 * 1023;
  CHECK(DequantizeSum(sum.data(), 3, 2, options, out.data()).ok());
  CHECK(out[2] == Approx(16.0));
}

TEST_CASE("Modular add and subtract wrap at the modulus", "[secagg][quant]") {
  std::vector<std::uint32_t> acc = {0xffffffffu, 5u, 0u, 0x12345678u};
  const std::vector<std::uint32_t> x = {2u, 0xfffffffbu, 1u, 0x87654321u};
  auto a = acc;
  AddModInPlace(a.data(), x.data(), a.size(), std::uint64_t{1} << 32);
  CHECK(a == std::vector<std::uint32_t>{1u, 0u, 1u, 0x99999999u});
  SubModInPlace(a.data(), x.data(), a.size(), std::uint64_t{1} << 32);
  CHECK(a == acc);

  std::vector<std::uint32_t> b = {0xffffu, 3u, 0u, 0x1234u};
  const std::vector<std::uint32_t> raw = {0xabcd0002u, 0xffff0001u, 0x00010000u, 0x5678u};
  AddModInPlace(b.data(), raw.data(), b.size(), 1 << 16);  // raw words: reduced too
  CHECK(b == std::vector<std::uint32_t>{1u, 4u, 0u, 0x68acu});
  SubModInPlace(b.data(), raw.data(), b.size(), 1 << 16);
  CHECK(b == std::vector<std::uint32_t>{0xffffu, 3u, 0u, 0x1234u});
  std::vector<std::uint32_t> c = {1u, 0u};
  SubModInPlace(c.data(), std::vector<std::uint32_t>{2u, 1u}.data(), 2, 1 << 16);
  CHECK(c == std::vector<std::uint32_t>{0xffffu, 0xffffu});
}

TEST_CASE("Folding several vectors into a sum equals adding each, for any count and modulus",
          "[secagg][quant]") {
  // 37 words: vector bodies and scalar tails both; counts past kMaxModFold take several passes.
  const std::size_t n = 37;
  Rng rng(DeriveSeed(11, {std::uint64_t{4}}));
  for (const std::uint64_t modulus :
       {std::uint64_t{1} << 32, std::uint64_t{1} << 16, std::uint64_t{2}}) {
    for (std::size_t count = 0; count <= 2 * kMaxModFold + 1; ++count) {
      std::vector<std::vector<std::uint32_t>> xs(count, std::vector<std::uint32_t>(n));
      std::vector<const std::uint32_t*> ptrs;
      ptrs.reserve(count);
      for (auto& x : xs) {
        for (auto& w : x) w = static_cast<std::uint32_t>(rng.NextU64());  // raw, not reduced
        ptrs.push_back(x.data());
      }
      std::vector<std::uint32_t> acc(n);
      for (auto& w : acc) w = static_cast<std::uint32_t>(rng.NextU64() % modulus);
      std::vector<std::uint32_t> want(n);
      for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t sum = acc[i];
        for (const auto& x : xs) sum = (sum + x[i]) % modulus;
        want[i] = static_cast<std::uint32_t>(sum);
      }
      AddModInPlace(acc.data(), ptrs.data(), count, n, modulus);
      INFO("modulus " << modulus << ", " << count << " vectors");
      CHECK(acc == want);
    }
  }
}

TEST_CASE("Masked sums: pairwise masks cancel and the sum dequantizes (2^32 and 2^16)",
          "[secagg][quant]") {
  QuantizationOptions wide;  // Flower's defaults
  QuantizationOptions narrow;
  narrow.modulus = 1 << 16;
  narrow.quantization_range = 1 << 10;  // at most 64 summands
  REQUIRE(MaxSummands(narrow) == 64);
  for (const QuantizationOptions& options : {wide, narrow}) {
    INFO("modulus " << options.modulus);
    const int kClients = 12;
    const std::size_t n = 3000;
    Rng rng(3);
    std::vector<std::vector<float>> updates;
    updates.reserve(kClients);
    for (int c = 0; c < kClients; ++c) updates.push_back(RandomVector(n, 0.5, rng));

    // Client u adds PRG(s_uv) for v > u and subtracts it for v < u; s_uv = s_vu.
    std::vector<std::uint32_t> server_sum(n, 0), q(n), mask(n);
    std::vector<double> float_sum(n, 0.0);
    for (int u = 0; u < kClients; ++u) {
      REQUIRE(Quantize(updates[u].data(), n, options, DeriveSeed(9, {std::uint64_t(u)}), q.data())
                  .ok());
      for (std::size_t i = 0; i < n; ++i) float_sum[i] += updates[u][i];
      for (int v = 0; v < kClients; ++v) {
        if (v == u) continue;
        const std::uint64_t lo = std::min(u, v), hi = std::max(u, v);
        REQUIRE(ExpandMask(SeedBytes(DeriveSeed(77, {lo, hi})), mask.data(), n).ok());
        if (u < v) {
          AddModInPlace(q.data(), mask.data(), n, options.modulus);
        } else {
          SubModInPlace(q.data(), mask.data(), n, options.modulus);
        }
      }
      for (std::uint32_t w : q) REQUIRE(w < options.modulus);
      AddModInPlace(server_sum.data(), q.data(), n, options.modulus);
    }
    std::vector<float> back(n);
    REQUIRE(DequantizeSum(server_sum.data(), n, kClients, options, back.data()).ok());
    const double bound = kClients * Step(options);
    for (std::size_t i = 0; i < n; ++i) {
      if (std::fabs(back[i] - float_sum[i]) > bound + HalfUlp(float_sum[i])) {
        FAIL("element " << i << ": " << float_sum[i] << " -> " << back[i]);
      }
    }

    // Without the last client's masks removed (a dropped client not unmasked) the sum is noise,
    // which DequantizeSum reports instead of returning garbage.
    std::vector<std::uint32_t> broken = server_sum;
    REQUIRE(ExpandMask(SeedBytes(12345), mask.data(), n).ok());
    AddModInPlace(broken.data(), mask.data(), n, options.modulus);
    CHECK(DequantizeSum(broken.data(), n, kClients, options, back.data()).code() ==
          StatusCode::kDataLoss);
  }
}
