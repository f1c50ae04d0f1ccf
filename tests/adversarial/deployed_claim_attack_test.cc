// Red team, attack 1 in deployment: a deployed client may train on its own data, so the server
// cannot know its sample count, and FedAvg weighs each update by the count it claims. A client
// that claims 1e9 samples would make the global model its own. The attack runs through the real
// `fedml server` and `fedml client` code (RunDeploymentServer / RunDeploymentClient) over gRPC
// with mutual TLS; the server's default cap (4 x the mean partition of its copy of the data set)
// must refuse the claim and the round must go on with the honest clients.
#include <catch2/catch.hpp>

#include "../api/config_helpers.h"
#include "deployment_harness.h"
#include "fedml/api/client_pipeline.h"

using namespace fedml;
using namespace fedml::api;

namespace {

constexpr int kClients = 4;

/// Trains honestly, then claims a billion samples.
class InflatedClaim final : public ForwardingClientTrainer {
 public:
  using ForwardingClientTrainer::ForwardingClientTrainer;
  Result<LocalUpdate> Train(const TrainTask& t) override {
    FEDML_ASSIGN_OR_RETURN(LocalUpdate u, inner_->Train(t));
    u.num_samples = 1'000'000'000;
    return u;
  }
};

}  // namespace

TEST_CASE("a deployed client that claims 1e9 samples is refused by the default cap",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_deployed_claim");
  fedml::testing::MakeCredentials(dir, kClients);
  const Config config =
      fedml::testing::ConfigWith({{"dataset", "synthetic"},
                                  {"model", "lr"},
                                  {"client_num_in_total", std::to_string(kClients)},
                                  {"client_num_per_round", std::to_string(kClients)},
                                  {"comm_round", "2"},
                                  {"batch_size", "8"},
                                  {"random_seed", "5"},
                                  {"round_timeout_s", "60"},
                                  {"model_file_cache_folder", ""}},
                                 {});
  auto builtin = TrainerFactoryFor(config, {});
  REQUIRE(builtin.ok());
  auto deployment = fedml::testing::RunMtlsDeployment(
      dir, config, [inner = *builtin](int id, Config&, SimulationHooks& hooks) {
        if (id != 0) return;
        hooks.trainer_factory = [inner](int w) -> Result<std::unique_ptr<ClientTrainer>> {
          FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, inner(w));
          return std::unique_ptr<ClientTrainer>(std::make_unique<InflatedClaim>(std::move(t)));
        };
      });
  auto& run = deployment.server;
  const std::vector<Status>& client_status = deployment.clients;
  REQUIRE(run.ok());
  for (const Status& st : client_status) CHECK(st.ok());
  REQUIRE(run->rounds.size() == 2);
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == kClients - 1);
    CHECK(m.refused == 1);
  }
}
