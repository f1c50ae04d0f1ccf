// Verified work at the trainer: a LibTorch client commits to its trajectory (checkpoint hashes,
// batch indices, hyperparameters), keeps its checkpoints for spot checks, and another worker's
// trainer (a verifier holding the same data) replays any committed segment to its next
// checkpoint; training setups whose state a replay would lack are refused.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <set>

#include "../temp_dir.h"
#include "config_helpers.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/simulation.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/ledger.h"

using namespace fedml;
using namespace fedml::api;
namespace sec = fedml::core::security;
using Catch::Matchers::Contains;

namespace {

RawConfig BaseRaw() {
  return {{"dataset", "synthetic"},       {"model", "mlp"},     {"client_num_in_total", "6"},
          {"client_num_per_round", "3"},  {"comm_round", "1"},  {"batch_size", "8"},
          {"learning_rate", "0.1"},       {"random_seed", "5"}, {"epochs", "2"},
          {"model_file_cache_folder", ""}};
}

std::unique_ptr<ClientTrainer> MakeTrainer(const Config& config, int worker) {
  auto factory = TrainerFactoryFor(config, {});
  REQUIRE(factory.ok());
  auto trainer = (*factory)(worker);
  REQUIRE(trainer.ok());
  return std::move(trainer).value();
}

/// Forwards to the built-in trainer, training with one LibTorch thread count and replaying with
/// another: the honest nondeterminism the verify_threshold must absorb.
class ThreadCountTrainer final : public ForwardingClientTrainer {
 public:
  ThreadCountTrainer(std::unique_ptr<ClientTrainer> inner, int train_threads, int replay_threads)
      : ForwardingClientTrainer(std::move(inner)),
        train_threads_(train_threads),
        replay_threads_(replay_threads) {}
  Result<LocalUpdate> Train(const TrainTask& t) override {
    torch::set_num_threads(train_threads_);
    return inner_->Train(t);
  }
  Result<core::ModelState> ReplaySegment(const ReplayTask& t) override {
    const int before = torch::get_num_threads();
    torch::set_num_threads(replay_threads_);
    auto out = inner_->ReplaySegment(t);
    torch::set_num_threads(before);
    return out;
  }

 private:
  int train_threads_;
  int replay_threads_;
};

/// Breaks the commitment or the reveal of clients 0-4, each in its own way.
class CommitmentTamperer final : public ForwardingClientTrainer {
 public:
  using ForwardingClientTrainer::ForwardingClientTrainer;
  Result<LocalUpdate> Train(const TrainTask& t) override {
    FEDML_ASSIGN_OR_RETURN(LocalUpdate u, inner_->Train(t));
    if (t.client_id == 0) u.commitment.assign(u.commitment.size() / 2, 0xab);  // not decodable
    if (t.client_id >= 1 && t.client_id <= 3) {
      auto c = sec::DecodeCommitment(u.commitment);
      if (!c.ok()) return c.status();
      if (t.client_id == 1) c->num_samples += 1;  // claims a sample it did not have
      if (t.client_id == 2) c->data_seed += 1;    // another data order than the one assigned
      if (t.client_id == 3) c->checkpoint_sha256.front() = c->checkpoint_sha256.back();
      u.commitment = sec::EncodeCommitment(*c);
    }
    return u;
  }
  Result<core::ModelState> CommittedCheckpoint(std::int64_t r, std::int64_t c,
                                               std::int64_t i) const override {
    auto s = inner_->CommittedCheckpoint(r, c, i);
    if (s.ok() && c == 4) s->data()[0] += 1e-3f;  // reveals something else than it committed
    return s;
  }
};

/// A verified run on synthetic data: 10 clients, all of them every round, mlp.
RawConfig VerifiedRaw() {
  RawConfig raw = BaseRaw();
  raw["client_num_in_total"] = "10";
  raw["client_num_per_round"] = "10";
  raw["comm_round"] = "3";
  raw["epochs"] = "1";
  raw["verification"] = "enabled";
  raw["checkpoint_interval"] = "4";
  raw["verify_probability"] = "1";
  raw["worker_num"] = "2";
  return raw;
}

RawConfig WithCheat(RawConfig raw, const std::string& type) {
  raw["enable_attack"] = "true";
  raw["attack_type"] = type;
  raw["ratio_of_poisoned_client"] = "0.2";
  return raw;
}

double Total(const RunSummary& summary, const std::string& name, std::int64_t from_round = 1) {
  double sum = 0.0;
  for (const RoundMetrics& m : summary.rounds) {
    const auto it = m.extra.find(name);
    if (m.round >= from_round && it != m.extra.end()) sum += it->second;
  }
  return sum;
}

}  // namespace

TEST_CASE("honest clients pass every spot check across LibTorch thread counts", "[verification]") {
  for (const auto& [train_threads, replay_threads] : {std::pair{1, 2}, std::pair{2, 1}}) {
    INFO("training with " << train_threads << " threads, replaying with " << replay_threads);
    const fedml::testing::TempDir dir("fedml_verify_threads");
    const Config config =
        fedml::testing::ConfigWith(VerifiedRaw(), {{"ledger_file", dir.File("ledger.jsonl")}});
    auto builtin = TrainerFactoryFor(config, {});
    REQUIRE(builtin.ok());
    SimulationHooks hooks;
    hooks.trainer_factory = [inner = *builtin, train = train_threads, replay = replay_threads](
                                int w) -> Result<std::unique_ptr<ClientTrainer>> {
      FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, inner(w));
      return std::unique_ptr<ClientTrainer>(
          std::make_unique<ThreadCountTrainer>(std::move(t), train, replay));
    };
    auto run = RunSimulation(config, hooks);
    REQUIRE(run.ok());
    // Every update of every round was checked, and every check passed.
    CHECK(Total(*run, "verify_passed") == 30);
    CHECK(Total(*run, "verify_failed") == 0);
    for (const RoundMetrics& m : run->rounds) CHECK(m.clients == 10);
    CHECK(Total(*run, "verify_seconds") > 0);
    // The ledger has every check, each within the threshold: the honest float noise it absorbs.
    auto records = core::security::ReadLedger(dir.File("ledger.jsonl"));
    REQUIRE(records.ok());
    double largest = 0.0;
    for (const auto& rec : *records) {
      CHECK(rec.checks.size() == 10);
      for (const auto& check : rec.checks) largest = std::max(largest, check.distance);
    }
    CHECK(largest <= config.verify_threshold);
  }
}

TEST_CASE("each cheat is caught whenever it is checked, and no honest client is",
          "[verification]") {
  for (const std::string type : {"free_rider", "noise", "fewer_steps", "replay"}) {
    INFO(type);
    const Config config = fedml::testing::ConfigWith(WithCheat(VerifiedRaw(), type), {});
    auto run = RunSimulation(config);
    REQUIRE(run.ok());
    const AttackOptions attack = AttackOptionsFrom(config);
    std::int64_t cheats = 0;  // 2 cheaters per round until both are excluded
    for (const RoundMetrics& m : run->rounds) {
      INFO("round " << m.round);
      const double sent = m.extra.at("attacker_updates");
      cheats += static_cast<std::int64_t>(sent);
      // A replay cheat's first round is its own honest work from the initial model.
      const bool honest_first = type == "replay" && m.round == 1;
      CHECK(m.extra.at("attackers_caught") == (honest_first ? 0 : sent));
      // Every failure is a cheat's: no false positive.
      CHECK(m.extra.at("verify_failed") == m.extra.at("attackers_caught"));
      // Everything was checked (verify_probability 1): what passed is what was aggregated.
      CHECK(m.clients == m.extra.at("verify_passed"));
    }
    CHECK(cheats >= 4);
    int cheaters = 0;
    for (std::int64_t c = 0; c < 10; ++c) cheaters += IsAttacker(attack, 0, c) ? 1 : 0;
    CHECK(cheaters == 2);
  }
}

TEST_CASE("an update whose commitment does not hold is refused without a spot check",
          "[verification]") {
  // A byzantine update replaces the trained model but keeps the honest commitment, whose last
  // checkpoint is not the update sent.
  RawConfig raw = WithCheat(VerifiedRaw(), "byzantine");
  raw["verify_probability"] = "0";
  const fedml::testing::TempDir dir("fedml_verify_mismatch");
  raw["ledger_file"] = dir.File("ledger.jsonl");
  const Config config = fedml::testing::ConfigWith(raw, {});
  auto run = RunSimulation(config);
  REQUIRE(run.ok());
  CHECK(Total(*run, "attacker_updates") >= 2);
  CHECK(Total(*run, "attackers_caught") == Total(*run, "attacker_updates"));
  CHECK(Total(*run, "verify_passed") == 0);
  auto records = core::security::ReadLedger(dir.File("ledger.jsonl"));
  REQUIRE(records.ok());
  REQUIRE(records->size() == 3);
  const auto& first = records->front();
  REQUIRE(first.checks.size() == 2);
  for (const auto& check : first.checks) {
    CHECK(check.result == "mismatch");
    CHECK(check.segment == -1);
    CHECK(std::find(first.excluded.begin(), first.excluded.end(), check.client) !=
          first.excluded.end());
  }
}

TEST_CASE("malformed and inconsistent commitments or reveals are refused; the run goes on",
          "[verification]") {
  const fedml::testing::TempDir dir("fedml_verify_tamper");
  RawConfig raw = VerifiedRaw();
  raw["comm_round"] = "2";
  raw["ledger_file"] = dir.File("ledger.jsonl");
  const Config config = fedml::testing::ConfigWith(raw, {});
  auto builtin = TrainerFactoryFor(config, {});
  REQUIRE(builtin.ok());
  SimulationHooks hooks;
  hooks.trainer_factory = [inner = *builtin](int w) -> Result<std::unique_ptr<ClientTrainer>> {
    FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, inner(w));
    return std::unique_ptr<ClientTrainer>(std::make_unique<CommitmentTamperer>(std::move(t)));
  };
  auto run = RunSimulation(config, hooks);
  REQUIRE(run.ok());
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == 5);
    CHECK(m.extra.at("verify_failed") == 5);
    CHECK(m.extra.at("verify_passed") == 5);
  }
  auto records = core::security::ReadLedger(dir.File("ledger.jsonl"));
  REQUIRE(records.ok());
  for (const auto& rec : *records) {
    REQUIRE(rec.checks.size() == 10);
    for (const auto& check : rec.checks) {
      INFO("client " << check.client);
      CHECK(check.result == (check.client < 5 ? "mismatch" : "pass"));
      // The commitment itself is refused before any segment is chosen; a bad reveal is not.
      CHECK((check.segment == -1) == (check.client < 4));
    }
  }
}

TEST_CASE(
    "caught cheats are slashed, excluded from later rounds and paid nothing; the ledger "
    "says so",
    "[verification]") {
  const fedml::testing::TempDir dir("fedml_verify_ledger");
  RawConfig raw = WithCheat(VerifiedRaw(), "noise");
  raw["comm_round"] = "4";
  raw["ledger_file"] = dir.File("ledger.jsonl");
  const Config config = fedml::testing::ConfigWith(raw, {});
  auto run = RunSimulation(config);
  REQUIRE(run.ok());
  auto verified = core::security::VerifyLedger(dir.File("ledger.jsonl"));
  REQUIRE(verified.ok());
  CHECK(verified->ok);
  auto records = core::security::ReadLedger(dir.File("ledger.jsonl"));
  REQUIRE(records.ok());
  REQUIRE(records->size() == 4);
  const AttackOptions attack = AttackOptionsFrom(config);
  std::set<std::int64_t> cheaters;
  for (std::int64_t c = 0; c < 10; ++c) {
    if (IsAttacker(attack, 0, c)) cheaters.insert(c);
  }
  REQUIRE(cheaters.size() == 2);
  // Default accounts: stake 100, half slashed per failed check, excluded after two failures.
  const std::vector<double> expected_stake = {50, 25};
  for (std::size_t r = 0; r < records->size(); ++r) {
    const auto& rec = (*records)[r];
    INFO("round " << rec.round);
    for (std::int64_t c : cheaters) {
      const bool present =
          std::find(rec.participants.begin(), rec.participants.end(), c) != rec.participants.end();
      CHECK(present == (r < 2));  // gone once excluded
      for (const auto& reward : rec.rewards) CHECK(reward.client != c);
      for (const auto& stake : rec.stakes) {
        if (stake.client == c) CHECK(stake.stake == expected_stake.at(r));
      }
    }
    for (const auto& reward : rec.rewards) {
      const auto update = std::find_if(rec.updates.begin(), rec.updates.end(),
                                       [&](const auto& u) { return u.client == reward.client; });
      REQUIRE(update != rec.updates.end());
      CHECK(reward.amount == static_cast<double>(update->samples));  // reward_per_sample 1
    }
    for (const auto& check : rec.checks) {
      CHECK(check.result == (cheaters.count(check.client) ? "fail" : "pass"));
      CHECK(check.threshold == config.verify_threshold);
      if (check.result == "pass") CHECK(check.distance <= check.threshold);
    }
  }
  CHECK(records->back().participants.size() == 8);
}

TEST_CASE("verification gives the same run for any worker_num", "[verification]") {
  std::vector<std::vector<double>> accuracies;
  for (const char* workers : {"1", "3"}) {
    RawConfig raw = WithCheat(VerifiedRaw(), "fewer_steps");
    raw["worker_num"] = workers;
    raw["verify_probability"] = "0.5";
    raw["client_num_per_round"] = "6";
    auto run = RunSimulation(fedml::testing::ConfigWith(raw, {}));
    REQUIRE(run.ok());
    std::vector<double> row;
    for (const RoundMetrics& m : run->rounds) {
      row.push_back(m.test_accuracy);
      row.push_back(m.extra.at("verify_passed"));
      row.push_back(m.extra.at("verify_failed"));
      row.push_back(m.clients);
    }
    accuracies.push_back(row);
  }
  CHECK(accuracies[0] == accuracies[1]);
}

TEST_CASE("verification refuses setups it cannot replay, naming them", "[verification]") {
  using fedml::testing::ConfigErrorWith;
  const RawConfig raw = VerifiedRaw();
  CHECK_THAT(ConfigErrorWith(raw, {{"momentum", "0.9"}}), Contains("momentum"));
  CHECK_THAT(ConfigErrorWith(raw, {{"client_optimizer", "adam"}}), Contains("adam"));
  CHECK_THAT(ConfigErrorWith(raw, {{"federated_optimizer", "FedBuff"}}), Contains("FedBuff"));
  CHECK_THAT(ConfigErrorWith(raw, {{"secure_aggregation", "secagg"}}), Contains("secure"));
  CHECK_THAT(
      ConfigErrorWith(
          raw, {{"enable_dp", "true"}, {"dp_solution_type", "ldp"}, {"noise_multiplier", "1"}}),
      Contains("local DP"));
  CHECK_THAT(ConfigErrorWith(raw, {{"verify_probability", "1.5"}}), Contains("verify_probability"));
  CHECK_THAT(ConfigErrorWith(raw, {{"checkpoint_interval", "0"}}), Contains("checkpoint_interval"));
  CHECK_THAT(ConfigErrorWith(raw, {{"verification", "on"}}), Contains("enabled"));
}

TEST_CASE("a client commits to its trajectory and a verifier replays any segment",
          "[verification]") {
  const Config config = fedml::testing::ConfigWith(BaseRaw(), {});
  std::unique_ptr<ClientTrainer> client = MakeTrainer(config, 0);
  std::unique_ptr<ClientTrainer> verifier = MakeTrainer(config, 1);
  auto global = client->GetState();
  REQUIRE(global.ok());

  TrainTask task;
  task.round = 0;
  task.client_id = 2;
  task.seed = 99;
  task.checkpoint_interval = 3;
  auto update = client->Train(task);
  REQUIRE(update.ok());
  auto commitment = sec::DecodeCommitment(update->commitment);
  REQUIRE(commitment.ok());
  CHECK(commitment->data_seed == 99);
  CHECK(commitment->checkpoint_interval == 3);
  CHECK(commitment->total_steps == static_cast<std::int64_t>(update->metrics.at("steps")));
  CHECK(commitment->num_samples == update->num_samples);
  CHECK(commitment->hyperparameters.at("learning_rate") == 0.1);
  const auto n = static_cast<std::int64_t>(commitment->checkpoint_sha256.size());
  REQUIRE(n == sec::NumCheckpoints(commitment->total_steps, 3));
  // The trajectory starts at the global model and ends at the update it came with.
  CHECK(commitment->checkpoint_sha256.front() == *sec::CheckpointSha256(*global));
  CHECK(commitment->checkpoint_sha256.back() == *sec::CheckpointSha256(update->state));

  for (std::int64_t k = 0; k + 1 < n; ++k) {
    INFO("segment " << k);
    auto start = client->CommittedCheckpoint(0, 2, k);
    auto end = client->CommittedCheckpoint(0, 2, k + 1);
    REQUIRE(start.ok());
    REQUIRE(end.ok());
    CHECK(*sec::CheckpointMatches(*commitment, k, *start));
    ReplayTask replay;
    replay.client_id = 2;
    replay.data_seed = commitment->data_seed;
    replay.first_step = sec::SegmentStart(k, 3, commitment->total_steps);
    replay.stop_step = sec::SegmentEnd(k, 3, commitment->total_steps);
    replay.start = std::move(start).value();
    auto replayed = verifier->ReplaySegment(replay);
    REQUIRE(replayed.ok());
    CHECK(*replayed == *end);  // same thread count: bit for bit
  }
  // A replay from the wrong start is far from the committed end.
  ReplayTask wrong;
  wrong.client_id = 2;
  wrong.data_seed = commitment->data_seed;
  wrong.first_step = 3;
  wrong.stop_step = 6;
  wrong.start = *global;  // checkpoint 0, not 1
  auto off = verifier->ReplaySegment(wrong);
  REQUIRE(off.ok());
  auto distance = sec::StateL2Distance(*off, *client->CommittedCheckpoint(0, 2, 2));
  REQUIRE(distance.ok());
  CHECK(*distance > 1e-3);

  // Checkpoints go once their round is settled.
  client->ReleaseCheckpoints(1);
  CHECK(client->CommittedCheckpoint(0, 2, 0).status().code() == StatusCode::kNotFound);
}

TEST_CASE("commitments are refused where a replay would lack the optimizer's state",
          "[verification]") {
  for (const RawConfig& extra :
       {RawConfig{{"momentum", "0.9"}}, RawConfig{{"client_optimizer", "adam"}},
        RawConfig{{"federated_optimizer", "FedProx"}, {"fedprox_mu", "0.1"}}}) {
    INFO(extra.begin()->first);
    const Config config = fedml::testing::ConfigWith(BaseRaw(), extra);
    std::unique_ptr<ClientTrainer> client = MakeTrainer(config, 0);
    TrainTask task;
    task.client_id = 1;
    task.checkpoint_interval = 2;
    auto update = client->Train(task);
    REQUIRE_FALSE(update.ok());
    CHECK(update.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(update.status().message(), Contains("plain SGD"));
    task.checkpoint_interval = 0;  // without a commitment it trains
    CHECK(client->Train(task).ok());
  }
}
