// Aggregation throughput against the machine's own copy bandwidth, one thread.
//
// memcpy: a 256 MB buffer copied several times; bandwidth counts bytes read + bytes written.
// FedAvg: one full round (Begin + N Accumulate + Finalize) of N updates of P floats; throughput
// counts input bytes (N * P * 4). The fold reads each input once and the running mean once per
// fold_width updates, so ~0.7 of memcpy's read+write rate is what a memory-bound fold reaches
// where reading is as fast as copying. Updates are generated once; each repetition copies them
// outside the timed region, because Accumulate takes them by move.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fedml/algorithms/fedavg.h"
#include "fedml/core/model_state.h"
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

  FedAvgOptions options;
  options.fold_width = args.fold_width;
  FedAvg fedavg(options);  // one aggregator for all reps, as a server keeps one across rounds
  // memcpy and FedAvg reps alternate, so that a busy spell on a shared machine hits both; each
  // figure is the best over the reps.
  double copy_bw = 0.0;
  double best = 1e30;
  float checksum = 0.0f;
  for (int r = 0; r < args.reps; ++r) {
    copy_bw = std::max(copy_bw, memcpy_probe.Rep());
    std::vector<ClientUpdate> copies = updates;  // outside the timed region
    const auto t0 = Clock::now();
    fedml::Status st = fedavg.Begin(global, {});
    for (ClientUpdate& u : copies) {
      if (st.ok()) st = fedavg.Accumulate(std::move(u));
    }
    fedml::Result<fedml::core::ModelState> result =
        st.ok() ? fedavg.Finalize() : fedml::Result<fedml::core::ModelState>(st);
    const double s = Seconds(t0, Clock::now());
    if (!result.ok()) {
      std::fprintf(stderr, "FedAvg failed: %s\n", result.status().ToString().c_str());
      return 1;
    }
    checksum += result->data()[0];
    best = std::min(best, s);
  }
  const double input_bytes =
      static_cast<double>(args.clients) * static_cast<double>(args.params) * 4.0;
  const double agg_bw = input_bytes / best;
  const double ratio = agg_bw / copy_bw;

  std::printf("memcpy (read+write, %lld MB buffer): %.2f GB/s\n", args.memcpy_mb, copy_bw / 1e9);
  std::printf("FedAvg (N=%d, P=%lld, fold_width=%d): %.2f GB/s of input, %.2f ms/round\n",
              args.clients, static_cast<long long>(args.params), fedavg.fold_width(), agg_bw / 1e9,
              best * 1e3);
  std::printf("ratio FedAvg/memcpy: %.3f (checksum %g)\n", ratio, checksum);
  std::printf("goal >= 0.70: %s\n", ratio >= 0.70 ? "PASS" : "MISS");
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // std::bad_alloc for a model larger than memory
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
