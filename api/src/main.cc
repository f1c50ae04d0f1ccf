// The `fedml` command-line program.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fedml/api/config.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/metrics.h"
#include "fedml/api/round_controller.h"
#include "fedml/api/simulation.h"
#include "fedml/config.h"
#include "fedml/core/train/torch_bridge.h"
#if FEDML_WITH_MPI
#include "fedml/api/mpi_runner.h"
#include "fedml/core/comm/mpi.h"
#endif

namespace {

using fedml::Status;
using fedml::StatusCode;

// Exit codes: 0 success, 2 bad usage or config, 3 missing input file, 4 run failed (timeout,
// lost workers), 1 anything else.
int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnimplemented:
    case StatusCode::kFailedPrecondition:
      return 2;
    case StatusCode::kNotFound:
      return 3;
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kUnavailable:
    case StatusCode::kAborted:
      return 4;
    default:
      return 1;
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return ExitCodeFor(s);
}

// `--KEY VALUE` and `--KEY=VALUE` pairs left over after CLI11's own options.
fedml::Result<fedml::api::RawConfig> ParseOverrides(const std::vector<std::string>& args) {
  fedml::api::RawConfig out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.size() < 3) {
      return Status::InvalidArgument("unexpected argument '" + a +
                                     "'; config overrides are --KEY VALUE");
    }
    std::string key = a.substr(2);
    std::string value;
    const auto eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) {
        return Status::InvalidArgument("--" + key + " needs a value (--" + key + " VALUE)");
      }
      value = args[++i];
    }
    out[key] = value;
  }
  return out;
}

int RunSimulate(const std::string& config_file, const std::vector<std::string>& extras) {
  auto overrides = ParseOverrides(extras);
  if (!overrides.ok()) return Fail(overrides.status());
  auto loaded = fedml::api::LoadConfig(config_file, *overrides);
  if (!loaded.ok()) return Fail(loaded.status());
  const std::string backend = fedml::api::NormalizedBackend(loaded->config.backend);
#if FEDML_WITH_MPI
  std::unique_ptr<fedml::core::mpi::Environment> mpi_env;
  int rank = 0;
  if (backend == "mpi") {
    auto env = fedml::core::mpi::Environment::Create(nullptr, nullptr);
    if (!env.ok()) return Fail(env.status());
    mpi_env = std::move(env).value();
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const auto& given = loaded->given_keys;
    if (std::find(given.begin(), given.end(), "worker_num") == given.end()) {
      loaded->config.worker_num = size - 1;  // one server, the other ranks work
    }
  }
  // Only rank 0 (the server) prints progress and results; workers print only their errors.
  if (rank != 0) {
    auto run = fedml::api::RunMpiSimulation(loaded->config, MPI_COMM_WORLD);
    if (!run.ok()) {
      std::fprintf(stderr, "error: rank %d: %s\n", rank, run.status().message().c_str());
      return ExitCodeFor(run.status());
    }
    return 0;
  }
#else
  if (backend == "mpi") {
    return Fail(Status::InvalidArgument(
        "backend MPI is not in this build (configure with -DFEDML_WITH_MPI=ON and install "
        "libopenmpi-dev)"));
  }
#endif
  if (backend == "grpc") {
    return Fail(Status::InvalidArgument(
        "backend GRPC is for `fedml server` and `fedml client`, which this version does not have "
        "yet; use backend inproc or MPI"));
  }
  if (!loaded->ignored_keys.empty()) {
    std::string names;
    for (const auto& k : loaded->ignored_keys) names += (names.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "warning: ignoring keys that only mean something on FedML's cloud: %s\n",
                 names.c_str());
  }
  const fedml::api::Config& config = loaded->config;
  std::printf(
      "fedml %s: %s on %s (%s, %d clients, %d per round), model %s, %d rounds, %d workers\n",
      FEDML_VERSION_STRING, config.federated_optimizer.c_str(), config.dataset.c_str(),
      config.partition_method.c_str(), config.client_num_in_total, config.client_num_per_round,
      config.model.c_str(), config.comm_round, config.worker_num);
  std::fflush(stdout);

  std::optional<fedml::api::MetricsFile> metrics;
  if (!config.metrics_file.empty()) {
    auto m = fedml::api::MetricsFile::Open(config.metrics_file);
    if (!m.ok()) return Fail(m.status());
    metrics = std::move(m).value();
  }
  fedml::api::ProgressDisplay progress(config.comm_round);
  Status write_status;
  fedml::api::SimulationHooks hooks;
  hooks.on_progress = [&](std::int64_t r, int done, int total) {
    progress.ClientDone(r, done, total);
  };
  hooks.on_round = [&](const fedml::api::RoundMetrics& m) {
    progress.RoundDone(m);
    if (metrics && write_status.ok()) write_status = metrics->Write(m);
  };
#if FEDML_WITH_MPI
  fedml::Result<fedml::api::RunSummary> summary = fedml::Status::Internal("not run");
  if (backend == "mpi") {
    auto run = fedml::api::RunMpiSimulation(config, MPI_COMM_WORLD, hooks);
    if (!run.ok()) return Fail(run.status());
    summary = std::move(run->value());
  } else {
    summary = fedml::api::RunSimulation(config, hooks);
  }
#else
  auto summary = fedml::api::RunSimulation(config, hooks);
#endif
  if (!summary.ok()) return Fail(summary.status());
  if (!write_status.ok()) return Fail(write_status);

  std::string saved;
  if (!config.model_file_cache_folder.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.model_file_cache_folder, ec);
    const std::string path = config.model_file_cache_folder + "/final_model.pt";
    Status st = ec ? Status::NotFound("cannot create '" + config.model_file_cache_folder + "'")
                   : fedml::core::SaveStateForPyTorch(summary->final_model, path);
    if (!st.ok()) return Fail(st);
    saved = ", model saved to " + path;
  }
  std::printf("summary: %d rounds, final test_accuracy %.4f, %.1f s%s\n",
              static_cast<int>(summary->rounds.size()), summary->final_accuracy,
              summary->wall_seconds, saved.c_str());
  return 0;
}

// `fedml partition`: prints the partition's per-client label statistics, and optionally writes the
// whole plan (each client's sample indices and the clients sampled in every round) as JSON, which
// benchmarks/pytorch_fedavg_baseline.py replays so both sides do exactly the same work.
int RunPartition(const std::string& config_file, const std::string& plan_file,
                 const std::vector<std::string>& extras) {
  auto overrides = ParseOverrides(extras);
  if (!overrides.ok()) return Fail(overrides.status());
  auto loaded = fedml::api::LoadConfig(config_file, *overrides);
  if (!loaded.ok()) return Fail(loaded.status());
  const fedml::api::Config& config = loaded->config;
  auto data = fedml::api::LoadFederatedData(config);
  if (!data.ok()) return Fail(data.status());
  const auto& part = (*data)->partition;
  std::fputs(fedml::core::data::FormatLabelStatistics(
                 fedml::core::data::LabelStatistics(part, (*data)->train.labels,
                                                    (*data)->train.num_classes))
                 .c_str(),
             stdout);
  if (plan_file.empty()) return 0;
  std::FILE* out = std::fopen(plan_file.c_str(), "w");
  if (!out) return Fail(Status::NotFound("cannot create plan file '" + plan_file + "'"));
  std::fprintf(out, "{\"dataset\":\"%s\",\"clients\":[", config.dataset.c_str());
  for (std::size_t c = 0; c < part.num_clients(); ++c) {
    std::fputs(c ? ",[" : "[", out);
    const auto& idx = part.client_indices[c];
    for (std::size_t i = 0; i < idx.size(); ++i) {
      std::fprintf(out, i ? ",%lld" : "%lld", static_cast<long long>(idx[i]));
    }
    std::fputs("]", out);
  }
  std::fputs("],\"rounds\":[", out);
  for (int r = 0; r < config.comm_round; ++r) {
    const auto sampled = fedml::api::SampleClients(
        config.random_seed, r, config.client_num_in_total, config.client_num_per_round);
    std::fputs(r ? ",[" : "[", out);
    for (std::size_t i = 0; i < sampled.size(); ++i) {
      std::fprintf(out, i ? ",%lld" : "%lld", static_cast<long long>(sampled[i]));
    }
    std::fputs("]", out);
  }
  std::fputs("]}\n", out);
  const bool ok = std::fclose(out) == 0;
  if (!ok) return Fail(Status::DataLoss("writing plan file '" + plan_file + "' failed"));
  std::printf("plan written to %s\n", plan_file.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    CLI::App app{"fedml: federated learning with LibTorch (simulation, MPI, gRPC)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", FEDML_VERSION_STRING);

    std::string config_file;
    auto* simulate = app.add_subcommand(
        "simulate", "Run a federated simulation in this process (any config key as --KEY VALUE)");
    simulate->add_option("--cf", config_file, "FedML-style YAML config file");
    simulate->allow_extras();

    std::string plan_file;
    auto* partition = app.add_subcommand(
        "partition", "Print the per-client label statistics of the configured partition");
    partition->add_option("--cf", config_file, "FedML-style YAML config file");
    partition->add_option("--plan_file", plan_file,
                          "Also write each client's sample indices and every round's sampled "
                          "clients as JSON");
    partition->allow_extras();

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    if (simulate->parsed()) return RunSimulate(config_file, simulate->remaining());
    if (partition->parsed()) return RunPartition(config_file, plan_file, partition->remaining());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
