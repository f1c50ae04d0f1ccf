// Red team, attack 1 in deployment: a deployed client may train on its own data, so the server
// cannot know its sample count, and FedAvg weighs each update by the count it claims. A client
// that claims 1e9 samples would make the global model its own. The attack runs through the real
// `fedml server` and `fedml client` code (RunDeploymentServer / RunDeploymentClient) over gRPC
// with mutual TLS; the server's default cap (4 x the mean partition of its copy of the data set)
// must refuse the claim and the round must go on with the honest clients.
#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include "../api/config_helpers.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/deployment.h"
#include "mtls_harness.h"

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
  const core::grpc_comm::Security mtls{false, true, dir.File("certs")};

  std::promise<int> port;
  DeploymentServerArgs server_args;
  server_args.address = "127.0.0.1:0";
  server_args.security = mtls;
  server_args.on_listening = [&port](int p) { port.set_value(p); };
  auto server =
      std::async(std::launch::async, [&] { return RunDeploymentServer(config, server_args); });
  const int bound = port.get_future().get();

  std::vector<std::thread> clients;
  std::vector<Status> client_status(kClients);
  for (int id = 0; id < kClients; ++id) {
    clients.emplace_back([&, id] {
      DeploymentClientArgs args;
      args.server = "127.0.0.1:" + std::to_string(bound);
      args.client_id = id;
      args.security = mtls;
      args.server_name = "localhost";
      args.verbose = false;
      SimulationHooks hooks;
      if (id == 0) {
        auto builtin = TrainerFactoryFor(config, {});
        if (!builtin.ok()) {
          client_status[id] = builtin.status();
          return;
        }
        hooks.trainer_factory = [inner =
                                     *builtin](int w) -> Result<std::unique_ptr<ClientTrainer>> {
          FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, inner(w));
          return std::unique_ptr<ClientTrainer>(std::make_unique<InflatedClaim>(std::move(t)));
        };
      }
      client_status[id] = RunDeploymentClient(config, args, hooks);
    });
  }
  for (auto& t : clients) t.join();
  auto run = server.get();
  REQUIRE(run.ok());
  for (const Status& st : client_status) CHECK(st.ok());
  REQUIRE(run->rounds.size() == 2);
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == kClients - 1);
    CHECK(m.refused == 1);
  }
}
