// The roles every runner is made of (in-process threads, MPI processes, the gRPC deployment):
// the server on rank 0 and the workers on the other ranks. fedml/api/roles.h.
#include "fedml/api/roles.h"

#include <torch/torch.h>

#include <algorithm>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/device_aggregation.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/system_model.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/security/crypto.h"

namespace fedml::api {

int TorchThreadsPerWorker(const Config& config) {
  // One LibTorch thread per worker by default, so worker_num workers share the cores without
  // oversubscription and a client's result does not depend on worker_num. LibTorch's OpenMP
  // thread count is per thread: every thread that trains must call torch::set_num_threads.
  return config.torch_threads > 0 ? config.torch_threads : 1;
}

Result<ClientTrainerFactory> TrainerFactoryFor(const Config& config, const SimulationHooks& hooks) {
  if (hooks.trainer_factory) return hooks.trainer_factory;
  FEDML_ASSIGN_OR_RETURN(std::shared_ptr<const FederatedData> data, LoadFederatedData(config));
  if (static_cast<int>(data->partition.num_clients()) != config.client_num_in_total) {
    return Status::InvalidArgument(
        "the partition has " + std::to_string(data->partition.num_clients()) +
        " clients but client_num_in_total is " + std::to_string(config.client_num_in_total));
  }
  return TorchTrainerFactory(config, data, BuiltinModelFactory(config, data));
}

Status SetClaimChecks(const Config& config, ClientTrainer& server_trainer, ServerOptions& options) {
  const bool authoritative = !options.fixed_clients || (options.verification.enabled &&
                                                        options.verification.probability > 0.0);
  if (authoritative && !options.expected_work) {
    options.expected_work = [trainer = &server_trainer, epochs = config.epochs,
                             batch = config.batch_size](std::int64_t c) -> Result<ExpectedWork> {
      FEDML_ASSIGN_OR_RETURN(std::int64_t n, trainer->NumTrainSamples(c));
      return ExpectedWork{n, LocalSteps(epochs, n, batch)};
    };
  }
  if (options.max_claimed_samples > 0 || authoritative) return Status::Ok();
  std::int64_t total = 0;
  for (std::int64_t c = 0; c < config.client_num_in_total; ++c) {
    auto n = server_trainer.NumTrainSamples(c);
    if (n.status().code() == StatusCode::kUnimplemented) return Status::Ok();  // no cap known
    FEDML_RETURN_IF_ERROR(n.status());
    total += *n;
  }
  const std::int64_t clients = std::max(config.client_num_in_total, 1);
  options.max_claimed_samples = std::max<std::int64_t>(4 * ((total + clients - 1) / clients), 1);
  return Status::Ok();
}

Result<RunSummary> RunServer(const Config& config, core::Communicator& comm,
                             const ClientTrainerFactory& factory, const SimulationHooks& hooks) {
  return RunServer(config, comm, factory, hooks, ServerOptionsFrom(config), std::nullopt);
}

Result<RunSummary> RunServer(const Config& config, core::Communicator& comm,
                             const ClientTrainerFactory& factory, const SimulationHooks& hooks,
                             const ServerOptions& options,
                             std::optional<core::ModelState> initial) {
  const auto t0 = core::Clock::now();
  FEDML_ASSIGN_OR_RETURN(algorithms::AggregatorOptions agg_options, AggregatorOptionsFrom(config));
  if (options.fixed_clients && config.aggregation_threads == 0) {
    agg_options.aggregation_threads = 0;  // a deployed server's cores are its own: all of them
  }
  if (options.fixed_clients && config.aggregation_fold_width == 0) {
    // A deployed server folds many updates a round with nothing else to do: a wider fold reads
    // the running mean fewer times per update (aggregation_bench), for 10 model copies held.
    agg_options.fold_width = 8;
  }
  if (options.fixed_clients && agg_options.central_dp) {
    // Deployment: the clients know the run's seed, so neither the server's DP noise nor its
    // sample of clients may come from it (the accountant's amplification by sampling assumes
    // the observer does not know who was sampled).
    FEDML_ASSIGN_OR_RETURN(agg_options.dp.noise_key, core::security::SecureRandomBytes(32));
  }
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<algorithms::Aggregator> aggregator,
                         algorithms::CreateAggregator(config.federated_optimizer, agg_options));
  // The server's trainer (index worker_num) provides the initial global model, the clients'
  // sample counts for the virtual clock, and (asynchronous runs) the evaluation.
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> server_trainer, factory(config.worker_num));
  if (!initial) {
    FEDML_ASSIGN_OR_RETURN(initial, server_trainer->GetState());
  }
  ServerOptions controller_options = options;
  if (options.fixed_clients && agg_options.central_dp) controller_options.secret_sampling = true;
  if (!options.fixed_clients && !controller_options.system) {
    // Simulation runs on the virtual clock; deployment's time is real.
    FEDML_ASSIGN_OR_RETURN(controller_options.system, SystemModelFrom(config));
    auto work = std::make_shared<std::vector<double>>();
    for (std::int64_t c = 0; c < config.client_num_in_total; ++c) {
      auto n = server_trainer->NumTrainSamples(c);
      if (!n.ok() && n.status().code() != StatusCode::kUnimplemented) return n.status();
      work->push_back(static_cast<double>(config.epochs) * static_cast<double>(n.ok() ? *n : 1));
    }
    controller_options.client_work = [work](std::int64_t c) {
      return (*work)[static_cast<std::size_t>(c)];
    };
  }
  FEDML_RETURN_IF_ERROR(SetClaimChecks(config, *server_trainer, controller_options));
  // Synchronous rounds evaluate on the workers, one test shard each (no GlobalEvaluator), which
  // keeps every core busy; asynchronous ones on the server, since the workers are busy training.
  GlobalEvaluator evaluator;
  if (controller_options.async.enabled) {
    evaluator = [trainer =
                     server_trainer.get()](const core::ModelState& state) -> Result<Evaluation> {
      FEDML_RETURN_IF_ERROR(trainer->SetState(state));
      return trainer->Evaluate(EvalTask{});
    };
  }
  if (controller_options.verification.enabled && !controller_options.verification.replay) {
    // Spot checks replay on the server's trainer, which reads every client's partition of the
    // configured data set (deployment: the server's copy; see docs/verification.md).
    controller_options.verification.replay = [trainer =
                                                  server_trainer.get()](const ReplayTask& task) {
      return trainer->ReplaySegment(task);
    };
  }
  RoundController controller(comm, std::move(aggregator), controller_options, evaluator);
  if (hooks.on_progress) controller.OnProgress(hooks.on_progress);
  if (hooks.on_round) controller.OnRoundEnd(hooks.on_round);
  FEDML_ASSIGN_OR_RETURN(core::ModelState final_model, controller.Run(std::move(*initial)));
  RunSummary summary;
  summary.rounds = controller.history();
  summary.final_model = std::move(final_model);
  for (const auto& m : summary.rounds) {
    if (m.evaluated) summary.final_accuracy = m.test_accuracy;
  }
  summary.wall_seconds = std::chrono::duration<double>(core::Clock::now() - t0).count();
  return summary;
}

Status RunWorker(const Config& config, core::Communicator& comm,
                 std::unique_ptr<ClientTrainer> trainer, std::optional<core::Bytes> noise_secret,
                 const SecureIdentity& identity) {
  torch::set_num_threads(TorchThreadsPerWorker(config));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> wrapped,
                         WrapClientTrainer(config, std::move(trainer), std::move(noise_secret)));
  WorkerOptions options = WorkerOptionsFrom(config);
  options.secure_identity = identity;
  ClientManager manager(comm, std::move(wrapped), std::move(options));
  return manager.Run();
}

}  // namespace fedml::api
