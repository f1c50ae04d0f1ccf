// Verified work at the trainer: a LibTorch client commits to its trajectory (checkpoint hashes,
// batch indices, hyperparameters), keeps its checkpoints for spot checks, and another worker's
// trainer (a verifier holding the same data) replays any committed segment to its next
// checkpoint; training setups whose state a replay would lack are refused.
#include <catch2/catch.hpp>

#include "config_helpers.h"
#include "fedml/api/simulation.h"
#include "fedml/core/security/commitment.h"

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

}  // namespace

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
