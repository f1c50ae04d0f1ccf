// Verified work's commitments (fedml/core/security/commitment.h): the encoding (round trip,
// truncation, tampering, validation), segment arithmetic, the checkpoint and batch-index hashes
// against hand-built bytes, the spot-check selection (its formula against OpenSSL's HMAC, its
// frequency and uniformity, its dependence on the digest and the secret) and the replay distance.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/crypto.h"

using fedml::StatusCode;
using fedml::core::Bytes;
using fedml::core::ByteWriter;
using fedml::core::ModelState;
using namespace fedml::core::security;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string HexOfString(const std::string& s) {
  auto h = Sha256Hex(s.data(), s.size());
  REQUIRE(h.ok());
  return *h;
}

// total_steps 10 at interval 3: checkpoints at steps 0, 3, 6, 9 and 10.
TrainingCommitment Sample() {
  TrainingCommitment c;
  c.data_seed = 0x0123456789abcdefULL;
  c.checkpoint_interval = 3;
  c.total_steps = 10;
  for (int i = 0; i < 5; ++i)
    c.checkpoint_sha256.push_back(HexOfString("ckpt" + std::to_string(i)));
  c.batch_indices_sha256 = HexOfString("batches");
  c.hyperparameters = {{"lr", 0.05}, {"momentum", 0.9}, {"batch_size", 32}, {"wd", -0.0}};
  c.num_samples = 320;
  return c;
}

Bytes Secret(std::uint8_t first) {
  Bytes s(kSpotCheckSecretBytes);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(first + i);
  return s;
}

ModelState TwoTensors(const std::vector<float>& w, float b) {
  ModelState s;
  REQUIRE(s.Add("w", {3}, w.data()).ok());
  REQUIRE(s.Add("b", {1, 1}, &b).ok());
  return s;
}

}  // namespace

TEST_CASE("a commitment encodes and decodes back exactly", "[commitment]") {
  const TrainingCommitment c = Sample();
  REQUIRE(ValidateCommitment(c).ok());
  const Bytes encoded = EncodeCommitment(c);
  auto decoded = DecodeCommitment(encoded);
  REQUIRE(decoded.ok());
  CHECK(*decoded == c);
  CHECK(EncodeCommitment(*decoded) == encoded);
  // -0.0 keeps its sign (the digest sees the bits).
  CHECK(std::signbit(decoded->hyperparameters.at("wd")));

  TrainingCommitment zero;  // no steps: one checkpoint, no hyperparameters
  zero.checkpoint_sha256 = {HexOfString("start")};
  zero.batch_indices_sha256 = HexOfString("");
  auto z = DecodeCommitment(EncodeCommitment(zero));
  REQUIRE(z.ok());
  CHECK(*z == zero);
}

TEST_CASE("every truncation and trailing bytes are refused", "[commitment]") {
  const Bytes encoded = EncodeCommitment(Sample());
  for (std::size_t n = 0; n < encoded.size(); ++n) {
    auto r = DecodeCommitment(Bytes(encoded.begin(), encoded.begin() + n));
    INFO("prefix of " << n << " bytes");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  Bytes longer = encoded;
  longer.push_back(0);
  auto r = DecodeCommitment(longer);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "trailing"));
  // A cut in a hash names it.
  auto cut = DecodeCommitment(Bytes(encoded.begin(), encoded.begin() + 4 + 32 + 4 + 68 + 10));
  REQUIRE_FALSE(cut.ok());
  CHECK(Contains(cut.status().message(), "checkpoint_sha256[1]"));
}

TEST_CASE("every changed byte is refused or changes the digest", "[commitment]") {
  const TrainingCommitment c = Sample();
  const Bytes encoded = EncodeCommitment(c);
  auto digest = CommitmentDigest(c);
  REQUIRE(digest.ok());
  CHECK(*digest == *Sha256Hex(encoded.data(), encoded.size()));
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    for (std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      Bytes changed = encoded;
      changed[i] ^= flip;
      auto d = DecodeCommitment(changed);
      if (!d.ok()) continue;  // refused: as good as a different digest
      INFO("byte " << i << " ^ " << int(flip));
      CHECK(*d != c);
      CHECK(*CommitmentDigest(*d) != *digest);
    }
  }
  // A field changed in the struct changes the digest too.
  TrainingCommitment other = c;
  other.hyperparameters["lr"] = 0.0500000001;
  CHECK(*CommitmentDigest(other) != *digest);
  other = c;
  other.data_seed ^= 1;
  CHECK(*CommitmentDigest(other) != *digest);
}

TEST_CASE("invalid commitments are refused naming the field", "[commitment]") {
  auto refused = [](const TrainingCommitment& c, const std::string& field) {
    const fedml::Status v = ValidateCommitment(c);
    INFO(v.ToString());
    CHECK(v.code() == StatusCode::kInvalidArgument);
    CHECK(Contains(v.message(), field));
    auto d = DecodeCommitment(EncodeCommitment(c));
    REQUIRE_FALSE(d.ok());
    INFO(d.status().ToString());
    CHECK(d.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(d.status().message(), field));
  };
  TrainingCommitment c = Sample();
  c.checkpoint_interval = 0;
  refused(c, "checkpoint_interval");
  c = Sample();
  c.total_steps = -1;
  refused(c, "total_steps");
  c = Sample();
  c.num_samples = 0;
  refused(c, "num_samples");
  c = Sample();
  c.total_steps = 12;  // 0, 3, 6, 9, 12: still 5 checkpoints
  CHECK(ValidateCommitment(c).ok());
  c.total_steps = 13;  // needs 6
  refused(c, "checkpoint_sha256 holds 5");
  c = Sample();
  c.checkpoint_sha256.pop_back();
  refused(c, "checkpoint_sha256 holds 4");
  c = Sample();
  c.checkpoint_sha256[2][5] = 'A';  // uppercase is not the canonical form
  refused(c, "checkpoint_sha256[2]");
  c = Sample();
  c.checkpoint_sha256[3].pop_back();
  refused(c, "checkpoint_sha256[3]");
  c = Sample();
  c.batch_indices_sha256 = "";
  refused(c, "batch_indices_sha256");
  for (double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    c = Sample();
    c.hyperparameters["lr"] = bad;
    refused(c, "hyperparameter 'lr'");
  }
  c = Sample();
  c.hyperparameters[""] = 1;
  refused(c, "empty name");
  c = Sample();
  c.checkpoint_interval = 1;
  c.total_steps = kMaxCommitmentCheckpoints;  // one checkpoint too many
  refused(c, "raise checkpoint_interval");
}

TEST_CASE("decoding checks counts against the bytes before allocating", "[commitment]") {
  // A header claiming 2^20 - 1 steps at interval 1 (2^20 checkpoints, the most allowed) and
  // nothing after the count: refused as truncated, without reserving for a million hashes' worth
  // of bytes that are not there.
  ByteWriter b;
  b.Raw("FTC").U8(kCommitmentFormatVersion);
  b.U64(1).U64(static_cast<std::uint64_t>(kMaxCommitmentCheckpoints - 1)).U64(10).U64(7);
  b.U32(static_cast<std::uint32_t>(kMaxCommitmentCheckpoints));
  auto r = DecodeCommitment(b.bytes());
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "truncated in checkpoint_sha256"));

  // A hash length far beyond the buffer.
  Bytes e = EncodeCommitment(Sample());
  const std::size_t first_len = 4 + 32 + 4;
  fedml::core::StoreLe32(e.data() + first_len, 0xffffffffu);
  r = DecodeCommitment(e);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "checkpoint_sha256[0]"));

  // A hyperparameter count beyond the limit.
  Bytes h = EncodeCommitment(Sample());
  // The count, then four (u32 length, name, u64 value) entries: batch_size, lr, momentum, wd.
  const std::size_t count_at = h.size() - 4 * (4 + 8) - (10 + 2 + 8 + 2) - 4;
  CHECK(fedml::core::LoadLe32(h.data() + count_at) == 4);
  fedml::core::StoreLe32(h.data() + count_at, 1u << 30);
  r = DecodeCommitment(h);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "hyperparameters"));

  // Magic and version.
  Bytes m = EncodeCommitment(Sample());
  m[0] = 'X';
  CHECK(Contains(DecodeCommitment(m).status().message(), "magic"));
  m = EncodeCommitment(Sample());
  m[3] = 1;  // version 1's checkpoint hashes are another function of the model
  CHECK(Contains(DecodeCommitment(m).status().message(), "version 1"));
}

TEST_CASE("hyperparameter names must be strictly ascending in the encoding", "[commitment]") {
  TrainingCommitment c = Sample();
  c.hyperparameters = {{"a", 1.0}, {"b", 2.0}};
  Bytes e = EncodeCommitment(c);
  // Swap the one-letter names: "b" then "a".
  const std::size_t a_at = e.size() - 2 * (4 + 1 + 8) + 4;
  REQUIRE(e[a_at] == 'a');
  e[a_at] = 'b';
  auto r = DecodeCommitment(e);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "out of order or repeated"));
}

TEST_CASE("segments cover the steps between checkpoints", "[commitment]") {
  CHECK(NumSegments(10, 3) == 4);
  CHECK(NumCheckpoints(10, 3) == 5);
  CHECK(NumSegments(9, 3) == 3);
  CHECK(NumSegments(0, 3) == 0);
  CHECK(NumCheckpoints(0, 3) == 1);
  CHECK(SegmentStart(0, 3, 10) == 0);
  CHECK(SegmentEnd(0, 3, 10) == 3);
  CHECK(SegmentStart(3, 3, 10) == 9);
  CHECK(SegmentEnd(3, 3, 10) == 10);  // the short last segment
  CHECK(SegmentStart(4, 3, 10) == -1);
  CHECK(SegmentStart(-1, 3, 10) == -1);
  CHECK(NumSegments(10, 0) == -1);
  CHECK(NumSegments(-1, 3) == -1);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  CHECK(SegmentEnd(0, big, 5) == 5);  // start + interval would overflow
  CHECK(SegmentEnd(1, big - 1, big) == big);
  std::vector<std::int64_t> steps;
  for (std::int64_t s = -1; s <= 11; ++s) {
    if (IsCheckpointStep(s, 3, 10)) steps.push_back(s);
  }
  CHECK(steps == std::vector<std::int64_t>{0, 3, 6, 9, 10});
}

TEST_CASE("CheckpointSha256 hashes the documented bytes", "[commitment]") {
  const ModelState s = TwoTensors({1.5f, -2.0f, 0.25f}, 7.0f);
  ByteWriter expect;
  auto put_tensor = [&expect](const std::string& name, const std::vector<std::int64_t>& shape,
                              const std::vector<float>& values) {
    expect.U64(name.size()).Raw(name).U64(shape.size());
    for (std::int64_t d : shape) expect.U64(static_cast<std::uint64_t>(d));
    for (float v : values) {
      std::uint32_t bits;
      std::memcpy(&bits, &v, 4);
      expect.U32(bits);
    }
  };
  put_tensor("w", {3}, {1.5f, -2.0f, 0.25f});
  put_tensor("b", {1, 1}, {7.0f});
  auto got = CheckpointSha256(s);
  REQUIRE(got.ok());
  CHECK(*got == *Sha256Hex(expect.bytes().data(), expect.size()));
  CHECK(*CheckpointSha256(ModelState()) == *Sha256Hex(nullptr, 0));

  TrainingCommitment c = Sample();
  c.checkpoint_sha256[4] = *got;
  CHECK(*CheckpointMatches(c, 4, s) == true);
  CHECK(*CheckpointMatches(c, 3, s) == false);
  CHECK(*CheckpointMatches(c, 4, TwoTensors({1.5f, -2.0f, 0.25f}, 7.000001f)) == false);
  auto out = CheckpointMatches(c, 5, s);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(CheckpointMatches(c, -1, s).ok());
}

TEST_CASE("BatchIndicesHasher hashes length-prefixed little-endian batches", "[commitment]") {
  std::vector<std::int64_t> long_batch(1500);  // more than the hasher's 512-index buffer
  for (std::size_t i = 0; i < long_batch.size(); ++i) {
    long_batch[i] = static_cast<std::int64_t>(i * 7919) - 300;
  }
  const std::vector<std::vector<std::int64_t>> batches = {{1, 2}, {3}, {}, long_batch};
  ByteWriter expect;
  BatchIndicesHasher hasher;
  for (const auto& b : batches) {
    expect.U64(b.size());
    for (std::int64_t i : b) expect.U64(static_cast<std::uint64_t>(i));
    hasher.Add(b);
  }
  CHECK(hasher.batches() == 4);
  auto digest = hasher.Finish();
  REQUIRE(digest.ok());
  CHECK(*digest == *Sha256Hex(expect.bytes().data(), expect.size()));

  // Batch boundaries count.
  BatchIndicesHasher a, b;
  a.Add({1, 2});
  a.Add({3});
  b.Add({1});
  b.Add({2, 3});
  CHECK(*a.Finish() != *b.Finish());

  BatchIndicesHasher empty;
  CHECK(*empty.Finish() == *Sha256Hex(nullptr, 0));
  auto again = empty.Finish();
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);

  BatchIndicesHasher moved;
  BatchIndicesHasher taker = std::move(moved);
  CHECK(moved.Finish().status().code() == StatusCode::kFailedPrecondition);  // NOLINT
  CHECK(taker.Finish().ok());
}

TEST_CASE("SelectSpotCheck follows its documented HMAC formula", "[commitment]") {
  const Bytes secret = Secret(1);
  const std::string digest = HexOfString("some commitment");
  for (std::int64_t client = 0; client < 50; ++client) {
    ByteWriter w;
    w.Raw("fedml-spot-check-v1").U64(17).U64(static_cast<std::uint64_t>(client));
    w.U32(static_cast<std::uint32_t>(digest.size())).Raw(digest);
    const Bytes& msg = w.bytes();
    std::uint8_t mac[32];
    unsigned int len = 0;
    REQUIRE(HMAC(EVP_sha256(), secret.data(), 32, msg.data(), msg.size(), mac, &len) != nullptr);
    const double u = static_cast<double>(fedml::core::LoadLe64(mac) >> 11) * 0x1p-53;
    const auto segment = static_cast<std::int64_t>(
        (static_cast<unsigned __int128>(fedml::core::LoadLe64(mac + 8)) * 7u) >> 64);

    auto got = SelectSpotCheck(secret, 17, client, digest, 0.5, 7);
    REQUIRE(got.ok());
    CHECK(got->check == (u < 0.5));
    CHECK(got->segment == (got->check ? segment : -1));
    // Deterministic.
    auto again = SelectSpotCheck(secret, 17, client, digest, 0.5, 7);
    CHECK((again->check == got->check && again->segment == got->segment));
  }
}

TEST_CASE("spot checks happen with the configured probability, segments uniformly",
          "[commitment]") {
  // 10000 decisions at p = 0.3 with a fixed secret (so the test is deterministic): the count is
  // Binomial(10000, 0.3) for an ideal PRF, mean 3000, standard deviation sqrt(10000 * 0.3 * 0.7)
  // = 45.8; we allow 5 standard deviations (+-229), which a correct implementation exceeds with
  // probability below 6e-7 for a random secret.
  const Bytes secret = Secret(42);
  const std::string digest = HexOfString("commitment");
  const int n = 10000;
  const std::int64_t segments = 8;
  int checked = 0;
  std::vector<double> per_segment(segments, 0.0);
  for (int i = 0; i < n; ++i) {
    auto s = SelectSpotCheck(secret, i / 100, i % 100, digest, 0.3, segments);
    REQUIRE(s.ok());
    if (!s->check) continue;
    ++checked;
    REQUIRE(s->segment >= 0);
    REQUIRE(s->segment < segments);
    per_segment[static_cast<std::size_t>(s->segment)] += 1;
  }
  CHECK(std::abs(checked - 3000) <= 229);
  // Chi-square of the segments against uniform, 7 degrees of freedom: P(X > 29.9) = 1e-4.
  double chi = 0;
  const double expect = checked / static_cast<double>(segments);
  for (double c : per_segment) chi += (c - expect) * (c - expect) / expect;
  CHECK(chi < 29.9);

  // The ends of the range, and nothing to replay.
  for (int i = 0; i < 200; ++i) {
    CHECK_FALSE(SelectSpotCheck(secret, 0, i, digest, 0.0, segments)->check);
    auto all = SelectSpotCheck(secret, 0, i, digest, 1.0, segments);
    CHECK(all->check);
    CHECK(all->segment >= 0);
    CHECK_FALSE(SelectSpotCheck(secret, 0, i, digest, 1.0, 0)->check);
  }
}

TEST_CASE("the selection depends on the commitment digest and on the secret", "[commitment]") {
  const std::string d1 = HexOfString("commitment one");
  const std::string d2 = HexOfString("commitment two");
  auto decisions = [](const Bytes& secret, const std::string& digest, std::int64_t round = 3) {
    std::vector<std::int64_t> out;  // -1: not checked, otherwise the segment
    for (int client = 0; client < 256; ++client) {
      out.push_back(SelectSpotCheck(secret, round, client, digest, 0.5, 16)->segment);
    }
    return out;
  };
  const auto base = decisions(Secret(1), d1);
  const auto other_digest = decisions(Secret(1), d2);
  const auto other_secret = decisions(Secret(2), d1);
  CHECK(base != other_digest);
  CHECK(base != other_secret);
  // Independent decisions agree on about 1/2 * 1/2 + 1/2 * 1/2 * 1/16 = 26.6% of clients; far
  // from all of them.
  int same = 0;
  for (std::size_t i = 0; i < base.size(); ++i) same += base[i] == other_digest[i];
  CHECK(same < 128);
  // The round counts too.
  CHECK(base != decisions(Secret(1), d1, 4));
}

TEST_CASE("SelectSpotCheck refuses bad arguments", "[commitment]") {
  const std::string d = HexOfString("c");
  auto bad = [](const fedml::Result<SpotCheck>& r, const std::string& what) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(Contains(r.status().message(), what));
  };
  bad(SelectSpotCheck(Bytes(31, 1), 0, 0, d, 0.5, 4), "secret");
  bad(SelectSpotCheck(Bytes(), 0, 0, d, 0.5, 4), "secret");
  bad(SelectSpotCheck(Secret(1), 0, 0, d, 1.5, 4), "verify_probability");
  bad(SelectSpotCheck(Secret(1), 0, 0, d, -0.1, 4), "verify_probability");
  bad(SelectSpotCheck(Secret(1), 0, 0, d, std::nan(""), 4), "verify_probability");
  bad(SelectSpotCheck(Secret(1), 0, 0, d, 0.5, -1), "num_segments");
}

TEST_CASE("StateL2Distance matches a hand computation and checks layouts", "[commitment]") {
  const ModelState a = TwoTensors({1.0f, 2.0f, 3.0f}, 4.0f);
  const ModelState b = TwoTensors({1.0f, 0.0f, 3.5f}, 0.0f);
  // (2 - 0)^2 + (3 - 3.5)^2 + (4 - 0)^2 = 4 + 0.25 + 16
  auto d = StateL2Distance(a, b);
  REQUIRE(d.ok());
  CHECK(*d == Approx(std::sqrt(20.25)).epsilon(1e-15));
  CHECK(*StateL2Distance(a, a) == 0.0);
  CHECK(SegmentPasses(*d, 4.5));
  CHECK_FALSE(SegmentPasses(*d, 4.49));

  ModelState other;
  const float w[3] = {1, 2, 3};
  const float b4[2] = {4, 5};
  REQUIRE(other.Add("w", {3}, w).ok());
  REQUIRE(other.Add("b", {2}, b4).ok());
  auto mismatch = StateL2Distance(a, other);
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.status().code() == StatusCode::kInvalidArgument);
  CHECK(Contains(mismatch.status().message(), "'b'"));

  const ModelState nan = TwoTensors({std::nanf(""), 2.0f, 3.0f}, 4.0f);
  auto dn = StateL2Distance(a, nan);
  REQUIRE(dn.ok());
  CHECK_FALSE(SegmentPasses(*dn, 1e30));
}
