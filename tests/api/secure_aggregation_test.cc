// Secure aggregation through the round controller: the secure mean equals FedAvg's weighted mean
// to within the quantization error, dropouts at every stage up to the threshold are survived and
// one too many aborts the round with the model kept, runs are the same for any worker count, and
// the config refuses what secure aggregation cannot combine with.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "config_helpers.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/api/simulation.h"
#include "fedml/core/security/ledger.h"
#include "scripted_trainer.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::api;
using Catch::Matchers::Contains;
using fedml::testing::MeanStep;
using fedml::testing::WeightedTrainer;

namespace {

SimulationHooks WeightedHooks() {
  SimulationHooks hooks;
  hooks.trainer_factory = [](int) -> Result<std::unique_ptr<ClientTrainer>> {
    auto t = std::make_unique<WeightedTrainer>();
    core::ModelState zero;
    const float w[] = {0.0f, 0.0f, 0.0f};
    FEDML_RETURN_IF_ERROR(zero.Add("w", {3}, w));
    FEDML_RETURN_IF_ERROR(t->SetState(zero));
    return std::unique_ptr<ClientTrainer>(std::move(t));
  };
  return hooks;
}

RawConfig BaseRaw() {
  return {{"dataset", "synthetic"},        {"model", "lr"},      {"client_num_in_total", "10"},
          {"client_num_per_round", "10"},  {"comm_round", "3"},  {"batch_size", "16"},
          {"learning_rate", "0.05"},       {"random_seed", "5"}, {"worker_num", "2"},
          {"model_file_cache_folder", ""}, {"max_weight", "100"}};
}

Config MakeConfig(const RawConfig& extra) { return fedml::testing::ConfigWith(BaseRaw(), extra); }

double Extra(const RoundMetrics& m, const std::string& name) {
  const auto it = m.extra.find(name);
  return it == m.extra.end() ? 0.0 : it->second;
}

// The quantization error of one round's mean: each of n summands is off by less than one step
// (2 c / (q - 1)) in w d and in w, divided by the summed weight.
double RoundTolerance(int n, double weight_sum) {
  const double step = 16.0 / static_cast<double>((1 << 22) - 1);
  return 2.0 * n * step / weight_sum + 1e-6;  // + float rounding of the model
}

}  // namespace

TEST_CASE("a round's secure task resolves shares and threshold for its clients", "[secagg]") {
  SecureAggregationOptions o;
  o.protocol = "secagg_plus";
  auto t = SecureTaskForRound(o, 1000, 99, 7, 3);
  REQUIRE(t.ok());
  CHECK(t->params.num_neighbours == 20);         // 2 ceil(log2 1000) = 20 neighbours
  CHECK(t->params.threshold == 11);              // a majority of 21
  CHECK(t->params.vector_length == 101);         // the weight, the model, the fraction clipped
  auto odd = SecureTaskForRound(o, 9, 5, 7, 3);  // m = min(2*4+1, 9) = 9: k = 8, even
  REQUIRE(odd.ok());
  CHECK(odd->params.num_neighbours == 8);
  o.num_shares = 4;  // k = 3 on 9 clients has no regular graph: k = 4
  odd = SecureTaskForRound(o, 9, 5, 7, 3);
  REQUIRE(odd.ok());
  CHECK(odd->params.num_neighbours == 4);
  o.reconstruction_threshold = 0.6;
  CHECK(SecureTaskForRound(o, 9, 5, 7, 3)->params.threshold == 3);  // ceil(0.6 x 5)
  o.reconstruction_threshold = 6;
  auto too_high = SecureTaskForRound(o, 9, 5, 7, 3);
  REQUIRE_FALSE(too_high.ok());
  CHECK(too_high.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(too_high.status().message(), Contains("exceeds the 5 clients of a neighbourhood"));
  CHECK(SecureTaskForRound(o, 1, 5, 7, 3).status().code() == StatusCode::kFailedPrecondition);
  o = {};
  o.protocol = "secagg";
  auto full = SecureTaskForRound(o, 10, 5, 7, 3);
  REQUIRE(full.ok());
  CHECK(full->params.num_neighbours == 0);
  CHECK(full->params.threshold == 6);
  // More summands than the ring holds at the default quantization: refused, not wrapped.
  auto overflow = SecureTaskForRound(o, 1025, 5, 7, 3);
  REQUIRE_FALSE(overflow.ok());
  CHECK_THAT(overflow.status().message(), Contains("1025"));

  // The task travels as attributes and comes back exactly.
  full->index = 4;
  std::map<std::string, std::string> attrs;
  PutSecureTaskAttrs(*full, attrs);
  auto back = SecureTaskFromAttrs(attrs);
  REQUIRE(back.ok());
  CHECK(back->params.graph_seed == full->params.graph_seed);
  CHECK(back->params.threshold == 6);
  CHECK(back->quantization.clipping_range == full->quantization.clipping_range);
  CHECK(back->index == 4);
  attrs["secagg.index"] = "10";
  CHECK_THAT(SecureTaskFromAttrs(attrs).status().message(), Contains("participant 10 of 10"));
  attrs.erase("secagg.t");
  CHECK_THAT(SecureTaskFromAttrs(attrs).status().message(), Contains("secagg.t"));

  CHECK(SimulatedDropouts(5, 0, 10, 0.4).size() == 4);
  CHECK(SimulatedDropouts(5, 0, 10, 0.4) == SimulatedDropouts(5, 0, 10, 0.4));
  CHECK(SimulatedDropouts(5, 0, 10, 0.0).empty());
}

TEST_CASE("the fraction of values clipped reaches the server only as the survivors' mean",
          "[secagg]") {
  // Attack 8 of docs/security.md: a client's own clipped count said how large its update was.
  // Now it travels inside the masked vector: a client's reply carries no such metric, and the sum
  // of two vectors gives the mean of their fractions.
  SecureAggregationOptions o;
  o.protocol = "secagg";
  o.quantization.clipping_range = 0.5;
  auto task = SecureTaskForRound(o, 2, 4, 7, 0);
  REQUIRE(task.ok());
  core::ModelState global;
  const std::vector<float> zeros(4, 0.0F);
  REQUIRE(global.Add("w", {4}, zeros.data()).ok());
  core::ModelState a = global, b = global;
  a.data()[0] = 3.0F;                               // 1 of 4 values beyond the range
  for (int i = 0; i < 4; ++i) b.data()[i] = -2.0F;  // all 4
  auto va = SecureInput(a, global, 1000, *task, 1);
  auto vb = SecureInput(b, global, 1000, *task, 2);
  REQUIRE(va.ok());
  REQUIRE(vb.ok());
  CHECK(va->clipped == 1);
  CHECK(vb->clipped == 4);
  REQUIRE(va->words.size() == 6);
  std::vector<std::uint32_t> sum(6);
  for (std::size_t i = 0; i < sum.size(); ++i) {
    sum[i] = static_cast<std::uint32_t>((std::uint64_t{va->words[i]} + vb->words[i]) %
                                        task->params.modulus);
  }
  auto mean = SecureMeanFromSum(sum, 2, global, *task);
  REQUIRE(mean.ok());
  CHECK(mean->clipped_fraction == Approx((0.25 + 1.0) / 2).margin(1e-4));
}

TEST_CASE("the secure mean equals FedAvg's weighted mean to within the quantization error",
          "[secagg]") {
  const Config plain = MakeConfig({{"client_num_per_round", "6"}});
  auto reference = RunSimulation(plain, WeightedHooks());
  REQUIRE(reference.ok());
  for (const char* protocol : {"secagg", "secagg_plus"}) {
    INFO(protocol);
    Config config = MakeConfig({{"client_num_per_round", "6"}, {"secure_aggregation", protocol}});
    auto secure = RunSimulation(config, WeightedHooks());
    REQUIRE(secure.ok());
    REQUIRE(secure->rounds.size() == 3);
    // Round by round the models may differ by the quantization error of each mean.
    double tolerance = 0.0;
    for (std::int64_t r = 0; r < 3; ++r) {
      const auto clients = SampleClients(config.random_seed, r, 10, 6);
      double weight = 0.0;
      for (auto c : clients) weight += 10.0 * (c + 1) / 100.0;
      tolerance += RoundTolerance(6, weight);
      CHECK(secure->rounds[r].clients == 6);
      CHECK(Extra(secure->rounds[r], "secagg_survivors") == 6);
      CHECK(secure->rounds[r].dropped == 0);
    }
    const float* s = secure->final_model.data();
    const float* p = reference->final_model.data();
    for (std::size_t i = 0; i < 3; ++i) {
      INFO("weight " << i << ": secure " << s[i] << " plaintext " << p[i]);
      CHECK(std::fabs(s[i] - p[i]) <= tolerance);
    }
    // And the plaintext run is the weighted mean: not a trivial agreement of two wrong runs.
    double expected = 0.0;
    for (std::int64_t r = 0; r < 3; ++r) {
      std::vector<int> c;
      for (auto id : SampleClients(config.random_seed, r, 10, 6)) c.push_back(static_cast<int>(id));
      expected += MeanStep(c);
    }
    CHECK(std::fabs(p[0] - expected) < 1e-5);
    // The secure run's upload is the masked vectors and shares, not the models.
    CHECK(secure->rounds[0].bytes_up > 0);
  }
}

TEST_CASE("dropouts at every stage up to the threshold give the survivors' mean; one more aborts",
          "[secagg]") {
  for (const std::string& stage : SecureDropoutStageNames()) {
    INFO("dropout_stage " << stage);
    // 10 clients, threshold 6: 4 may vanish.
    Config config = MakeConfig({{"secure_aggregation", "secagg"},
                                {"reconstruction_threshold", "6"},
                                {"dropout_rate", "0.4"},
                                {"dropout_stage", stage},
                                {"comm_round", "2"}});
    auto run = RunSimulation(config, WeightedHooks());
    REQUIRE(run.ok());
    double expected = 0.0;
    double tolerance = 0.0;
    for (std::int64_t r = 0; r < 2; ++r) {
      const std::vector<int> drops = SimulatedDropouts(config.random_seed, r, 10, 0.4);
      REQUIRE(drops.size() == 4);
      // A client that vanished after sending its masked input is in the sum.
      std::vector<int> in_sum;
      for (int c = 0; c < 10; ++c) {
        if (stage == "mask_input" || !std::binary_search(drops.begin(), drops.end(), c)) {
          in_sum.push_back(c);
        }
      }
      const RoundMetrics& m = run->rounds[r];
      CHECK(m.clients == static_cast<int>(in_sum.size()));
      CHECK(m.dropped == 4);
      CHECK(Extra(m, "secagg_aborted") == 0);
      expected += MeanStep(in_sum);
      double weight = 0.0;
      for (int c : in_sum) weight += 10.0 * (c + 1) / 100.0;
      tolerance += RoundTolerance(static_cast<int>(in_sum.size()), weight);
    }
    CHECK(std::fabs(run->final_model.data()[0] - expected) <= tolerance);
    CHECK(std::fabs(run->final_model.data()[1] + expected) <= tolerance);

    // Five vanish, five remain, below the threshold of six: every round aborts, nothing moves.
    config.dropout_rate = 0.5;
    auto aborted = RunSimulation(config, WeightedHooks());
    REQUIRE(aborted.ok());
    for (const RoundMetrics& m : aborted->rounds) {
      CHECK(Extra(m, "secagg_aborted") == 1);
      CHECK(m.clients == 0);
    }
    for (std::size_t i = 0; i < 3; ++i) CHECK(aborted->final_model.data()[i] == 0.0f);
  }
}

TEST_CASE("SecAgg+ runs are the same for any worker count and record masked inputs in the ledger",
          "[secagg]") {
  fedml::testing::TempDir dir("secagg_ledger");
  Config config = MakeConfig({{"secure_aggregation", "secagg_plus"},
                              {"num_shares", "5"},
                              {"reconstruction_threshold", "3"},
                              {"dropout_rate", "0.1"},
                              {"client_num_in_total", "10"},
                              {"comm_round", "3"}});
  config.worker_num = 1;
  auto one = RunSimulation(config, WeightedHooks());
  config.worker_num = 3;
  config.ledger_file = dir.File("ledger.jsonl");
  auto three = RunSimulation(config, WeightedHooks());
  REQUIRE(one.ok());
  REQUIRE(three.ok());
  CHECK(one->final_model == three->final_model);  // bitwise: the sums are exact integers
  CHECK(one->final_model.data()[0] > 0.0f);
  for (const RoundMetrics& m : three->rounds) {
    CHECK(m.dropped == 1);
    CHECK(m.clients == 9);
  }
  auto records = core::security::ReadLedger(config.ledger_file);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 3);
  auto verified = core::security::VerifyLedger(config.ledger_file);
  REQUIRE(verified.ok());
  CHECK(verified->ok);
  for (const auto& record : *records) {
    CHECK(record.updates.size() == 9);  // the masked inputs' hashes
    CHECK(record.excluded.size() == 1);
    for (const auto& u : record.updates) CHECK(u.sha256.size() == 64);
  }
}

TEST_CASE("secure aggregation is refused where it cannot work, naming why", "[secagg][config]") {
  auto error = [](const RawConfig& extra) {
    return fedml::testing::ConfigErrorWith(BaseRaw(), extra);
  };
  CHECK_THAT(error({{"secure_aggregation", "secagg"},
                    {"enable_defense", "true"},
                    {"defense_type", "krum"},
                    {"byzantine_client_num", "1"}}),
             Contains("linear aggregation"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"federated_optimizer", "SCAFFOLD"}}),
             Contains("control variates"));
  CHECK_THAT(error({{"secure_aggregation", "secagg_plus"}, {"federated_optimizer", "FedBuff"}}),
             Contains("asynchronous"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"},
                    {"enable_dp", "true"},
                    {"dp_solution_type", "cdp"},
                    {"noise_multiplier", "1"}}),
             Contains("ldp"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"num_shares", "4"}}),
             Contains("secagg_plus only"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"reconstruction_threshold", "11"}}),
             Contains("exceeds"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"reconstruction_threshold", "2.5"}}),
             Contains("whole number"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"modulus", "1000"}}),
             Contains("power of two"));
  CHECK_THAT(error({{"dropout_rate", "0.1"}}), Contains("set secure_aggregation"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"dropout_stage", "later"}}),
             Contains("mask_input"));
  CHECK_THAT(error({{"secure_aggregation", "secagg"}, {"client_num_per_round", "1"}}),
             Contains("at least 2 clients"));
  // FedAvgM and FedAdam step on the secure mean.
  for (const RawConfig& opt :
       {RawConfig{{"federated_optimizer", "FedAvgM"}, {"server_momentum", "0.9"}},
        RawConfig{{"federated_optimizer", "FedAdam"}}}) {
    INFO(opt.at("federated_optimizer"));
    RawConfig raw = opt;
    raw["secure_aggregation"] = "secagg";
    Config config = MakeConfig(raw);
    auto run = RunSimulation(config, WeightedHooks());
    INFO(run.status().ToString());
    REQUIRE(run.ok());
    CHECK(run->rounds.back().clients == 10);
  }
}

TEST_CASE("a trained model with secure aggregation matches the plaintext run", "[secagg]") {
  // LibTorch's logistic regression on the synthetic data set, three rounds, no dropouts: the
  // only difference is the quantization of each round's mean (steps of 2 x 8 / (2^22 - 1)).
  const RawConfig raw = {
      {"client_num_in_total", "20"}, {"client_num_per_round", "8"}, {"max_weight", "1000"}};
  auto plain = RunSimulation(MakeConfig(raw));
  RawConfig secure_raw = raw;
  secure_raw["secure_aggregation"] = "secagg_plus";
  auto secure = RunSimulation(MakeConfig(secure_raw));
  REQUIRE(plain.ok());
  REQUIRE(secure.ok());
  REQUIRE(plain->final_model.numel() == secure->final_model.numel());
  double max_diff = 0.0;
  for (std::size_t i = 0; i < plain->final_model.numel(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(plain->final_model.data()[i] -
                                                                secure->final_model.data()[i])));
  }
  INFO("largest weight difference " << max_diff);
  CHECK(max_diff < 1e-3);
  CHECK(max_diff > 0.0);  // the secure run did quantize
  CHECK(std::fabs(plain->final_accuracy - secure->final_accuracy) <= 0.01);
}

TEST_CASE("clients accept the server's defaults and refuse weak n, t and k", "[secagg]") {
  const SecureClientLimits limits;  // the defaults: n >= 3, SecAgg+ k >= ceil(log2 n)
  for (const char* protocol : {"secagg", "secagg_plus"}) {
    SecureAggregationOptions o;
    o.protocol = protocol;
    for (int n : {3, 4, 9, 10, 100, 1000}) {
      INFO(protocol << " n " << n);
      auto task = SecureTaskForRound(o, n, 5, 7, 3);
      REQUIRE(task.ok());
      CHECK(CheckSecureTaskLimits(task.value(), limits).ok());
    }
  }
  auto refused = [&](SecureTask task, const SecureClientLimits& l, const char* why) {
    const Status st = CheckSecureTaskLimits(task, l);
    CHECK(st.code() == StatusCode::kPermissionDenied);
    CHECK_THAT(st.message(), Contains("refusing a secure round") && Contains(why));
  };
  SecureTask task;
  task.params.num_clients = 2;
  task.params.threshold = 2;
  refused(task, limits, "fewer than secagg_min_clients = 3");
  SecureClientLimits two;
  two.min_clients = 2;
  CHECK(CheckSecureTaskLimits(task, two).ok());  // a deployment may lower the floor
  task.params.num_clients = 10;
  task.params.threshold = 5;  // half of 10: a server could get both secrets of a client
  refused(task, limits, "not more than half of the 10");
  task.params.threshold = 6;
  CHECK(CheckSecureTaskLimits(task, limits).ok());
  task.params.num_clients = 8;  // SecAgg+: floor ceil(log2 8) = 3
  task.params.num_neighbours = 2;
  task.params.threshold = 2;  // a majority of 3
  refused(task, limits, "SecAgg+ degree k = 2 is below 3");
  task.params.num_neighbours = 3;
  task.params.threshold = 2;  // 2 of 4 is not a majority
  refused(task, limits, "not more than half of the 4");
  task.params.threshold = 3;
  CHECK(CheckSecureTaskLimits(task, limits).ok());
  SecureClientLimits wide;
  wide.min_neighbours = 6;
  refused(task, wide, "below 6");
}
