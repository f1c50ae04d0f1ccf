// The roles every runner is made of: the server on rank 0 of a communicator and a worker on each
// other rank, with the hooks a user brings (their trainer, callbacks) and the run's summary. The
// in-process simulation (fedml/api/simulation.h), the MPI runner (fedml/api/mpi_runner.h) and the
// gRPC deployment (fedml/api/deployment.h) differ only in the communicator and where the roles
// run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "fedml/api/client_trainer.h"
#include "fedml/api/config.h"
#include "fedml/api/metrics.h"
#include "fedml/api/round_controller.h"
#include "fedml/core/bytes.h"
#include "fedml/core/comm/communicator.h"

namespace fedml::api {

struct SimulationHooks {
  /// Your own trainer (one per worker, plus one more, index worker_num, whose GetState provides
  /// the initial global model). Synchronous rounds evaluate on the workers' trainers, one test
  /// shard each; FedAsync and FedBuff on the trainer of index worker_num, on the server's thread.
  /// Empty: the built-in TorchClientTrainer with config.model over config.dataset.
  ClientTrainerFactory trainer_factory;
  std::function<void(const RoundMetrics&)> on_round;
  std::function<void(std::int64_t round, int done, int total)> on_progress;
};

struct RunSummary {
  std::vector<RoundMetrics> rounds;
  core::ModelState final_model;
  double final_accuracy = 0.0;  // of the last evaluated round
  double wall_seconds = 0.0;
};

/// The pieces every runner (threads, MPI processes) is made of.
/// hooks.trainer_factory, or the built-in TorchClientTrainer over config.dataset.
Result<ClientTrainerFactory> TrainerFactoryFor(const Config& config, const SimulationHooks& hooks);
/// The server role on rank 0 of `comm`: runs every round and returns the summary; always sends
/// FINISH to the workers before returning.
Result<RunSummary> RunServer(const Config& config, core::Communicator& comm,
                             const ClientTrainerFactory& factory, const SimulationHooks& hooks);
/// The same with explicit controller options, and (when resuming) the global model to start
/// from instead of the factory's initial one.
Result<RunSummary> RunServer(const Config& config, core::Communicator& comm,
                             const ClientTrainerFactory& factory, const SimulationHooks& hooks,
                             const ServerOptions& options, std::optional<core::ModelState> initial);
/// The sample-count checks of a server's options (ServerOptions::expected_work and
/// max_claimed_samples) from `server_trainer`, which must outlive `options`: where the server's
/// copy of the data set is the clients' data (simulation, MPI, and deployment with spot checks) a
/// claim must equal the client's partition; elsewhere it is capped at max_claimed_samples, by
/// default 4 x the mean partition of that copy. An aggregator (`fedml aggregator`) checks its
/// clients' claims the same way.
Status SetClaimChecks(const Config& config, ClientTrainer& server_trainer, ServerOptions& options);
/// The worker role on a rank > 0 of `comm`, until the server says FINISH. Sets this thread's
/// LibTorch thread count (torch_threads, 1 by default). Wraps `trainer` with the config's local
/// DP and simulated attack (fedml/api/client_pipeline.h).
/// `noise_secret` as WrapClientTrainer's (deployed clients pass one). `identity`: a deployed
/// client's mutual-TLS credentials, which sign its secure rounds (WorkerOptions::secure_identity).
Status RunWorker(const Config& config, core::Communicator& comm,
                 std::unique_ptr<ClientTrainer> trainer,
                 std::optional<core::Bytes> noise_secret = std::nullopt,
                 const SecureIdentity& identity = {});

/// LibTorch threads each worker uses: torch_threads, or 1 so that workers share the cores
/// without oversubscription and a client's result does not depend on worker_num.
int TorchThreadsPerWorker(const Config& config);

}  // namespace fedml::api
