// The aggregation tier on loopback gRPC: a server whose ranks are aggregators (RoundController
// with ServerOptions::aggregators), real `fedml aggregator` nodes (RunDeploymentAggregator) and
// their clients (ClientManager), each on its own thread. The model equals the flat FedAvg of the
// same updates; a client whose sample claim is over the cap is refused by its aggregator alone;
// and an aggregator that lies about its subtree (names another aggregator's client, a client the
// round did not sample, or a weight its counts do not add up to) has its partial refused while
// the honest subtree's updates count.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <future>
#include <set>
#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/deployment.h"
#include "fedml/api/options.h"
#include "fedml/api/round_controller.h"
#include "fedml/core/comm/grpc.h"
#include "raw_grpc_client.h"
#include "scripted_trainer.h"

using namespace fedml;
using namespace fedml::api;
using fedml::testing::MeanStep;
using fedml::testing::RawClient;
using fedml::testing::WeightedTrainer;

namespace {

core::ModelState Zeros() {
  core::ModelState s;
  std::vector<float> w(6, 0.0f);
  REQUIRE(s.Add("w", {2, 3}, w.data()).ok());
  return s;
}

Config TierConfig(int clients) {
  Config c;
  c.client_num_in_total = clients;
  c.client_num_per_round = clients;
  c.aggregator_num = 2;
  c.round_timeout_s = 30;
  c.max_update_mb = 1;  // the trainers' model is tiny; no probe of its size needed
  return c;
}

SimulationHooks WeightedHooks() {
  SimulationHooks hooks;
  hooks.trainer_factory = [](int) -> Result<std::unique_ptr<ClientTrainer>> {
    return std::unique_ptr<ClientTrainer>(new WeightedTrainer());
  };
  return hooks;
}

// A `fedml aggregator` on its own thread; port() waits until it listens.
class AggregatorThread {
 public:
  AggregatorThread(const Config& config, int id, int top_port, int wait_clients)
      : thread_([this, config, id, top_port, wait_clients] {
          DeploymentAggregatorArgs args;
          args.aggregator_id = id;
          args.upstream = "127.0.0.1:" + std::to_string(top_port);
          args.upstream_security.insecure = true;
          args.address = "127.0.0.1:0";
          args.security.insecure = true;
          args.wait_clients = wait_clients;
          args.on_listening = [this](int port) {
            listening_ = true;
            port_.set_value(port);
          };
          status_ = RunDeploymentAggregator(config, args, WeightedHooks());
          if (!listening_) port_.set_value(-1);  // it failed first: port() must not wait on
        }) {}
  ~AggregatorThread() {
    if (thread_.joinable()) thread_.join();
  }
  int port() {
    auto f = port_.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return f.get();
  }
  Status Join() {
    thread_.join();
    return status_;
  }

 private:
  std::promise<int> port_;
  bool listening_ = false;  // its own thread only
  Status status_;
  std::thread thread_;
};

// Client `id` of an aggregator on `port`, trained by WeightedTrainer, on its own thread.
std::thread StartLeaf(int port, int id, Status& status) {
  return std::thread([port, id, &status] {
    core::grpc_comm::ClientOptions co;
    co.server = "127.0.0.1:" + std::to_string(port);
    co.client_id = id;
    co.security.insecure = true;
    co.connect_timeout = std::chrono::seconds(20);
    auto comm = core::grpc_comm::ConnectClient(co);
    if (!comm.ok()) {
      status = comm.status();
      return;
    }
    WorkerOptions wo;
    wo.idle_timeout = std::chrono::seconds(60);
    ClientManager manager(**comm, std::make_unique<WeightedTrainer>(), wo);
    status = manager.Run();
  });
}

// The server of an aggregation tier with `aggregators` ranks on loopback.
std::unique_ptr<core::grpc_comm::ServerCommunicator> StartTopServer(int aggregators) {
  core::grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = aggregators;
  so.security.insecure = true;
  so.fetch_wait = std::chrono::milliseconds(500);
  auto server = core::grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  return std::move(server).value();
}

ServerOptions TierRounds(core::grpc_comm::ServerCommunicator& top, const Config& config,
                         int rounds) {
  ServerOptions options;
  options.client_num_in_total = config.client_num_in_total;
  options.client_num_per_round = config.client_num_per_round;
  options.comm_round = rounds;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.aggregators = config.aggregator_num;
  core::grpc_comm::ServerCommunicator* comm = &top;
  options.is_connected = [comm](int rank) { return comm->is_live(rank); };
  options.wait_for_clients = [comm, n = config.aggregator_num](core::Deadline d) {
    return comm->WaitForClients(n, d);
  };
  return options;
}

// The weight at index i of WeightedTrainer's model after `rounds` rounds over `clients`.
double Expected(std::size_t i, const std::vector<int>& clients, int rounds) {
  return (i % 2 ? -1.0 : 1.0) * rounds * MeanStep(clients);
}

GlobalEvaluator FixedEvaluation() {
  return [](const core::ModelState&) -> Result<Evaluation> { return Evaluation{0.5, 0.5, 10}; };
}

struct TierRun {
  Result<core::ModelState> model = Status::FailedPrecondition("not run");
  std::vector<RoundMetrics> rounds;
};

// `rounds` rounds of a server over two real aggregators with clients 0-2 and 3-5 of `config`
// (options from TierRounds, adjusted by `adjust`), every thread joined and every client's and
// aggregator's exit checked.
TierRun RunTwoSubtrees(const Config& config, int rounds,
                       const std::function<void(ServerOptions&)>& adjust = {}) {
  auto top = StartTopServer(2);
  AggregatorThread agg0(config, 0, top->bound_port(), 3);
  AggregatorThread agg1(config, 1, top->bound_port(), 3);
  const int ports[2] = {agg0.port(), agg1.port()};
  REQUIRE(ports[0] > 0);
  REQUIRE(ports[1] > 0);
  std::vector<Status> leaf_status(6);
  std::vector<std::thread> leaves;
  for (int c = 0; c < 6; ++c) leaves.push_back(StartLeaf(ports[c / 3], c, leaf_status[c]));
  ServerOptions options = TierRounds(*top, config, rounds);
  if (adjust) adjust(options);
  auto fedavg = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(fedavg.ok());
  RoundController controller(*top, std::move(fedavg).value(), options, FixedEvaluation());
  TierRun run;
  run.model = controller.Run(Zeros());
  for (auto& t : leaves) t.join();
  CHECK(agg0.Join().ok());
  CHECK(agg1.Join().ok());
  for (const Status& st : leaf_status) CHECK(st.ok());
  run.rounds = controller.history();
  return run;
}

}  // namespace

TEST_CASE("an aggregation tier gives the flat FedAvg and its aggregators check their clients",
          "[deployment][tier]") {
  Config config = TierConfig(6);
  // Client 5 claims 60 samples, over this cap: its aggregator refuses it, nobody else's update.
  config.max_claimed_samples = 55;
  TierRun run = RunTwoSubtrees(config, 2);
  INFO(run.model.status().ToString());
  REQUIRE(run.model.ok());
  const auto& rounds = run.rounds;
  REQUIRE(rounds.size() == 2);
  for (const RoundMetrics& m : rounds) {
    CHECK(m.clients == 5);
    CHECK(m.refused == 1);  // client 5, refused by aggregator 1
    CHECK(m.dropped == 0);
  }
  // Two rounds of the flat FedAvg of clients 0-4 (client 5's update never counted).
  for (std::size_t i = 0; i < run.model->numel(); ++i) {
    CHECK(std::abs(run.model->data()[i] - Expected(i, {0, 1, 2, 3, 4}, 2)) < 1e-6);
  }
}

TEST_CASE("a lying aggregator's partial is refused and the honest subtree counts",
          "[deployment][tier][adversarial]") {
  Config config = TierConfig(8);
  config.client_num_per_round = 6;
  auto top = StartTopServer(2);
  AggregatorThread honest(config, 0, top->bound_port(), 3);
  const int port = honest.port();
  REQUIRE(port > 0);
  std::vector<Status> leaf_status(3);
  std::vector<std::thread> leaves;
  for (int c = 0; c < 3; ++c) leaves.push_back(StartLeaf(port, c, leaf_status[c]));
  RawClient liar(top->bound_port(), 1);
  REQUIRE(liar.Register().ok());

  auto fedavg = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(fedavg.ok());
  RoundController controller(*top, std::move(fedavg).value(), TierRounds(*top, config, 3),
                             FixedEvaluation());
  Result<core::ModelState> final_model = Status::FailedPrecondition("not run");
  std::thread run([&] { final_model = controller.Run(Zeros()); });

  // Each round the liar answers its task with one forged partial that moves the model by 100.
  std::vector<std::vector<std::int64_t>> samples;
  for (int round = 0; round < 3; ++round) {
    const auto task = liar.Fetch(core::DeadlineAfter(std::chrono::seconds(30)));
    REQUIRE(task.has_value());
    REQUIRE(task->type == core::MessageType::kTrainTask);
    samples.push_back(task->client_ids);
    core::Message partial;
    partial.type = core::MessageType::kClientUpdate;
    partial.sender = 2;
    partial.round = task->round;
    partial.model_version = task->model_version;
    partial.model = task->model;
    for (std::size_t i = 0; i < partial.model.numel(); ++i) partial.model.data()[i] += 100.0f;
    const std::set<std::int64_t> sampled(task->client_ids.begin(), task->client_ids.end());
    std::int64_t honest_client = -1;  // a sampled client of the honest subtree
    std::int64_t unsampled = -1;
    for (std::int64_t c = 0; c < 8; ++c) {
      if (sampled.count(c) && c < 3) honest_client = c;
      if (!sampled.count(c)) unsampled = c;
    }
    std::int64_t other = -1;  // a sampled client nobody serves
    for (std::int64_t c = 3; c < 8; ++c) {
      if (sampled.count(c)) other = c;
    }
    REQUIRE(honest_client >= 0);  // 6 of 8 sampled: at least one of 0-2
    REQUIRE(unsampled >= 0);
    REQUIRE(other >= 0);
    if (round == 0) {  // claims the honest aggregator's client
      partial.client_ids = {honest_client};
      partial.num_samples = 10;
      partial.attrs["tier_samples"] = "10";
    } else if (round == 1) {  // claims a client the round did not sample
      partial.client_ids = {unsampled};
      partial.num_samples = 10;
      partial.attrs["tier_samples"] = "10";
    } else {  // a weight its counts do not add up to
      partial.client_ids = {other};
      partial.num_samples = 100000;
      partial.attrs["tier_samples"] = "10";
    }
    CHECK(liar.Push(partial).ok());
  }
  run.join();
  for (auto& t : leaves) t.join();
  CHECK(honest.Join().ok());
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());

  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 3);
  double expected = 0.0;
  for (int round = 0; round < 3; ++round) {
    std::vector<int> mine;
    for (std::int64_t c : samples[round]) {
      if (c < 3) mine.push_back(static_cast<int>(c));
    }
    CHECK(rounds[round].clients == static_cast<int>(mine.size()));
    CHECK(rounds[round].refused == 1);
    expected += MeanStep(mine);
  }
  // Only the honest subtree's means moved the model; without the checks every round adds ~100.
  for (std::size_t i = 0; i < final_model->numel(); ++i) {
    CHECK(std::abs(final_model->data()[i] - (i % 2 ? -expected : expected)) < 1e-5);
  }
}

TEST_CASE("secure aggregation in each subtree gives the flat FedAvg through two aggregators",
          "[deployment][tier][secagg]") {
  Config config = TierConfig(6);
  config.secure_aggregation = "secagg";  // each aggregator learns only its 3 clients' sum
  config.secagg_stage_timeout_s = 10;
  TierRun run = RunTwoSubtrees(
      config, 2, [&](ServerOptions& options) { options.secure = SecureOptionsFrom(config); });
  INFO(run.model.status().ToString());
  REQUIRE(run.model.ok());
  const auto& rounds = run.rounds;
  REQUIRE(rounds.size() == 2);
  for (const RoundMetrics& m : rounds) {
    CHECK(m.clients == 6);
    CHECK(m.refused == 0);
  }
  // The secure mean weighs each client by min(samples / max_weight, 1): with every count under
  // max_weight, by its samples, as FedAvg does; quantization costs ~1e-6 per round.
  for (std::size_t i = 0; i < run.model->numel(); ++i) {
    CHECK(std::abs(run.model->data()[i] - Expected(i, {0, 1, 2, 3, 4, 5}, 2)) < 1e-4);
  }
}
