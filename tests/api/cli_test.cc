// Runs the real `fedml` program and checks its exit codes and messages.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct Run {
  int code;
  std::string output;
};

Run RunFedml(const std::string& args) {
  const std::string cmd = std::string(FEDML_BINARY_DIR) + "/bin/fedml " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("fedml simulate refuses bad configs with a clear message", "[cli]") {
  auto r = RunFedml("simulate --comm_rounds 3");
  CHECK(r.code == 2);
  CHECK(r.output.find("comm_rounds") != std::string::npos);
  CHECK(r.output.find("comm_round'") != std::string::npos);
  CHECK(r.output.find("terminate") == std::string::npos);  // no uncaught exception

  r = RunFedml("simulate --comm_round -3");
  CHECK(r.code == 2);
  CHECK(r.output.find("comm_round") != std::string::npos);

  r = RunFedml("simulate --client_num_per_round 200");
  CHECK(r.code == 2);
  CHECK(r.output.find("client_num_in_total") != std::string::npos);

  r = RunFedml("simulate --cf /nonexistent/fedml_config.yaml");
  CHECK(r.code == 3);
  CHECK(r.output.find("/nonexistent/fedml_config.yaml") != std::string::npos);
}

TEST_CASE("a missing data set names the path and the Debian package", "[cli]") {
  auto r = RunFedml("simulate --data_cache_dir /nonexistent/fmnist --comm_round 1");
  CHECK(r.code == 3);
  CHECK(r.output.find("/nonexistent/fmnist") != std::string::npos);
  CHECK(r.output.find("dataset-fashion-mnist") != std::string::npos);
}

TEST_CASE("fedml simulate runs, writes metrics and a PyTorch-loadable model", "[cli]") {
  const std::string dir = std::string(FEDML_BINARY_DIR) + "/tests/cli_run";
  auto r = RunFedml(
      "simulate --dataset synthetic --model lr --client_num_in_total 20 "
      "--client_num_per_round 5 --comm_round 3 --metrics_file " +
      dir + "/metrics.jsonl --model_file_cache_folder " + dir);
  INFO(r.output);
  REQUIRE(r.code == 0);
  // The last line is the summary.
  const auto last = r.output.rfind("summary:");
  REQUIRE(last != std::string::npos);
  CHECK(r.output.find('\n', last) == r.output.size() - 1);
  CHECK(r.output.find("final test_accuracy") != std::string::npos);
  std::ifstream metrics(dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) {
    ++lines;
    CHECK(line.find("\"round\":" + std::to_string(lines)) != std::string::npos);
  }
  CHECK(lines == 3);
  CHECK(std::ifstream(dir + "/final_model.pt").good());
}
