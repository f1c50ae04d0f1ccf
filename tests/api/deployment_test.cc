// The round controller with fixed clients over a real gRPC server on loopback: clients whose
// updates are bad (a tensor of the wrong shape, non-finite values) or who fail are refused or
// dropped with a reason, and the round goes on with the others.
#include <catch2/catch.hpp>

#include <limits>
#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/round_controller.h"
#include "fedml/core/comm/grpc.h"
#include "scripted_trainer.h"

using namespace fedml;
using namespace fedml::api;
using fedml::testing::ScriptedTrainer;

namespace {

core::ModelState Model(std::int64_t width, float value) {
  core::ModelState s;
  std::vector<float> w(static_cast<std::size_t>(width * 2), value);
  REQUIRE(s.Add("w", {2, width}, w.data()).ok());
  return s;
}

}  // namespace

TEST_CASE("bad updates over gRPC are refused and the round goes on", "[deployment]") {
  core::grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = 4;
  so.security.insecure = true;
  so.fetch_wait = std::chrono::milliseconds(500);
  so.flush_timeout = std::chrono::milliseconds(3000);
  auto server = core::grpc_comm::StartServer(so);
  REQUIRE(server.ok());

  const std::vector<ScriptedTrainer::Kind> kinds = {
      ScriptedTrainer::Kind::kGood, ScriptedTrainer::Kind::kWrongShape, ScriptedTrainer::Kind::kNaN,
      ScriptedTrainer::Kind::kFail};
  std::vector<Status> client_status(kinds.size());
  std::vector<std::thread> clients;
  for (std::size_t id = 0; id < kinds.size(); ++id) {
    clients.emplace_back([&, id] {
      core::grpc_comm::ClientOptions co;
      co.server = "127.0.0.1:" + std::to_string((*server)->bound_port());
      co.client_id = static_cast<int>(id);
      co.security.insecure = true;
      co.connect_timeout = std::chrono::seconds(20);
      auto comm = core::grpc_comm::ConnectClient(co);
      if (!comm.ok()) {
        client_status[id] = comm.status();
        return;
      }
      WorkerOptions wo;
      wo.idle_timeout = std::chrono::seconds(30);
      ClientManager manager(**comm, std::make_unique<ScriptedTrainer>(kinds[id]), wo);
      client_status[id] = manager.Run();
    });
  }
  REQUIRE((*server)->WaitForClients(4, core::DeadlineAfter(std::chrono::seconds(30))).ok());

  ServerOptions options;
  options.client_num_in_total = 4;
  options.client_num_per_round = 4;
  options.comm_round = 2;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.min_clients = 1;
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(**server, std::move(aggregator).value(), options, {});
  auto final_model = controller.Run(Model(3, 0.0f));
  for (auto& t : clients) t.join();
  REQUIRE(final_model.ok());

  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 2);
  // Round 1: the good client's update is taken; the wrong shape and the NaN are refused (the
  // decoder refuses non-finite values, FedAvg the layout); the failing client is dropped.
  CHECK(rounds[0].clients == 1);
  CHECK(rounds[0].refused == 2);
  CHECK(rounds[0].dropped == 1);
  // Round 2: the same again: the failing client reported its error and stayed connected, so it
  // was asked again and dropped again.
  CHECK(rounds[1].clients == 1);
  CHECK(rounds[1].refused == 2);
  CHECK(rounds[1].dropped == 1);
  // Only the good client's +1 per round reached the model.
  for (std::size_t i = 0; i < final_model->numel(); ++i) CHECK(final_model->data()[i] == 2.0f);
  // Every client, the misbehaving ones too, ran until the server said FINISH.
  for (const Status& st : client_status) CHECK(st.ok());
}
