// Real workloads through the whole stack: a tensor data set (a directory of .npy files) with its
// natural partition trains in simulation; the partition's clients are the data set's own.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "config_helpers.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/simulation.h"
#include "fedml/core/random.h"
#include "npy_writer.h"
#include "temp_dir.h"

using namespace fedml;
using namespace fedml::api;
using Catch::Matchers::Contains;
using fedml::testing::LittleEndian;
using fedml::testing::Npy;
using fedml::testing::TempDir;
using fedml::testing::WriteBytes;

namespace {

// Two Gaussian blobs in 4 dimensions (class 0 around -1, class 1 around +1), `n` samples; with
// client ids, client c holds samples_per_client[c] of them, all of class c % 2 for c < 2 (label
// skew) and mixed for the rest.
void WriteBlobs(const std::string& dir, const std::string& split, int n, std::uint64_t seed,
                const std::vector<int>& client_sizes) {
  core::Rng rng(seed);
  std::vector<float> x;
  std::vector<std::int64_t> y;
  std::vector<std::int64_t> ids;
  int client = 0, left = client_sizes.empty() ? 0 : client_sizes[0];
  for (int i = 0; i < n; ++i) {
    const std::int64_t label = client_sizes.empty() || client >= 2 ? i % 2 : client % 2;
    for (int d = 0; d < 4; ++d) {
      x.push_back(static_cast<float>((label ? 1.0 : -1.0) + 0.5 * rng.Normal()));
    }
    y.push_back(label);
    if (!client_sizes.empty()) {
      ids.push_back(100 + client);
      if (--left == 0 && client + 1 < static_cast<int>(client_sizes.size())) {
        left = client_sizes[static_cast<std::size_t>(++client)];
      }
    }
  }
  WriteBytes(dir + "/x_" + split + ".npy",
             Npy("<f4", "(" + std::to_string(n) + ", 4)", LittleEndian(x)));
  WriteBytes(dir + "/y_" + split + ".npy",
             Npy("<i8", "(" + std::to_string(n) + ",)", LittleEndian(y)));
  if (!ids.empty()) {
    WriteBytes(dir + "/client_" + split + ".npy",
               Npy("<i8", "(" + std::to_string(n) + ",)", LittleEndian(ids)));
  }
}

RawConfig NpyBase(const std::string& dir) {
  return {{"dataset", "npy"},   {"data_cache_dir", dir},      {"partition_method", "natural"},
          {"model", "lr"},      {"client_num_in_total", "3"}, {"client_num_per_round", "3"},
          {"comm_round", "4"},  {"batch_size", "8"},          {"learning_rate", "0.1"},
          {"random_seed", "5"}, {"worker_num", "2"},          {"model_file_cache_folder", ""}};
}

}  // namespace

TEST_CASE("a .npy data set trains over its natural partition", "[workloads][simulation]") {
  TempDir dir("npy_workload");
  WriteBlobs(dir.path(), "train", 120, 1, {50, 30, 40});
  WriteBlobs(dir.path(), "test", 60, 2, {});
  const Config config = fedml::testing::ConfigWith(NpyBase(dir.path()), {});
  auto data = LoadFederatedData(config);
  REQUIRE(data.ok());
  REQUIRE((*data)->partition.num_clients() == 3);
  CHECK((*data)->partition.client_indices[0].size() == 50);
  CHECK((*data)->partition.client_indices[1].size() == 30);
  CHECK((*data)->partition.client_indices[2].size() == 40);
  CHECK((*data)->train.num_classes == 2);

  int rounds = 0;
  SimulationHooks hooks;
  hooks.on_round = [&](const RoundMetrics& m) {
    ++rounds;
    CHECK(m.clients == 3);
  };
  auto summary = RunSimulation(config, hooks);
  REQUIRE(summary.ok());
  CHECK(rounds == 4);
  INFO("final accuracy " << summary->final_accuracy);
  CHECK(summary->final_accuracy >= 0.9);  // separable blobs, two of three clients one-class

  // The other partitioners work on the same files; natural refuses more clients than it has.
  auto hetero = LoadFederatedData(fedml::testing::ConfigWith(
      NpyBase(dir.path()),
      {{"partition_method", "homo"}, {"client_num_in_total", "6"}, {"client_num_per_round", "6"}}));
  REQUIRE(hetero.ok());
  CHECK((*hetero)->partition.num_clients() == 6);
  auto too_many = LoadFederatedData(fedml::testing::ConfigWith(
      NpyBase(dir.path()), {{"client_num_in_total", "4"}, {"client_num_per_round", "4"}}));
  REQUIRE_FALSE(too_many.ok());
  CHECK_THAT(too_many.status().message(), Contains("has 3 clients; allowed: 1..3"));
  std::filesystem::remove(dir.File("client_train.npy"));
  auto none = LoadFederatedData(config);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.status().message(), Contains("has no natural partition"));
}
