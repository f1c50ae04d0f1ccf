// The secure-aggregation crypto building blocks: X25519 (RFC 7748 vectors), HKDF-SHA256
// (RFC 5869 vectors), AES-256-GCM (McGrew-Viega vectors, tamper detection), and the AES-256-CTR
// mask generator (checked against OpenSSL's EVP directly, and for uniformity).
#include <openssl/evp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/random.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"

using fedml::StatusCode;
using fedml::core::Bytes;
using namespace fedml::core::security;

namespace {

Bytes FromHex(const std::string& hex) {
  auto bytes = fedml::core::HexDecode(hex);
  REQUIRE(bytes.ok());
  return std::move(bytes).value();
}

Bytes Seeded(std::size_t n, std::uint64_t seed) {
  fedml::core::Rng rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng.NextU64());
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// AES-256-CTR of `bytes` zeros with an all-zero IV, straight through EVP.
Bytes CtrOfZeros(const Bytes& key, std::size_t bytes) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  const std::uint8_t iv[16] = {};
  REQUIRE(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr, key.data(), iv) == 1);
  Bytes zeros(bytes, 0), out(bytes + 16);
  int len = 0;
  REQUIRE(EVP_EncryptUpdate(ctx.get(), out.data(), &len, zeros.data(), (int)bytes) == 1);
  REQUIRE(len == (int)bytes);
  out.resize(bytes);
  return out;
}

// Pearson's chi-square statistic of `counts` against a uniform expectation.
double ChiSquare(const std::vector<double>& counts) {
  double total = 0.0;
  for (double c : counts) total += c;
  const double expected = total / counts.size();
  double chi2 = 0.0;
  for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
  return chi2;
}

// Two-sided bounds for a chi-square with 255 degrees of freedom at p = 1e-6 in each tail
// (Wilson-Hilferty: 255 (1 - 2/2295 +- 4.753 sqrt(2/2295))^3 = 161.5 and 377.2).
constexpr double kChi2Low255 = 161.0;
constexpr double kChi2High255 = 378.0;

}  // namespace

TEST_CASE("SecureRandomBytes returns the requested number of fresh bytes", "[secagg][crypto]") {
  auto empty = SecureRandomBytes(0);
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  auto a = SecureRandomBytes(32);
  auto b = SecureRandomBytes(32);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->size() == 32);
  CHECK_FALSE(ConstantTimeEqual(*a, *b));  // 2^-256
  auto big = SecureRandomBytes(100000);
  REQUIRE(big.ok());
  CHECK(big->size() == 100000);
}

TEST_CASE("X25519 matches RFC 7748 section 6.1", "[secagg][crypto]") {
  const Bytes alice_private =
      FromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Bytes alice_public =
      FromHex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  const Bytes bob_private =
      FromHex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  const Bytes bob_public =
      FromHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const Bytes shared = FromHex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

  auto alice = X25519FromPrivate(alice_private);
  auto bob = X25519FromPrivate(bob_private);
  REQUIRE(alice.ok());
  REQUIRE(bob.ok());
  CHECK(alice->private_key == alice_private);
  CHECK(alice->public_key == alice_public);
  CHECK(bob->public_key == bob_public);

  auto k_alice = X25519SharedSecret(alice_private, bob_public);
  auto k_bob = X25519SharedSecret(bob_private, alice_public);
  REQUIRE(k_alice.ok());
  REQUIRE(k_bob.ok());
  CHECK(*k_alice == shared);
  CHECK(*k_bob == shared);

  // The same through a loaded key.
  auto loaded = X25519PrivateKey::Load(alice_private);
  REQUIRE(loaded.ok());
  auto loaded_public = loaded->PublicKey();
  REQUIRE(loaded_public.ok());
  CHECK(*loaded_public == alice_public);
  auto k_loaded = loaded->SharedSecret(bob_public);
  REQUIRE(k_loaded.ok());
  CHECK(*k_loaded == shared);
}

TEST_CASE("A loaded X25519 key agrees with many peers as X25519SharedSecret does",
          "[secagg][crypto]") {
  auto a = GenerateX25519();
  REQUIRE(a.ok());
  auto loaded = X25519PrivateKey::Load(a->private_key);
  REQUIRE(loaded.ok());
  X25519PrivateKey mine = std::move(loaded).value();  // the moved-to key is the one that works
  for (int peer = 0; peer < 5; ++peer) {
    auto p = GenerateX25519();
    REQUIRE(p.ok());
    auto want = X25519SharedSecret(a->private_key, p->public_key);
    auto got = mine.SharedSecret(p->public_key);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    CHECK(*got == *want);
    auto back = X25519SharedSecret(p->private_key, a->public_key);
    REQUIRE(back.ok());
    CHECK(*got == *back);
  }
}

TEST_CASE("X25519 key agreement: both sides agree, different pairs differ", "[secagg][crypto]") {
  auto a = GenerateX25519();
  auto b = GenerateX25519();
  auto c = GenerateX25519();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK(a->private_key.size() == 32);
  CHECK(a->public_key.size() == 32);
  CHECK(a->public_key != b->public_key);

  // The derived public key is the generated one.
  auto a_again = X25519FromPrivate(a->private_key);
  REQUIRE(a_again.ok());
  CHECK(a_again->public_key == a->public_key);

  auto ab = X25519SharedSecret(a->private_key, b->public_key);
  auto ba = X25519SharedSecret(b->private_key, a->public_key);
  auto ac = X25519SharedSecret(a->private_key, c->public_key);
  auto bc = X25519SharedSecret(b->private_key, c->public_key);
  REQUIRE(ab.ok());
  REQUIRE(ba.ok());
  REQUIRE(ac.ok());
  REQUIRE(bc.ok());
  CHECK(ab->size() == 32);
  CHECK(ConstantTimeEqual(*ab, *ba));
  CHECK_FALSE(ConstantTimeEqual(*ab, *ac));
  CHECK_FALSE(ConstantTimeEqual(*ac, *bc));
}

TEST_CASE("X25519 refuses wrong sizes and low-order public keys", "[secagg][crypto]") {
  auto a = GenerateX25519();
  REQUIRE(a.ok());
  for (std::size_t n : {0, 31, 33, 64}) {
    const Bytes bad(n, 7);
    auto from = X25519FromPrivate(bad);
    REQUIRE_FALSE(from.ok());
    CHECK(from.status().code() == StatusCode::kInvalidArgument);
    auto s1 = X25519SharedSecret(bad, a->public_key);
    REQUIRE_FALSE(s1.ok());
    CHECK(s1.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s1.status().message(), "private key"));
    auto s2 = X25519SharedSecret(a->private_key, bad);
    REQUIRE_FALSE(s2.ok());
    CHECK(s2.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s2.status().message(), "public key"));
    auto load = X25519PrivateKey::Load(bad);
    REQUIRE_FALSE(load.ok());
    CHECK(load.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(load.status().message(), "private key"));
  }
  auto loaded = X25519PrivateKey::Load(a->private_key);
  REQUIRE(loaded.ok());
  auto s3 = loaded->SharedSecret(Bytes(31, 7));
  REQUIRE_FALSE(s3.ok());
  CHECK(s3.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(s3.status().message(), "public key"));
  // u = 0 and u = 1 are points of small order: the shared secret would be all zeros.
  Bytes zero(32, 0), one(32, 0);
  one[0] = 1;
  for (const Bytes& low : {zero, one}) {
    auto s = X25519SharedSecret(a->private_key, low);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s.status().message(), "low-order"));
    auto l = loaded->SharedSecret(low);
    REQUIRE_FALSE(l.ok());
    CHECK(Contains(l.status().message(), "low-order"));
  }
}

TEST_CASE("HKDF-SHA256 matches RFC 5869 test cases 1 and 3", "[secagg][crypto]") {
  const Bytes ikm(22, 0x0b);
  const Bytes salt = FromHex("000102030405060708090a0b0c");
  const Bytes info_bytes = FromHex("f0f1f2f3f4f5f6f7f8f9");
  const std::string info(info_bytes.begin(), info_bytes.end());
  auto okm = HkdfSha256(ikm, salt, info, 42);
  REQUIRE(okm.ok());
  CHECK(*okm == FromHex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf3400720"
                        "8d5b887185865"));

  // Test case 3: empty salt and info.
  auto okm3 = HkdfSha256(ikm, {}, "", 42);
  REQUIRE(okm3.ok());
  CHECK(*okm3 == FromHex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d20139"
                         "5faa4b61a96c8"));

  // Different info gives an independent key; the first bytes of a longer output are the same.
  auto other = HkdfSha256(ikm, salt, "other", 42);
  REQUIRE(other.ok());
  CHECK(*other != *okm);
  auto longer = HkdfSha256(ikm, salt, info, kHkdfSha256MaxLength);
  REQUIRE(longer.ok());
  CHECK(Bytes(longer->begin(), longer->begin() + 42) == *okm);
}

TEST_CASE("HKDF-SHA256 refuses bad arguments", "[secagg][crypto]") {
  const Bytes ikm(32, 1);
  for (std::size_t len : {std::size_t{0}, kHkdfSha256MaxLength + 1}) {
    auto r = HkdfSha256(ikm, {}, "x", len);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), "8160"));
  }
  auto empty = HkdfSha256({}, {}, "x", 32);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == StatusCode::kInvalidArgument);
  auto long_info = HkdfSha256(ikm, {}, std::string(1025, 'i'), 32);
  REQUIRE_FALSE(long_info.ok());
  CHECK(long_info.status().code() == StatusCode::kInvalidArgument);
  CHECK(HkdfSha256(ikm, {}, std::string(1024, 'i'), 32).ok());
}

TEST_CASE("AES-256-GCM opens the McGrew-Viega test vectors 13 and 14", "[secagg][crypto]") {
  const Bytes key(32, 0);
  // Test case 13: empty plaintext; test case 14: 16 zero bytes. Zero IV, no AAD.
  const Bytes sealed13 = FromHex("000000000000000000000000530f8afbc74536b9a963b4f1c4cb738b");
  auto p13 = AeadOpen(key, sealed13, {});
  REQUIRE(p13.ok());
  CHECK(p13->empty());
  const Bytes sealed14 = FromHex(
      "000000000000000000000000cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
  auto p14 = AeadOpen(key, sealed14, {});
  REQUIRE(p14.ok());
  CHECK(*p14 == Bytes(16, 0));
}

TEST_CASE("AES-256-GCM round trip, fresh nonces", "[secagg][crypto]") {
  auto key = SecureRandomBytes(32);
  REQUIRE(key.ok());
  for (std::size_t n : {0, 1, 15, 16, 17, 1000, 70000}) {
    const Bytes plaintext = Seeded(n, n + 1);
    const Bytes aad = Seeded(n % 7, n + 2);
    auto sealed = AeadSeal(*key, plaintext, aad);
    REQUIRE(sealed.ok());
    CHECK(sealed->size() == n + kAeadNonceBytes + kAeadTagBytes);
    auto opened = AeadOpen(*key, *sealed, aad);
    REQUIRE(opened.ok());
    CHECK(*opened == plaintext);
  }
  auto s1 = AeadSeal(*key, Bytes(8, 1), {});
  auto s2 = AeadSeal(*key, Bytes(8, 1), {});
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  CHECK(*s1 != *s2);  // random nonces
}

TEST_CASE("AES-256-GCM detects every single-bit change, a changed AAD and a wrong key",
          "[secagg][crypto]") {
  auto key = SecureRandomBytes(32);
  REQUIRE(key.ok());
  const Bytes plaintext = Seeded(37, 11);
  const Bytes aad = Seeded(5, 12);
  auto sealed = AeadSeal(*key, plaintext, aad);
  REQUIRE(sealed.ok());

  auto expect_auth_failure = [&](const Bytes& k, const Bytes& s, const Bytes& a) {
    auto r = AeadOpen(k, s, a);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kDataLoss);
    CHECK(Contains(r.status().message(), "authentication failed"));
  };
  int flips = 0;
  for (std::size_t byte = 0; byte < sealed->size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes tampered = *sealed;
      tampered[byte] ^= static_cast<std::uint8_t>(1u << bit);
      expect_auth_failure(*key, tampered, aad);
      ++flips;
    }
  }
  CHECK(flips == 8 * (12 + 37 + 16));
  for (std::size_t byte = 0; byte < aad.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes other_aad = aad;
      other_aad[byte] ^= static_cast<std::uint8_t>(1u << bit);
      expect_auth_failure(*key, *sealed, other_aad);
    }
  }
  expect_auth_failure(*key, *sealed, {});
  Bytes longer_aad = aad;
  longer_aad.push_back(0);
  expect_auth_failure(*key, *sealed, longer_aad);
  Bytes truncated(sealed->begin(), sealed->end() - 1);
  expect_auth_failure(*key, truncated, aad);
  Bytes extended = *sealed;
  extended.push_back(0);
  expect_auth_failure(*key, extended, aad);

  Bytes wrong_key = *key;
  wrong_key[31] ^= 0x80;
  expect_auth_failure(wrong_key, *sealed, aad);

  // And the untouched message still opens.
  auto opened = AeadOpen(*key, *sealed, aad);
  REQUIRE(opened.ok());
  CHECK(*opened == plaintext);
}

TEST_CASE("AES-256-GCM refuses short input and wrong key sizes", "[secagg][crypto]") {
  const Bytes key(32, 3);
  for (std::size_t n : {0, 1, 27}) {
    auto r = AeadOpen(key, Bytes(n, 0), {});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), "at least 28"));
  }
  // 28 bytes is a well-formed (empty) message that fails authentication.
  auto r28 = AeadOpen(key, Bytes(28, 0), {});
  REQUIRE_FALSE(r28.ok());
  CHECK(r28.status().code() == StatusCode::kDataLoss);
  for (std::size_t n : {0, 16, 24, 31, 33}) {
    auto s = AeadSeal(Bytes(n, 1), Bytes(4, 0), {});
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == StatusCode::kInvalidArgument);
    auto o = AeadOpen(Bytes(n, 1), Bytes(40, 0), {});
    REQUIRE_FALSE(o.ok());
    CHECK(o.status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("ExpandMask is AES-256-CTR of zeros, read little-endian", "[secagg][crypto]") {
  const Bytes seed = Seeded(32, 99);
  // 10001 words cross two 16 KiB keystream blocks and end mid-block.
  for (std::size_t n : {1, 3, 4, 5, 4095, 4096, 4097, 10001}) {
    std::vector<std::uint32_t> mask(n);
    REQUIRE(ExpandMask(seed, mask.data(), n).ok());
    const Bytes stream = CtrOfZeros(seed, 4 * n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t want = static_cast<std::uint32_t>(stream[4 * i]) |
                                 (static_cast<std::uint32_t>(stream[4 * i + 1]) << 8) |
                                 (static_cast<std::uint32_t>(stream[4 * i + 2]) << 16) |
                                 (static_cast<std::uint32_t>(stream[4 * i + 3]) << 24);
      if (mask[i] != want) {
        FAIL("word " << i << " of " << n << ": got " << mask[i] << ", want " << want);
      }
    }
  }
}

TEST_CASE("Keystream reads AES-256-CTR of zeros in order, as words or bytes", "[crypto]") {
  const Bytes key = Seeded(32, 5);
  // 600 words cross the 4 KiB read buffer (512 words); then 20000 bytes, the buffer's 3392 left
  // and 16608 straight from the stream, cross a 16 KiB block.
  const Bytes stream = CtrOfZeros(key, 4096 + 4800 + 20000);
  auto ks = Keystream::Create(key);
  REQUIRE(ks.ok());
  std::size_t at = 0;
  for (int i = 0; i < 600; ++i) {
    std::uint64_t want = 0;
    for (int b = 7; b >= 0; --b) want = (want << 8) | stream[at + static_cast<std::size_t>(b)];
    const std::uint64_t got = ks->Next64();
    if (got != want) FAIL("word " << i << ": got " << got << ", want " << want);
    at += 8;
  }
  // Fill takes the buffered bytes first, then the stream where the buffer ends.
  Bytes filled(20000);
  REQUIRE(ks->Fill(filled.data(), filled.size()).ok());
  const std::size_t buffered = 8192 - at;
  CHECK(std::equal(filled.begin(), filled.begin() + buffered, stream.begin() + at));
  CHECK(std::equal(filled.begin() + buffered, filled.end(), stream.begin() + 8192));
  CHECK(ks->status().ok());
  CHECK(ks->Fill(nullptr, 0).ok());
  auto bad = Keystream::Create(Bytes(16, 0));
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("ExpandMask is deterministic, and seeds give different masks", "[secagg][crypto]") {
  const Bytes seed = Seeded(32, 1);
  Bytes other = seed;
  other[31] ^= 1;
  std::vector<std::uint32_t> a(20000), b(20000), c(20000), prefix(7000);
  REQUIRE(ExpandMask(seed, a.data(), a.size()).ok());
  REQUIRE(ExpandMask(seed, b.data(), b.size()).ok());
  REQUIRE(ExpandMask(other, c.data(), c.size()).ok());
  REQUIRE(ExpandMask(seed, prefix.data(), prefix.size()).ok());
  CHECK(a == b);
  CHECK(std::equal(prefix.begin(), prefix.end(), a.begin()));
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
  CHECK(same < 3);  // each word agrees with probability 2^-32

  CHECK(ExpandMask(seed, nullptr, 0).ok());
  auto null_out = ExpandMask(seed, nullptr, 5);
  CHECK(null_out.code() == StatusCode::kInvalidArgument);
  for (std::size_t n : {0, 16, 31, 33}) {
    std::uint32_t word = 0;
    const fedml::Status s = ExpandMask(Bytes(n, 0), &word, 1);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(Contains(s.message(), "32 bytes"));
  }
}

TEST_CASE("ExpandMask output is uniform (chi-square over 1M words)", "[secagg][crypto]") {
  const std::size_t n = 1 << 20;
  std::vector<std::uint32_t> mask(n);
  REQUIRE(ExpandMask(Seeded(32, 2024), mask.data(), n).ok());
  std::vector<double> all_bytes(256, 0.0), low_bytes(256, 0.0), high_bytes(256, 0.0);
  for (std::uint32_t w : mask) {
    for (int k = 0; k < 4; ++k) all_bytes[(w >> (8 * k)) & 0xff] += 1;
    low_bytes[w & 0xff] += 1;
    high_bytes[w >> 24] += 1;
  }
  for (const auto* counts : {&all_bytes, &low_bytes, &high_bytes}) {
    const double chi2 = ChiSquare(*counts);
    INFO("chi-square " << chi2 << " (255 degrees of freedom)");
    CHECK(chi2 > kChi2Low255);
    CHECK(chi2 < kChi2High255);
  }
}

TEST_CASE("ConstantTimeEqual compares sizes and contents", "[secagg][crypto]") {
  CHECK(ConstantTimeEqual({}, {}));
  CHECK(ConstantTimeEqual(Bytes{1, 2, 3}, Bytes{1, 2, 3}));
  CHECK_FALSE(ConstantTimeEqual(Bytes{1, 2, 3}, Bytes{1, 2, 4}));
  CHECK_FALSE(ConstantTimeEqual(Bytes{1, 2, 3}, Bytes{1, 2}));
  CHECK_FALSE(ConstantTimeEqual({}, Bytes{0}));
}

TEST_CASE("ApplyMasks adds and subtracts ExpandMask's words, for any thread count",
          "[secagg][crypto]") {
  // Not a multiple of the 16 KiB chunk nor of an AES block; 70 terms cross the 64-context batch.
  const std::size_t len = (std::size_t{1} << 20) + 13;
  std::vector<MaskTerm> terms;
  for (int i = 0; i < 70; ++i) {
    Bytes seed(32, static_cast<std::uint8_t>(i));
    terms.push_back({seed, i % 3 != 0});
  }
  std::vector<std::uint32_t> start(len);
  fedml::core::Rng rng(9);
  for (auto& w : start) w = static_cast<std::uint32_t>(rng.NextU64());
  for (std::uint64_t modulus : {std::uint64_t{1} << 32, std::uint64_t{1} << 20}) {
    INFO("modulus " << modulus);
    std::vector<std::uint32_t> expected = start;
    if (modulus != (std::uint64_t{1} << 32)) {
      for (auto& w : expected) w &= static_cast<std::uint32_t>(modulus - 1);
    }
    std::vector<std::uint32_t> mask(len);
    for (const MaskTerm& t : terms) {
      REQUIRE(ExpandMask(t.seed, mask.data(), len).ok());
      if (t.add) {
        AddModInPlace(expected.data(), mask.data(), len, modulus);
      } else {
        SubModInPlace(expected.data(), mask.data(), len, modulus);
      }
    }
    for (int threads : {1, 2, 0}) {
      INFO("threads " << threads);
      std::vector<std::uint32_t> acc = start;
      if (modulus != (std::uint64_t{1} << 32)) {
        for (auto& w : acc) w &= static_cast<std::uint32_t>(modulus - 1);
      }
      REQUIRE(ApplyMasks(terms, acc.data(), len, modulus, threads).ok());
      CHECK(acc == expected);
    }
  }
  terms[5].seed.pop_back();
  std::vector<std::uint32_t> acc(16);
  auto bad = ApplyMasks(terms, acc.data(), acc.size(), std::uint64_t{1} << 32, 1);
  CHECK(bad.code() == StatusCode::kInvalidArgument);
  CHECK(bad.message().find("31") != std::string::npos);
}
