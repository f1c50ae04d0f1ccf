#include "fedml/api/simulation.h"

#include <torch/torch.h>

#include <thread>

#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/device_aggregation.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/system_model.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/core/comm/inproc.h"
#include "fedml/core/security/credentials.h"

namespace fedml::api {

ServerOptions ServerOptionsFrom(const Config& config) {
  ServerOptions o;
  o.client_num_in_total = config.client_num_in_total;
  o.client_num_per_round = config.client_num_per_round;
  o.comm_round = config.comm_round;
  o.frequency_of_the_test = config.frequency_of_the_test;
  o.random_seed = config.random_seed;
  o.round_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.round_timeout_s * 1000));
  o.worker_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.worker_timeout_s * 1000));
  o.checkpoint_dir = config.checkpoint_dir;
  o.ledger_file = config.ledger_file;
  o.decode.max_frame_bytes = static_cast<std::uint64_t>(config.max_update_mb) << 20;
  o.async.enabled = algorithms::IsAsynchronous(config.federated_optimizer);
  o.async.buffer_size = config.federated_optimizer == "FedBuff" ? config.buffer_size : 1;
  o.async.max_concurrency =
      config.max_concurrency > 0 ? config.max_concurrency : config.client_num_per_round;
  o.async.max_staleness = config.max_staleness;
  o.secure = SecureOptionsFrom(config);
  o.verification.enabled = config.verification == "enabled";
  o.verification.checkpoint_interval = config.checkpoint_interval;
  o.verification.probability = config.verify_probability;
  o.verification.threshold = config.verify_threshold;
  o.verification.accounts.initial_stake = config.initial_stake;
  o.verification.accounts.slash_fraction = config.slash_fraction;
  // Deployment replaces it with a random one: its clients know the seed.
  if (o.verification.enabled) o.verification.secret = SimulationSpotCheckSecret(config.random_seed);
  return o;
}

Result<std::shared_ptr<const SystemModel>> SystemModelFrom(const Config& config) {
  SystemModelOptions o;
  o.heterogeneity = config.heterogeneity;
  o.speed_sigma = config.speed_sigma;
  o.bandwidth_sigma = config.bandwidth_sigma;
  o.compute_speed = config.compute_speed;
  o.bandwidth_mbps = config.bandwidth_mbps;
  o.trace_file = config.trace_file;
  o.seed = config.random_seed;
  o.num_clients = config.client_num_in_total;
  FEDML_ASSIGN_OR_RETURN(SystemModel model, SystemModel::Create(o));
  return std::make_shared<const SystemModel>(std::move(model));
}

WorkerOptions WorkerOptionsFrom(const Config& config) {
  WorkerOptions o;
  o.random_seed = config.random_seed;
  // Between two messages a worker may wait out a whole round plus the evaluation after it, and
  // with secure aggregation its three stages.
  const double stages_s =
      config.secure_aggregation == "none" ? 0.0 : 3.0 * config.secagg_stage_timeout_s;
  o.idle_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>((config.round_timeout_s * 2.0 + stages_s) * 1000));
  o.secure_dropout = SecureDropoutFrom(config);
  return o;
}

Result<algorithms::AggregatorOptions> AggregatorOptionsFrom(const Config& config) {
  algorithms::AggregatorOptions o;
  // A simulation aggregates a few updates per round while training dominates, so the fold that
  // buys aggregation bandwidth (FedAvgOptions) is kept narrow here to save model copies.
  o.fold_width = 2;
  o.client_num_in_total = config.client_num_in_total;
  o.client_momentum = config.client_optimizer == "sgd" ? config.momentum : 0.0;
  o.server.type = config.server_optimizer;
  o.server.lr = config.server_lr;
  o.server.momentum = config.server_momentum;
  o.server.beta1 = config.beta1;
  o.server.beta2 = config.beta2;
  o.server.tau = config.tau;
  o.server_optimizer_given = config.server_optimizer != Config{}.server_optimizer;
  o.staleness.function = config.staleness_function;
  o.staleness.a = config.staleness_a;
  o.staleness.b = config.staleness_b;
  o.async_alpha = config.async_alpha;
  const std::string device = TrainingDevice(config);
  if (device != "cpu") {  // the host FedAvg is the CPU path
    o.mean_factory = [device] { return CreateDeviceFedAvg(device); };
  }
  o.enable_defense = config.enable_defense;
  o.defense.defense_type = config.defense_type;
  o.defense.byzantine_client_num = config.byzantine_client_num;
  o.defense.krum_param_m = config.krum_param_m;
  o.defense.beta = config.beta;
  o.defense.norm_bound = config.norm_bound;
  if (config.enable_dp) {
    o.central_dp = config.dp_solution_type == "cdp";
    o.local_dp = config.dp_solution_type == "ldp";
    o.dp.clipping_norm = config.clipping_norm;
    o.dp.delta = config.delta;
    o.dp.seed = config.random_seed;
    o.dp.sampling_rate = o.central_dp ? static_cast<double>(config.client_num_per_round) /
                                            static_cast<double>(config.client_num_in_total)
                                      : 1.0;
    o.dp.noise_multiplier = config.noise_multiplier;
    if (o.dp.noise_multiplier == 0.0) {  // calibrated to reach epsilon after comm_round rounds
      FEDML_ASSIGN_OR_RETURN(o.dp.noise_multiplier,
                             algorithms::DpNoiseMultiplierFor(o.dp.sampling_rate, config.comm_round,
                                                              config.epsilon, config.delta));
    }
  }
  return o;
}

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
  if (options.fixed_clients && agg_options.central_dp) {
    // Deployment: the clients know the run's seed, so the server's DP noise must not come from it.
    FEDML_ASSIGN_OR_RETURN(agg_options.dp.seed, core::security::SecureRandomU64());
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
                 std::unique_ptr<ClientTrainer> trainer,
                 std::optional<std::uint64_t> noise_secret) {
  torch::set_num_threads(TorchThreadsPerWorker(config));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> wrapped,
                         WrapClientTrainer(config, std::move(trainer), noise_secret));
  ClientManager manager(comm, std::move(wrapped), WorkerOptionsFrom(config));
  return manager.Run();
}

Result<RunSummary> RunSimulation(const Config& config, const SimulationHooks& hooks) {
  const std::string backend = NormalizedBackend(config.backend);
  if (backend != "inproc") {
    return Status::InvalidArgument("RunSimulation runs backend inproc (or sp), not '" +
                                   config.backend +
                                   "'; for MPI use RunMpiSimulation "
                                   "(fedml/api/mpi_runner.h) under mpirun");
  }
  torch::set_num_threads(TorchThreadsPerWorker(config));
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(config, hooks));

  // Build every worker's trainer before starting threads, so a factory error needs no cleanup.
  const int workers = config.worker_num;
  std::vector<std::unique_ptr<ClientTrainer>> trainers;
  for (int w = 0; w < workers; ++w) {
    FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> t, factory(w));
    trainers.push_back(std::move(t));
  }

  auto comms = core::inproc::CreateGroup(workers + 1);
  std::vector<Status> worker_status(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      worker_status[w] = RunWorker(config, *comms[w + 1], std::move(trainers[w]));
      // A worker that stops early (error, timeout) wakes the server rather than leaving it to
      // wait for the round deadline.
      if (!worker_status[w].ok()) comms[w + 1]->Abort(worker_status[w]);
    });
  }
  auto summary = RunServer(config, *comms[0], factory, hooks);
  if (!summary.ok()) comms[0]->Abort(summary.status());
  for (auto& t : threads) t.join();

  if (!summary.ok()) {
    // Prefer a worker's own error when it caused the abort.
    for (const Status& s : worker_status) {
      if (!s.ok() && s.code() != StatusCode::kAborted) return s;
    }
    return summary.status();
  }
  for (const Status& s : worker_status) {
    if (!s.ok()) return s;
  }
  return summary;
}

}  // namespace fedml::api
