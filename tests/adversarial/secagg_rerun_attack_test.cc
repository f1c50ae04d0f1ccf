// Red team, attack 3 of docs/security.md: a server that runs one secure round twice. A client's
// masked input for a round is the same each time (same model, same data order), so a server that
// unmasks the round's sum over all five clients, "crashes", and runs the round again over four of
// them gets client 4's update as 5 x mean1 - 4 x mean2. The hostile server here is the real
// server code run twice for round 1 over gRPC with mutual TLS, the clients restarted in between
// (new processes' worth of state: new ClientManagers, the same journal files), as a server resuming
// from a checkpoint taken before the round would do. The attacker must learn nothing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/round_controller.h"
#include "mtls_harness.h"

using namespace fedml;
using namespace fedml::api;

namespace {

constexpr int kClients = 5;

/// Client i's update moves every weight by 0.25 x (i + 1): distinct, so a recovered update says
/// whose it is.
class DistinctTrainer final : public ClientTrainer {
 public:
  explicit DistinctTrainer(int id) : id_(id) {}
  Status SetState(const core::ModelState& s) override {
    state_ = s;
    return Status::Ok();
  }
  Result<core::ModelState> GetState() override { return state_; }
  Result<LocalUpdate> Train(const TrainTask&) override {
    LocalUpdate u;
    u.num_samples = 10;
    u.state = state_;
    for (std::size_t i = 0; i < u.state.numel(); ++i) u.state.data()[i] += Delta(id_);
    return u;
  }
  Result<Evaluation> Evaluate(const EvalTask&) override { return Evaluation{0.5, 0.5, 10}; }
  static float Delta(int id) { return 0.25f * static_cast<float>(id + 1); }

 private:
  int id_;
  core::ModelState state_;
};

core::ModelState Zeros() {
  core::ModelState s;
  std::vector<float> w(6, 0.0f);
  REQUIRE(s.Add("w", {2, 3}, w.data()).ok());
  return s;
}

/// One run of round 1 by the server's real code on a fresh mTLS server, with freshly started
/// clients; `vanishing` (if >= 0) is a client the server leaves out after its keys arrive.
Result<core::ModelState> RunRoundOne(const fedml::testing::TempDir& dir, int vanishing,
                                     std::vector<Status>& client_status) {
  auto server = fedml::testing::StartMtlsServer(dir, kClients);
  auto serve = [&dir, vanishing](core::Communicator& comm, int id) {
    WorkerOptions wo;
    wo.idle_timeout = std::chrono::seconds(60);
    wo.secure_journal = dir.File("journal-" + std::to_string(id));
    if (id == vanishing) {
      wo.secure_dropout.rate = 1.0;
      wo.secure_dropout.stage = "advertise_keys";
    }
    ClientManager manager(comm, std::make_unique<DistinctTrainer>(id), wo);
    return manager.Run();
  };
  std::vector<std::thread> clients =
      fedml::testing::StartMtlsClients(*server, dir, kClients, serve, client_status);
  ServerOptions options;
  options.client_num_in_total = kClients;
  options.client_num_per_round = kClients;
  options.comm_round = 1;
  options.round_timeout = std::chrono::seconds(30);
  options.fixed_clients = true;
  options.secure.protocol = "secagg";
  options.secure.reconstruction_threshold = 3;
  options.secure.max_weight = 10;  // every client's weight is 1
  options.secure.stage_timeout = std::chrono::seconds(10);
  auto aggregator = algorithms::CreateAggregator("FedAvg", {});
  REQUIRE(aggregator.ok());
  RoundController controller(*server, std::move(aggregator).value(), options, {});
  Result<core::ModelState> result = controller.Run(Zeros());
  for (auto& t : clients) t.join();  // FINISH reached them; the server closes after
  return result;
}

}  // namespace

TEST_CASE("a server that runs a secure round twice over different survivors learns nothing",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_attack_secagg_rerun");
  fedml::testing::MakeCredentials(dir, kClients);

  std::vector<Status> first_status;
  auto first = RunRoundOne(dir, -1, first_status);
  REQUIRE(first.ok());
  for (const Status& st : first_status) CHECK(st.ok());
  float mean = 0.0f;
  for (int i = 0; i < kClients; ++i) mean += DistinctTrainer::Delta(i) / kClients;
  CHECK(std::fabs(first->data()[0] - mean) < 1e-3);  // the honest round: the five clients' mean

  // The same round again, client 4 left out after its keys.
  std::vector<Status> second_status;
  auto second = RunRoundOne(dir, 4, second_status);
  for (const Status& st : second_status) CHECK(st.ok());  // each refused the task and served on
  for (int id = 0; id < kClients; ++id) {  // each took part in round 1 once, on record
    std::ifstream journal(dir.File("journal-" + std::to_string(id)));
    std::string line;
    int lines = 0;
    while (std::getline(journal, line)) ++lines;
    CHECK(lines == 1);
  }
  if (!second.ok()) {
    INFO(second.status().ToString());
    CHECK(second.status().message().find("secure") != std::string::npos);
  } else {
    // What the attacker would compute; the second run must not have aggregated anything.
    const float recovered = 5.0f * first->data()[0] - 4.0f * second->data()[0];
    INFO("recovered " << recovered << ", client 4's update " << DistinctTrainer::Delta(4));
    CHECK(std::fabs(recovered - DistinctTrainer::Delta(4)) > 0.1f);
    for (std::size_t i = 0; i < second->numel(); ++i) CHECK(second->data()[i] == 0.0f);
  }
}

TEST_CASE("a damaged secure-aggregation journal refuses secure rounds, naming it",
          "[adversarial][secagg]") {
  const fedml::testing::TempDir dir("fedml_attack_secagg_journal");
  fedml::testing::MakeCredentials(dir, kClients);
  for (int id = 0; id < kClients; ++id) {
    std::FILE* f = std::fopen(dir.File("journal-" + std::to_string(id)).c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(id == 0 ? "0 0 one\n" : "", f);  // client 0's journal is not a journal
    std::fclose(f);
  }
  std::vector<Status> status;
  auto run = RunRoundOne(dir, -1, status);
  REQUIRE(run.ok());  // four clients are enough for the threshold of 3
  for (float v : std::vector<float>(run->data(), run->data() + run->numel())) {
    float mean4 = 0.0f;
    for (int i = 1; i < kClients; ++i) mean4 += DistinctTrainer::Delta(i) / (kClients - 1);
    CHECK(std::fabs(v - mean4) < 1e-3);
  }
}
