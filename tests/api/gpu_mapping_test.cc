#include <catch2/catch.hpp>

#include <fstream>

#include "fedml/api/gpu_mapping.h"

using namespace fedml;
using namespace fedml::api;

namespace {

std::string WriteMapping(const std::string& name, const std::string& text) {
  const std::string path = std::string(FEDML_BINARY_DIR) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("gpu mapping hands out ranks host by host, GPU by GPU", "[gpu_mapping]") {
  const auto path = WriteMapping("gpu_map_ok.yaml",
                                 "mapping_default:\n  node1: [1, 2]\n  node2: [0, 3]\n"
                                 "other:\n  box: [4]\n");
  auto slots = LoadGpuMapping(path, "mapping_default");
  REQUIRE(slots.ok());
  REQUIRE(slots->size() == 6);
  const std::vector<std::pair<std::string, int>> want = {{"node1", 0}, {"node1", 1}, {"node1", 1},
                                                         {"node2", 1}, {"node2", 1}, {"node2", 1}};
  for (std::size_t r = 0; r < want.size(); ++r) {
    CHECK((*slots)[r].host == want[r].first);
    CHECK((*slots)[r].gpu == want[r].second);
  }
  CHECK(*DeviceForRank(*slots, 0, 6, "node1") == "cuda:0");
  CHECK(*DeviceForRank(*slots, 2, 6, "node1.cluster.org") == "cuda:1");
  CHECK(*DeviceForRank(*slots, 5, 6, "node2") == "cuda:1");
  auto other = LoadGpuMapping(path, "other");
  REQUIRE(other.ok());
  CHECK(other->size() == 4);
}

TEST_CASE("gpu mapping errors say what is wrong", "[gpu_mapping]") {
  const auto path = WriteMapping("gpu_map_bad.yaml",
                                 "mapping_default:\n  node1: [1, 1]\n"
                                 "negative:\n  node1: [1, -1]\n"
                                 "scalar:\n  node1: 2\n"
                                 "empty:\n  node1: [0, 0]\n");
  auto slots = LoadGpuMapping(path, "mapping_default");
  REQUIRE(slots.ok());
  auto wrong_count = DeviceForRank(*slots, 0, 3, "node1");
  REQUIRE(wrong_count.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(wrong_count.status().message(), Catch::Contains("places 2 processes but 3 ranks"));
  auto wrong_host = DeviceForRank(*slots, 1, 2, "node7");
  REQUIRE(!wrong_host.ok());
  CHECK_THAT(wrong_host.status().message(),
             Catch::Contains("rank 1 to host node1 but it runs on node7"));
  CHECK_THAT(LoadGpuMapping(path, "missing").status().message(), Catch::Contains("no such key"));
  CHECK_THAT(LoadGpuMapping(path, "negative").status().message(),
             Catch::Contains("GPU 1: the process count must be an integer >= 0"));
  CHECK_THAT(LoadGpuMapping(path, "scalar").status().message(),
             Catch::Contains("one process count per GPU"));
  CHECK_THAT(LoadGpuMapping(path, "empty").status().message(), Catch::Contains("no GPU"));
  CHECK(LoadGpuMapping(path + ".nope", "mapping_default").status().code() == StatusCode::kNotFound);
}
