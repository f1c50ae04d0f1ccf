// The red team's transport: a real gRPC server and clients on loopback with mutual TLS and
// credentials made by the project's own `fedml certs` code, so that an attack runs over the
// path a deployment takes.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../temp_dir.h"
#include "fedml/core/comm/grpc.h"
#include "fedml/core/security/credentials.h"

namespace fedml::testing {

/// A CA, a server certificate and `clients` client certificates under dir/certs.
inline void MakeCredentials(const TempDir& dir, int clients) {
  core::security::CertOptions certs;
  certs.out_dir = dir.File("certs");
  certs.clients = clients;
  REQUIRE(core::security::GenerateCredentials(certs).ok());
}

/// A mutual-TLS server for client ids 0..clients-1 on a free loopback port.
inline std::unique_ptr<core::grpc_comm::ServerCommunicator> StartMtlsServer(const TempDir& dir,
                                                                            int clients) {
  core::grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = clients;
  so.security = {false, true, dir.File("certs")};
  so.fetch_wait = std::chrono::milliseconds(500);
  so.flush_timeout = std::chrono::milliseconds(3000);
  auto server = core::grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  return std::move(server).value();
}

/// Client id (one thread each, 0..clients-1) connects to `server` with its certificate and runs
/// serve(comm, id); the result lands in status[id]. Returns once every client is connected; join
/// the threads before `status` goes (they end when serve does: a worker at FINISH).
inline std::vector<std::thread> StartMtlsClients(
    core::grpc_comm::ServerCommunicator& server, const TempDir& dir, int clients,
    std::function<Status(core::Communicator&, int id)> serve, std::vector<Status>& status) {
  status.assign(static_cast<std::size_t>(clients), Status::Ok());
  std::vector<std::thread> threads;
  for (int id = 0; id < clients; ++id) {
    threads.emplace_back([&status, &dir, serve, id, port = server.bound_port()] {
      core::grpc_comm::ClientOptions co;
      co.server = "127.0.0.1:" + std::to_string(port);
      co.client_id = id;
      co.security = {false, true, dir.File("certs")};
      co.connect_timeout = std::chrono::seconds(20);
      auto comm = core::grpc_comm::ConnectClient(co);
      status[static_cast<std::size_t>(id)] = comm.ok() ? serve(**comm, id) : comm.status();
    });
  }
  const Status connected =
      server.WaitForClients(clients, core::DeadlineAfter(std::chrono::seconds(30)));
  if (!connected.ok()) {
    for (auto& t : threads) t.join();  // each gives up at its connect or idle deadline
    FAIL(connected.ToString());
  }
  return threads;
}

}  // namespace fedml::testing
