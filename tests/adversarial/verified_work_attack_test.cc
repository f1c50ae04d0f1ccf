// Red team, attack 1 of docs/security.md: a client that skips the work verified training pays
// for, and buys FedAvg weight and rewards with a sample count it does not have. The attacks run
// inside a real simulation (in-process transport: the attack is in the update's payload) through
// a hostile trainer that builds its update and commitment itself, as a modified client binary
// would; each test asserts what the attacker gets: nothing.
#include <catch2/catch.hpp>

#include <algorithm>

#include "../api/config_helpers.h"
#include "../temp_dir.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/simulation.h"
#include "fedml/api/training_deviation.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/ledger.h"

using namespace fedml;
using namespace fedml::api;
namespace sec = fedml::core::security;

namespace {

constexpr std::int64_t kClaimedSamples = 1'000'000'000;

enum class Cheat {
  kZeroSteps,   // the global model back, committed as 0 steps, claiming 1e9 samples
  kOneSegment,  // trains one checkpoint interval, commits to exactly that (an honest trajectory)
  kHugeClaim,   // trains honestly, claims 1e9 samples (no verification: FedAvg weight)
};

/// Client 0 cheats as `cheat` says; every other client (and the server's trainer) is honest.
class HostileTrainer final : public ForwardingClientTrainer {
 public:
  HostileTrainer(std::unique_ptr<ClientTrainer> inner, Cheat cheat)
      : ForwardingClientTrainer(std::move(inner)), cheat_(cheat) {}

  Result<LocalUpdate> Train(const TrainTask& t) override {
    if (t.client_id != 0) return inner_->Train(t);
    if (cheat_ == Cheat::kHugeClaim) {
      FEDML_ASSIGN_OR_RETURN(LocalUpdate u, inner_->Train(t));
      u.num_samples = kClaimedSamples;
      return u;
    }
    if (cheat_ == Cheat::kOneSegment) {
      // One segment's work, committed truthfully: every hash and every replay holds.
      DeviatingTrainer* deviating = FindDeviatingTrainer(*inner_);
      if (deviating == nullptr) return Status::Internal("the built-in trainer deviates");
      FEDML_ASSIGN_OR_RETURN(std::int64_t n, inner_->NumTrainSamples(t.client_id));
      const auto steps = static_cast<double>(LocalSteps(1, n, 8));
      return deviating->TrainDeviating(
          t, TrainingDeviation{false, static_cast<double>(t.checkpoint_interval) / steps});
    }
    // No training at all: the model it was sent, one checkpoint equal to both ends.
    FEDML_ASSIGN_OR_RETURN(core::ModelState global, inner_->GetState());
    FEDML_ASSIGN_OR_RETURN(std::string sha, sec::CheckpointSha256(global));
    sec::TrainingCommitment c;
    c.data_seed = t.seed;
    c.checkpoint_interval = t.checkpoint_interval;
    c.total_steps = 0;
    c.checkpoint_sha256 = {sha};
    sec::BatchIndicesHasher none;
    FEDML_ASSIGN_OR_RETURN(c.batch_indices_sha256, none.Finish());
    c.hyperparameters = {{"batch_size", 8.0}, {"epochs", 1.0}, {"learning_rate", 0.1}};
    c.num_samples = kClaimedSamples;
    LocalUpdate u;
    u.state = std::move(global);
    u.num_samples = kClaimedSamples;
    u.metrics["train_loss"] = 0.0;
    u.commitment = sec::EncodeCommitment(c);
    return u;
  }

 private:
  Cheat cheat_;
};

RawConfig AttackRaw(bool verified) {
  RawConfig raw = {{"dataset", "synthetic"},
                   {"model", "mlp"},
                   {"client_num_in_total", "6"},
                   {"client_num_per_round", "6"},
                   {"comm_round", "2"},
                   {"batch_size", "8"},
                   {"learning_rate", "0.1"},
                   {"random_seed", "5"},
                   {"epochs", "1"},
                   {"worker_num", "2"},
                   {"model_file_cache_folder", ""}};
  if (verified) {
    raw["verification"] = "enabled";
    raw["checkpoint_interval"] = "2";
    raw["verify_probability"] = "1";  // every update that has a segment is checked
  }
  return raw;
}

Result<RunSummary> RunWithCheat(const Config& config, Cheat cheat) {
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory builtin, TrainerFactoryFor(config, {}));
  SimulationHooks hooks;
  hooks.trainer_factory = [builtin, cheat](int w) -> Result<std::unique_ptr<ClientTrainer>> {
    FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, builtin(w));
    return std::unique_ptr<ClientTrainer>(std::make_unique<HostileTrainer>(std::move(t), cheat));
  };
  return RunSimulation(config, hooks);
}

/// Client 0's fate in every ledger record: refused ("excluded" from the record's updates), unpaid,
/// and with verification a "mismatch" check against it; every other client accepted and paid.
void CheckAttackerGotNothing(const std::string& ledger_file, bool verified) {
  auto records = sec::ReadLedger(ledger_file);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 2);
  for (const sec::LedgerRecord& r : *records) {
    INFO("round " << r.round);
    CHECK(std::count(r.excluded.begin(), r.excluded.end(), 0) == 1);
    CHECK(r.updates.size() == 5);
    for (const sec::LedgerUpdate& u : r.updates) {
      CHECK(u.client != 0);
      CHECK(u.samples < 1000);  // honest counts: about 1/6 of the synthetic set's samples
    }
    CHECK(r.rewards.size() == 5);
    for (const sec::LedgerReward& reward : r.rewards) {
      CHECK(reward.client != 0);
      CHECK(reward.amount > 0.0);
    }
    if (verified) {
      const auto check = std::find_if(r.checks.begin(), r.checks.end(),
                                      [](const sec::LedgerCheck& c) { return c.client == 0; });
      REQUIRE(check != r.checks.end());
      CHECK(check->result == "mismatch");
    }
  }
}

/// How far a run moved the model from where it started.
double Movement(const Config& config, const RunSummary& run) {
  auto factory = TrainerFactoryFor(config, {});
  REQUIRE(factory.ok());
  auto trainer = (*factory)(config.worker_num);
  REQUIRE(trainer.ok());
  auto initial = (*trainer)->GetState();
  REQUIRE(initial.ok());
  auto distance = sec::StateL2Distance(*initial, run.final_model);
  REQUIRE(distance.ok());
  return *distance;
}

}  // namespace

TEST_CASE("a client that commits to 0 steps and 1e9 samples is refused, unpaid and unweighted",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_zero_steps");
  const Config config =
      fedml::testing::ConfigWith(AttackRaw(true), {{"ledger_file", dir.File("ledger.jsonl")}});
  auto run = RunWithCheat(config, Cheat::kZeroSteps);
  REQUIRE(run.ok());
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == 5);
    CHECK(m.refused == 1);
    CHECK(m.extra.at("verify_failed") == 1);
  }
  CheckAttackerGotNothing(dir.File("ledger.jsonl"), true);
  // Had the claim weighed 1e9 samples, every new global model would be the attacker's copy of
  // the old one and the run would not move; it moves as far as an honest run does.
  auto honest = RunSimulation(fedml::testing::ConfigWith(AttackRaw(true), {}));
  REQUIRE(honest.ok());
  CHECK(Movement(config, *run) > 0.5 * Movement(config, *honest));
}

TEST_CASE("a client that does one segment of its task and commits to it truthfully is refused",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_one_segment");
  const Config config =
      fedml::testing::ConfigWith(AttackRaw(true), {{"ledger_file", dir.File("ledger.jsonl")}});
  auto run = RunWithCheat(config, Cheat::kOneSegment);
  REQUIRE(run.ok());
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == 5);
    CHECK(m.refused == 1);
  }
  CheckAttackerGotNothing(dir.File("ledger.jsonl"), true);
}

TEST_CASE("without verification, a sample count the server's data contradicts is refused",
          "[adversarial]") {
  const fedml::testing::TempDir dir("fedml_attack_huge_claim");
  const Config config =
      fedml::testing::ConfigWith(AttackRaw(false), {{"ledger_file", dir.File("ledger.jsonl")}});
  auto run = RunWithCheat(config, Cheat::kHugeClaim);
  REQUIRE(run.ok());
  for (const RoundMetrics& m : run->rounds) {
    CHECK(m.clients == 5);
    CHECK(m.refused == 1);
  }
  CheckAttackerGotNothing(dir.File("ledger.jsonl"), false);
  auto honest = RunSimulation(fedml::testing::ConfigWith(AttackRaw(false), {}));
  REQUIRE(honest.ok());
  CHECK(Movement(config, *run) > 0.5 * Movement(config, *honest));
}
