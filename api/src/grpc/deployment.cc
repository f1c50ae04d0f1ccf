#include "fedml/api/deployment.h"

#include <cstdio>

namespace fedml::api {

Result<RunSummary> RunDeploymentServer(const Config& config, const DeploymentServerArgs& args,
                                       const SimulationHooks& hooks) {
  if (config.min_clients > config.client_num_per_round) {
    return Status::InvalidArgument("min_clients " + std::to_string(config.min_clients) +
                                   " is more than client_num_per_round " +
                                   std::to_string(config.client_num_per_round) +
                                   "; no round could ever reach it");
  }
  ServerOptions options = ServerOptionsFrom(config);
  options.fixed_clients = true;
  options.min_clients = config.min_clients;
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
    std::fprintf(stderr, "resuming after round %lld from %s/checkpoint.fedml\n",
                 static_cast<long long>(ckpt.round), config.checkpoint_dir.c_str());
    options.start_round = ckpt.round;
    options.start_model_version = ckpt.model_version;
    initial = std::move(ckpt.model);
  }
  // The server needs the model's shape only (and, without a checkpoint, its initial values):
  // the factory's trainer for index client_num_in_total provides it.
  Config server_config = config;
  server_config.worker_num = config.client_num_in_total;
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(server_config, hooks));

  core::grpc_comm::ServerOptions comm_options;
  comm_options.address = args.address;
  comm_options.num_clients = config.client_num_in_total;
  comm_options.security = args.security;
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::grpc_comm::ServerCommunicator> comm,
                         core::grpc_comm::StartServer(comm_options));
  if (args.on_listening) args.on_listening(comm->bound_port());
  core::grpc_comm::ServerCommunicator* server = comm.get();
  options.wait_for_clients = [server, &config](core::Deadline deadline) {
    return server->WaitForClients(config.min_clients, deadline)
        .WithContext("waiting for min_clients=" + std::to_string(config.min_clients));
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
  // The trainer first: a client whose data is missing should not take a seat on the server.
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(config, hooks));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> trainer, factory(args.client_id));
  core::grpc_comm::ClientOptions options;
  options.server = args.server;
  options.client_id = args.client_id;
  options.security = args.security;
  options.server_name = args.server_name;
  options.connect_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.round_timeout_s * 1000));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::Communicator> comm,
                         core::grpc_comm::ConnectClient(options));
  return RunWorker(config, *comm, std::move(trainer));
}

}  // namespace fedml::api
