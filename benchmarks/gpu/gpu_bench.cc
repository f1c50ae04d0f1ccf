// The GPU path against the CPU path, in one run; benchmarks/gpu/run.sh builds it
// against a CUDA LibTorch and samples the GPU's utilisation around the phases it prints.
//
//   gpu_bench [--device cuda:0] [--dataset fashion_mnist] [--model cnn] [--clients 32]
//             [--workers 1,2,4,8] [--cpu_workers N] [--agg_mb 64] [--tolerance 1e-3]
//
// 1. Parity: the same config and seed for 3 rounds on the CPU and on --device; the global models
//    must agree to --tolerance of the largest weight (max |cpu - gpu| / max |cpu|). TF32 is off
//    for the whole run, since it rounds float32 matrix products to 10-bit mantissas.
// 2. Clients trained per second: rounds of --clients clients on the CPU path (--cpu_workers
//    workers, one LibTorch thread each: every core busy) and on --device with 1, 2, 4, 8
//    concurrent workers (one CUDA stream each). Each line carries its phase's start and end
//    (milliseconds since the epoch) so run.sh can average the utilisation it sampled in between.
// 3. Aggregation: the device FedAvg's running mean (fedml/api/device_aggregation.h) over updates
//    already on the device, against device-to-device copy bandwidth measured in the same run.
//
// Exit status 1 when parity fails or a phase errs. With --device cpu it runs everything on the
// CPU (a smoke test of the same code; ctest runs it that way with --quick).
#include <fedml/fedml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fedml/api/device_aggregation.h"
#include "fedml/core/train/torch_bridge.h"

namespace {

using namespace fedml;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Args {
  std::string device = "cuda:0";
  std::string dataset = "fashion_mnist";
  std::string data_cache_dir;
  std::string model = "cnn";
  int clients = 32;
  std::vector<int> workers = {1, 2, 4, 8};
  int cpu_workers = 0;
  int rounds = 4;  // round 1 warms up and the last evaluates: 2 rounds measured
  double agg_mb = 64;
  double tolerance = 1e-3;
};

Result<api::Config> ConfigFor(const Args& a, const std::string& device, int workers, int rounds) {
  api::RawConfig raw = {{"dataset", a.dataset},
                        {"model", a.model},
                        {"client_num_in_total", std::to_string(std::max(a.clients, 20))},
                        {"client_num_per_round", std::to_string(a.clients)},
                        {"comm_round", std::to_string(rounds)},
                        {"frequency_of_the_test", std::to_string(rounds)},
                        {"worker_num", std::to_string(workers)},
                        {"random_seed", "0"},
                        {"device", device}};
  if (!a.data_cache_dir.empty()) raw["data_cache_dir"] = a.data_cache_dir;
  return api::BuildConfig({}, raw);
}

Status Parity(const Args& a) {
  FEDML_ASSIGN_OR_RETURN(api::Config cpu, ConfigFor(a, "cpu", 1, 3));
  FEDML_ASSIGN_OR_RETURN(api::Config dev, ConfigFor(a, a.device, 1, 3));
  FEDML_ASSIGN_OR_RETURN(api::RunSummary on_cpu, api::RunSimulation(cpu));
  FEDML_ASSIGN_OR_RETURN(api::RunSummary on_dev, api::RunSimulation(dev));
  const auto& x = on_cpu.final_model.flat();
  const auto& y = on_dev.final_model.flat();
  if (x.size() != y.size()) return Status::Internal("the two runs' models differ in size");
  double diff = 0.0;
  double scale = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(x[i])));
  }
  const double relative = scale > 0 ? diff / scale : diff;
  const bool ok = relative <= a.tolerance;
  std::printf(
      "parity: %s, 3 rounds of %d clients, seed 0: max |cpu - %s| = %.3g, max |w| = %.3g, "
      "relative %.3g (tolerance %.3g): %s; test accuracy cpu %.4f, %s %.4f\n",
      a.model.c_str(), a.clients, a.device.c_str(), diff, scale, relative, a.tolerance,
      ok ? "PASS" : "FAIL", on_cpu.final_accuracy, a.device.c_str(), on_dev.final_accuracy);
  if (!ok) return Status::Internal("the GPU path does not agree with the CPU path");
  return Status::Ok();
}

/// Clients trained per second over the rounds after the first (the warm-up: CUDA's context,
/// the caching allocator, cuDNN's algorithm search) that did not evaluate, or over every round
/// where that leaves none. The printed window (milliseconds since the epoch) spans those rounds,
/// so run.sh averages the utilisation of training, not of loading the data.
Result<double> Throughput(const Args& a, const std::string& device, int workers,
                          const std::string& label) {
  FEDML_ASSIGN_OR_RETURN(api::Config config, ConfigFor(a, device, workers, a.rounds));
  std::vector<std::int64_t> finished;  // when each round ended
  api::SimulationHooks hooks;
  hooks.on_round = [&finished](const api::RoundMetrics&) { finished.push_back(NowMs()); };
  const std::int64_t start = NowMs();
  FEDML_ASSIGN_OR_RETURN(api::RunSummary s, api::RunSimulation(config, hooks));
  if (finished.size() != s.rounds.size()) finished.assign(s.rounds.size(), NowMs());
  double seconds = 0.0;
  int clients = 0;
  std::int64_t from = -1;
  std::int64_t to = -1;
  for (std::size_t i = 1; i < s.rounds.size(); ++i) {
    if (s.rounds[i].evaluated) continue;
    seconds += s.rounds[i].wall_seconds;
    clients += s.rounds[i].clients;
    if (from < 0) from = finished[i - 1];
    to = finished[i];
  }
  if (clients == 0) {
    for (const auto& r : s.rounds) {
      seconds += r.wall_seconds;
      clients += r.clients;
    }
    from = start;
    to = finished.empty() ? NowMs() : finished.back();
  }
  const double rate = seconds > 0 ? clients / seconds : 0.0;
  std::printf("throughput %s device=%s workers=%d clients_per_s=%.2f start_ms=%lld end_ms=%lld\n",
              label.c_str(), device.c_str(), workers, rate, static_cast<long long>(from),
              static_cast<long long>(to));
  std::fflush(stdout);
  return rate;
}

void Synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

Status Aggregation(const Args& a, torch::Device device) {
  const auto numel = static_cast<std::int64_t>(a.agg_mb * 1e6 / 4);
  constexpr int kUpdates = 8;
  constexpr int kRepeats = 3;
  std::vector<torch::Tensor> updates;
  updates.reserve(kUpdates);
  for (int i = 0; i < kUpdates; ++i) {
    updates.push_back(torch::randn({numel}, torch::TensorOptions().device(device)));
  }
  torch::Tensor copy = torch::empty_like(updates[0]);
  double best_copy = 1e30;
  double best_mean = 1e30;
  for (int rep = 0; rep < kRepeats + 1; ++rep) {  // the first pass warms the allocator up
    Synchronize(device);
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& u : updates) copy.copy_(u);
    Synchronize(device);
    auto t1 = std::chrono::steady_clock::now();
    api::DeviceMean mean(numel, device);
    for (int i = 0; i < kUpdates; ++i) FEDML_RETURN_IF_ERROR(mean.Add(updates[i], 1.0 + i));
    Synchronize(device);
    auto t2 = std::chrono::steady_clock::now();
    if (rep == 0) continue;
    best_copy = std::min(best_copy, std::chrono::duration<double>(t1 - t0).count());
    best_mean = std::min(best_mean, std::chrono::duration<double>(t2 - t1).count());
  }
  const double bytes = static_cast<double>(kUpdates) * numel * 4;
  const double copy_gbs = bytes / best_copy / 1e9;
  const double mean_gbs = bytes / best_mean / 1e9;
  std::printf(
      "aggregation on %s: %d updates x %.0f MB: running mean %.1f GB/s of updates, "
      "device-to-device copy %.1f GB/s: ratio %.2f (the mean reads the update and the mean and "
      "writes the mean, plus one read for the finiteness check; a copy reads once and writes "
      "once)\n",
      device.str().c_str(), kUpdates, a.agg_mb, mean_gbs, copy_gbs, mean_gbs / copy_gbs);
  return Status::Ok();
}

int Run(const Args& a) {
  auto device = core::ParseDevice(a.device);
  if (!device.ok()) {
    std::fprintf(stderr, "error: %s\n", device.status().message().c_str());
    return 2;
  }
  // TF32 would round float32 products on Ampere and later; parity is stated for float32.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  if (Status st = Parity(a); !st.ok()) {
    std::fprintf(stderr, "error: parity: %s\n", st.message().c_str());
    return 1;
  }
  const int cpu_workers = a.cpu_workers > 0
                              ? a.cpu_workers
                              : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  auto cpu_rate = Throughput(a, "cpu", cpu_workers, "cpu");
  if (!cpu_rate.ok()) {
    std::fprintf(stderr, "error: cpu throughput: %s\n", cpu_rate.status().message().c_str());
    return 1;
  }
  double best = 0.0;
  int best_workers = 0;
  for (int w : a.workers) {
    auto rate = Throughput(a, a.device, w, "device");
    if (!rate.ok()) {
      std::fprintf(stderr, "error: %s throughput: %s\n", a.device.c_str(),
                   rate.status().message().c_str());
      return 1;
    }
    if (*rate > best) {
      best = *rate;
      best_workers = w;
    }
  }
  std::printf(
      "clients trained per second: %s %.2f (%d workers) against cpu %.2f (%d workers, one "
      "LibTorch thread each): ratio %.2f\n",
      a.device.c_str(), best, best_workers, *cpu_rate, cpu_workers,
      *cpu_rate > 0 ? best / *cpu_rate : 0.0);
  if (Status st = Aggregation(a, *device); !st.ok()) {
    std::fprintf(stderr, "error: aggregation: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"GPU path against the CPU path: parity, clients per second, aggregation"};
  Args a;
  bool quick = false;
  app.add_option("--device", a.device, "The GPU (cuda:N); cpu runs the same code on the CPU");
  app.add_option("--dataset", a.dataset, "fashion_mnist (Debian's) or synthetic");
  app.add_option("--data_cache_dir", a.data_cache_dir, "Where the data set's IDX files are");
  app.add_option("--model", a.model, "lr, mlp, cnn, resnet18_gn, ...");
  app.add_option("--clients", a.clients, "Clients per round")->check(CLI::Range(1, 100000));
  app.add_option("--workers", a.workers, "Concurrent workers on the GPU")->delimiter(',');
  app.add_option("--cpu_workers", a.cpu_workers, "CPU-path workers (default: every core)");
  app.add_option("--rounds", a.rounds, "Rounds per throughput phase")->check(CLI::Range(1, 1000));
  app.add_option("--agg_mb", a.agg_mb, "Megabytes per update in the aggregation phase")
      ->check(CLI::Range(0.001, 100000.0));
  app.add_option("--tolerance", a.tolerance, "Parity tolerance, relative to the largest weight");
  app.add_flag("--quick", quick, "A seconds-long smoke run: synthetic data, lr, 4 clients");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    a.dataset = "synthetic";
    a.model = "lr";
    a.clients = 4;
    a.rounds = 2;
    a.agg_mb = 4;
    if (a.workers.size() > 2) a.workers.resize(2);
  }
  for (int w : a.workers) {
    if (w < 1) {
      std::fprintf(stderr, "error: --workers takes counts >= 1, got %d\n", w);
      return 2;
    }
  }
  return Run(a);
} catch (const std::exception& e) {  // LibTorch reports CUDA failures by throwing
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
