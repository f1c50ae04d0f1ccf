#include "fedml/api/deployment.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/crypto.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "fedml/api/federated_data.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/core/log.h"

namespace fedml::api {

namespace {

// What an operator watching a client wants to see, and (with whole_test_set) the evaluation of a
// client with its own data: all of its test samples, whatever shard the server asked for, since
// the server weighs every client's answer by its sample count.
class ClientTrainerView final : public ForwardingClientTrainer {
 public:
  ClientTrainerView(std::unique_ptr<ClientTrainer> inner, bool verbose, bool whole_test_set)
      : ForwardingClientTrainer(std::move(inner)),
        verbose_(verbose),
        whole_test_set_(whole_test_set) {}
  Result<LocalUpdate> Train(const TrainTask& task) override {
    if (verbose_) {
      std::printf("round %lld: training\n", static_cast<long long>(task.round) + 1);
      std::fflush(stdout);
    }
    const auto t0 = core::Clock::now();
    auto update = inner_->Train(task);
    if (verbose_ && update.ok()) {
      const auto loss = update->metrics.find("train_loss");
      std::printf("round %lld: trained on %lld samples, train_loss %.4f, %.2f s\n",
                  static_cast<long long>(task.round) + 1,
                  static_cast<long long>(update->num_samples),
                  loss == update->metrics.end() ? 0.0 : loss->second,
                  std::chrono::duration<double>(core::Clock::now() - t0).count());
      std::fflush(stdout);
    }
    return update;
  }
  Result<Evaluation> Evaluate(const EvalTask& task) override {
    EvalTask mine = task;
    if (whole_test_set_) {
      mine.shard = 0;
      mine.num_shards = 1;
    }
    return inner_->Evaluate(mine);
  }

 private:
  bool verbose_;
  bool whole_test_set_;
};

// The built-in trainer over a client's own folder: every training sample is client_id's.
Result<ClientTrainerFactory> LocalDataFactory(const Config& config, const std::string& dir,
                                              int client_id) {
  if (config.dataset == "synthetic") {
    return Status::InvalidArgument(
        "--data_dir holds the files of a data set (mnist, fashion_mnist, cifar10, cifar100, "
        "femnist, shakespeare, npy); synthetic data are generated, not read");
  }
  Config local = config;
  local.data_cache_dir = dir;
  auto data = std::make_shared<FederatedData>();
  data->name = config.dataset;
  FEDML_ASSIGN_OR_RETURN(core::data::TrainTest tt,
                         core::data::LoadDatasetFiles(config.dataset, dir));
  data->train = std::move(tt.train);
  data->test = std::move(tt.test);
  data->partition.client_indices.resize(static_cast<std::size_t>(config.client_num_in_total));
  auto& mine = data->partition.client_indices[static_cast<std::size_t>(client_id)];
  mine.resize(data->train.size());
  std::iota(mine.begin(), mine.end(), std::int64_t{0});
  std::shared_ptr<const FederatedData> shared = data;
  return TorchTrainerFactory(local, shared, BuiltinModelFactory(local, shared));
}

// `--server a:1,b:2`: the first address, then the fallbacks in order.
Result<std::vector<std::string>> SplitServers(const std::string& list) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = list.find(',', begin);
    std::string item =
        list.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    const std::size_t first = item.find_first_not_of(" \t");
    item = first == std::string::npos
               ? ""
               : item.substr(first, item.find_last_not_of(" \t") - first + 1);
    if (item.empty()) {
      return Status::InvalidArgument("--server \"" + list +
                                     "\" has an empty address; give HOST:PORT or a comma list "
                                     "HOST:PORT,HOST:PORT (tried in turn)");
    }
    out.push_back(std::move(item));
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

}  // namespace

std::uint64_t ModelWireBytes(const core::ModelState& model) {
  std::uint64_t bytes = 4 * static_cast<std::uint64_t>(model.numel());  // float32 on the wire
  for (const core::TensorSpec& t : model.specs()) bytes += t.name.size() + 16 + 10 * t.shape.size();
  return bytes;
}

std::uint64_t UpdateLimitForModel(std::uint64_t model_bytes) {
  return 4 * model_bytes + (std::uint64_t{64} << 20);
}

Result<RunSummary> RunDeploymentServer(const Config& config, const DeploymentServerArgs& args,
                                       const SimulationHooks& hooks) {
  if (config.min_available_clients > config.client_num_in_total) {
    return Status::InvalidArgument(
        "min_available_clients " + std::to_string(config.min_available_clients) +
        " is more than client_num_in_total " + std::to_string(config.client_num_in_total));
  }
  if (config.min_clients > config.client_num_per_round) {
    return Status::InvalidArgument("min_clients " + std::to_string(config.min_clients) +
                                   " is more than client_num_per_round " +
                                   std::to_string(config.client_num_per_round) +
                                   "; no round could ever reach it");
  }
  ServerOptions options = ServerOptionsFrom(config);
  options.fixed_clients = true;
  options.min_clients = config.min_clients;
  // The clients know the run's seed, so the spot-check key must not come from it: the
  // controller draws a random one.
  options.verification.secret.clear();
  const bool signed_rounds = config.secure_aggregation != "none" && config.secagg_signed_keys &&
                             !args.security.insecure && args.security.mutual_tls;
  if (signed_rounds) {
    // The clients' certificates sign their keys (secagg_auth.h): the server checks each against
    // the CA that admits them over TLS, and runs every secure round signed.
    FEDML_ASSIGN_OR_RETURN(options.secure.signing_ca_pem,
                           core::security::ReadTextFile(args.security.certs_dir + "/ca.pem"));
    FEDML_LOG_INFO(
        "secure aggregation rounds are signed: clients sign their keys with their TLS "
        "certificates, and a consistency round runs before unmasking (secagg_signed_keys)");
  }
  if (!config.ledger_file.empty() && !args.security.insecure) {
    // The ledger's heads are signed with the key of server.pem, which the clients can check.
    FEDML_ASSIGN_OR_RETURN(options.ledger_signing_key,
                           core::security::ReadTextFile(args.security.certs_dir + "/server.key"));
  }
  std::optional<core::ModelState> initial;
  if (args.resume) {
    if (config.checkpoint_dir.empty()) {
      return Status::InvalidArgument("--resume needs checkpoint_dir (where the checkpoint is)");
    }
    FEDML_ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(config.checkpoint_dir));
    if (ckpt.round >= config.comm_round) {
      return Status::FailedPrecondition("the checkpoint in " + config.checkpoint_dir +
                                        " is after round " + std::to_string(ckpt.round) + " of " +
                                        std::to_string(config.comm_round) +
                                        "; nothing is left to run");
    }
    FEDML_LOG_INFO("resuming after round %lld from %s/checkpoint.fedml",
                   static_cast<long long>(ckpt.round), config.checkpoint_dir.c_str());
    options.start_round = ckpt.round;
    options.start_model_version = ckpt.model_version;
    options.start_strategy_state = std::move(ckpt.strategy_state);
    initial = std::move(ckpt.model);
  }
  // The server needs the model's shape only (and, without a checkpoint, its initial values):
  // the factory's trainer for index client_num_in_total provides it.
  Config server_config = config;
  server_config.worker_num = config.client_num_in_total;
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(server_config, hooks));

  if (config.max_update_mb == 0) {
    // The update limit follows the model (UpdateLimitForModel), not the 16 GiB any model could
    // need: what one hostile push can make the server hold. The server's trainer gives the model
    // as RunServer would take it, so it is handed on as the initial model unchanged.
    if (!initial) {
      FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> probe,
                             factory(server_config.worker_num));
      FEDML_ASSIGN_OR_RETURN(initial, probe->GetState());
    }
    options.decode.max_frame_bytes = UpdateLimitForModel(ModelWireBytes(*initial));
    FEDML_LOG_INFO("max_update_mb 0: updates up to %llu bytes (4 x the model's %llu + 64 MiB)",
                   static_cast<unsigned long long>(options.decode.max_frame_bytes),
                   static_cast<unsigned long long>(ModelWireBytes(*initial)));
  }
  core::grpc_comm::ServerOptions comm_options = GrpcServerOptionsFrom(config);
  comm_options.address = args.address;
  // With an aggregation tier the server's ranks are its aggregators, not the clients.
  const bool tier = config.aggregator_num > 0;
  comm_options.num_clients = tier ? config.aggregator_num : config.client_num_in_total;
  comm_options.security = args.security;
  comm_options.max_frame_bytes = options.decode.max_frame_bytes;
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::grpc_comm::ServerCommunicator> comm,
                         core::grpc_comm::StartServer(comm_options));
  if (args.on_listening) args.on_listening(comm->bound_port());
  core::grpc_comm::ServerCommunicator* server = comm.get();
  // How many clients must be connected before a round (asynchronous: before the first task).
  // By default the first round waits for every client it may sample (client_num_per_round):
  // starting with whoever connected first would run the round, or a whole FedBuff run, before
  // the rest have even dialled in, and sample clients that are not there. Later rounds wait only
  // for min_clients, so a client that is gone for good costs its updates, not the run.
  // With a tier the first round waits for every aggregator (each waits for its own clients
  // before it registers, --wait_clients), later ones for one.
  const int first_wait = tier ? config.aggregator_num
                         : config.min_available_clients > 0
                             ? config.min_available_clients
                             : std::max(config.min_clients, config.client_num_per_round);
  const int later_wait = tier                               ? 1
                         : config.min_available_clients > 0 ? config.min_available_clients
                                                            : config.min_clients;
  options.is_connected = [server](int rank) { return server->is_live(rank); };
  options.wait_for_clients = [server, first_wait, later_wait,
                              first = true](core::Deadline deadline) mutable {
    const int needed = first ? first_wait : later_wait;
    first = false;
    return server->WaitForClients(needed, deadline)
        .WithContext("waiting for " + std::to_string(needed) +
                     " connected clients (min_available_clients)");
  };
  return RunServer(server_config, *comm, factory, hooks, options, std::move(initial));
}

Status RunDeploymentClient(const Config& config, const DeploymentClientArgs& args,
                           const SimulationHooks& hooks) {
  if (args.client_id < 0 || args.client_id >= config.client_num_in_total) {
    return Status::InvalidArgument("client_id " + std::to_string(args.client_id) +
                                   " is outside [0, " + std::to_string(config.client_num_in_total) +
                                   ") (client_num_in_total)");
  }
  FEDML_ASSIGN_OR_RETURN(std::vector<std::string> servers, SplitServers(args.server));
  // The trainer first: a client whose data is missing should not take a seat on the server.
  const bool local = !args.data_dir.empty() && !hooks.trainer_factory;
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory,
                         local ? LocalDataFactory(config, args.data_dir, args.client_id)
                               : TrainerFactoryFor(config, hooks));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> inner, factory(args.client_id));
  auto trainer = std::make_unique<ClientTrainerView>(std::move(inner), args.verbose, local);
  core::grpc_comm::ClientOptions options;
  options.server = servers.front();
  options.fallback_servers.assign(servers.begin() + 1, servers.end());
  options.client_id = args.client_id;
  options.security = args.security;
  options.server_name = args.server_name;
  options.connect_timeout = ServerOptionsFrom(config).round_timeout;  // round_timeout_s
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::Communicator> comm,
                         core::grpc_comm::ConnectClient(options));
  // Local DP noise from a secret the server cannot know (the run's seed is in its config).
  FEDML_ASSIGN_OR_RETURN(core::Bytes noise_secret, core::security::SecureRandomBytes(32));
  SecureIdentity identity;
  if (config.secure_aggregation != "none" && config.secagg_signed_keys && !args.security.insecure &&
      args.security.mutual_tls) {
    // The mutual-TLS key and certificate sign this client's secure-aggregation keys; ca.pem
    // checks its peers' (secagg_auth.h).
    const std::string base = args.security.certs_dir + "/client-" + std::to_string(args.client_id);
    FEDML_ASSIGN_OR_RETURN(identity.key_pem, core::security::ReadTextFile(base + ".key"));
    FEDML_ASSIGN_OR_RETURN(identity.certificate_pem, core::security::ReadTextFile(base + ".pem"));
    FEDML_ASSIGN_OR_RETURN(identity.ca_pem,
                           core::security::ReadTextFile(args.security.certs_dir + "/ca.pem"));
  }
  return RunWorker(config, *comm, std::move(trainer), std::move(noise_secret), identity);
}

}  // namespace fedml::api
