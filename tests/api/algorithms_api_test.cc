// The algorithm sections of the config, the client-side parts of the strategies (FedProx,
// SCAFFOLD, local DP, simulated attacks) and whole simulations with each strategy.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <set>

#include "config_helpers.h"
#include "fedml/algorithms/scaffold.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/round_controller.h"
#include "fedml/api/simulation.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/api/training_deviation.h"
#include "model_states.h"
#include "scripted_trainer.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::api;
using Catch::Matchers::Contains;
using fedml::testing::ScriptedTrainer;

namespace {

RawConfig SyntheticRaw() {
  return {{"dataset", "synthetic"},       {"model", "lr"},      {"client_num_in_total", "20"},
          {"client_num_per_round", "8"},  {"comm_round", "3"},  {"batch_size", "16"},
          {"learning_rate", "0.05"},      {"random_seed", "7"}, {"worker_num", "2"},
          {"model_file_cache_folder", ""}};
}

Config SyntheticConfig(const RawConfig& extra = {}) {
  return fedml::testing::ConfigWith(SyntheticRaw(), extra);
}

std::string ConfigError(const RawConfig& extra) {
  return fedml::testing::ConfigErrorWith(SyntheticRaw(), extra);
}

using fedml::testing::Vector;

}  // namespace

TEST_CASE("algorithm keys are read from FedML's sections and checked", "[config][algorithms]") {
  fedml::testing::TempDir dir("algorithm_keys");
  const std::string path = dir.File("c.yaml");
  {
    std::ofstream f(path);
    f << "train_args:\n  federated_optimizer: FedOpt\n  server_optimizer: yogi\n"
         "  server_lr: 0.03\n  client_num_per_round: 10\n"
         "defense_args:\n  enable_defense: true\n  defense_type: multikrum\n"
         "  byzantine_client_num: 2\n  krum_param_m: 4\n"
         "attack_args:\n  enable_attack: true\n  attack_type: byzantine\n"
         "  attack_mode: scaled_flip\n  byzantine_client_num: 2\n"
         "dp_args:\n  enable_dp: false\n";
  }
  auto loaded = LoadConfig(path, {});
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  const Config& c = loaded->config;
  CHECK(c.server_optimizer == "yogi");
  CHECK(c.defense_type == "multikrum");
  CHECK(c.byzantine_client_num == 2);  // given twice with one value, as FedML's files do
  CHECK(c.attack_mode == "scaled_flip");
  CHECK(ConfigToYaml(c).find("defense_args:\n  enable_defense: true") != std::string::npos);
  {
    std::ofstream f(path);
    f << "defense_args:\n  byzantine_client_num: 2\nattack_args:\n  byzantine_client_num: 3\n";
  }
  auto clash = LoadConfig(path, {});
  REQUIRE_FALSE(clash.ok());
  CHECK_THAT(clash.status().message(), Contains("byzantine_client_num is already given"));
}

TEST_CASE("bad algorithm configs are clear errors", "[config][algorithms]") {
  CHECK_THAT(ConfigError({{"enable_defense", "true"}, {"defense_type", "median"}}),
             Contains("defense_type must be one of") && Contains("wise_median"));
  CHECK_THAT(ConfigError({{"enable_defense", "true"}}), Contains("no defense_type"));
  CHECK_THAT(
      ConfigError(
          {{"enable_defense", "true"}, {"defense_type", "krum"}, {"byzantine_client_num", "3"}}),
      Contains("krum needs client_num_per_round >= 2f + 3") && Contains("at least 9") &&
          Contains("got 8"));
  CHECK_THAT(
      ConfigError(
          {{"enable_defense", "true"}, {"defense_type", "bulyan"}, {"byzantine_client_num", "2"}}),
      Contains("4f + 3"));
  CHECK_THAT(ConfigError({{"fedprox_mu", "-0.1"}}), Contains("fedprox_mu must be >= 0"));
  CHECK_THAT(ConfigError({{"federated_optimizer", "FedProx"}}), Contains("fedprox_mu > 0"));
  CHECK_THAT(ConfigError({{"federated_optimizer", "FedAdamW"}}),
             Contains("federated_optimizer must be one of") && Contains("FedYogi"));
  CHECK_THAT(ConfigError({{"federated_optimizer", "SCAFFOLD"},
                          {"enable_defense", "true"},
                          {"defense_type", "wise_median"}}),
             Contains("SCAFFOLD"));
  CHECK_THAT(ConfigError({{"enable_dp", "true"}}),
             Contains("epsilon") && Contains("noise_multiplier"));
  CHECK_THAT(ConfigError({{"beta", "0.5"}}), Contains("beta must be in [0.0, 0.5)"));
  CHECK_THAT(ConfigError({{"enable_attack", "true"}}), Contains("byzantine_client_num"));
  CHECK_THAT(ConfigError({{"server_optimizer", "rmsprop"}}), Contains("server_optimizer"));
}

TEST_CASE("attackers: exactly byzantine_client_num per round, or a fixed set",
          "[attack][algorithms]") {
  AttackOptions o;
  o.enabled = true;
  o.byzantine_client_num = 3;
  o.client_num_in_total = 50;
  o.client_num_per_round = 10;
  o.seed = 9;
  std::set<std::int64_t> ever;
  for (int round = 0; round < 20; ++round) {
    int count = 0;
    for (std::int64_t c : SampleClients(o.seed, round, 50, 10)) {
      if (IsAttacker(o, round, c)) {
        ++count;
        ever.insert(c);
      }
    }
    CHECK(count == 3);
  }
  CHECK(ever.size() > 3);  // drawn afresh each round
  o.byzantine_client_num = 0;
  o.ratio_of_poisoned_client = 0.2;
  std::set<std::int64_t> fixed;
  for (int c = 0; c < 50; ++c) {
    if (IsAttacker(o, 0, c)) fixed.insert(c);
    CHECK(IsAttacker(o, 0, c) == IsAttacker(o, 7, c));
  }
  CHECK(fixed.size() == 10);
  o.enabled = false;
  for (int c = 0; c < 50; ++c) CHECK_FALSE(IsAttacker(o, 0, c));
}

TEST_CASE("attack modes replace the attacker's update as documented", "[attack][algorithms]") {
  // Every client of the round attacks, so the mode alone decides the update.
  auto run = [](const std::string& type, const std::string& mode) {
    Config c = SyntheticConfig({{"enable_attack", "true"},
                                {"attack_type", type},
                                {"attack_mode", mode},
                                {"attack_scale", "4"},
                                {"byzantine_client_num", "8"}});
    auto wrapped =
        WrapClientTrainer(c, std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
    REQUIRE(wrapped.ok());
    REQUIRE((*wrapped)->SetState(Vector({1.0f, -2.0f})).ok());
    TrainTask task;
    task.round = 0;
    task.client_id = SampleClients(c.random_seed, 0, 20, 8).front();
    auto u = (*wrapped)->Train(task);
    REQUIRE(u.ok());
    CHECK(u->metrics.at("attacker") == 1.0);
    return u->state.flat();
  };
  CHECK(run("byzantine", "zero") == std::vector<float>{0.0f, 0.0f});
  CHECK(run("byzantine", "flip") == std::vector<float>{0.0f, -3.0f});          // g - (x - g)
  CHECK(run("byzantine", "scaled_flip") == std::vector<float>{-3.0f, -6.0f});  // g - 4 (x - g)
  CHECK(run("free_rider", "random") == std::vector<float>{1.0f, -2.0f});
  const std::vector<float> r = run("byzantine", "random");
  for (float x : r) CHECK((x >= -1.0f && x < 1.0f));
  CHECK(r != std::vector<float>{2.0f, -1.0f});
}

TEST_CASE("attacks that change training reach a DeviatingTrainer through wrappers, else refuse",
          "[attack][algorithms]") {
  // A trainer that hosts deviations, under a plain forwarding wrapper (as a deployed client's
  // progress printer sits between the harness and the LibTorch trainer).
  class Recorder final : public ScriptedTrainer, public DeviatingTrainer {
   public:
    Recorder() : ScriptedTrainer(Kind::kGood) {}
    Result<LocalUpdate> TrainDeviating(const TrainTask& task,
                                       const TrainingDeviation& deviation) override {
      seen.push_back(deviation);
      return Train(task);
    }
    std::vector<TrainingDeviation> seen;
  };
  Config c = SyntheticConfig({{"enable_attack", "true"},
                              {"attack_type", "label_flipping"},
                              {"byzantine_client_num", "8"}});
  TrainTask task;
  task.client_id = SampleClients(c.random_seed, 0, 20, 8).front();

  auto recorder = std::make_unique<Recorder>();
  Recorder* seen = recorder.get();
  auto wrapped =
      WrapClientTrainer(c, std::make_unique<ForwardingClientTrainer>(std::move(recorder)));
  REQUIRE(wrapped.ok());
  REQUIRE((*wrapped)->SetState(Vector({1.0f})).ok());
  REQUIRE((*wrapped)->Train(task).ok());
  REQUIRE(seen->seen.size() == 1);
  CHECK(seen->seen[0].flip_labels);
  CHECK(seen->seen[0].step_fraction == 1.0);

  auto plain =
      WrapClientTrainer(c, std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
  REQUIRE(plain.ok());
  REQUIRE((*plain)->SetState(Vector({1.0f})).ok());
  auto refused = (*plain)->Train(task);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.status().message(),
             Catch::Contains("label_flipping") && Catch::Contains("DeviatingTrainer"));
}

TEST_CASE("local DP clips and noises each honest update, reproducibly", "[dp][algorithms]") {
  Config c = SyntheticConfig({{"enable_dp", "true"},
                              {"dp_solution_type", "ldp"},
                              {"clipping_norm", "0.5"},
                              {"noise_multiplier", "0.01"}});
  auto make = [&] {
    auto w = WrapClientTrainer(c, std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood));
    REQUIRE(w.ok());
    REQUIRE((*w)->SetState(Vector(std::vector<float>(1000, 0.0f))).ok());
    return std::move(*w);
  };
  TrainTask task;
  task.seed = 42;
  auto a = make()->Train(task);
  auto b = make()->Train(task);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->state == b->state);
  // The delta of norm sqrt(1000) is clipped to 0.5, then noise of stddev 0.005 per coordinate
  // is added (expected norm of the noise ~ 0.005 sqrt(1000) = 0.16).
  double norm = 0.0;
  for (float x : a->state.flat()) norm += static_cast<double>(x) * x;
  CHECK(std::sqrt(norm) == Approx(std::sqrt(0.25 + 0.025)).epsilon(0.05));
  task.seed = 43;
  CHECK(make()->Train(task)->state != a->state);
}

TEST_CASE("SCAFFOLD clients with zero control variates train as plain SGD",
          "[scaffold][algorithms]") {
  Config config = SyntheticConfig({{"federated_optimizer", "SCAFFOLD"}});
  auto data = LoadFederatedData(config);
  REQUIRE(data.ok());
  auto model = BuiltinModelFactory(config, *data);
  auto m1 = model();
  auto m2 = model();
  REQUIRE(m1.ok());
  REQUIRE(m2.ok());
  TorchClientTrainer plain(std::move(*m1), *data, LocalTrainOptionsFrom(config));
  TorchClientTrainer scaffold(std::move(*m2), *data, LocalTrainOptionsFrom(config), torch::kCPU,
                              /*scaffold=*/true);
  auto start = plain.GetState();
  REQUIRE(start.ok());
  REQUIRE(scaffold.SetState(*start).ok());
  TrainTask task;
  task.client_id = 3;
  task.seed = 5;
  // Without its control variates a SCAFFOLD client refuses the task.
  CHECK_THAT(scaffold.Train(task).status().message(), Contains("no control variates"));
  task.extras[algorithms::kScaffoldServerC] = core::ModelState::ZerosLike(*start);
  task.extras[algorithms::kScaffoldClientC] = core::ModelState::ZerosLike(*start);
  auto s = scaffold.Train(task);
  REQUIRE(s.ok());
  // ... and a plain client refuses a task that carries them.
  CHECK_THAT(plain.Train(task).status().message(), Contains("does not implement"));
  task.extras.clear();
  auto p = plain.Train(task);
  REQUIRE(p.ok());
  CHECK(s->state == p->state);
  // delta_c_i = (x - y) / (K lr) with c = 0.
  const core::ModelState& dc = s->extras.at(algorithms::kScaffoldDeltaC);
  const double k = s->metrics.at("steps");
  for (std::size_t i = 0; i < dc.numel(); ++i) {
    const double expect = (start->flat()[i] - s->state.flat()[i]) / (k * config.learning_rate);
    REQUIRE(dc.flat()[i] == Approx(expect).margin(1e-4));
  }
  // A non-zero correction c - c_i changes the trajectory against its direction.
  core::ModelState c = core::ModelState::ZerosLike(*start);
  for (float& x : c.flat()) x = 0.5f;
  task.extras[algorithms::kScaffoldServerC] = c;
  task.extras[algorithms::kScaffoldClientC] = core::ModelState::ZerosLike(*start);
  REQUIRE(scaffold.SetState(*start).ok());
  auto corrected = scaffold.Train(task);
  REQUIRE(corrected.ok());
  double along = 0.0;
  for (std::size_t i = 0; i < c.numel(); ++i) {
    along += corrected->state.flat()[i] - p->state.flat()[i];
  }
  CHECK(along < 0.0);
}

TEST_CASE("FedProx's proximal term keeps the local model near the global one",
          "[fedprox][algorithms]") {
  Config config = SyntheticConfig();
  auto data = LoadFederatedData(config);
  REQUIRE(data.ok());
  auto model = BuiltinModelFactory(config, *data);
  core::LocalTrainOptions plain_options = LocalTrainOptionsFrom(config);
  core::LocalTrainOptions prox_options = plain_options;
  prox_options.proximal_mu = 5.0;
  auto m1 = model();
  auto m2 = model();
  REQUIRE(m1.ok());
  REQUIRE(m2.ok());
  TorchClientTrainer plain(std::move(*m1), *data, plain_options);
  TorchClientTrainer prox(std::move(*m2), *data, prox_options);
  auto start = plain.GetState();
  REQUIRE(start.ok());
  TrainTask task;
  task.client_id = 1;
  task.seed = 8;
  auto p = plain.Train(task);
  auto q = prox.Train(task);
  REQUIRE(p.ok());
  REQUIRE(q.ok());
  const double moved_plain = core::L2Distance(p->state, *start);
  const double moved_prox = core::L2Distance(q->state, *start);
  INFO(moved_plain << " vs " << moved_prox);
  CHECK(moved_prox < 0.8 * moved_plain);
  CHECK(moved_prox > 0.0);
  CHECK(LocalTrainOptionsFrom(SyntheticConfig({{"fedprox_mu", "0.3"}})).proximal_mu == 0.0);
  CHECK(LocalTrainOptionsFrom(
            SyntheticConfig({{"federated_optimizer", "FedProx"}, {"fedprox_mu", "0.3"}}))
            .proximal_mu == 0.3);
}

TEST_CASE("every strategy runs a simulation, the same for any worker_num",
          "[simulation][algorithms]") {
  const std::vector<RawConfig> variants = {
      {{"federated_optimizer", "FedAvgM"}, {"server_momentum", "0.9"}},
      {{"federated_optimizer", "FedAdam"}, {"server_lr", "0.03"}},
      {{"federated_optimizer", "FedYogi"}, {"server_lr", "0.03"}},
      {{"federated_optimizer", "FedAdagrad"}, {"server_lr", "0.03"}},
      {{"federated_optimizer", "FedProx"}, {"fedprox_mu", "0.1"}},
      {{"federated_optimizer", "SCAFFOLD"}},
      {{"federated_optimizer", "FedNova"}, {"momentum", "0.5"}},
      {{"enable_defense", "true"}, {"defense_type", "trimmed_mean"}, {"beta", "0.2"}},
      {{"enable_dp", "true"}, {"clipping_norm", "1.0"}, {"noise_multiplier", "0.5"}},
  };
  for (const RawConfig& v : variants) {
    Config config = SyntheticConfig(v);
    INFO(config.federated_optimizer << " defense " << config.enable_defense << " dp "
                                    << config.enable_dp);
    config.worker_num = 1;
    auto one = RunSimulation(config);
    REQUIRE(one.ok());
    config.worker_num = 3;
    auto three = RunSimulation(config);
    REQUIRE(three.ok());
    CHECK(one->final_model == three->final_model);
    CHECK(std::isfinite(one->final_accuracy));
    CHECK(one->rounds.back().clients == 8);
    if (config.enable_dp) {
      const double e1 = one->rounds[0].extra.at("dp_epsilon");
      const double e3 = one->rounds[2].extra.at("dp_epsilon");
      CHECK(e1 > 0.0);
      CHECK(e3 > e1);
    }
  }
}

TEST_CASE("a robust rule outlasts an attack that breaks FedAvg", "[simulation][algorithms]") {
  const RawConfig attack = {{"enable_attack", "true"},
                            {"attack_mode", "scaled_flip"},
                            {"byzantine_client_num", "2"},
                            {"comm_round", "6"}};
  RawConfig clean_raw = {{"comm_round", "6"}};
  auto clean = RunSimulation(SyntheticConfig(clean_raw));
  auto attacked = RunSimulation(SyntheticConfig(attack));
  REQUIRE(clean.ok());
  REQUIRE(attacked.ok());
  INFO("clean " << clean->final_accuracy << " attacked " << attacked->final_accuracy);
  CHECK(attacked->final_accuracy < clean->final_accuracy - 0.1);
  // LEAF synthetic gives every client its own model, so the medians of 8 of them learn slowly
  // even without attackers (they pull towards a typical client, not the mean); Multi-Krum keeps
  // the honest majority's mean. Each must beat attacked FedAvg clearly; Multi-Krum must stay near
  // the clean run.
  for (const char* rule : {"multikrum", "geo_median", "wise_median"}) {
    RawConfig defended_raw = attack;
    defended_raw["enable_defense"] = "true";
    defended_raw["defense_type"] = rule;
    auto defended = RunSimulation(SyntheticConfig(defended_raw));
    REQUIRE(defended.ok());
    INFO(rule << " " << defended->final_accuracy);
    CHECK(defended->final_accuracy > attacked->final_accuracy + 0.1);
    if (std::string(rule) == "multikrum") {
      CHECK(defended->final_accuracy > clean->final_accuracy - 0.1);
    }
  }
}

TEST_CASE("the checkpoint carries the strategy's state", "[algorithms][checkpoint]") {
  fedml::testing::TempDir dir("strategy_ckpt");
  std::map<std::string, core::ModelState> state;
  state["server_opt_m"] = Vector({0.5f, -1.0f});
  state["scaffold_c_i/7"] = Vector({2.0f, 3.0f});
  REQUIRE(WriteCheckpoint(dir.path(), 4, 4, Vector({1.0f, 2.0f}), state).ok());
  auto ckpt = ReadCheckpoint(dir.path());
  REQUIRE(ckpt.ok());
  CHECK(ckpt->round == 4);
  CHECK(ckpt->model.flat() == std::vector<float>{1.0f, 2.0f});
  REQUIRE(ckpt->strategy_state.size() == 2);
  CHECK(ckpt->strategy_state.at("server_opt_m") == state.at("server_opt_m"));
  CHECK(ckpt->strategy_state.at("scaffold_c_i/7") == state.at("scaffold_c_i/7"));
}
