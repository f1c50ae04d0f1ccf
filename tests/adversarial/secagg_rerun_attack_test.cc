// Red team, attack 3 of docs/security.md: a server that runs one secure round twice. A client's
// masked input for a round is the same each time (same model, same data order), so a server that
// unmasks the round's sum over all five clients, "crashes", and runs the round again over four of
// them gets client 4's update as 5 x mean1 - 4 x mean2. The hostile server here is the real
// server code run twice for round 1 over gRPC with mutual TLS, the clients restarted in between
// (new processes' worth of state: new ClientManagers, the same journal files), as a server resuming
// from a checkpoint taken before the round would do. The attacker must learn nothing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "secure_round_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

using fedml::testing::DistinctTrainer;
constexpr int kClients = 5;

/// One run of round 1 (SecAgg, threshold 3 of 5) by the server's real code on a fresh mTLS
/// server, with freshly started clients keeping their journals in `dir`; `vanishing` (if >= 0) is
/// a client the server leaves out after its keys arrive.
fedml::testing::SecureRun RunRoundOne(const fedml::testing::TempDir& dir, int vanishing) {
  SecureAggregationOptions secure;
  secure.protocol = "secagg";
  secure.reconstruction_threshold = 3;
  return fedml::testing::RunSecureRound(
      dir, kClients, secure, [&dir, vanishing](core::Communicator& comm, int id) {
        WorkerOptions wo;
        wo.secure_journal = dir.File("journal-" + std::to_string(id));
        if (id == vanishing) {
          wo.secure_dropout.rate = 1.0;
          wo.secure_dropout.stage = "advertise_keys";
        }
        return fedml::testing::ServeHonestly(comm, id, wo);
      });
}

}  // namespace

TEST_CASE("a server that runs a secure round twice over different survivors learns nothing",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_attack_secagg_rerun");
  fedml::testing::MakeCredentials(dir, kClients);

  auto first_run = RunRoundOne(dir, -1);
  auto& first = first_run.model;
  REQUIRE(first.ok());
  for (const Status& st : first_run.client_status) CHECK(st.ok());
  float mean = 0.0f;
  for (int i = 0; i < kClients; ++i) mean += DistinctTrainer::Delta(i) / kClients;
  CHECK(std::fabs(first->data()[0] - mean) < 1e-3);  // the honest round: the five clients' mean

  // The same round again, client 4 left out after its keys.
  auto second_run = RunRoundOne(dir, 4);
  auto& second = second_run.model;
  for (const Status& st : second_run.client_status)
    CHECK(st.ok());                        // each refused the task and served on
  for (int id = 0; id < kClients; ++id) {  // each took part in round 1 once, on record
    std::ifstream journal(dir.File("journal-" + std::to_string(id)));
    std::string line;
    int lines = 0;
    while (std::getline(journal, line)) ++lines;
    CHECK(lines == 1);
  }
  if (!second.ok()) {
    INFO(second.status().ToString());
    CHECK(second.status().message().find("secure") != std::string::npos);
  } else {
    // What the attacker would compute; the second run must not have aggregated anything.
    const float recovered = 5.0f * first->data()[0] - 4.0f * second->data()[0];
    INFO("recovered " << recovered << ", client 4's update " << DistinctTrainer::Delta(4));
    CHECK(std::fabs(recovered - DistinctTrainer::Delta(4)) > 0.1f);
    for (std::size_t i = 0; i < second->numel(); ++i) CHECK(second->data()[i] == 0.0f);
  }
}

TEST_CASE("a damaged secure-aggregation journal refuses secure rounds, naming it",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_attack_secagg_journal");
  fedml::testing::MakeCredentials(dir, kClients);
  for (int id = 0; id < kClients; ++id) {
    std::FILE* f = std::fopen(dir.File("journal-" + std::to_string(id)).c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(id == 0 ? "0 0 one\n" : "", f);  // client 0's journal is not a journal
    std::fclose(f);
  }
  auto secure_run = RunRoundOne(dir, -1);
  auto& run = secure_run.model;
  REQUIRE(run.ok());  // four clients are enough for the threshold of 3
  for (float v : std::vector<float>(run->data(), run->data() + run->numel())) {
    float mean4 = 0.0f;
    for (int i = 1; i < kClients; ++i) mean4 += DistinctTrainer::Delta(i) / (kClients - 1);
    CHECK(std::fabs(v - mean4) < 1e-3);
  }
}
