// Signed ledger heads (fedml/core/security/ledger_heads.h): a head signed with a server key
// verifies under its certificate and no other, a changed seq, hash or signature does not, the
// line form round-trips, and CheckLedgerHeads tells a rewritten record from dropped ones.
#include <catch2/catch.hpp>

#include "../temp_dir.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/ledger_heads.h"

using namespace fedml::core::security;
using Catch::Matchers::Contains;

namespace {

std::string Read(const std::string& path) {
  auto text = ReadTextFile(path);
  REQUIRE(text.ok());
  return *text;
}

}  // namespace

TEST_CASE("ledger heads are signed by the server key and nothing else verifies", "[ledger]") {
  const fedml::testing::TempDir dir("fedml_ledger_heads");
  CertOptions a;
  a.out_dir = dir.File("a");
  REQUIRE(GenerateCredentials(a).ok());
  CertOptions b;
  b.out_dir = dir.File("b");
  REQUIRE(GenerateCredentials(b).ok());
  const std::string key = Read(dir.File("a/server.key"));
  const std::string cert = Read(dir.File("a/server.pem"));
  const std::string other_cert = Read(dir.File("b/server.pem"));
  const std::string hash(64, 'a');

  auto head = SignLedgerHead(3, hash, key);
  REQUIRE(head.ok());
  CHECK(VerifyLedgerHead(*head, cert).ok());
  CHECK(VerifyLedgerHead(*head, other_cert).code() == fedml::StatusCode::kPermissionDenied);
  SignedLedgerHead moved = *head;
  moved.seq = 4;
  CHECK(VerifyLedgerHead(moved, cert).code() == fedml::StatusCode::kPermissionDenied);
  moved = *head;
  moved.hash = std::string(64, 'b');
  CHECK(VerifyLedgerHead(moved, cert).code() == fedml::StatusCode::kPermissionDenied);

  auto back = ParseLedgerHeadLine(LedgerHeadLine(*head));
  REQUIRE(back.ok());
  CHECK(back->seq == 3);
  CHECK(back->hash == hash);
  CHECK(back->signature == head->signature);
  CHECK_FALSE(ParseLedgerHeadLine("3 " + hash).ok());
  CHECK_FALSE(ParseLedgerHeadLine("x " + hash + " 00").ok());
  CHECK_FALSE(SignLedgerHead(-1, hash, key).ok());
  auto bad_key = SignLedgerHead(0, hash, "not a key");
  REQUIRE_FALSE(bad_key.ok());
  CHECK_THAT(bad_key.status().message(), Contains("not a PEM private key"));

  // Against a ledger: the kept head must be the record's hash at its seq.
  std::vector<LedgerRecord> records(4);
  for (std::size_t i = 0; i < records.size(); ++i) records[i].hash = std::string(64, 'c');
  records[3].hash = hash;
  CHECK(CheckLedgerHeads(records, LedgerHeadLine(*head) + "\n# a comment\n\n", "h", cert).ok());
  records[3].hash = std::string(64, 'd');
  const auto rewritten = CheckLedgerHeads(records, LedgerHeadLine(*head), "h", cert);
  CHECK(rewritten.code() == fedml::StatusCode::kDataLoss);
  CHECK_THAT(rewritten.message(), Contains("record 3 was rewritten"));
  records.resize(3);
  const auto dropped = CheckLedgerHeads(records, LedgerHeadLine(*head), "h", cert);
  CHECK(dropped.code() == fedml::StatusCode::kDataLoss);
  CHECK_THAT(dropped.message(), Contains("records were dropped"));
}
