// Aggregation throughput against what the machine can read, on one thread and on every core.
//
// memcpy: a 256 MB buffer copied several times; bandwidth counts bytes read + bytes written.
// Read loop: a float sum over the same N x P input floats the round reads, on one thread and
// split over every core (core::ParallelRanges, as the fold is split): a fold must read every input
// byte, so this is its ceiling. FedAvg: one full round (Begin + N Accumulate + Finalize) of N
// updates of P floats, with FedAvgOptions::threads 1 and every core; throughput counts input
// bytes (N * P * 4); each is a ratio to the read loop with the same thread count (goal >= 0.9),
// and the two results must be the same bits. Updates are generated once; each repetition copies
// them outside the timed region, because Accumulate takes them by move.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fedml/algorithms/fedavg.h"
#include "fedml/core/model_state.h"
#include "fedml/core/parallel.h"
#include "fedml/core/random.h"
#include "synthetic_updates.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Args {
  int clients = 32;
  long long params = 4LL << 20;
  int reps = 5;
  int fold_width = fedml::algorithms::FedAvgOptions{}.fold_width;
  long long memcpy_mb = 256;
};

// Bytes read plus written per second for one rep: `kCopies` copies between two touched buffers
// (touched so that no page fault lands in the timed region).
class MemcpyProbe {
 public:
  explicit MemcpyProbe(std::size_t bytes) : a_(bytes, 1), b_(bytes, 2) {}
  double Rep() {
    constexpr int kCopies = 4;
    const auto t0 = Clock::now();
    for (int c = 0; c < kCopies; ++c) {
      if (c % 2 == 0) {
        std::memcpy(b_.data(), a_.data(), a_.size());
      } else {
        std::memcpy(a_.data(), b_.data(), a_.size());
      }
    }
    const double s = Seconds(t0, Clock::now()) / kCopies;
    // Keep the copies observable so they cannot be elided.
    if (a_[a_.size() / 2] != b_[a_.size() / 2]) std::fprintf(stderr, "memcpy mismatch\n");
    return 2.0 * static_cast<double>(a_.size()) / s;
  }

 private:
  std::vector<char> a_, b_;
};

// Bytes per second of a float sum over every update, split over `threads` threads.
double ReadLoop(const std::vector<fedml::algorithms::ClientUpdate>& updates, int threads,
                float* sink) {
  const std::size_t n = updates[0].state.numel();
  std::vector<float> partial(static_cast<std::size_t>(threads) * 16, 0.0F);
  const auto t0 = Clock::now();
  std::atomic<int> slot{0};
  fedml::Status st = fedml::core::ParallelRanges(
      n, threads, std::size_t{1} << 16, 16, [&](std::size_t b, std::size_t e) {
        float acc[8] = {};
        for (const auto& u : updates) {
          const float* x = u.state.data();
          for (std::size_t i = b; i + 8 <= e; i += 8) {
            for (int k = 0; k < 8; ++k) acc[k] += x[i + static_cast<std::size_t>(k)];
          }
        }
        float total = 0.0F;
        for (float a : acc) total += a;
        partial[static_cast<std::size_t>(slot.fetch_add(1)) * 16] = total;
        return fedml::Status::Ok();
      });
  const double s = Seconds(t0, Clock::now());
  for (float p : partial) *sink += p;
  if (!st.ok()) std::fprintf(stderr, "read loop: %s\n", st.ToString().c_str());
  return static_cast<double>(updates.size()) * static_cast<double>(n) * 4.0 / s;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

}  // namespace

int Main(int argc, char** argv) {
  using fedml::algorithms::ClientUpdate;
  using fedml::algorithms::FedAvg;
  using fedml::algorithms::FedAvgOptions;
  Args args;
  CLI::App app("FedAvg aggregation throughput against memcpy bandwidth");
  app.add_option("--clients", args.clients, "updates per round")->check(CLI::Range(1, 1 << 30));
  app.add_option("--params", args.params, "parameters per update")
      ->check(CLI::Range(1LL, 1LL << 34));
  app.add_option("--reps", args.reps, "timed rounds (best is kept)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--fold-width", args.fold_width, "FedAvg's fold width")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--memcpy-mb", args.memcpy_mb, "memcpy probe buffer, MiB")
      ->check(CLI::Range(1, 1 << 30));
  CLI11_PARSE(app, argc, argv);

  MemcpyProbe memcpy_probe(static_cast<std::size_t>(args.memcpy_mb) << 20);
  auto made = fedml::bench::SyntheticUpdates(args.clients, args.params);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  std::vector<ClientUpdate> updates = std::move(made).value();
  const fedml::core::ModelState global = fedml::core::ModelState::ZerosLike(updates[0].state);

  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  // memcpy, the read loops and both folds alternate rep by rep, so that a busy spell on a shared
  // machine hits all of them; each figure is the best over the reps.
  double copy_bw = 0.0, read1 = 0.0, read_all = 0.0;
  double best1 = 1e30, best_all = 1e30;
  float sink = 0.0F;
  fedml::core::ModelState result1, result_all;
  FedAvg fold1(FedAvgOptions{args.fold_width, 1});  // kept across reps, as a server keeps one
  FedAvg fold_all(FedAvgOptions{args.fold_width, cores});
  for (int r = 0; r < args.reps; ++r) {
    copy_bw = std::max(copy_bw, memcpy_probe.Rep());
    read1 = std::max(read1, ReadLoop(updates, 1, &sink));
    read_all = std::max(read_all, ReadLoop(updates, cores, &sink));
    for (FedAvg* fedavg : {&fold1, &fold_all}) {
      std::vector<ClientUpdate> copies = updates;  // outside the timed region
      const auto t0 = Clock::now();
      fedml::Status st = fedavg->Begin(global, {});
      for (ClientUpdate& u : copies) {
        if (st.ok()) st = fedavg->Accumulate(std::move(u));
      }
      fedml::Result<fedml::core::ModelState> result =
          st.ok() ? fedavg->Finalize() : fedml::Result<fedml::core::ModelState>(st);
      const double s = Seconds(t0, Clock::now());
      if (!result.ok()) {
        std::fprintf(stderr, "FedAvg failed: %s\n", result.status().ToString().c_str());
        return 1;
      }
      if (fedavg == &fold1) {
        best1 = std::min(best1, s);
        result1 = std::move(result).value();
      } else {
        best_all = std::min(best_all, s);
        result_all = std::move(result).value();
      }
    }
  }
  const double input_bytes =
      static_cast<double>(args.clients) * static_cast<double>(args.params) * 4.0;
  const double agg1 = input_bytes / best1, agg_all = input_bytes / best_all;
  std::printf("CPU: %s, %d cores\n", CpuModel().c_str(), cores);
  std::printf("memcpy (read+write, %lld MB buffer): %.2f GB/s\n", args.memcpy_mb, copy_bw / 1e9);
  std::printf(
      "read loop over the %d x %lld input floats: 1 thread %.2f GB/s, %d threads %.2f GB/s "
      "(sum %g)\n",
      args.clients, args.params, read1 / 1e9, cores, read_all / 1e9, sink);
  std::printf(
      "FedAvg (fold_width=%d), 1 thread: %.2f GB/s of input, %.2f ms/round: %.3f of the "
      "read loop, %.3f of memcpy\n",
      fold1.fold_width(), agg1 / 1e9, best1 * 1e3, agg1 / read1, agg1 / copy_bw);
  std::printf("FedAvg, %d threads: %.2f GB/s of input, %.2f ms/round: %.3f of the read loop\n",
              cores, agg_all / 1e9, best_all * 1e3, agg_all / read_all);
  const bool same = result1 == result_all;
  std::printf("results on 1 and %d threads: %s\n", cores, same ? "the same bits" : "DIFFER");
  std::printf("goal >= 0.9 of the read loop: 1 thread %s, %d threads %s\n",
              agg1 / read1 >= 0.9 ? "PASS" : "MISS", cores,
              agg_all / read_all >= 0.9 ? "PASS" : "MISS");
  return same ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // std::bad_alloc for a model larger than memory
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
