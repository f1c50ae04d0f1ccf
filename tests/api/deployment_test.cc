// The round controller with fixed clients over a real gRPC server on loopback: clients whose
// updates are bad (a tensor of the wrong shape, non-finite values) or who fail are refused or
// dropped with a reason, and the round goes on with the others; cross-device selection (among
// the connected clients, over-selection closing a round at its target).
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/compatibility.h"
#include "fedml/api/round_controller.h"
#include "fedml/core/comm/grpc.h"
#include "fedml/core/wire.h"
#include "fedml_service.grpc.pb.h"
#include "raw_grpc_client.h"
#include "scripted_trainer.h"

using namespace fedml;
using namespace fedml::api;
using fedml::testing::RawClient;
using fedml::testing::ScriptedTrainer;

namespace {

core::ModelState Model(std::int64_t width, float value) {
  core::ModelState s;
  std::vector<float> w(static_cast<std::size_t>(width * 2), value);
  REQUIRE(s.Add("w", {2, width}, w.data()).ok());
  return s;
}

// An insecure gRPC server for `clients` clients on a loopback port.
std::unique_ptr<core::grpc_comm::ServerCommunicator> StartLoopbackServer(int clients) {
  core::grpc_comm::ServerOptions so;
  so.address = "127.0.0.1:0";
  so.num_clients = clients;
  so.security.insecure = true;
  so.fetch_wait = std::chrono::milliseconds(500);
  so.flush_timeout = std::chrono::milliseconds(3000);
  auto server = core::grpc_comm::StartServer(so);
  REQUIRE(server.ok());
  return std::move(server).value();
}

// Client i (one thread each) connects to `server` and serves with trainers[i] until FINISH;
// its result lands in status[i]. Join the threads before `status` goes.
// worker_options[i], where given, are client i's (default: a 60 s idle timeout).
std::vector<std::thread> StartClients(core::grpc_comm::ServerCommunicator& server,
                                      std::vector<std::unique_ptr<ClientTrainer>> trainers,
                                      std::vector<Status>& status,
                                      std::vector<WorkerOptions> worker_options = {}) {
  status.assign(trainers.size(), Status::Ok());
  worker_options.resize(trainers.size());
  std::vector<std::thread> clients;
  const int port = server.bound_port();
  for (std::size_t id = 0; id < trainers.size(); ++id) {
    clients.emplace_back(
        [&status, port, id, wo = worker_options[id], trainer = std::move(trainers[id])]() mutable {
          core::grpc_comm::ClientOptions co;
          co.server = "127.0.0.1:" + std::to_string(port);
          co.client_id = static_cast<int>(id);
          co.security.insecure = true;
          co.connect_timeout = std::chrono::seconds(20);
          auto comm = core::grpc_comm::ConnectClient(co);
          if (!comm.ok()) {
            status[id] = comm.status();
            return;
          }
          wo.idle_timeout = std::chrono::seconds(60);
          ClientManager manager(**comm, std::move(trainer), wo);
          status[id] = manager.Run();
        });
  }
  REQUIRE(server
              .WaitForClients(static_cast<int>(trainers.size()),
                              core::DeadlineAfter(std::chrono::seconds(30)))
              .ok());
  return clients;
}

// The options of a deployed server's synchronous rounds over `server`'s connected clients.
ServerOptions DeployedRounds(core::grpc_comm::ServerCommunicator& server, int total, int per_round,
                             int rounds, std::chrono::seconds round_timeout) {
  ServerOptions options;
  options.client_num_in_total = total;
  options.client_num_per_round = per_round;
  options.comm_round = rounds;
  options.round_timeout = round_timeout;
  options.fixed_clients = true;
  core::grpc_comm::ServerCommunicator* comm = &server;
  options.is_connected = [comm](int rank) { return comm->is_live(rank); };
  return options;
}

}  // namespace

TEST_CASE("bad updates over gRPC are refused and the round goes on", "[deployment]") {
  auto server = StartLoopbackServer(4);
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (auto kind : {ScriptedTrainer::Kind::kGood, ScriptedTrainer::Kind::kWrongShape,
                    ScriptedTrainer::Kind::kNaN, ScriptedTrainer::Kind::kFail}) {
    trainers.push_back(std::make_unique<ScriptedTrainer>(kind));
  }
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  ServerOptions options;
  options.client_num_in_total = 4;
  options.client_num_per_round = 4;
  options.comm_round = 2;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.min_clients = 1;
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
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

namespace {

// Holds every task until released (a client that went quiet), bounded so the test always ends.
class StalledTrainer : public ScriptedTrainer {
 public:
  StalledTrainer() : ScriptedTrainer(Kind::kGood) {}
  Result<LocalUpdate> Train(const TrainTask& task) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(60), [&] { return released_; });
    }
    return ScriptedTrainer::Train(task);
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

// Opens once the NaN client has been handed its second task: the server has then taken (and
// refused) its first update. Bounded, so a server that never hands it one fails the test's
// checks instead of hanging it.
class Latch {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Waits for `latch` before every task (the good clients), or opens it on its second task (the
// NaN client), so the run's versions cannot all be made before the NaN update reached the
// server: without it a loaded machine may let the good clients finish the run first.
class GatedTrainer : public ScriptedTrainer {
 public:
  GatedTrainer(Kind kind, Latch* latch, bool opens)
      : ScriptedTrainer(kind), latch_(latch), opens_(opens) {}
  Result<LocalUpdate> Train(const TrainTask& task) override {
    if (!opens_) latch_->Wait();
    if (opens_ && ++tasks_ == 2) latch_->Open();
    return ScriptedTrainer::Train(task);
  }

 private:
  Latch* latch_;
  bool opens_;
  int tasks_ = 0;
};

}  // namespace

TEST_CASE("asynchronous FedBuff over gRPC goes on without a client that went quiet",
          "[deployment][async]") {
  auto server = StartLoopbackServer(4);
  auto stalled_owner = std::make_unique<StalledTrainer>();
  StalledTrainer* stalled = stalled_owner.get();
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  Latch nan_refused;
  trainers.push_back(
      std::make_unique<GatedTrainer>(ScriptedTrainer::Kind::kGood, &nan_refused, false));
  trainers.push_back(
      std::make_unique<GatedTrainer>(ScriptedTrainer::Kind::kGood, &nan_refused, false));
  trainers.push_back(
      std::make_unique<GatedTrainer>(ScriptedTrainer::Kind::kNaN, &nan_refused, true));
  trainers.push_back(std::move(stalled_owner));  // client 3 holds every task until released
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  ServerOptions options;
  options.client_num_in_total = 4;
  options.client_num_per_round = 4;
  options.comm_round = 4;
  // Client 3 holds its task past this, so the end of the run gives up on it after 3 s.
  options.round_timeout = std::chrono::seconds(3);
  options.fixed_clients = true;
  options.async.enabled = true;
  options.async.buffer_size = 2;
  options.async.max_concurrency = 4;
  options.async.max_staleness = 10;
  core::grpc_comm::ServerCommunicator* comm = server.get();
  options.is_connected = [comm](int rank) { return comm->is_live(rank); };
  algorithms::AggregatorOptions agg;
  auto aggregator = algorithms::CreateAggregator("FedBuff", agg);
  REQUIRE(aggregator.ok());
  int evaluations = 0;
  RoundController controller(*server, std::move(aggregator).value(), options,
                             [&](const core::ModelState&) -> Result<Evaluation> {
                               ++evaluations;
                               return Evaluation{0.5, 0.5, 10};
                             });
  auto final_model = controller.Run(Model(3, 0.0f));
  stalled->Release();  // the quiet client finishes its task, then reads FINISH
  for (auto& t : clients) t.join();
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());

  // Four versions, each from two accepted updates of the good clients 0 and 1, while client 3
  // held its task the whole run and client 2's non-finite updates were refused.
  const auto& versions = controller.history();
  REQUIRE(versions.size() == 4);
  int refused = 0;
  for (const RoundMetrics& m : versions) {
    CHECK(m.clients == 2);
    CHECK(m.evaluated);
    refused += m.refused;
  }
  CHECK(refused >= 1);
  CHECK(evaluations == 4);
  // Every accepted update adds 1 to the model it started from, discounted by its staleness:
  // each version moves the model by at most 1.
  for (std::size_t i = 0; i < final_model->numel(); ++i) {
    CHECK(final_model->data()[i] > 0.0f);
    CHECK(final_model->data()[i] <= 4.0f);
  }
  for (const Status& st : client_status) CHECK(st.ok());
}

TEST_CASE("secure aggregation over gRPC survives a client that goes silent mid-protocol",
          "[deployment][secagg]") {
  auto server = StartLoopbackServer(5);
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (int i = 0; i < 5; ++i) {
    trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  }
  // Client 4 sends its keys, then says nothing more: the server waits out the stage.
  std::vector<WorkerOptions> worker_options(5);
  worker_options[4].secure_dropout.rate = 1.0;
  worker_options[4].secure_dropout.stage = "advertise_keys";
  worker_options[4].secure_dropout.silent = true;
  std::vector<Status> client_status;
  std::vector<std::thread> clients =
      StartClients(*server, std::move(trainers), client_status, worker_options);

  ServerOptions options;
  options.client_num_in_total = 5;
  options.client_num_per_round = 5;
  options.comm_round = 2;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.secure.protocol = "secagg";
  options.secure.reconstruction_threshold = 3;
  options.secure.max_weight = 10;  // each client's weight is 1
  // Long enough for a loaded (sanitizer) CI machine; the silent client costs it once a round.
  options.secure.stage_timeout = std::chrono::seconds(3);
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  auto final_model = controller.Run(Model(3, 0.0f));
  for (auto& t : clients) t.join();
  REQUIRE(final_model.ok());
  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 2);
  for (const RoundMetrics& m : rounds) {
    CHECK(m.clients == 4);
    CHECK(m.dropped == 1);
    CHECK(m.extra.at("secagg_survivors") == 4);
  }
  // Every survivor added 1 per round; the mean is exact up to the quantization step.
  const double step = 16.0 / ((1 << 22) - 1);
  for (std::size_t i = 0; i < final_model->numel(); ++i) {
    CHECK(std::fabs(final_model->data()[i] - 2.0f) <= 2 * 2 * 4 * step / 4 + 1e-6);
  }
  for (const Status& st : client_status) CHECK(st.ok());

  // A non-linear aggregator is refused before the first round.
  auto server2 = StartLoopbackServer(2);
  algorithms::AggregatorOptions robust;
  robust.enable_defense = true;
  robust.defense.defense_type = "wise_median";
  auto median = algorithms::CreateAggregator("FedAvg", robust);
  REQUIRE(median.ok());
  options.client_num_in_total = 2;
  options.client_num_per_round = 2;
  RoundController refused(*server2, std::move(median).value(), options, {});
  auto result = refused.Run(Model(3, 0.0f));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().message().find("needs a linear aggregator") != std::string::npos);
}

TEST_CASE("over-selection closes a round at its target; the slowest selected clients cost nothing",
          "[deployment][cross_device]") {
  auto server = StartLoopbackServer(4);
  std::vector<StalledTrainer*> stalled;
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  for (int i = 0; i < 2; ++i) {  // clients 2 and 3 hold every task until released
    auto owner = std::make_unique<StalledTrainer>();
    stalled.push_back(owner.get());
    trainers.push_back(std::move(owner));
  }
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  // The deadline is longer than the stalled clients hold a task: a round that waited for them
  // would end with them dropped at it (dropped == 2), not cut (over_selected_cut == 2).
  ServerOptions options = DeployedRounds(*server, 4, 2, 3, std::chrono::seconds(50));
  options.over_selection = 2.0;  // selects all 4, closes at 2 replies
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  auto final_model = controller.Run(Model(3, 0.0f));
  for (StalledTrainer* s : stalled) s->Release();  // their late replies find the run over
  for (auto& t : clients) t.join();
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());

  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 3);
  for (const RoundMetrics& m : rounds) {
    CHECK(m.clients == 2);
    CHECK(m.dropped == 0);
    CHECK(m.extra.at("selected") == 4);
    CHECK(m.extra.at("over_selected_cut") == 2);
  }
  // Each round's two good updates add 1 each (weighted mean +1): three rounds, +3.
  for (std::size_t i = 0; i < final_model->numel(); ++i) CHECK(final_model->data()[i] == 3.0f);
  for (const Status& st : client_status) CHECK(st.ok());
}

TEST_CASE("a deployed round selects among the connected clients only",
          "[deployment][cross_device]") {
  const std::uint64_t seed = 0;
  // The draw among all four clients picks client 3 in round 1, so a server that selected
  // among every client would drop it there; client 3 never connects.
  const std::vector<std::int64_t> among_all = SampleClients(seed, 0, 4, 3);
  REQUIRE(std::find(among_all.begin(), among_all.end(), 3) != among_all.end());

  auto server = StartLoopbackServer(4);
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (int i = 0; i < 3; ++i) {
    trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  }
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  ServerOptions options = DeployedRounds(*server, 4, 3, 3, std::chrono::seconds(30));
  options.random_seed = seed;
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  auto final_model = controller.Run(Model(3, 0.0f));
  for (auto& t : clients) t.join();
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());
  for (const RoundMetrics& m : controller.history()) {
    CHECK(m.clients == 3);
    CHECK(m.dropped == 0);
  }
  for (const Status& st : client_status) CHECK(st.ok());
}

TEST_CASE("over-selection is refused where the result would depend on timing",
          "[deployment][cross_device]") {
  auto server = StartLoopbackServer(2);
  ServerOptions options;
  options.client_num_in_total = 2;
  options.client_num_per_round = 1;
  options.over_selection = 1.5;
  options.fixed_clients = false;  // a simulation's sample waits for every client
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  auto result = controller.Run(Model(3, 0.0f));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(result.status().message(), Catch::Contains("over_selection"));

  RunFeatures buffered;  // no rounds to close
  buffered.strategy = "FedBuff";
  buffered.asynchronous = true;
  buffered.over_selection = 1.5;
  const Status refused = CheckCompatible(buffered);
  CHECK(refused.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(refused.message(), Catch::Contains("over_selection"));
  buffered.over_selection = 1.0;
  CHECK(CheckCompatible(buffered).ok());
}

TEST_CASE("over-selection with secure aggregation runs the protocol on the first to send keys",
          "[deployment][cross_device][secagg]") {
  auto server = StartLoopbackServer(5);
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (int i = 0; i < 4; ++i) {
    trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  }
  auto stalled_owner = std::make_unique<StalledTrainer>();  // client 4 holds every task
  StalledTrainer* stalled = stalled_owner.get();
  trainers.push_back(std::move(stalled_owner));
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  // The deadline is longer than the stalled client holds a task: a round that waited for its
  // keys would end with it dropped (dropped == 1), not cut (over_selected_cut == 1).
  ServerOptions options = DeployedRounds(*server, 5, 4, 2, std::chrono::seconds(50));
  options.over_selection = 1.25;  // selects all 5, runs the protocol on the first 4 with keys
  options.secure.protocol = "secagg";
  options.secure.reconstruction_threshold = 3;
  options.secure.max_weight = 10;  // each client's weight is 1
  options.secure.stage_timeout = std::chrono::seconds(10);
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  auto final_model = controller.Run(Model(3, 0.0f));
  stalled->Release();  // its late keys find the run over
  for (auto& t : clients) t.join();
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());

  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 2);
  for (const RoundMetrics& m : rounds) {
    CHECK(m.clients == 4);
    CHECK(m.dropped == 0);
    CHECK(m.extra.at("selected") == 5);
    CHECK(m.extra.at("over_selected_cut") == 1);
    CHECK(m.extra.at("secagg_survivors") == 4);
  }
  // Each round's secure mean of four +1 updates moves the model by 1 (within quantization).
  for (std::size_t i = 0; i < final_model->numel(); ++i) {
    CHECK(std::fabs(final_model->data()[i] - 2.0f) < 1e-3);
  }
  for (const Status& st : client_status) CHECK(st.ok());
}

TEST_CASE("a client that registers again mid-round is sent its task again (not waited for)",
          "[deployment][cross_device]") {
  auto server = StartLoopbackServer(2);
  RawClient restarted(server->bound_port(), 1);
  REQUIRE(restarted.Register().ok());
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  trainers.push_back(std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  std::vector<Status> client_status;
  std::vector<std::thread> clients = StartClients(*server, std::move(trainers), client_status);

  // A deadline far past the test's own waits: a round that waited for the lost task fails them.
  ServerOptions options = DeployedRounds(*server, 2, 2, 1, std::chrono::seconds(120));
  core::grpc_comm::ServerCommunicator* comm = server.get();
  options.wait_for_clients = [comm](core::Deadline d) { return comm->WaitForClients(2, d); };
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  Result<core::ModelState> final_model = Status::FailedPrecondition("not run");
  std::thread run([&] { final_model = controller.Run(Model(3, 0.0f)); });

  // Client 1 gets its task, then "restarts" before answering: it registers again, and what the
  // server sent its old connection is gone.
  const auto first = restarted.Fetch(core::DeadlineAfter(std::chrono::seconds(30)));
  REQUIRE(first.has_value());
  CHECK(first->type == core::MessageType::kTrainTask);
  REQUIRE(restarted.Register().ok());
  // The task comes again (without the notice the round would wait its 120 s deadline for it).
  const auto again = restarted.Fetch(core::DeadlineAfter(std::chrono::seconds(30)));
  REQUIRE(again.has_value());
  CHECK(again->type == core::MessageType::kTrainTask);
  CHECK(again->round == first->round);
  CHECK(again->client_ids == std::vector<std::int64_t>{1});
  // The attack on the resend: the client pushes the transport's notice itself, as often as it
  // likes, to have the model sent to it again and again. A task goes out again once at most.
  for (int i = 0; i < 3; ++i) {
    core::Message spoofed;
    spoofed.type = core::MessageType::kRegister;
    spoofed.sender = 2;
    spoofed.attrs["reason"] = "registered again";
    CHECK(restarted.Push(spoofed).ok());
  }
  core::Message update;
  update.type = core::MessageType::kClientUpdate;
  update.sender = 2;
  update.receiver = 0;
  update.round = again->round;
  update.model_version = again->model_version;
  update.client_ids = {1};
  update.num_samples = 10;
  update.model = again->model;
  for (std::size_t i = 0; i < update.model.numel(); ++i) update.model.data()[i] += 3.0f;
  CHECK(restarted.Push(update).ok());
  // Then the evaluation task (answered) and FINISH, so the run ends without waiting on it.
  std::optional<core::Message> finish;
  int tasks_again = 0;  // training tasks after the one answered: sent for the spoofed notices
  for (int i = 0; i < 8 && !finish; ++i) {
    auto next = restarted.Fetch(core::DeadlineAfter(std::chrono::seconds(30)));
    if (!next || next->type == core::MessageType::kFinish) {
      finish = next;
      break;
    }
    if (next->type == core::MessageType::kTrainTask) ++tasks_again;
    if (next->type != core::MessageType::kEvalTask) continue;
    core::Message eval;
    eval.type = core::MessageType::kEvalResult;
    eval.sender = 2;
    eval.round = next->round;
    eval.model_version = next->model_version;
    eval.num_samples = 10;
    eval.metrics["test_loss"] = 0.5;
    eval.metrics["test_accuracy"] = 0.5;
    CHECK(restarted.Push(eval).ok());
  }
  run.join();
  for (auto& t : clients) t.join();
  INFO(final_model.status().ToString());
  REQUIRE(final_model.ok());
  CHECK((finish.has_value() && finish->type == core::MessageType::kFinish));
  CHECK(tasks_again == 0);
  const auto& rounds = controller.history();
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].clients == 2);
  CHECK(rounds[0].dropped == 0);
  // The mean of the good client's +1 and the restarted client's +3 (equal weights).
  for (std::size_t i = 0; i < final_model->numel(); ++i) CHECK(final_model->data()[i] == 2.0f);
  CHECK(client_status[0].ok());
}
