// Red team, attack 8c of docs/security.md: two different model states with one hash. The ledger
// records an accepted update by its hash and a commitment binds a trajectory by its checkpoint
// hashes, so a forged equal hash would let a client (or an operator) swap one state for another
// in the evidence. A tensor name that holds a zero byte could do it while names ended with one.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "fedml/core/bytes.h"
#include "fedml/core/security/commitment.h"

using fedml::core::ByteWriter;
using fedml::core::ModelState;
namespace sec = fedml::core::security;

TEST_CASE("a tensor name holding another state's encoding does not forge its hash",
          "[adversarial]") {
  const float v = 1.5f;
  const float w = -2.0f;
  ModelState honest;  // x = [v], y = [w]
  REQUIRE(honest.Add("x", {1}, &v).ok());
  REQUIRE(honest.Add("y", {1}, &w).ok());
  // One tensor whose name is the honest state's bytes up to y's name: under the zero-terminated
  // encoding both states hash the same byte string.
  ByteWriter name;
  std::uint32_t bits;
  std::memcpy(&bits, &v, 4);
  name.Raw("x").U8(0).U64(1).U64(1).U32(bits).Raw("y");
  const std::string forged_name(name.bytes().begin(), name.bytes().end());
  ModelState forged;
  REQUIRE(forged.Add(forged_name, {1}, &w).ok());

  auto a = sec::CheckpointSha256(honest);
  auto b = sec::CheckpointSha256(forged);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
}
