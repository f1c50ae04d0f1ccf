// Pins the exact bytes of every SecAgg message's encoding (fedml/algorithms/protocols/secagg.h).
// Clients and servers built at different times exchange these bytes, so a change to them is a
// format change: the expected values were captured from the encoders as they were before they moved
// onto core::ByteWriter, and must only ever change together with kSecAggFormatVersion (2 added the
// self-mask commitment and the accused list, and changed nothing else). Each pinned
// encoding also decodes back to the message it came from.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/hex.h"
#include "fedml/algorithms/protocols/secagg.h"

namespace fedml::algorithms {
namespace {

using core::Bytes;
using fedml::testing::Hex;

// n bytes first, first + 1, ...
Bytes Run(std::size_t n, std::uint8_t first) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(first + i);
  return b;
}

constexpr std::uint64_t kRound = 0x0123456789abcdefULL;

SecAggKeys Keys(int id) {
  SecAggKeys k;
  k.round_id = kRound;
  k.id = id;
  k.c_public = Run(32, static_cast<std::uint8_t>(0x10 * id));
  k.s_public = Run(32, static_cast<std::uint8_t>(0x10 * id + 0x80));
  return k;
}

std::vector<SecAggShareCiphertext> Cts() {
  return {{1, 2, Bytes{0xaa, 0xbb, 0xcc}}, {1, 4, Bytes{}}};
}
// Cts() encoded.
const std::string kCtsHex =
    "02000000"                        // u32 ciphertext count: 2
    "010000000200000003000000aabbcc"  // from 1 | to 2 | u32 length | 3 bytes
    "010000000400000000000000";       // from 1 | to 4 | u32 length 0

template <class T, class D>
T RoundTrip(const Bytes& e, D decode) {
  Result<T> r = decode(e);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(Encode(r.value()) == e);
  return std::move(r).value();
}

TEST_CASE("pinned: SecAggKeys", "[pins][secagg]") {
  const Bytes e = Encode(Keys(1));
  CHECK(Hex(e) ==
        "4653414b02000000"          // "FSAK" | u32 version
        "efcdab896745230101000000"  // u64 round_id | u32 id
        // c_public: u32 length | 32 bytes
        "20000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
        // s_public: u32 length | 32 bytes
        "20000000909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  const SecAggKeys k = RoundTrip<SecAggKeys>(e, DecodeSecAggKeys);
  CHECK(k.id == 1);
}

TEST_CASE("pinned: SecAggKeyList", "[pins][secagg]") {
  SecAggKeyList l;
  l.round_id = kRound;
  l.id = 1;
  l.survivors = {0, 1, 3};
  l.neighbours = {Keys(0), Keys(3)};
  const Bytes e = Encode(l);
  CHECK(Hex(e) ==
        "4653414c02000000"                  // "FSAL" | u32 version
        "efcdab896745230101000000"          // u64 round_id | u32 id
        "03000000000000000100000003000000"  // survivors: u32 count | 0, 1, 3
        "02000000"                          // u32 neighbour count: 2
        "efcdab896745230100000000"          // keys of 0: u64 round_id | u32 id
        // c_public: u32 length | 32 bytes
        "20000000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        // s_public: u32 length | 32 bytes
        "20000000808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "efcdab896745230103000000"  // keys of 3: u64 round_id | u32 id
        // c_public: u32 length | 32 bytes
        "20000000303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
        // s_public: u32 length | 32 bytes
        "20000000b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf");
  const SecAggKeyList back = RoundTrip<SecAggKeyList>(e, DecodeSecAggKeyList);
  CHECK(back.survivors == l.survivors);
}

TEST_CASE("pinned: SecAggEncryptedShares", "[pins][secagg]") {
  SecAggEncryptedShares s;
  s.round_id = kRound;
  s.id = 1;
  s.ciphertexts = Cts();
  s.self_mask_commitment = Run(32, 0x40);
  const Bytes e = Encode(s);
  CHECK(Hex(e) ==
        "4653414502000000"          // "FSAE" | u32 version
        "efcdab896745230101000000"  // u64 round_id | u32 id
            + kCtsHex +
            "20000000"  // commitment: u32 length | 32 bytes
            "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f");
  RoundTrip<SecAggEncryptedShares>(e, DecodeSecAggEncryptedShares);
}

TEST_CASE("pinned: SecAggSharesForYou", "[pins][secagg]") {
  SecAggSharesForYou f;
  f.round_id = kRound;
  f.id = 2;
  f.survivors = {1, 2};
  f.ciphertexts = Cts();
  const Bytes e = Encode(f);
  CHECK(Hex(e) ==
        "4653415302000000"          // "FSAS" | u32 version
        "efcdab896745230102000000"  // u64 round_id | u32 id
        "020000000100000002000000"  // survivors: u32 count | 1, 2
            + kCtsHex);
  RoundTrip<SecAggSharesForYou>(e, DecodeSecAggSharesForYou);
}

TEST_CASE("pinned: SecAggMaskedInput", "[pins][secagg]") {
  SecAggMaskedInput m;
  m.round_id = kRound;
  m.id = 3;
  m.masked = {1, 0xdeadbeefu, 0xffffffffu, 0};
  m.accused = {2, 4};
  const Bytes e = Encode(m);
  CHECK(Hex(e) ==
        "4653414d02000000"                  // "FSAM" | u32 version
        "efcdab896745230103000000"          // u64 round_id | u32 id
        "0400000000000000"                  // u64 word count
        "01000000efbeaddeffffffff00000000"  // the words
        "020000000200000004000000"          // accused: u32 count | 2, 4
  );
  const SecAggMaskedInput back = RoundTrip<SecAggMaskedInput>(e, DecodeSecAggMaskedInput);
  CHECK(back.masked == m.masked);
  CHECK(back.accused == m.accused);
}

TEST_CASE("pinned: SecAggUnmaskRequest", "[pins][secagg]") {
  SecAggUnmaskRequest r;
  r.round_id = kRound;
  r.id = 0;
  r.survivors = {0, 2};
  r.dropped = {5};
  const Bytes e = Encode(r);
  CHECK(Hex(e) ==
        "4653415202000000"          // "FSAR" | u32 version
        "efcdab896745230100000000"  // u64 round_id | u32 id
        "020000000000000002000000"  // survivors: u32 count | 0, 2
        "0100000005000000"          // dropped: u32 count | 5
  );
  RoundTrip<SecAggUnmaskRequest>(e, DecodeSecAggUnmaskRequest);
}

TEST_CASE("pinned: SecAggUnmaskReply", "[pins][secagg]") {
  SecAggUnmaskReply r;
  r.round_id = kRound;
  r.id = 2;
  SecAggRevealedShare a;
  a.owner = 0;
  a.kind = SecAggShareKind::kSelfMaskSeed;
  a.share.x = 3;
  a.share.secret_bytes = 5;
  a.share.y = {0x0011223344556677ULL, 42};
  SecAggRevealedShare b = a;
  b.owner = 2;
  b.kind = SecAggShareKind::kMaskKey;
  b.share.y = {7, 0x1fffffffffffffffULL - 1};
  r.shares = {a, b};
  const Bytes e = Encode(r);
  CHECK(Hex(e) ==
        "4653415502000000"          // "FSAU" | u32 version
        "efcdab896745230102000000"  // u64 round_id | u32 id
        "02000000"                  // u32 share count: 2
        "000000000120000000"        // owner 0 | u8 kind 1 (self-mask seed) | u32 length
        // EncodeShare: "FSS" | u8 version | x | secret_bytes | chunk count
        "46535301030000000500000002000000"
        "77665544332211002a00000000000000"  //   y[0] | y[1]
        "020000000220000000"                // owner 2 | u8 kind 2 (mask key) | u32 length
        // EncodeShare: "FSS" | u8 version | x | secret_bytes | chunk count
        "46535301030000000500000002000000"
        "0700000000000000feffffffffffff1f"  //   y[0] | y[1]
  );
  const SecAggUnmaskReply back = RoundTrip<SecAggUnmaskReply>(e, DecodeSecAggUnmaskReply);
  REQUIRE(back.shares.size() == 2);
  CHECK(back.shares[1].kind == SecAggShareKind::kMaskKey);
  CHECK(back.shares[1].share.y == b.share.y);
}

}  // namespace
}  // namespace fedml::algorithms
