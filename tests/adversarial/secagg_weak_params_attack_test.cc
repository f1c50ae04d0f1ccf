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
#include "mtls_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

/// Every client's update moves every weight by 1: a run that aggregated anything moves the model.
class StepTrainer final : public ClientTrainer {
 public:
  Status SetState(const core::ModelState& s) override {
    state_ = s;
    return Status::Ok();
  }
  Result<core::ModelState> GetState() override { return state_; }
  Result<LocalUpdate> Train(const TrainTask&) override {
    ++trained_;
    LocalUpdate u;
    u.num_samples = 10;
    u.state = state_;
    for (std::size_t i = 0; i < u.state.numel(); ++i) u.state.data()[i] += 1.0f;
    return u;
  }
  Result<Evaluation> Evaluate(const EvalTask&) override { return Evaluation{0.5, 0.5, 10}; }
  static inline std::atomic<int> trained_{0};

 private:
  core::ModelState state_;
};

core::ModelState Zeros() {
  core::ModelState s;
  std::vector<float> w(4, 0.0f);
  REQUIRE(s.Add("w", {2, 2}, w.data()).ok());
  return s;
}

/// One round run by a server that chose `secure` for `clients` participants.
void ExpectRefused(const char* name, int clients, const SecureAggregationOptions& secure) {
  const fedml::testing::TempDir dir(name);
  fedml::testing::MakeCredentials(dir, clients);
  auto server = fedml::testing::StartMtlsServer(dir, clients);
  auto serve = [](core::Communicator& comm, int) {
    WorkerOptions wo;  // default limits
    wo.idle_timeout = std::chrono::seconds(60);
    ClientManager manager(comm, std::make_unique<StepTrainer>(), wo);
    return manager.Run();
  };
  StepTrainer::trained_ = 0;
  std::vector<Status> client_status;
  std::vector<std::thread> threads =
      fedml::testing::StartMtlsClients(*server, dir, clients, serve, client_status);
  ServerOptions options;
  options.client_num_in_total = clients;
  options.client_num_per_round = clients;
  options.comm_round = 1;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.secure = secure;
  options.secure.max_weight = 10;
  options.secure.stage_timeout = std::chrono::seconds(10);
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  Result<core::ModelState> result = controller.Run(Zeros());
  for (auto& t : threads) t.join();
  for (const Status& st : client_status) CHECK(st.ok());  // refused the task, served on
  REQUIRE(result.ok());
  REQUIRE(controller.history().size() == 1);
  const RoundMetrics& m = controller.history()[0];
  const auto aborted = m.extra.find("secagg_aborted");
  CHECK((aborted != m.extra.end() && aborted->second == 1.0));
  CHECK(m.clients == 0);
  CHECK(StepTrainer::trained_ == 0);  // refused before training: nothing was computed to leak
  for (std::size_t i = 0; i < result->numel(); ++i) CHECK(result->data()[i] == 0.0f);
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
