// The red team's secure round: the real RoundController running secure aggregation over a
// mutual-TLS gRPC server on loopback (mtls_harness.h), with one ClientManager per client served
// as each test says (an honest one, or one behind a hostile transport or with hostile options).
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/round_controller.h"
#include "mtls_harness.h"

namespace fedml::testing {

/// Client i's update moves every weight by Delta(i) = 0.25 x (i + 1): distinct, so a recovered
/// update says whose it is. Counts the trainings of every instance (trained), so a test can show
/// that a refused task cost no computation.
class DistinctTrainer final : public api::ClientTrainer {
 public:
  explicit DistinctTrainer(int id) : id_(id) {}
  Status SetState(const core::ModelState& s) override {
    state_ = s;
    return Status::Ok();
  }
  Result<core::ModelState> GetState() override { return state_; }
  Result<api::LocalUpdate> Train(const api::TrainTask&) override {
    ++trained;
    api::LocalUpdate u;
    u.num_samples = 10;
    u.state = state_;
    for (std::size_t i = 0; i < u.state.numel(); ++i) u.state.data()[i] += Delta(id_);
    return u;
  }
  Result<api::Evaluation> Evaluate(const api::EvalTask&) override {
    return api::Evaluation{0.5, 0.5, 10};
  }
  static float Delta(int id) { return 0.25f * static_cast<float>(id + 1); }
  static inline std::atomic<int> trained{0};

 private:
  int id_;
  core::ModelState state_;
};

/// A 2 x 3 model of zeros.
inline core::ModelState Zeros() {
  core::ModelState s;
  std::vector<float> w(6, 0.0f);
  REQUIRE(s.Add("w", {2, 3}, w.data()).ok());
  return s;
}

/// The honest worker: a ClientManager over `comm` training as DistinctTrainer(id).
inline Status ServeHonestly(core::Communicator& comm, int id, api::WorkerOptions options = {}) {
  options.idle_timeout = std::chrono::seconds(60);
  api::ClientManager manager(comm, std::make_unique<DistinctTrainer>(id), options);
  return manager.Run();
}

struct SecureRun {
  Result<core::ModelState> model = Status::FailedPrecondition("not run");
  std::vector<api::RoundMetrics> history;
  std::vector<Status> client_status;
};

/// Client `id`'s mutual-TLS credentials in dir/certs, as a deployed worker loads them for signed
/// secure rounds.
inline api::SecureIdentity IdentityOf(const TempDir& dir, int id) {
  auto read = [](const std::string& path) {
    auto text = core::security::ReadTextFile(path);
    REQUIRE(text.ok());
    return *text;
  };
  const std::string base = dir.File("certs/client-" + std::to_string(id));
  return {read(base + ".key"), read(base + ".pem"), read(dir.File("certs/ca.pem"))};
}

/// The CA that signed rounds check against (dir/certs/ca.pem).
inline std::string CaOf(const TempDir& dir) {
  auto text = core::security::ReadTextFile(dir.File("certs/ca.pem"));
  REQUIRE(text.ok());
  return *text;
}

/// Puts a hostile layer between the server code and its transport: given the mTLS server's
/// communicator, returns the one the RoundController uses (kept alive for the round).
using ServerWrap = std::function<std::unique_ptr<core::Communicator>(core::Communicator&)>;

/// One round of `secure` (max_weight 10, so every client's weight is 1; a 10 s stage timeout)
/// by the real server code for `clients` clients on a fresh mTLS server with certificates from
/// dir/certs, each client served by serve(comm, id) on its own thread; joined before returning.
/// With `wrap`, the server code talks through what it returns.
inline SecureRun RunSecureRound(const TempDir& dir, int clients,
                                api::SecureAggregationOptions secure,
                                std::function<Status(core::Communicator&, int id)> serve,
                                const ServerWrap& wrap = nullptr) {
  auto server = StartMtlsServer(dir, clients);
  std::unique_ptr<core::Communicator> wrapped = wrap ? wrap(*server) : nullptr;
  SecureRun run;
  std::vector<std::thread> threads =
      StartMtlsClients(*server, dir, clients, std::move(serve), run.client_status);
  api::ServerOptions options;
  options.client_num_in_total = clients;
  options.client_num_per_round = clients;
  options.comm_round = 1;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.secure = std::move(secure);
  options.secure.max_weight = 10;
  options.secure.stage_timeout = std::chrono::seconds(10);
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  api::RoundController controller(wrapped ? *wrapped : *server, std::move(aggregator).value(),
                                  options, {});
  run.model = controller.Run(Zeros());
  for (auto& t : threads) t.join();  // FINISH reached them; the server closes after
  run.history = controller.history();
  return run;
}

}  // namespace fedml::testing
