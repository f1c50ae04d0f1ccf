// Pins the exact bytes of core's binary forms: an encoded Shamir share, an encoded training
// commitment and its digest, and the byte strings behind CheckpointSha256, BatchIndicesHasher and
// SelectSpotCheck. These bytes are hashed, signed, persisted and sent between processes built at
// different times, so any change to them is a format change: the expected values below were
// captured from the encoders as they were before they moved onto core::ByteWriter, and must only
// ever change together with a format version (commitment format 2 changed CheckpointSha256 to
// length-prefixed tensor names, and with it the commitment's version byte and digest).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/hex.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/shamir.h"

using fedml::core::Bytes;
using fedml::core::ModelState;
using fedml::testing::Hex;
using namespace fedml::core::security;

namespace {

TrainingCommitment PinnedCommitment() {
  TrainingCommitment c;
  c.data_seed = 0x0102030405060708ULL;
  c.checkpoint_interval = 5;
  c.total_steps = 7;  // checkpoints at steps 0, 5 and 7
  c.checkpoint_sha256 = {std::string(64, 'a'), std::string(64, 'b'), std::string(64, 'c')};
  c.batch_indices_sha256 = std::string(64, '0');
  c.hyperparameters = {{"lr", 0.05}, {"wd", -0.0}};
  c.num_samples = 300;
  return c;
}

}  // namespace

TEST_CASE("pinned: EncodeShare's bytes", "[pins][shamir]") {
  ShamirShare s;
  s.x = 3;
  s.secret_bytes = 7;
  s.y = {0x0011223344556677ULL, 0x1fedcba987654321ULL};
  const Bytes e = EncodeShare(s);
  CHECK(Hex(e) ==
        "46535301"                  // "FSS" | u8 version 1
        "030000000700000002000000"  // u32 x | u32 secret_bytes | u32 chunk count
        "7766554433221100"          // u64 y[0]
        "21436587a9cbed1f"          // u64 y[1]
  );
  auto back = DecodeShare(e);
  REQUIRE(back.ok());
  CHECK(back->x == 3);
  CHECK(back->secret_bytes == 7);
  CHECK(back->y == s.y);
}

TEST_CASE("pinned: EncodeCommitment's bytes and CommitmentDigest", "[pins][commitment]") {
  const TrainingCommitment c = PinnedCommitment();
  REQUIRE(ValidateCommitment(c).ok());
  const Bytes e = EncodeCommitment(c);
  std::string want = "46544302";  // "FTC" | u8 version 2
  want += "0500000000000000";     // checkpoint_interval
  want += "0700000000000000";     // total_steps
  want += "2c01000000000000";     // num_samples
  want += "0807060504030201";     // data_seed
  want += "03000000";             // three checkpoint hashes
  for (const char* hash_hex : {"61", "62", "63"}) {
    want += "40000000";  // u32 length 64, then 64 times 'a', 'b' or 'c'
    for (int i = 0; i < 64; ++i) want += hash_hex;
  }
  want += "40000000";  // batch_indices_sha256: 64 times '0'
  for (int i = 0; i < 64; ++i) want += "30";
  want += "02000000";                      // two hyperparameters
  want += "020000006c729a9999999999a93f";  // "lr" | 0.05
  want += "0200000077640000000000000080";  // "wd" | -0.0
  CHECK(Hex(e) == want);
  auto back = DecodeCommitment(e);
  REQUIRE(back.ok());
  CHECK(*back == c);
  CHECK(*CommitmentDigest(c) == "59e1d80b80c21c66eb233b33c3196adcd923c5e5558207040cbe1e129c12ebad");
}

TEST_CASE("pinned: CheckpointSha256 and BatchIndicesHasher digests", "[pins][commitment]") {
  ModelState s;
  const std::vector<float> w = {1.5f, -2.0f, 0.25f};
  const float bias = 7.0f;
  REQUIRE(s.Add("w", {3}, w.data()).ok());
  REQUIRE(s.Add("b", {1, 1}, &bias).ok());
  CHECK(*CheckpointSha256(s) == "90ac1c90346a2cb34ce84a430553601e471fd827540005d42598892216fd22f4");

  BatchIndicesHasher h;
  h.Add({1, 2});
  h.Add({});
  h.Add({-3, 1LL << 40});
  CHECK(*h.Finish() == "d76e7a81c5c793a3c88a07669e66199e652f05b7fa46eee607cb8fb98bedbfb3");
}

TEST_CASE("pinned: SelectSpotCheck's decisions", "[pins][commitment]") {
  Bytes secret(kSpotCheckSecretBytes);
  for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::uint8_t>(3 * i);
  const std::string digest(64, 'd');
  std::string decisions;
  for (std::int64_t client = 0; client < 40; ++client) {
    auto r = SelectSpotCheck(secret, 11, client, digest, 0.5, 9);
    REQUIRE(r.ok());
    decisions += r->check ? static_cast<char>('0' + r->segment) : '-';
  }
  CHECK(decisions == "2-4-------6-3-------5----4--7----7-254-1");
}
