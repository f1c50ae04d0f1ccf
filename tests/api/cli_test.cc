// Runs the real `fedml` program and checks its exit codes and messages.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fedml/config.h"

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

TEST_CASE("a crashed fedml prints the signal and a backtrace and still dies of the signal",
          "[cli]") {
  // A run long enough to be caught mid-round; SIGSEGV is sent once its first round is printed.
  int out[2];
  REQUIRE(pipe(out) == 0);
  const std::string bin = std::string(FEDML_BINARY_DIR) + "/bin/fedml";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    close(out[0]);
    execl(bin.c_str(), "fedml", "simulate", "--dataset", "synthetic", "--model", "lr",
          "--client_num_in_total", "4", "--client_num_per_round", "4", "--comm_round", "100000",
          "--model_file_cache_folder", "", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string output;
  bool signalled = false;
  bool eof = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {  // until EOF; every wait is bounded by the deadline
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd fd{out[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&fd, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) {
      eof = true;
      break;
    }
    output.append(buf, static_cast<std::size_t>(n));
    if (!signalled && output.find("round 1/") != std::string::npos) {
      kill(pid, SIGSEGV);
      signalled = true;
    }
  }
  close(out[0]);
  if (!eof) kill(pid, SIGKILL);  // still running at the deadline: waitpid must not block
  int status = 0;
  waitpid(pid, &status, 0);
  INFO(output);
  REQUIRE(signalled);
#ifdef __SANITIZE_ADDRESS__
  // AddressSanitizer keeps its own handler: it reports the SEGV and exits with its error code.
  CHECK(output.find("AddressSanitizer: SEGV") != std::string::npos);
#else
  CHECK(output.find("fatal: fedml received SIGSEGV; backtrace:") != std::string::npos);
  CHECK(output.find("libc.so") != std::string::npos);  // frames follow the message
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
#endif
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

TEST_CASE("fedml applies the config's log_level to the warnings it prints", "[cli]") {
  // enable_wandb is a FedML-cloud key: accepted, with a warning that it does nothing here.
  const std::string run =
      "simulate --dataset synthetic --model lr --client_num_in_total 2 --client_num_per_round 2 "
      "--comm_round 1 --model_file_cache_folder '' --enable_wandb true";
  const std::string warning =
      "warning: ignoring keys that only mean something on FedML's cloud: enable_wandb\n";
  for (const char* level :
       {"", " --log_level debug", " --log_level info", " --log_level warning"}) {
    auto r = RunFedml(run + level);
    INFO(level << "\n" << r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find(warning) != std::string::npos);
  }
  auto quiet = RunFedml(run + " --log_level error");
  INFO(quiet.output);
  CHECK(quiet.code == 0);
  CHECK(quiet.output.find("warning:") == std::string::npos);
  CHECK(quiet.output.find("summary:") != std::string::npos);  // CLI output is not a log message
}

TEST_CASE("fedml ledger verify checks the chain a run wrote and names a tampered record",
          "[cli][ledger]") {
  const std::string dir = std::string(FEDML_BINARY_DIR) + "/tests/cli_ledger";
  const std::string ledger = dir + "/ledger.jsonl";
  std::remove(ledger.c_str());
  const std::string run =
      "simulate --dataset synthetic --model lr --client_num_in_total 20 "
      "--client_num_per_round 5 --comm_round 3 --model_file_cache_folder '' --ledger_file " +
      ledger;
  // Two runs append to one ledger: 6 records, one per round, the chain continuing.
  for (int i = 0; i < 2; ++i) {
    auto r = RunFedml(run);
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(r.output.find("ledger: " + ledger + ", " + std::to_string(3 * (i + 1)) + " records") !=
          std::string::npos);
  }
  auto ok = RunFedml("ledger verify " + ledger);
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(ok.output.find("6 records, hash chain intact") != std::string::npos);

  // Each record names the round's five clients and the hashes of the updates taken.
  std::vector<std::string> lines;
  {
    std::ifstream in(ledger);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  REQUIRE(lines.size() == 6);
  CHECK(lines[3].find("\"seq\":3,") != std::string::npos);
  CHECK(lines[3].find("\"round\":1,") != std::string::npos);  // the second run's first round
  std::size_t hashes = 0;
  for (std::size_t at = lines[0].find("\"sha256\":\""); at != std::string::npos;
       at = lines[0].find("\"sha256\":\"", at + 1)) {
    ++hashes;
  }
  CHECK(hashes == 5);

  // One changed digit in record 4's content: verification fails there, exit code 5.
  const auto digit = lines[4].find("\"samples\":") + 10;
  lines[4][digit] = lines[4][digit] == '9' ? '8' : '9';
  {
    std::ofstream out(ledger, std::ios::trunc);
    for (const auto& l : lines) out << l << '\n';
  }
  auto bad = RunFedml("ledger verify " + ledger);
  INFO(bad.output);
  CHECK(bad.code == 5);
  CHECK(bad.output.find("record 4 (line 5)") != std::string::npos);
  auto missing = RunFedml("ledger verify " + dir + "/none.jsonl");
  CHECK(missing.code == 3);
}

#if FEDML_WITH_GRPC
TEST_CASE("fedml client --gpu_id N asks for cuda:N, refused before connecting where none exists",
          "[cli]") {
  // GPU 99 exists nowhere: a CPU-only LibTorch says it has no CUDA, a CUDA one how many GPUs it
  // has. Either way the trainer is built before the client dials, so nothing waits on port 1.
  auto r = RunFedml(
      "client --client_id 0 --insecure --server 127.0.0.1:1 --gpu_id 99 --dataset synthetic "
      "--model lr --round_timeout_s 600");
  CHECK(r.code != 0);
  CHECK(r.output.find("device 'cuda:99' asked for") != std::string::npos);
  CHECK(r.output.find("terminate") == std::string::npos);

  r = RunFedml("client --client_id 0 --insecure --gpu_id 0 --device cpu --dataset synthetic");
  CHECK(r.code == 2);
  CHECK(r.output.find("--gpu_id and --device exclude each other") != std::string::npos);

  r = RunFedml("client --client_id 0 --insecure --gpu_id -1");
  CHECK(r.code != 0);
  CHECK(r.output.find("--gpu_id") != std::string::npos);
}
#endif

#if FEDML_WITH_GRPC
TEST_CASE("fedml aggregator refuses a config without a tier and an id outside it", "[cli]") {
  // Both before it listens or dials (port 1 would otherwise hold the test up).
  auto r = RunFedml("aggregator --aggregator_id 0 --insecure --upstream 127.0.0.1:1");
  CHECK(r.code != 0);
  CHECK(r.output.find("needs aggregator_num >= 1") != std::string::npos);
  r = RunFedml("aggregator --aggregator_id 2 --aggregator_num 2 --insecure --upstream 127.0.0.1:1");
  CHECK(r.code != 0);
  CHECK(r.output.find("aggregator_id 2 is outside [0, 2) (aggregator_num)") != std::string::npos);
  r = RunFedml(
      "aggregator --aggregator_id 0 --aggregator_num 2 --federated_optimizer FedBuff --insecure "
      "--upstream 127.0.0.1:1");
  CHECK(r.code != 0);
  CHECK(r.output.find("aggregator_num > 0 (an aggregation tier)") != std::string::npos);
  CHECK(r.output.find("FedBuff") != std::string::npos);
}
#endif

#if !FEDML_WITH_MPI || !FEDML_WITH_GRPC
// Built only where a backend is left out (the `minimal` preset, a GPU box's build).
TEST_CASE("a backend left out of the build is refused with how to build it", "[cli]") {
#if !FEDML_WITH_MPI
  auto r = RunFedml("simulate --backend MPI --dataset synthetic --model lr --comm_round 1");
  CHECK(r.code == 2);
  CHECK(r.output.find("backend MPI is not in this build (configure with -DFEDML_WITH_MPI=ON") !=
        std::string::npos);
#endif
#if !FEDML_WITH_GRPC
  for (const char* command :
       {"server --cf x.yaml", "client --client_id 0 --gpu_id 0", "aggregator --aggregator_id 0"}) {
    auto out = RunFedml(command);
    CHECK(out.code == 2);
    CHECK(out.output.find("not in this build (configure with -DFEDML_WITH_GRPC=ON") !=
          std::string::npos);
  }
#endif
}
#endif
