// Red team, attack 2 of docs/security.md (its parameter part): a malicious server chooses the
// round's n, t and k. With t = 1 it can tell one neighbour of a client that the client dropped
// and another that it survived, and get both of its secrets; with n = 2 (the other participant
// a peer the server simulates) the sum is the client's update; with SecAgg+ degree 1 a client's
// only neighbour is all the server needs to simulate. The hostile server here is the real server
// code run over gRPC with mutual TLS with such options; the clients are the real ClientManagers
// with their default limits. Each must refuse the task before it trains, so that no key and no
// masked input leaves it and the round aborts with the model kept.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/round_controller.h"
#include "secure_round_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

/// One round run by a server that chose `secure` for `clients` participants.
void ExpectRefused(const char* name, int clients, const SecureAggregationOptions& secure) {
  const fedml::testing::TempDir dir(name);
  fedml::testing::MakeCredentials(dir, clients);
  fedml::testing::DistinctTrainer::trained = 0;
  auto run =
      fedml::testing::RunSecureRound(dir, clients, secure, [](core::Communicator& comm, int id) {
        return fedml::testing::ServeHonestly(comm, id);  // default limits
      });
  for (const Status& st : run.client_status) CHECK(st.ok());  // refused the task, served on
  REQUIRE(run.model.ok());
  REQUIRE(run.history.size() == 1);
  const RoundMetrics& m = run.history[0];
  const auto aborted = m.extra.find("secagg_aborted");
  CHECK((aborted != m.extra.end() && aborted->second == 1.0));
  CHECK(m.clients == 0);
  // Refused before training: nothing was computed to leak.
  CHECK(fedml::testing::DistinctTrainer::trained == 0);
  for (std::size_t i = 0; i < run.model->numel(); ++i) CHECK(run.model->data()[i] == 0.0f);
}

}  // namespace

TEST_CASE("clients refuse a secure round whose threshold is not a majority",
          "[adversarial][secagg]") {
  SecureAggregationOptions secure;
  secure.protocol = "secagg";
  secure.reconstruction_threshold = 1;  // 1 of 5
  ExpectRefused("fedml_attack_secagg_t1", 5, secure);
}

TEST_CASE("clients refuse a secure round of two", "[adversarial][secagg]") {
  SecureAggregationOptions secure;
  secure.protocol = "secagg";
  secure.reconstruction_threshold = 2;  // 2 of 2: a majority, but the other one may be the server
  ExpectRefused("fedml_attack_secagg_n2", 2, secure);
}

TEST_CASE("clients refuse a SecAgg+ round with a degree below the floor", "[adversarial][secagg]") {
  SecureAggregationOptions secure;
  secure.protocol = "secagg_plus";
  secure.num_shares = 2;  // k = 1 among 8 (floor ceil(log2 8) = 3)
  secure.reconstruction_threshold = 2;
  ExpectRefused("fedml_attack_secagg_k1", 8, secure);
}
