// Robust aggregation cost against FedAvg, measured in the same run, on --threads threads (1 by
// default; 0: every core) for FedAvg's fold and for the rules (RobustOptions::threads).
//
// One round (Begin + N Accumulate + Finalize) of N updates of P floats for FedAvg (default fold
// width) and for every robust rule; each figure is the best of R rounds, and each rule's time is
// printed as a ratio to FedAvg's. Updates are generated
// once. Accumulate takes its update by move, so each round's N copies are made before its clock
// starts. Rules that need f use f = 10 where n allows it, otherwise the largest f the rule
// allows (krum/multikrum: n >= 2f + 3; bulyan: n >= 4f + 3); trimmed_mean uses beta = 0.1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/robust.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "synthetic_updates.h"

namespace {

using fedml::algorithms::Aggregator;
using fedml::algorithms::ClientUpdate;
using Clock = std::chrono::steady_clock;

struct Args {
  int clients = 50;
  long long params = 1000000;
  int reps = 3;
  int threads = 1;
};

struct Timing {
  double best_s = 1e30;
  std::string note;  // the rule's round figures, e.g. geo_median's iteration count
  bool ok = true;
};

// Best of `reps` rounds of `agg` over copies of `updates` made outside the timed region.
Timing TimeRounds(Aggregator& agg, const fedml::core::ModelState& global,
                  const std::vector<ClientUpdate>& updates, int reps, float* checksum) {
  Timing t;
  for (int r = 0; r < reps; ++r) {
    std::vector<ClientUpdate> copies = updates;
    const auto t0 = Clock::now();
    fedml::Status st = agg.Begin(global, {});
    for (ClientUpdate& u : copies) {
      if (st.ok()) st = agg.Accumulate(std::move(u));
    }
    fedml::Result<fedml::core::ModelState> result =
        st.ok() ? agg.Finalize() : fedml::Result<fedml::core::ModelState>(st);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!result.ok()) {
      std::fprintf(stderr, "%s failed: %s\n", agg.name().c_str(),
                   result.status().ToString().c_str());
      t.ok = false;
      return t;
    }
    *checksum += result->data()[0];
    t.best_s = std::min(t.best_s, s);
  }
  for (const auto& [name, value] : agg.RoundFigures()) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s=%g", t.note.empty() ? "" : " ", name.c_str(), value);
    t.note += buf;
  }
  return t;
}

}  // namespace

int Main(int argc, char** argv) {
  Args args;
  CLI::App app("robust aggregation rules' cost per round against FedAvg");
  app.add_option("--clients", args.clients, "updates per round")->check(CLI::Range(1, 1 << 30));
  app.add_option("--params", args.params, "parameters per update")
      ->check(CLI::Range(1LL, 1LL << 34));
  app.add_option("--reps", args.reps, "timed rounds (best is kept)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--threads", args.threads, "threads for FedAvg and the rules (0: every core)")
      ->check(CLI::Range(0, 1 << 10));
  CLI11_PARSE(app, argc, argv);

  auto made = fedml::bench::SyntheticUpdates(args.clients, args.params);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  std::vector<ClientUpdate> updates = std::move(made).value();
  const fedml::core::ModelState global = fedml::core::ModelState::ZerosLike(updates[0].state);

  float checksum = 0.0f;
  fedml::algorithms::FedAvgOptions fedavg_options;
  fedavg_options.threads = args.threads;
  fedml::algorithms::FedAvg fedavg(fedavg_options);
  const Timing base = TimeRounds(fedavg, global, updates, args.reps, &checksum);
  if (!base.ok) return 1;

  const int n = args.clients;
  const int f_krum = std::min(10, (n - 3) / 2);
  const int f_bulyan = std::min(10, (n - 3) / 4);
  std::printf(
      "robust aggregation, one round: N=%d clients, P=%lld parameters, best of %d, threads %d\n", n,
      static_cast<long long>(args.params), args.reps, args.threads);
  std::printf("%-20s %12s %10s  %s\n", "rule", "s/round", "x FedAvg", "notes");
  std::printf("%-20s %12.4f %10.2f\n", "FedAvg", base.best_s, 1.0);
  for (const std::string& rule : fedml::algorithms::DefenseTypeNames()) {
    fedml::algorithms::RobustOptions options;
    options.defense_type = rule;
    options.beta = 0.1;
    options.threads = args.threads;
    int f = 0;
    if (rule == "krum" || rule == "multikrum") f = f_krum;
    if (rule == "bulyan") f = f_bulyan;
    if (f < 0) {
      std::printf("%-20s %12s %10s  n too small\n", rule.c_str(), "-", "-");
      continue;
    }
    options.byzantine_client_num = f;
    auto agg = fedml::algorithms::CreateRobustAggregator(options);
    if (!agg.ok()) {
      std::fprintf(stderr, "%s\n", agg.status().ToString().c_str());
      return 1;
    }
    const Timing t = TimeRounds(**agg, global, updates, args.reps, &checksum);
    if (!t.ok) return 1;
    std::string note = t.note;
    if (rule == "krum" || rule == "multikrum" || rule == "bulyan") {
      std::string with_f = "f=" + std::to_string(f);
      if (!note.empty()) with_f += " " + note;
      note = std::move(with_f);
    }
    std::printf("%-20s %12.4f %10.2f  %s\n", rule.c_str(), t.best_s, t.best_s / base.best_s,
                note.c_str());
  }
  std::printf("(checksum %g)\n", checksum);
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
