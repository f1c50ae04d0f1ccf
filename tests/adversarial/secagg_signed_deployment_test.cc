// Signed secure rounds as `fedml server` and `fedml client` run them (RunDeploymentServer /
// RunDeploymentClient over gRPC with mutual TLS): with mutual TLS every secure round is signed by
// default (secagg_signed_keys), the clients load their key, certificate and ca.pem, and the
// per-round results equal those of the same deployment unsigned. A client configured without
// signatures takes no part in a signed round (and the round goes on without it).
#include <catch2/catch.hpp>

#include "../api/config_helpers.h"
#include "deployment_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

constexpr int kClients = 4;

Config SecureConfig(bool signed_keys) {
  return fedml::testing::ConfigWith({{"dataset", "synthetic"},
                                     {"model", "lr"},
                                     {"client_num_in_total", std::to_string(kClients)},
                                     {"client_num_per_round", std::to_string(kClients)},
                                     {"comm_round", "2"},
                                     {"batch_size", "8"},
                                     {"random_seed", "5"},
                                     {"round_timeout_s", "60"},
                                     {"secure_aggregation", "secagg"},
                                     {"secagg_stage_timeout_s", "20"},
                                     {"secagg_signed_keys", signed_keys ? "true" : "false"},
                                     {"model_file_cache_folder", ""}},
                                    {});
}

}  // namespace

TEST_CASE("deployed secure rounds over mutual TLS are signed and give the unsigned results",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_secagg_signed_deployment");
  fedml::testing::MakeCredentials(dir, kClients);
  auto signed_run = fedml::testing::RunMtlsDeployment(dir, SecureConfig(true));
  auto unsigned_run = fedml::testing::RunMtlsDeployment(dir, SecureConfig(false));
  REQUIRE(signed_run.server.ok());
  REQUIRE(unsigned_run.server.ok());
  for (const Status& st : signed_run.clients) CHECK(st.ok());
  REQUIRE(signed_run.server->rounds.size() == 2);
  REQUIRE(unsigned_run.server->rounds.size() == 2);
  for (std::size_t r = 0; r < 2; ++r) {
    const RoundMetrics& s = signed_run.server->rounds[r];
    const RoundMetrics& u = unsigned_run.server->rounds[r];
    CHECK(s.clients == kClients);
    CHECK(s.refused == 0);
    CHECK(s.test_accuracy == u.test_accuracy);
    CHECK(s.test_loss == u.test_loss);
  }
}

TEST_CASE("a deployed client without signatures takes no part in a signed secure round",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_secagg_signed_deployment_mixed");
  fedml::testing::MakeCredentials(dir, kClients);
  auto run = fedml::testing::RunMtlsDeployment(dir, SecureConfig(true),
                                               [](int id, Config& config, SimulationHooks&) {
                                                 if (id == 3) config.secagg_signed_keys = false;
                                               });
  REQUIRE(run.server.ok());
  REQUIRE(run.server->rounds.size() == 2);
  for (const RoundMetrics& m : run.server->rounds) CHECK(m.clients == kClients - 1);
}
