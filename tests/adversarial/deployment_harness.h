// The red team's deployment: the real `fedml server` and `fedml client` code (RunDeploymentServer
// and RunDeploymentClient) over gRPC with mutual TLS on loopback, with certificates from
// dir/certs (mtls_harness.h's MakeCredentials), and a hook to make any client hostile.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "fedml/api/deployment.h"
#include "mtls_harness.h"

namespace fedml::testing {

struct DeploymentRun {
  Result<api::RunSummary> server = Status::FailedPrecondition("not run");
  std::vector<Status> clients;
};

/// Serves `config` (client_num_in_total clients) and runs every client to the end, each on its
/// own thread; setup(id, config, hooks) may change a client's copy of the config and hooks (its
/// trainer) before it starts. Returns when the server and every client are done.
inline DeploymentRun RunMtlsDeployment(
    const TempDir& dir, const api::Config& config,
    const std::function<void(int id, api::Config&, api::SimulationHooks&)>& setup = {}) {
  const core::grpc_comm::Security mtls{false, true, dir.File("certs")};
  std::promise<int> port;
  api::DeploymentServerArgs server_args;
  server_args.address = "127.0.0.1:0";
  server_args.security = mtls;
  server_args.on_listening = [&port](int p) { port.set_value(p); };
  auto server =
      std::async(std::launch::async, [&] { return api::RunDeploymentServer(config, server_args); });
  const int bound = port.get_future().get();
  DeploymentRun run;
  run.clients.assign(static_cast<std::size_t>(config.client_num_in_total), Status::Ok());
  std::vector<std::thread> clients;
  for (int id = 0; id < config.client_num_in_total; ++id) {
    clients.emplace_back([&, id] {
      api::Config mine = config;
      api::SimulationHooks hooks;
      if (setup) setup(id, mine, hooks);
      api::DeploymentClientArgs args;
      args.server = "127.0.0.1:" + std::to_string(bound);
      args.client_id = id;
      args.security = mtls;
      args.server_name = "localhost";
      args.verbose = false;
      run.clients[static_cast<std::size_t>(id)] = api::RunDeploymentClient(mine, args, hooks);
    });
  }
  for (auto& t : clients) t.join();
  run.server = server.get();
  return run;
}

}  // namespace fedml::testing
