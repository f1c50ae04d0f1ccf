// Shamir secret sharing over GF(2^61 - 1): reconstruction from any t shares, refusal below t,
// tamper detection, validation, the binary encoding, and that t - 1 shares look the same
// whatever the secret.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fedml/core/random.h"
#include "fedml/core/security/shamir.h"

using fedml::StatusCode;
using fedml::core::Bytes;
using fedml::core::Rng;
using namespace fedml::core::security;

namespace {

Bytes RandomSecret(std::size_t n, Rng& rng) {
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng.NextU64());
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<ShamirShare> Pick(const std::vector<ShamirShare>& shares,
                              const std::vector<std::int64_t>& indices) {
  std::vector<ShamirShare> out;
  for (std::int64_t i : indices) out.push_back(shares[static_cast<std::size_t>(i)]);
  return out;
}

std::vector<std::int64_t> Range(std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

// Adds 1 (mod p) to chunk 0 of a share.
void Tamper(ShamirShare& share) { share.y[0] = (share.y[0] + 1) % kShamirPrime; }

const std::vector<std::pair<int, int>> kThresholds = {{1, 1}, {2, 3}, {3, 5}, {5, 5}, {10, 20}};
const std::vector<std::size_t> kSecretSizes = {1, 4, 16, 32, 33};

}  // namespace

TEST_CASE("Shamir: any t shares reconstruct the secret exactly", "[secagg][shamir]") {
  Rng rng(7);
  for (const auto& [t, n] : kThresholds) {
    for (std::size_t len : kSecretSizes) {
      INFO("t = " << t << ", n = " << n << ", " << len << "-byte secret");
      const Bytes secret = RandomSecret(len, rng);
      auto shares = ShamirSplit(secret, t, n);
      REQUIRE(shares.ok());
      REQUIRE(shares->size() == static_cast<std::size_t>(n));
      for (std::size_t i = 0; i < shares->size(); ++i) {
        const ShamirShare& s = (*shares)[i];
        CHECK(s.x == i + 1);
        CHECK(s.secret_bytes == len);
        CHECK(s.y.size() == (len + 3) / 4);
        for (std::uint64_t y : s.y) CHECK(y < kShamirPrime);
      }
      std::vector<std::vector<std::int64_t>> subsets = {Range(0, t), Range(n - t, n)};
      for (int k = 0; k < 6; ++k) subsets.push_back(rng.SampleWithoutReplacement(n, t));
      for (const auto& subset : subsets) {
        auto combined = ShamirCombine(Pick(*shares, subset), t);
        REQUIRE(combined.ok());
        CHECK(*combined == secret);
      }
      // All n shares: the first t are used, the rest only validated.
      auto all = ShamirCombine(*shares, t);
      REQUIRE(all.ok());
      CHECK(*all == secret);
      // A threshold above the split's still lies on the same polynomial.
      if (t < n) {
        auto higher = ShamirCombine(*shares, t + 1);
        REQUIRE(higher.ok());
        CHECK(*higher == secret);
      }
    }
  }
}

TEST_CASE("Shamir: t - 1 shares are refused", "[secagg][shamir]") {
  Rng rng(8);
  for (const auto& [t, n] : kThresholds) {
    const Bytes secret = RandomSecret(32, rng);
    auto shares = ShamirSplit(secret, t, n);
    REQUIRE(shares.ok());
    auto r = ShamirCombine(Pick(*shares, Range(0, t - 1)), t);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), "fewer than threshold"));
  }
}

TEST_CASE("Shamir: a tampered share never yields the secret", "[secagg][shamir]") {
  Rng rng(9);
  for (const auto& [t, n] : kThresholds) {
    for (std::size_t len : kSecretSizes) {
      INFO("t = " << t << ", n = " << n << ", " << len << "-byte secret");
      const Bytes secret = RandomSecret(len, rng);
      auto shares = ShamirSplit(secret, t, n);
      REQUIRE(shares.ok());
      for (int victim = 0; victim < t; ++victim) {
        auto subset = Pick(*shares, Range(0, t));
        Tamper(subset[static_cast<std::size_t>(victim)]);
        auto r = ShamirCombine(subset, t);
        if (r.ok()) {
          CHECK(*r != secret);
        } else {
          CHECK(r.status().code() == StatusCode::kDataLoss);
          CHECK(Contains(r.status().message(), "shares do not reconstruct a secret"));
        }
      }
      if (n == t) continue;
      // t + 1 shares, one tampered: the t-subset without it and one with it disagree.
      auto extra = Pick(*shares, Range(0, t + 1));
      const auto bad = static_cast<std::size_t>(rng.UniformInt(static_cast<std::uint64_t>(t + 1)));
      Tamper(extra[bad]);
      std::vector<ShamirShare> without, with;
      const std::size_t dropped_good = bad == 0 ? 1 : 0;
      for (std::size_t i = 0; i < extra.size(); ++i) {
        if (i != bad) without.push_back(extra[i]);
        if (i != dropped_good) with.push_back(extra[i]);
      }
      auto a = ShamirCombine(without, t);
      auto b = ShamirCombine(with, t);
      REQUIRE(a.ok());
      CHECK(*a == secret);
      CHECK((!b.ok() || *b != *a));
    }
  }
}

TEST_CASE("Shamir: a too-low threshold is detected", "[secagg][shamir]") {
  Rng rng(10);
  const Bytes secret = RandomSecret(33, rng);
  auto shares = ShamirSplit(secret, 5, 8);
  REQUIRE(shares.ok());
  // Four points of a degree-4 polynomial: nine chunks all below 2^32 by chance has probability
  // 2^-261.
  auto r = ShamirCombine(*shares, 4);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kDataLoss);
}

TEST_CASE("Shamir: split refuses bad arguments", "[secagg][shamir]") {
  const Bytes secret(32, 1);
  struct Case {
    int t, n;
  };
  for (const Case c : {Case{0, 3}, Case{-1, 3}, Case{4, 3}, Case{1, 0}, Case{2, 65536}}) {
    auto r = ShamirSplit(secret, c.t, c.n);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  auto empty = ShamirSplit({}, 1, 1);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(empty.status().message(), "empty"));
  auto max_shares = ShamirSplit(Bytes(4, 9), 2, kShamirMaxShares);
  REQUIRE(max_shares.ok());
  auto back = ShamirCombine({(*max_shares)[65534], (*max_shares)[0]}, 2);
  REQUIRE(back.ok());
  CHECK(*back == Bytes(4, 9));
}

TEST_CASE("Shamir: combine refuses duplicate x, x = 0 and inconsistent shares",
          "[secagg][shamir]") {
  Rng rng(11);
  const Bytes secret = RandomSecret(16, rng);
  auto shares = ShamirSplit(secret, 3, 5);
  REQUIRE(shares.ok());
  auto expect_invalid = [](const std::vector<ShamirShare>& s, int t, const std::string& what) {
    auto r = ShamirCombine(s, t);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    INFO(r.status().message());
    CHECK(Contains(r.status().message(), what));
  };

  auto dup = Pick(*shares, {0, 1, 1});
  expect_invalid(dup, 3, "duplicate x");
  auto dup_later = Pick(*shares, {0, 1, 2, 0});  // also among the shares beyond the first t
  expect_invalid(dup_later, 3, "duplicate x");

  auto zero = Pick(*shares, {0, 1, 2});
  zero[1].x = 0;
  expect_invalid(zero, 3, "x == 0");

  auto wrong_len = Pick(*shares, {0, 1, 2});
  wrong_len[2].secret_bytes = 15;
  expect_invalid(wrong_len, 3, "same secret");

  auto wrong_chunks = Pick(*shares, {0, 1, 2});
  wrong_chunks[1].y.push_back(0);
  expect_invalid(wrong_chunks, 3, "chunks");

  auto all_wrong = Pick(*shares, {0, 1, 2});
  for (auto& s : all_wrong) s.y.pop_back();
  expect_invalid(all_wrong, 3, "chunks");

  auto not_field = Pick(*shares, {0, 1, 2});
  not_field[0].y[2] = kShamirPrime;
  expect_invalid(not_field, 3, "not a field element");

  expect_invalid(*shares, 0, "threshold");

  // Shares of two different splits of the same secret do not mix.
  auto other = ShamirSplit(secret, 3, 5);
  REQUIRE(other.ok());
  auto mixed = ShamirCombine({(*shares)[0], (*shares)[1], (*other)[2]}, 3);
  CHECK((!mixed.ok() || *mixed != secret));
}

TEST_CASE("Shamir: EncodeShare / DecodeShare round trip", "[secagg][shamir]") {
  Rng rng(12);
  for (std::size_t len : kSecretSizes) {
    const Bytes secret = RandomSecret(len, rng);
    auto shares = ShamirSplit(secret, 3, 4);
    REQUIRE(shares.ok());
    std::vector<ShamirShare> decoded;
    for (const ShamirShare& s : *shares) {
      const Bytes encoded = EncodeShare(s);
      CHECK(encoded.size() == 16 + 8 * s.y.size());
      auto d = DecodeShare(encoded);
      REQUIRE(d.ok());
      CHECK(d->x == s.x);
      CHECK(d->secret_bytes == s.secret_bytes);
      CHECK(d->y == s.y);
      decoded.push_back(*d);
    }
    auto back = ShamirCombine(decoded, 3);
    REQUIRE(back.ok());
    CHECK(*back == secret);
  }
}

TEST_CASE("Shamir: DecodeShare refuses truncated, oversized and garbage input",
          "[secagg][shamir]") {
  auto shares = ShamirSplit(Bytes(33, 0x5a), 2, 3);
  REQUIRE(shares.ok());
  const Bytes good = EncodeShare((*shares)[1]);
  auto expect_invalid = [](const Bytes& b, const std::string& what) {
    auto r = DecodeShare(b);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    INFO(r.status().message());
    CHECK(Contains(r.status().message(), what));
  };
  for (std::size_t n = 0; n < good.size(); ++n) {
    expect_invalid(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)), "truncated");
  }
  Bytes trailing = good;
  trailing.push_back(0);
  expect_invalid(trailing, "trailing");

  Bytes magic = good;
  magic[0] = 'X';
  expect_invalid(magic, "magic");
  Bytes version = good;
  version[3] = 2;
  expect_invalid(version, "version 2");
  Bytes zero_x = good;
  for (int i = 4; i < 8; ++i) zero_x[i] = 0;
  expect_invalid(zero_x, "x == 0");
  Bytes no_secret = good;
  for (int i = 8; i < 12; ++i) no_secret[i] = 0;
  expect_invalid(no_secret, "secret of 0 bytes");
  Bytes huge = good;
  huge[11] = 0xff;  // secret_bytes ~ 4 GiB
  expect_invalid(huge, "secret of");
  Bytes chunk_count = good;
  chunk_count[12] = 8;  // 33 bytes are 9 chunks
  expect_invalid(chunk_count, "8 chunks");
  Bytes not_field = good;
  for (int i = 16; i < 24; ++i) not_field[i] = 0xff;
  expect_invalid(not_field, "not a field element");

  Rng rng(13);
  for (int trial = 0; trial < 200; ++trial) {
    const Bytes garbage = RandomSecret(static_cast<std::size_t>(rng.UniformInt(200)), rng);
    CHECK_FALSE(DecodeShare(garbage).ok());
  }
}

TEST_CASE("Shamir: t - 1 shares are distributed the same for different secrets",
          "[secagg][shamir]") {
  // t = 3: shares 1 and 2 of a 1-byte secret 0x00 and of 0xff. Each y is uniform over GF(p)
  // whatever the secret; the low byte of each is checked for uniformity (chi-square, 255 degrees
  // of freedom, two-sided p = 1e-6 bounds), and the pair's joint low bits too.
  const int kSplits = 20000;
  for (std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0xff}}) {
    std::vector<double> first(256, 0.0), second(256, 0.0), joint(256, 0.0);
    for (int i = 0; i < kSplits; ++i) {
      auto shares = ShamirSplit(Bytes{value}, 3, 5);
      REQUIRE(shares.ok());
      const std::uint64_t y1 = (*shares)[0].y[0], y2 = (*shares)[1].y[0];
      first[y1 & 0xff] += 1;
      second[y2 & 0xff] += 1;
      joint[((y1 & 0xf) << 4) | (y2 & 0xf)] += 1;
    }
    for (const auto* counts : {&first, &second, &joint}) {
      double chi2 = 0.0;
      const double expected = kSplits / 256.0;
      for (double c : *counts) chi2 += (c - expected) * (c - expected) / expected;
      INFO("secret " << int(value) << ": chi-square " << chi2);
      CHECK(chi2 > 161.0);
      CHECK(chi2 < 378.0);
    }
  }
}
