// Red team, attack 7 of docs/security.md: the operator rewrites the ledger. Its hash chain is
// unkeyed, so whoever holds the file can change a past record (here: pay client 1 a million) and
// regenerate every hash after it; the rewritten file verifies as intact. The run goes through the
// real `fedml server` / `fedml client` code over gRPC with mutual TLS; the server signs every
// record's head with its TLS key and the clients keep the heads their tasks carried. The test
// asserts that a client's kept heads, checked against server.pem, expose the rewrite even though
// the operator re-signs the rewritten ledger's own heads (it holds the key), and that a head the
// server never signed proves nothing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "../api/config_helpers.h"
#include "deployment_harness.h"
#include "fedml/core/security/ledger.h"
#include "fedml/core/security/ledger_heads.h"

using namespace fedml;
using namespace fedml::api;
namespace sec = fedml::core::security;

namespace {

constexpr int kClients = 3;

std::string Read(const std::string& path) {
  auto text = sec::ReadTextFile(path);
  REQUIRE(text.ok());
  return *text;
}

}  // namespace

TEST_CASE("an operator who rewrites the ledger is exposed by the heads its clients kept",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_ledger_rewrite");
  fedml::testing::MakeCredentials(dir, kClients);
  const std::string ledger = dir.File("ledger.jsonl");
  const Config config =
      fedml::testing::ConfigWith({{"dataset", "synthetic"},
                                  {"model", "lr"},
                                  {"client_num_in_total", std::to_string(kClients)},
                                  {"client_num_per_round", std::to_string(kClients)},
                                  {"comm_round", "3"},
                                  {"batch_size", "8"},
                                  {"random_seed", "5"},
                                  {"round_timeout_s", "60"},
                                  {"ledger_file", ledger},
                                  {"model_file_cache_folder", ""}},
                                 {});
  auto run = fedml::testing::RunMtlsDeployment(
      dir, config, [&dir](int id, Config& mine, SimulationHooks&) {
        mine.ledger_file = "";
        mine.ledger_heads_file = dir.File("heads-" + std::to_string(id));
      });
  REQUIRE(run.server.ok());
  for (const Status& st : run.clients) REQUIRE(st.ok());
  const std::string cert = Read(dir.File("certs/server.pem"));
  auto honest = sec::ReadLedger(ledger);
  REQUIRE(honest.ok());
  REQUIRE(honest->size() == 3);
  // Each client kept the heads of records 0 and 1 (record 2's would come with a fourth round).
  for (int id = 0; id < kClients; ++id) {
    const std::string kept = Read(dir.File("heads-" + std::to_string(id)));
    CHECK(sec::CheckLedgerHeads(*honest, kept, "heads", cert).ok());
    CHECK(std::count(kept.begin(), kept.end(), '\n') == 2);
  }
  CHECK(sec::CheckLedgerHeads(*honest, Read(ledger + ".heads"), "server heads", cert).ok());

  // The rewrite: record 0 pays client 1 a million; the chain is regenerated and the server's own
  // heads re-signed with its key, so both look intact.
  std::vector<sec::LedgerRecord> records = *honest;
  for (sec::LedgerReward& r : records[0].rewards) {
    if (r.client == 1) r.amount = 1e6;
  }
  REQUIRE(std::remove(ledger.c_str()) == 0);
  REQUIRE(std::remove((ledger + ".heads").c_str()) == 0);
  {
    auto writer = sec::LedgerWriter::Open(ledger);
    REQUIRE(writer.ok());
    const std::string key = Read(dir.File("certs/server.key"));
    std::ofstream heads(ledger + ".heads");
    for (sec::LedgerRecord r : records) {
      REQUIRE(writer->Append(std::move(r)).ok());
      auto head = sec::SignLedgerHead(writer->next_seq() - 1, writer->last_hash(), key);
      REQUIRE(head.ok());
      heads << sec::LedgerHeadLine(*head) << '\n';
    }
  }
  auto rewritten = sec::ReadLedger(ledger);
  REQUIRE(rewritten.ok());  // the chain alone cannot tell
  CHECK(sec::CheckLedgerHeads(*rewritten, Read(ledger + ".heads"), "server heads", cert).ok());

  // Every client's kept heads expose it, naming the record.
  for (int id = 0; id < kClients; ++id) {
    const Status st = sec::CheckLedgerHeads(
        *rewritten, Read(dir.File("heads-" + std::to_string(id))), "heads", cert);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == StatusCode::kDataLoss);
    CHECK(st.message().find("record 0 was rewritten") != std::string::npos);
  }
  // A head the server did not sign (an operator's forgery handed out as evidence) proves nothing.
  std::string forged = Read(dir.File("heads-0"));
  forged[forged.size() - 3] = forged[forged.size() - 3] == '0' ? '1' : '0';
  const Status st = sec::CheckLedgerHeads(*honest, forged, "forged", cert);
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == StatusCode::kPermissionDenied);
}
