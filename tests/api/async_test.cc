// Asynchronous aggregation and the virtual clock end to end: the system model's devices and
// traces, FedBuff and FedAsync runs (deterministic for any worker count, stale updates refused,
// a client that goes offline never stalls the server), and synchronous rounds on the same clock.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <numeric>

#include "config_helpers.h"
#include "fedml/api/simulation.h"
#include "fedml/api/system_model.h"
#include "scripted_trainer.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::api;
using Catch::Matchers::Contains;
using fedml::testing::ScriptedTrainer;

namespace {

RawConfig SyntheticRaw() {
  return {{"dataset", "synthetic"},       {"model", "lr"},      {"client_num_in_total", "30"},
          {"client_num_per_round", "10"}, {"comm_round", "6"},  {"batch_size", "16"},
          {"learning_rate", "0.05"},      {"random_seed", "5"}, {"worker_num", "2"},
          {"model_file_cache_folder", ""}};
}

Config MakeConfig(const RawConfig& extra) {
  return fedml::testing::ConfigWith(SyntheticRaw(), extra);
}

std::string ConfigError(const RawConfig& extra) {
  return fedml::testing::ConfigErrorWith(SyntheticRaw(), extra);
}

std::string WriteFile(const fedml::testing::TempDir& dir, const std::string& name,
                      const std::string& text) {
  const std::string path = dir.File(name);
  std::ofstream(path) << text;
  return path;
}

// ScriptedTrainers on a two-weight model starting at zero (each task adds 1 to every weight).
SimulationHooks ScriptedHooks() {
  SimulationHooks hooks;
  hooks.trainer_factory = [](int) -> Result<std::unique_ptr<ClientTrainer>> {
    auto t = std::make_unique<ScriptedTrainer>(ScriptedTrainer::Kind::kGood);
    core::ModelState zero;
    const float w[] = {0.0f, 0.0f};
    FEDML_RETURN_IF_ERROR(zero.Add("w", {2}, w));
    FEDML_RETURN_IF_ERROR(t->SetState(zero));
    return std::unique_ptr<ClientTrainer>(std::move(t));
  };
  return hooks;
}

double Extra(const RoundMetrics& m, const std::string& name) {
  const auto it = m.extra.find(name);
  return it == m.extra.end() ? 0.0 : it->second;
}

}  // namespace

TEST_CASE("lognormal devices are drawn from the seed with the given spread", "[async][clock]") {
  SystemModelOptions o;
  o.heterogeneity = "lognormal";
  o.speed_sigma = 1.0;
  o.bandwidth_sigma = 0.5;
  o.compute_speed = 200.0;
  o.bandwidth_mbps = 8.0;
  o.seed = 11;
  o.num_clients = 4000;
  auto model = SystemModel::Create(o);
  REQUIRE(model.ok());
  double sum = 0.0;
  double sum_sq = 0.0;
  double bw_sum_sq = 0.0;
  std::vector<double> log_speed;
  for (int c = 0; c < o.num_clients; ++c) {
    const double l = std::log(model->client(c).samples_per_second / o.compute_speed);
    const double lb = std::log(model->client(c).bytes_per_second / (o.bandwidth_mbps * 1e6 / 8));
    sum += l;
    sum_sq += l * l;
    bw_sum_sq += lb * lb;
    log_speed.push_back(l);
  }
  const double n = o.num_clients;
  // The log of each factor is N(0, sigma^2): mean within 4 standard errors, sd within 5%.
  CHECK(std::abs(sum / n) < 4.0 / std::sqrt(n));
  CHECK(std::sqrt(sum_sq / n) == Approx(1.0).epsilon(0.05));
  CHECK(std::sqrt(bw_sum_sq / n) == Approx(0.5).epsilon(0.05));
  // A client's device does not depend on how many clients there are.
  o.num_clients = 10;
  auto small = SystemModel::Create(o);
  REQUIRE(small.ok());
  CHECK(small->client(7).samples_per_second == model->client(7).samples_per_second);
  // Task time: samples / speed + bytes both ways / bandwidth.
  const ClientSystem& c3 = model->client(3);
  CHECK(model->TaskSeconds(3, 50.0, 1000, 3000) ==
        Approx(50.0 / c3.samples_per_second + 4000.0 / c3.bytes_per_second).epsilon(1e-12));
  o.heterogeneity = "none";
  auto none = SystemModel::Create(o);
  REQUIRE(none.ok());
  CHECK(none->client(3).samples_per_second == 200.0);
  CHECK(none->client(3).bytes_per_second == 1e6);
  CHECK(none->AvailableAt(3, 1e9));
  CHECK_FALSE(none->has_offline_periods());
}

TEST_CASE("a device trace gives speeds, bandwidths and online windows", "[async][clock]") {
  fedml::testing::TempDir dir("trace");
  SystemModelOptions o;
  o.heterogeneity = "trace";
  o.num_clients = 3;
  o.trace_file = WriteFile(dir, "t.csv",
                           "# comment\n"
                           "client_id,samples_per_second,bandwidth_mbps,available\n"
                           "2,4,8,\n"
                           "0,1,1,10-20;0-5\n"
                           "1,2.5,0.5,30-40\n");
  auto model = SystemModel::Create(o);
  INFO(model.status().ToString());
  REQUIRE(model.ok());
  CHECK(model->client(1).samples_per_second == 2.5);
  CHECK(model->client(1).bytes_per_second == 62500.0);
  CHECK(model->has_offline_periods());
  CHECK(model->AvailableAt(0, 0.0));
  CHECK_FALSE(model->AvailableAt(0, 5.0));  // windows are [start, end)
  CHECK(model->AvailableAt(0, 12.0));
  CHECK(model->OnlineUntil(0, 3.0) == 5.0);
  CHECK(model->OnlineUntil(0, 7.0) == 7.0);
  CHECK(model->NextOnline(0, 7.0) == 10.0);
  CHECK(model->NextOnline(0, 25.0) == SystemModel::kNever);
  CHECK(model->NextOnline(2, 25.0) == 25.0);
  CHECK(model->OnlineUntil(2, 25.0) == SystemModel::kNever);

  auto error = [&](const std::string& text) {
    o.trace_file = WriteFile(dir, "bad.csv", text);
    auto m = SystemModel::Create(o);
    REQUIRE_FALSE(m.ok());
    return m.status().message();
  };
  const std::string header = "client_id,samples_per_second,bandwidth_mbps,available\n";
  CHECK_THAT(error("id,speed\n"), Contains("bad.csv:1") && Contains("expected the header"));
  CHECK_THAT(error(header + "0,1,1,\n1,1,1,\n"), Contains("no row for client 2"));
  CHECK_THAT(error(header + "0,1,1,\n0,1,1,\n2,1,1,\n"),
             Contains("bad.csv:3") && Contains("client 0 is listed twice"));
  CHECK_THAT(error(header + "0,1,1,\n1,0,1,\n2,1,1,\n"), Contains("samples_per_second '0'"));
  CHECK_THAT(error(header + "0,1,1,\n1,1,x,\n2,1,1,\n"), Contains("bandwidth_mbps 'x'"));
  CHECK_THAT(error(header + "0,1,1,\n5,1,1,\n2,1,1,\n"), Contains("client_id '5'"));
  CHECK_THAT(error(header + "0,1,1,5-2\n1,1,1,\n2,1,1,\n"), Contains("online window '5-2'"));
  CHECK_THAT(error(header + "0,1,1,0-5;4-8\n1,1,1,\n2,1,1,\n"), Contains("overlap"));
  CHECK_THAT(error(header + "0,1,1\n"), Contains("expected 4 fields"));
  o.trace_file = dir.File("missing.csv");
  CHECK_THAT(SystemModel::Create(o).status().message(), Contains("missing.csv"));
}

TEST_CASE("asynchronous keys are checked against each other", "[async][config]") {
  CHECK_THAT(ConfigError({{"federated_optimizer", "FedAsync"},
                          {"enable_defense", "true"},
                          {"defense_type", "krum"}}),
             Contains("FedAsync") && Contains("FedBuff"));
  CHECK_THAT(
      ConfigError(
          {{"federated_optimizer", "FedBuff"}, {"enable_dp", "true"}, {"noise_multiplier", "1"}}),
      Contains("ldp"));
  CHECK_THAT(ConfigError({{"federated_optimizer", "FedAsync"}, {"server_optimizer", "adam"}}),
             Contains("FedBuff"));
  CHECK_THAT(ConfigError({{"federated_optimizer", "FedBuff"}, {"max_concurrency", "31"}}),
             Contains("max_concurrency (31) must be <= client_num_in_total (30)"));
  CHECK_THAT(ConfigError({{"async_alpha", "0"}}), Contains("async_alpha must be in (0.0, 1.0]"));
  CHECK_THAT(ConfigError({{"staleness_function", "linear"}}),
             Contains("constant") && Contains("hinge"));
  CHECK_THAT(ConfigError({{"heterogeneity", "trace"}}), Contains("trace_file"));
  CHECK_THAT(ConfigError({{"heterogeneity", "gaussian"}}), Contains("lognormal"));
  CHECK_THAT(ConfigError({{"buffer_size", "0"}}), Contains("buffer_size must be >= 1"));
}

TEST_CASE("FedBuff and FedAsync runs do not depend on worker_num and learn", "[async]") {
  for (const char* optimizer : {"FedBuff", "FedAsync"}) {
    INFO(optimizer);
    const bool buff = std::string(optimizer) == "FedBuff";
    Config config = MakeConfig({{"federated_optimizer", optimizer},
                                {"heterogeneity", "lognormal"},
                                {"buffer_size", "5"},
                                {"max_concurrency", "10"},
                                {"comm_round", buff ? "12" : "60"},
                                {"frequency_of_the_test", buff ? "1" : "5"}});
    config.worker_num = 1;
    auto one = RunSimulation(config);
    config.worker_num = 3;
    auto three = RunSimulation(config);
    REQUIRE(one.ok());
    REQUIRE(three.ok());
    CHECK(one->final_model == three->final_model);  // bitwise
    REQUIRE(one->rounds.size() == three->rounds.size());
    REQUIRE(one->rounds.size() == static_cast<std::size_t>(config.comm_round));
    double last_virtual = 0.0;
    double staleness_max = 0.0;
    for (std::size_t i = 0; i < one->rounds.size(); ++i) {
      const RoundMetrics& m = one->rounds[i];
      CHECK(Extra(m, "virtual_seconds") == Extra(three->rounds[i], "virtual_seconds"));
      CHECK(Extra(m, "virtual_seconds") > last_virtual);  // the clock moves on every version
      last_virtual = Extra(m, "virtual_seconds");
      CHECK(m.clients == (buff ? 5 : 1));
      CHECK(Extra(m, "staleness_max") <= config.max_staleness);
      staleness_max = std::max(staleness_max, Extra(m, "staleness_max"));
    }
    // With 10 clients training at once and 5 (or 1) updates per version, later versions mix
    // updates from older ones.
    CHECK(staleness_max >= 1);
    const double first = one->rounds.front().test_accuracy;
    INFO("first " << first << " final " << one->final_accuracy);
    CHECK(one->final_accuracy > first + 0.1);
    config.random_seed = 6;
    auto other = RunSimulation(config);
    REQUIRE(other.ok());
    CHECK(other->final_model != one->final_model);
  }
}

TEST_CASE("updates older than max_staleness are refused and counted", "[async]") {
  Config config = MakeConfig({{"federated_optimizer", "FedBuff"},
                              {"heterogeneity", "lognormal"},
                              {"buffer_size", "2"},
                              {"max_concurrency", "8"},
                              {"max_staleness", "0"},
                              {"comm_round", "5"}});
  auto summary = RunSimulation(config, ScriptedHooks());
  REQUIRE(summary.ok());
  double stale = 0.0;
  for (const RoundMetrics& m : summary->rounds) {
    stale += Extra(m, "refused_stale");
    CHECK(m.refused >= Extra(m, "refused_stale"));
    CHECK(Extra(m, "staleness_max") == 0.0);  // only fresh updates were aggregated
    CHECK(m.clients == 2);
  }
  // Eight clients start from version 0 and the first two to finish make version 1: the others
  // are stale when they arrive.
  CHECK(stale > 0);
  // Each accepted update adds 1 to the model it started from: with staleness 0 every version
  // adds exactly 1.
  CHECK(summary->final_model.flat() == std::vector<float>{5.0f, 5.0f});
}

TEST_CASE("a client that goes offline mid-task is dropped and the server goes on", "[async]") {
  fedml::testing::TempDir dir("offline");
  // Client 0 is online for half a second, less than its task takes (1 sample at 1 per second);
  // the others are always online.
  std::string trace = "client_id,samples_per_second,bandwidth_mbps,available\n";
  trace += "0,1,1000,0-0.5\n";
  for (int c = 1; c < 5; ++c) trace += std::to_string(c) + "," + std::to_string(c) + ",1000,\n";
  Config config = MakeConfig({{"federated_optimizer", "FedBuff"},
                              {"client_num_in_total", "5"},
                              {"client_num_per_round", "2"},
                              {"heterogeneity", "trace"},
                              {"trace_file", WriteFile(dir, "t.csv", trace)},
                              {"buffer_size", "2"},
                              {"max_concurrency", "5"},
                              {"comm_round", "4"}});
  auto summary = RunSimulation(config, ScriptedHooks());
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  REQUIRE(summary->rounds.size() == 4);
  int dropped = 0;
  for (const RoundMetrics& m : summary->rounds) dropped += m.dropped;
  CHECK(dropped == 1);  // client 0's only task; it is never picked again once offline

  // Nobody left online: a clear error, not a wait.
  trace = "client_id,samples_per_second,bandwidth_mbps,available\n0,1,1000,0-0.5\n1,1,1000,0-0.5\n";
  config = MakeConfig({{"federated_optimizer", "FedBuff"},
                       {"client_num_in_total", "2"},
                       {"client_num_per_round", "2"},
                       {"heterogeneity", "trace"},
                       {"trace_file", WriteFile(dir, "t2.csv", trace)},
                       {"buffer_size", "1"},
                       {"comm_round", "3"}});
  auto stuck = RunSimulation(config, ScriptedHooks());
  REQUIRE_FALSE(stuck.ok());
  CHECK_THAT(stuck.status().message(), Contains("no client is online"));
}

TEST_CASE("a client coming online takes a free slot at once", "[async][clock]") {
  fedml::testing::TempDir dir("online");
  // Client 0 is always online but slow (10 s a task); client 1 comes online at t = 5 and takes
  // 1 s. With two slots, client 1's update is the first to arrive, at t = 6.
  const std::string trace =
      "client_id,samples_per_second,bandwidth_mbps,available\n0,0.1,1000,\n1,1,1000,5-1000\n";
  Config config = MakeConfig({{"federated_optimizer", "FedBuff"},
                              {"client_num_in_total", "2"},
                              {"client_num_per_round", "2"},
                              {"heterogeneity", "trace"},
                              {"trace_file", WriteFile(dir, "t.csv", trace)},
                              {"buffer_size", "1"},
                              {"max_concurrency", "2"},
                              {"comm_round", "1"}});
  auto summary = RunSimulation(config, ScriptedHooks());
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  REQUIRE(summary->rounds.size() == 1);
  CHECK(Extra(summary->rounds[0], "virtual_seconds") == Approx(6.0).margin(1e-5));
}

TEST_CASE("synchronous rounds last as long as their slowest client on the virtual clock",
          "[async][clock]") {
  fedml::testing::TempDir dir("sync_clock");
  // Three clients training 1 sample (the scripted trainer reports no sample counts) at 1, 2
  // and 4 samples per second over 1 Mbps links; the model is 2 floats (8 bytes each way).
  const std::string trace =
      "client_id,samples_per_second,bandwidth_mbps,available\n0,1,1,\n1,2,1,\n2,4,1,\n";
  RawConfig raw = {{"federated_optimizer", "FedAvg"},
                   {"client_num_in_total", "3"},
                   {"client_num_per_round", "3"},
                   {"heterogeneity", "trace"},
                   {"trace_file", WriteFile(dir, "t.csv", trace)},
                   {"comm_round", "3"}};
  const double comm = 16.0 / 125000.0;
  {
    auto summary = RunSimulation(MakeConfig(raw), ScriptedHooks());
    REQUIRE(summary.ok());
    for (const RoundMetrics& m : summary->rounds) {
      CHECK(Extra(m, "virtual_seconds") == Approx(m.round * (1.0 + comm)).epsilon(1e-12));
      CHECK(m.clients == 3);
    }
  }
  // A virtual round deadline of 0.75 s drops the slowest client from every round.
  raw["round_timeout_s"] = "0.75";
  auto summary = RunSimulation(MakeConfig(raw), ScriptedHooks());
  REQUIRE(summary.ok());
  for (const RoundMetrics& m : summary->rounds) {
    CHECK(Extra(m, "virtual_seconds") == Approx(m.round * 0.75).epsilon(1e-12));
    CHECK(m.clients == 2);
    CHECK(m.dropped == 1);
  }
  // Clients are sampled among those online: client 2 is offline until t = 10.
  raw["round_timeout_s"] = "600";
  raw["trace_file"] = WriteFile(
      dir, "t2.csv",
      "client_id,samples_per_second,bandwidth_mbps,available\n0,1,1,\n1,2,1,\n2,4,1,10-1000\n");
  raw["comm_round"] = "12";
  auto partial = RunSimulation(MakeConfig(raw), ScriptedHooks());
  REQUIRE(partial.ok());
  for (const RoundMetrics& m : partial->rounds) {
    const double start = Extra(m, "virtual_seconds") - (1.0 + comm);
    CHECK(m.clients == (start >= 10.0 ? 3 : 2));
  }
  CHECK(partial->rounds.back().clients == 3);
}

TEST_CASE("a checkpoint keeps the virtual clock", "[async][clock]") {
  fedml::testing::TempDir dir("clock_ckpt");
  core::ModelState model;
  const float w[] = {1.0f};
  REQUIRE(model.Add("w", {1}, w).ok());
  const double t = 12345.678901234567;
  REQUIRE(WriteCheckpoint(dir.path(), 3, 4, model, {}, t).ok());
  auto ckpt = ReadCheckpoint(dir.path());
  REQUIRE(ckpt.ok());
  CHECK(ckpt->virtual_seconds == t);  // exactly
  CHECK(ckpt->round == 3);
}
