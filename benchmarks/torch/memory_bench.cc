// Peak memory of a simulation with 1000 clients and a 1M-parameter model, in model copies.
//
//   memory_bench [--workers W] [--clients N] [--per_round K] [--rounds R]
//
// The data set is built first; the peak resident set (VmHWM) is then reset through
// /proc/self/clear_refs and read again after each run, so a figure is what the run itself adds.
// The same run is made twice, with the 1M-parameter MLP and with a 1-unit one: the difference
// divided by the model's bytes is the number of model copies alive at the peak, without the
// fixed per-thread costs (LibTorch and OpenBLAS work buffers, stacks) that do not grow with the
// model. Goal: about worker_num + a few copies, independent of the number of clients.
#include <fedml/fedml.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

long ReadStatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 2, clients = 1000, per_round = 50, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--workers")
      workers = v;
    else if (k == "--clients")
      clients = v;
    else if (k == "--per_round")
      per_round = v;
    else if (k == "--rounds")
      rounds = v;
    else {
      std::fprintf(stderr, "unknown option %s; allowed: --workers --clients --per_round --rounds\n",
                   k.c_str());
      return 2;
    }
  }
  auto config = fedml::api::BuildConfig({}, {{"dataset", "synthetic"},
                                             {"client_num_in_total", std::to_string(clients)},
                                             {"client_num_per_round", std::to_string(per_round)},
                                             {"comm_round", std::to_string(rounds)},
                                             {"worker_num", std::to_string(workers)},
                                             {"batch_size", "32"},
                                             {"model_file_cache_folder", ""}});
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", config.status().message().c_str());
    return 2;
  }
  auto data = fedml::api::LoadFederatedData(*config);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", data.status().message().c_str());
    return 3;
  }
  const std::int64_t in = (*data)->train.sample_shape[0];
  // Runs the simulation with an MLP of `hidden` units; returns the MB the run added to the peak.
  auto run = [&](std::int64_t hidden, std::size_t* params) -> double {
    fedml::api::ModelFactory model = [in, hidden]() -> fedml::Result<torch::nn::AnyModule> {
      return torch::nn::AnyModule(fedml::core::Mlp(in, 10, hidden));
    };
    *params = fedml::core::StateFromModule(*model()->ptr())->numel();
    fedml::api::SimulationHooks hooks;
    hooks.trainer_factory = fedml::api::TorchTrainerFactory(*config, *data, model);
    std::ofstream("/proc/self/clear_refs") << "5";  // reset VmHWM to the current RSS
    const long before_kb = ReadStatusKb("VmRSS:");
    auto summary = fedml::api::RunSimulation(*config, hooks);
    if (!summary.ok()) {
      std::fprintf(stderr, "error: %s\n", summary.status().message().c_str());
      std::exit(4);
    }
    return static_cast<double>(ReadStatusKb("VmHWM:") - before_kb) * 1024 / 1e6;
  };
  const double data_mb =
      static_cast<double>(((*data)->train.features.size() + (*data)->test.features.size()) * 4) /
      1e6;
  std::size_t small_params = 0, params = 0;
  const double small_mb = run(1, &small_params);
  const double big_mb = run(1000, &params);  // 60 -> 1000 -> 1000 -> 10: 1,072,010 parameters
  const double model_mb = static_cast<double>(params) * 4 / 1e6;
  std::printf("clients %d (%d per round), %d rounds, %d workers; data set %.1f MB\n", clients,
              per_round, rounds, workers, data_mb);
  std::printf(
      "peak added by the run: %.1f MB with a %zu-parameter model, %.1f MB with %zu "
      "parameters (%.1f MB)\n",
      small_mb, small_params, big_mb, params, model_mb);
  std::printf("model copies at the peak: %.1f (worker_num = %d); fixed per-run cost %.1f MB\n",
              (big_mb - small_mb) / model_mb, workers, small_mb);
  return 0;
}
