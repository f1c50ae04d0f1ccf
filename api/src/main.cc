// The `fedml` command-line program.
//
// Why one file of this size: it is the program's table of subcommands (simulate, partition,
// server, aggregator, client, certs, ledger), each a CLI11 declaration and a short function that
// turns its flags into one library call; splitting it would spread one table over files.
#include <execinfo.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fedml/algorithms/registry.h"
#include "fedml/api/config.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/metrics.h"
#include "fedml/api/round_controller.h"
#include "fedml/api/simulation.h"
#include "fedml/config.h"
#include "fedml/core/json.h"
#include "fedml/core/log.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/ledger.h"
#include "fedml/core/security/ledger_heads.h"
#include "fedml/core/train/torch_bridge.h"
#if FEDML_WITH_GRPC
#include "fedml/api/deployment.h"
#endif
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

// A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the signal and a backtrace to stderr
// before the default action ends the process with the same signal (so the exit status still says
// 128 + N): a client or server that dies in the field, or in CI, leaves a stack to go on. Only
// async-signal-safe calls run in the handler; backtrace() is called once at install time so its
// lazy loading of libgcc does not happen inside it. Under AddressSanitizer its own handler, which
// says more, is kept.
void OnFatalSignal(int sig) {
  const char* name = sig == SIGSEGV  ? "SIGSEGV"
                     : sig == SIGBUS ? "SIGBUS"
                     : sig == SIGFPE ? "SIGFPE"
                     : sig == SIGILL ? "SIGILL"
                                     : "SIGABRT";
  const char head[] = "fatal: fedml received ";
  const char tail[] = "; backtrace:\n";
  (void)!write(STDERR_FILENO, head, sizeof head - 1);
  (void)!write(STDERR_FILENO, name, std::strlen(name));
  (void)!write(STDERR_FILENO, tail, sizeof tail - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void InstallCrashReporter() {
#ifndef __SANITIZE_ADDRESS__
  void* warm[1];
  (void)backtrace(warm, 1);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, OnFatalSignal);
#endif
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
        std::string what = "--" + key;
        what += " needs a value (--" + key + " VALUE)";
        return Status::InvalidArgument(what);
      }
      value = args[++i];
    }
    out[key] = value;
  }
  return out;
}

// The config of a subcommand: `config_file` (may be empty) with the `--KEY VALUE` overrides in
// `extras` on top. Its log_level is applied at once, so that every library message from here on
// (MPI and gRPC set-up included) obeys it.
fedml::Result<fedml::api::ConfigLoadResult> LoadConfigArgs(const std::string& config_file,
                                                           const std::vector<std::string>& extras) {
  FEDML_ASSIGN_OR_RETURN(fedml::api::RawConfig overrides, ParseOverrides(extras));
  FEDML_ASSIGN_OR_RETURN(fedml::api::ConfigLoadResult loaded,
                         fedml::api::LoadConfig(config_file, overrides));
  FEDML_ASSIGN_OR_RETURN(fedml::core::LogLevel level,
                         fedml::core::ParseLogLevel(loaded.config.log_level));
  fedml::core::SetLogLevel(level);
  return loaded;
}

void WarnIgnoredKeys(const fedml::api::ConfigLoadResult& loaded) {
  if (loaded.ignored_keys.empty()) return;
  std::string names;
  for (const auto& k : loaded.ignored_keys) names += (names.empty() ? "" : ", ") + k;
  FEDML_LOG_WARNING("ignoring keys that only mean something on FedML's cloud: %s", names.c_str());
}

void PrintBanner(const fedml::api::Config& config, const std::string& who) {
  // Asynchronous strategies have no rounds: they train max_concurrency clients at once and
  // count model versions.
  const bool async = fedml::algorithms::IsAsynchronous(config.federated_optimizer);
  const int at_once =
      config.max_concurrency > 0 ? config.max_concurrency : config.client_num_per_round;
  std::printf("fedml %s: %s on %s (%s, %d clients, %d %s), model %s, %d %s, %s\n",
              FEDML_VERSION_STRING, config.federated_optimizer.c_str(), config.dataset.c_str(),
              config.partition_method.c_str(), config.client_num_in_total,
              async ? at_once : config.client_num_per_round, async ? "at once" : "per round",
              config.model.c_str(), config.comm_round, async ? "versions" : "rounds", who.c_str());
  if (config.secure_aggregation != "none") {
    std::printf("secure aggregation: %s (the server sees only each round's sum)%s\n",
                config.secure_aggregation.c_str(),
                config.dropout_rate > 0 ? ", simulated dropouts" : "");
  }
  if (config.heterogeneity == "lognormal") {
    std::printf("virtual clock: log-normal devices, speed_sigma %g, bandwidth_sigma %g\n",
                config.speed_sigma, config.bandwidth_sigma);
  } else if (config.heterogeneity == "trace") {
    std::printf("virtual clock: devices from %s\n", config.trace_file.c_str());
  }
  std::fflush(stdout);
}

// What every server-side run reports: progress on the terminal, one JSON line per round in
// metrics_file, the final model for PyTorch, and the summary line.
class RunReporter {
 public:
  explicit RunReporter(const fedml::api::Config& config)
      : config_(config), progress_(config.comm_round) {}

  Status Open() {
    if (config_.metrics_file.empty()) return Status::Ok();
    auto m = fedml::api::MetricsFile::Open(config_.metrics_file);
    if (!m.ok()) return m.status();
    metrics_ = std::move(m).value();
    return Status::Ok();
  }

  fedml::api::SimulationHooks hooks() {
    fedml::api::SimulationHooks hooks;
    hooks.on_progress = [this](std::int64_t r, int done, int total) {
      progress_.ClientDone(r, done, total);
    };
    hooks.on_round = [this](const fedml::api::RoundMetrics& m) {
      progress_.RoundDone(m);
      if (metrics_ && write_status_.ok()) write_status_ = metrics_->Write(m);
    };
    return hooks;
  }

  int Finish(const fedml::Result<fedml::api::RunSummary>& summary) {
    if (!summary.ok()) return Fail(summary.status());
    if (!write_status_.ok()) return Fail(write_status_);
    std::string saved;
    if (!config_.model_file_cache_folder.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(config_.model_file_cache_folder, ec);
      const std::string path = config_.model_file_cache_folder + "/final_model.pt";
      Status st = ec ? Status::NotFound("cannot create '" + config_.model_file_cache_folder + "'")
                     : fedml::core::SaveStateForPyTorch(summary->final_model, path);
      if (!st.ok()) return Fail(st);
      saved = ", model saved to " + path;
    }
    if (!config_.ledger_file.empty()) {
      // The anchor for the ledger's tail: a chain alone cannot show records cut from its end.
      auto records = fedml::core::security::ReadLedger(config_.ledger_file);
      if (!records.ok()) return Fail(records.status());
      std::printf("ledger: %s, %zu records, last hash %s\n", config_.ledger_file.c_str(),
                  records->size(), records->empty() ? "(none)" : records->back().hash.c_str());
    }
    std::printf("summary: %d rounds, final test_accuracy %.4f, %.1f s%s\n",
                static_cast<int>(summary->rounds.size()), summary->final_accuracy,
                summary->wall_seconds, saved.c_str());
    return 0;
  }

 private:
  const fedml::api::Config& config_;
  std::optional<fedml::api::MetricsFile> metrics_;
  fedml::api::ProgressDisplay progress_;
  Status write_status_;
};

#if FEDML_WITH_MPI
// Lives until main has the exit code, so that a stuck MPI_Finalize (a dead rank) still ends the
// process with the code the run earned.
std::unique_ptr<fedml::core::mpi::Environment>& MpiEnvironment() {
  static std::unique_ptr<fedml::core::mpi::Environment> env;
  return env;
}
#endif

int RunSimulate(const std::string& config_file, const std::vector<std::string>& extras) {
  auto loaded = LoadConfigArgs(config_file, extras);
  if (!loaded.ok()) return Fail(loaded.status());
  const std::string backend = fedml::api::NormalizedBackend(loaded->config.backend);
#if FEDML_WITH_MPI
  std::unique_ptr<fedml::core::mpi::Environment>& mpi_env = MpiEnvironment();
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
    return Fail(
        Status::InvalidArgument("backend GRPC is for deployment: run `fedml server` and `fedml "
                                "client` (docs/deployment.md); "
                                "simulate runs backend inproc or MPI"));
  }
  WarnIgnoredKeys(*loaded);
  const fedml::api::Config& config = loaded->config;
  PrintBanner(config, std::to_string(config.worker_num) + " workers");
  RunReporter reporter(config);
  if (Status st = reporter.Open(); !st.ok()) return Fail(st);
#if FEDML_WITH_MPI
  fedml::Result<fedml::api::RunSummary> summary = fedml::Status::Internal("not run");
  if (backend == "mpi") {
    auto run = fedml::api::RunMpiSimulation(config, MPI_COMM_WORLD, reporter.hooks());
    if (!run.ok()) return Fail(run.status());
    summary = std::move(run->value());
  } else {
    summary = fedml::api::RunSimulation(config, reporter.hooks());
  }
#else
  auto summary = fedml::api::RunSimulation(config, reporter.hooks());
#endif
  return reporter.Finish(summary);
}

// `fedml partition`: prints the partition's per-client label statistics, and optionally writes the
// whole plan (each client's sample indices and the clients sampled in every round) as JSON, which
// benchmarks/pytorch_fedavg_baseline.py replays so both sides do exactly the same work.
int RunPartition(const std::string& config_file, const std::string& plan_file,
                 const std::vector<std::string>& extras) {
  auto loaded = LoadConfigArgs(config_file, extras);
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
  fedml::core::json::Writer plan;
  plan.BeginObject().Key("dataset").String(config.dataset).Key("clients").BeginArray();
  for (const auto& indices : part.client_indices) {
    plan.BeginArray();
    for (std::int64_t i : indices) plan.Int(i);
    plan.EndArray();
  }
  plan.EndArray().Key("rounds").BeginArray();
  for (int r = 0; r < config.comm_round; ++r) {
    plan.BeginArray();
    for (std::int64_t c : fedml::api::SampleClients(
             config.random_seed, r, config.client_num_in_total, config.client_num_per_round)) {
      plan.Int(c);
    }
    plan.EndArray();
  }
  plan.EndArray().EndObject();
  std::string text = plan.Take();
  text.push_back('\n');
  std::FILE* out = std::fopen(plan_file.c_str(), "w");
  if (!out) return Fail(Status::NotFound("cannot create plan file '" + plan_file + "'"));
  const bool written = std::fwrite(text.data(), 1, text.size(), out) == text.size();
  const bool ok = std::fclose(out) == 0 && written;
  if (!ok) return Fail(Status::DataLoss("writing plan file '" + plan_file + "' failed"));
  std::printf("plan written to %s\n", plan_file.c_str());
  return 0;
}

#if FEDML_WITH_GRPC
struct DeployFlags {
  std::string certs_dir;
  bool insecure = false;
  bool mutual_tls = false;
};

fedml::Result<fedml::core::grpc_comm::Security> SecurityFrom(const DeployFlags& f) {
  fedml::core::grpc_comm::Security sec;
  sec.insecure = f.insecure;
  sec.mutual_tls = f.mutual_tls;
  sec.certs_dir = f.certs_dir;
  if (f.insecure && f.mutual_tls) {
    return Status::InvalidArgument("--insecure and --mtls exclude each other");
  }
  if (f.insecure) {
    FEDML_LOG_WARNING(
        "--insecure: models, updates and client identities travel in plain text and any host can "
        "pose as a client; use it on a trusted network only");
  } else if (f.certs_dir.empty()) {
    return Status::InvalidArgument(
        "--certs DIR is required (the folder `fedml certs --out DIR --clients N` writes); plain "
        "text only with --insecure");
  }
  return sec;
}

fedml::Result<fedml::api::ConfigLoadResult> LoadWithOverrides(
    const std::string& config_file, const std::vector<std::string>& extras) {
  FEDML_ASSIGN_OR_RETURN(fedml::api::ConfigLoadResult loaded, LoadConfigArgs(config_file, extras));
  WarnIgnoredKeys(loaded);
  return loaded;
}

// The line deployment.sh and operators wait for: where a server (or aggregator) listens, and how.
void PrintListening(const std::string& address, int port, const DeployFlags& flags) {
  std::printf("listening on %s:%d (%s)\n", address.c_str(), port,
              flags.insecure     ? "plain text"
              : flags.mutual_tls ? "TLS, client certificates"
                                 : "TLS, client tokens");
  std::fflush(stdout);
}

int RunServerCommand(const std::string& config_file, const std::string& address, int port,
                     const DeployFlags& flags, bool resume,
                     const std::vector<std::string>& extras) {
  auto loaded = LoadWithOverrides(config_file, extras);
  if (!loaded.ok()) return Fail(loaded.status());
  auto security = SecurityFrom(flags);
  if (!security.ok()) return Fail(security.status());
  const fedml::api::Config& config = loaded->config;
  fedml::api::DeploymentServerArgs args;
  args.address = address + ":" + std::to_string(port);
  args.security = *security;
  args.resume = resume;
  args.on_listening = [&](int bound) { PrintListening(address, bound, flags); };
  PrintBanner(config,
              config.aggregator_num > 0
                  ? "server for " + std::to_string(config.aggregator_num) + " aggregators of " +
                        std::to_string(config.client_num_in_total) + " clients"
                  : "server for " + std::to_string(config.client_num_in_total) + " clients");
  RunReporter reporter(config);
  if (Status st = reporter.Open(); !st.ok()) return Fail(st);
  return reporter.Finish(fedml::api::RunDeploymentServer(config, args, reporter.hooks()));
}

struct AggregatorFlags {
  int id = -1;
  std::string upstream = "localhost:50051";
  std::string upstream_name;
  DeployFlags upstream_security;
  std::string address = "0.0.0.0";
  int port = 50052;
  int wait_clients = 0;
};

int RunAggregatorCommand(const std::string& config_file, const AggregatorFlags& flags,
                         const DeployFlags& down_flags, const std::vector<std::string>& extras) {
  auto loaded = LoadWithOverrides(config_file, extras);
  if (!loaded.ok()) return Fail(loaded.status());
  DeployFlags up_flags = flags.upstream_security;
  up_flags.insecure = down_flags.insecure;  // one network's choice, both ways
  auto down = SecurityFrom(down_flags);
  if (!down.ok()) return Fail(down.status());
  // --insecure was warned about once, for both directions.
  auto up = down_flags.insecure ? fedml::Result<fedml::core::grpc_comm::Security>(*down)
                                : SecurityFrom(up_flags);
  if (!up.ok()) return Fail(up.status().WithContext("upstream (--upstream_certs)"));
  fedml::api::DeploymentAggregatorArgs args;
  args.aggregator_id = flags.id;
  args.upstream = flags.upstream;
  args.upstream_name = flags.upstream_name;
  args.upstream_security = *up;
  args.address = flags.address + ":" + std::to_string(flags.port);
  args.security = *down;
  args.wait_clients = flags.wait_clients;
  args.on_listening = [&](int bound) { PrintListening(flags.address, bound, down_flags); };
  std::printf("fedml %s: aggregator %d of %s\n", FEDML_VERSION_STRING, flags.id,
              flags.upstream.c_str());
  std::fflush(stdout);
  const Status st = fedml::api::RunDeploymentAggregator(loaded->config, args);
  if (!st.ok()) return Fail(st);
  std::printf("aggregator %d: the server finished the run\n", flags.id);
  std::fflush(stdout);
  return 0;
}

int RunClientCommand(const std::string& config_file, const std::string& server, int client_id,
                     const std::string& server_name, const std::string& data_dir, int gpu_id,
                     const DeployFlags& flags, std::vector<std::string> extras) {
  if (gpu_id >= 0) {  // --gpu_id N is this edge client's device: device cuda:N
    for (const auto& a : extras) {
      if (a == "--device" || a.rfind("--device=", 0) == 0) {
        return Fail(Status::InvalidArgument(
            "--gpu_id and --device exclude each other (--gpu_id N means --device cuda:N)"));
      }
    }
    extras.push_back("--device=cuda:" + std::to_string(gpu_id));
  }
  auto loaded = LoadWithOverrides(config_file, extras);
  if (!loaded.ok()) return Fail(loaded.status());
  auto security = SecurityFrom(flags);
  if (!security.ok()) return Fail(security.status());
  fedml::api::DeploymentClientArgs args;
  args.server = server;
  args.client_id = client_id;
  args.security = *security;
  args.server_name = server_name;
  args.data_dir = data_dir;
  std::printf("fedml %s: client %d of %s\n", FEDML_VERSION_STRING, client_id, server.c_str());
  std::fflush(stdout);
  const Status st = fedml::api::RunDeploymentClient(loaded->config, args);
  if (!st.ok()) return Fail(st);
  std::printf("client %d: the server finished the run\n", client_id);
  std::fflush(stdout);
  return 0;
}
#endif

int RunCerts(const std::string& out, int clients, const std::vector<std::string>& hosts,
             bool overwrite) {
  fedml::core::security::CertOptions options;
  options.out_dir = out;
  options.clients = clients;
  for (const auto& h : hosts) {
    if (std::find(options.server_names.begin(), options.server_names.end(), h) ==
        options.server_names.end()) {
      options.server_names.push_back(h);
    }
  }
  const Status st = fedml::core::security::GenerateCredentials(options, overwrite);
  if (!st.ok()) return Fail(st);
  std::string names;
  for (const auto& n : options.server_names) names += (names.empty() ? "" : ", ") + n;
  std::printf(
      "wrote a CA, a server certificate for %s and %d client certificates and tokens to %s\n"
      "  server host: ca.pem server.pem server.key tokens.txt revoked.txt\n"
      "  client N:    ca.pem client-N.pem client-N.key (mutual TLS) or client-N.token\n"
      "keep ca.key offline; it only issues certificates\n",
      names.c_str(), clients, out.c_str());
  return 0;
}

// `fedml ledger verify FILE [--cert server.pem] [--heads FILE...]`: 0 when the chain is intact
// (and, with --cert, it holds every head the server signed: its own FILE.heads and each client's
// kept heads), 5 naming the first bad record or head.
int RunLedgerVerify(const std::string& path, const std::string& cert,
                    std::vector<std::string> heads) {
  auto report = fedml::core::security::VerifyLedger(path);
  if (!report.ok()) return Fail(report.status());
  if (!report->ok) {
    // The problem names the record and its line.
    std::fprintf(stderr, "error: ledger %s: %s\n", path.c_str(), report->problem.c_str());
    return 5;
  }
  auto records = fedml::core::security::ReadLedger(path);
  if (!records.ok()) return Fail(records.status());
  if (!cert.empty()) {
    auto cert_pem = fedml::core::security::ReadTextFile(cert);
    if (!cert_pem.ok()) return Fail(cert_pem.status());
    heads.insert(heads.begin(), path + ".heads");
    for (const std::string& file : heads) {
      auto text = fedml::core::security::ReadTextFile(file);
      if (!text.ok()) return Fail(text.status());
      const Status st = fedml::core::security::CheckLedgerHeads(*records, *text, file, *cert_pem);
      if (!st.ok()) {
        std::fprintf(stderr, "error: ledger %s: %s\n", path.c_str(), st.message().c_str());
        return 5;
      }
      std::printf("heads %s: every head signed by the server and held by the ledger\n",
                  file.c_str());
    }
  } else if (!heads.empty()) {
    return Fail(Status::InvalidArgument(
        "--heads needs --cert (the server certificate whose key signed them)"));
  }
  std::printf("ledger %s: %lld records, hash chain intact; last hash %s\n", path.c_str(),
              static_cast<long long>(report->records),
              records->empty() ? "(none)" : records->back().hash.c_str());
  std::printf(
      "compare the last hash with the one the server reported: the chain alone cannot "
      "show records cut from its end\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  InstallCrashReporter();
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

#if FEDML_WITH_GRPC
    std::string address = "0.0.0.0";
    int port = 50051;
    bool resume = false;
    DeployFlags server_flags;
    auto* server = app.add_subcommand(
        "server", "Serve a federated run to edge clients over gRPC (TLS by default)");
    server->add_option("--cf", config_file, "FedML-style YAML config file");
    server->add_option("--address", address, "Address to listen on (default 0.0.0.0)");
    server->add_option("--port", port, "TCP port (0 picks a free one)")
        ->check(CLI::Range(0, 65535));
    server->add_option("--certs", server_flags.certs_dir, "Folder written by `fedml certs`");
    server->add_flag("--mtls", server_flags.mutual_tls, "Demand client certificates (mutual TLS)");
    server->add_flag("--insecure", server_flags.insecure,
                     "Plain text (warns; trusted networks only)");
    server->add_flag("--resume", resume, "Continue from checkpoint_dir/checkpoint.fedml");
    server->allow_extras();

    AggregatorFlags agg_flags;
    DeployFlags agg_down;
    auto* aggregator = app.add_subcommand(
        "aggregator",
        "Serve edge clients and forward one partial aggregate per round to a `fedml server` "
        "(aggregator_num > 0)");
    aggregator->add_option("--cf", config_file, "FedML-style YAML config file");
    aggregator->add_option("--aggregator_id", agg_flags.id, "This aggregator's id (0-based)")
        ->required()
        ->check(CLI::NonNegativeNumber);
    aggregator->add_option("--upstream", agg_flags.upstream, "HOST:PORT of the server");
    aggregator->add_option("--upstream_certs", agg_flags.upstream_security.certs_dir,
                           "Folder with the server's ca.pem and this aggregator's client-N files");
    aggregator->add_flag("--upstream_mtls", agg_flags.upstream_security.mutual_tls,
                         "Present client-N.pem to the server (mutual TLS)");
    aggregator->add_option("--upstream_name", agg_flags.upstream_name,
                           "TLS name on the server certificate");
    aggregator->add_option("--address", agg_flags.address,
                           "Address its clients connect to (default 0.0.0.0)");
    aggregator->add_option("--port", agg_flags.port, "TCP port for its clients (0 picks one)")
        ->check(CLI::Range(0, 65535));
    aggregator->add_option("--certs", agg_down.certs_dir,
                           "Folder written by `fedml certs` for its clients");
    aggregator->add_flag("--mtls", agg_down.mutual_tls, "Demand client certificates (mutual TLS)");
    aggregator->add_flag("--insecure", agg_down.insecure,
                         "Plain text both ways (warns; trusted networks only)");
    aggregator
        ->add_option("--wait_clients", agg_flags.wait_clients,
                     "Clients connected before it registers with the server (default 0)")
        ->check(CLI::NonNegativeNumber);
    aggregator->allow_extras();

    std::string server_address = "localhost:50051";
    std::string server_name;
    int client_id = -1;
    DeployFlags client_flags;
    auto* client = app.add_subcommand("client", "Train as one edge client of a `fedml server`");
    client->add_option("--cf", config_file, "FedML-style YAML config file");
    client->add_option("--server", server_address,
                       "HOST:PORT of the server, or a comma list HOST:PORT,HOST:PORT,... of "
                       "servers to fail over to in turn when the connection is lost");
    client->add_option("--client_id", client_id, "This client's id (0-based)")->required();
    client->add_option("--certs", client_flags.certs_dir,
                       "Folder with ca.pem and this client's files");
    client->add_option("--server_name", server_name, "TLS name on the server certificate");
    std::string data_dir;
    client->add_option("--data_dir", data_dir,
                       "This client's own data (IDX files of the config's data set) instead of "
                       "partition N");
    int client_gpu_id = -1;
    client
        ->add_option("--gpu_id", client_gpu_id,
                     "Train on CUDA GPU N (the same as --device cuda:N; needs a CUDA LibTorch "
                     "build, docs/gpu.md)")
        ->check(CLI::NonNegativeNumber);
    client->add_flag("--mtls", client_flags.mutual_tls, "Present client-N.pem (mutual TLS)");
    client->add_flag("--insecure", client_flags.insecure, "Plain text (warns)");
    client->allow_extras();
#else
    // Named, so that asking for them says why they are missing rather than "not expected".
    auto* server = app.add_subcommand("server", "(not in this build: needs gRPC)");
    auto* client = app.add_subcommand("client", "(not in this build: needs gRPC)");
    auto* aggregator = app.add_subcommand("aggregator", "(not in this build: needs gRPC)");
    for (auto* deploy : {server, client, aggregator}) deploy->allow_extras();
#endif

    std::string certs_out;
    int certs_clients = 0;
    std::vector<std::string> certs_hosts;
    bool certs_overwrite = false;
    auto* certs = app.add_subcommand(
        "certs", "Make a CA, a server certificate and client certificates and tokens (OpenSSL)");
    certs->add_option("--out", certs_out, "Folder to write")->required();
    certs->add_option("--clients", certs_clients, "Number of clients")
        ->required()
        ->check(CLI::Range(1, 1000000));
    certs
        ->add_option("--hosts", certs_hosts,
                     "Extra server names (DNS or IP) besides localhost and 127.0.0.1")
        ->delimiter(',');
    certs->add_flag("--overwrite", certs_overwrite, "Replace an existing CA in --out");

    std::string ledger_path;
    auto* ledger = app.add_subcommand("ledger", "Contribution ledgers (ledger_file)");
    ledger->require_subcommand(1);
    auto* ledger_verify = ledger->add_subcommand(
        "verify", "Check a ledger's hash chain; report the first tampered record");
    ledger_verify->add_option("FILE", ledger_path, "The ledger (JSON Lines)")->required();
    std::string ledger_cert;
    std::vector<std::string> ledger_heads;
    ledger_verify->add_option("--cert", ledger_cert,
                              "The server certificate (server.pem): also check FILE.heads, the "
                              "heads the server signed");
    ledger_verify->add_option("--heads", ledger_heads,
                              "Heads files clients kept (ledger_heads_file): the ledger must hold "
                              "every head the server signed for them");

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    if (simulate->parsed()) {
      const int code = RunSimulate(config_file, simulate->remaining());
#if FEDML_WITH_MPI
      if (MpiEnvironment()) {
        MpiEnvironment()->set_exit_code_if_stuck(code);
        MpiEnvironment().reset();  // MPI_Finalize, bounded
      }
#endif
      return code;
    }
    if (partition->parsed()) return RunPartition(config_file, plan_file, partition->remaining());
    if (certs->parsed()) return RunCerts(certs_out, certs_clients, certs_hosts, certs_overwrite);
    if (ledger_verify->parsed()) return RunLedgerVerify(ledger_path, ledger_cert, ledger_heads);
#if FEDML_WITH_GRPC
    if (server->parsed()) {
      return RunServerCommand(config_file, address, port, server_flags, resume,
                              server->remaining());
    }
    if (aggregator->parsed()) {
      return RunAggregatorCommand(config_file, agg_flags, agg_down, aggregator->remaining());
    }
    if (client->parsed()) {
      return RunClientCommand(config_file, server_address, client_id, server_name, data_dir,
                              client_gpu_id, client_flags, client->remaining());
    }
#else
    if (server->parsed() || client->parsed() || aggregator->parsed()) {
      return Fail(Status::Unimplemented(
          "`fedml server`, `fedml aggregator` and `fedml client` are not in this build (configure "
          "with "
          "-DFEDML_WITH_GRPC=ON and install libgrpc++-dev, protobuf-compiler-grpc)"));
    }
#endif
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
