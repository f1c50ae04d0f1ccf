// Every mapping from a Config to the options struct of a part, in one place: a new config key
// is read here and nowhere else. The declarations are in fedml/api/options.h.
#include "fedml/api/options.h"

#include <algorithm>
#include <string>
#include <vector>

#include "fedml/algorithms/dp.h"
#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_pipeline.h"
#include "fedml/api/compatibility.h"
#include "fedml/api/config.h"
#include "fedml/api/device_aggregation.h"
#include "fedml/api/round_controller.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/api/system_model.h"
#include "fedml/api/torch_trainer.h"
#include "fedml/api/verification.h"
#include "fedml/core/comm/grpc.h"
#include "fedml/core/train/local_trainer.h"

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
  if (config.max_update_mb > 0) {  // 0: the deployment server derives it from the model
    o.decode.max_frame_bytes = static_cast<std::uint64_t>(config.max_update_mb) << 20;
  }
  o.max_claimed_samples = config.max_claimed_samples;
  o.over_selection = config.over_selection;
  o.aggregators = config.aggregator_num;
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
  // with secure aggregation its stages (four in a signed round).
  const double stages_s =
      config.secure_aggregation == "none" ? 0.0 : 4.0 * config.secagg_stage_timeout_s;
  o.idle_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>((config.round_timeout_s * 2.0 + stages_s) * 1000));
  o.secure_dropout = SecureDropoutFrom(config);
  o.secure_journal = config.secagg_journal;
  o.ledger_heads_file = config.ledger_heads_file;
  o.secure_limits.min_clients = config.secagg_min_clients;
  o.secure_limits.min_neighbours = config.secagg_min_neighbours;
  return o;
}

Result<algorithms::AggregatorOptions> AggregatorOptionsFrom(const Config& config) {
  algorithms::AggregatorOptions o;
  // A simulation aggregates a few updates per round while training dominates, so the fold that
  // buys aggregation bandwidth (FedAvgOptions) is kept narrow here to save model copies.
  o.fold_width = config.aggregation_fold_width > 0 ? config.aggregation_fold_width : 2;
  // 0 (auto) is one thread here; RunServer gives a deployed server every core.
  o.aggregation_threads = config.aggregation_threads > 0 ? config.aggregation_threads : 1;
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
    // The round controller samples a fixed number of clients without replacement (accounted
    // with replace-one neighbours, DpSampling::kWithoutReplacement); local DP protects a
    // client's release in every round it takes part in, q = 1, inputs 2C apart.
    o.dp.sampling = algorithms::DpSampling::kWithoutReplacement;
    o.dp.sampling_rate = o.central_dp ? static_cast<double>(config.client_num_per_round) /
                                            static_cast<double>(config.client_num_in_total)
                                      : 1.0;
    o.dp.noise_multiplier = config.noise_multiplier;
    if (o.dp.noise_multiplier == 0.0) {  // calibrated to reach epsilon after comm_round rounds
      FEDML_ASSIGN_OR_RETURN(
          o.dp.noise_multiplier,
          algorithms::DpNoiseMultiplierFor(o.dp.sampling_rate, config.comm_round, config.epsilon,
                                           config.delta, o.dp.sampling));
    }
  }
  return o;
}

SecureAggregationOptions SecureOptionsFrom(const Config& config) {
  SecureAggregationOptions o;
  o.protocol = config.secure_aggregation == "none" ? "" : config.secure_aggregation;
  o.num_shares = config.num_shares;
  o.reconstruction_threshold = config.reconstruction_threshold;
  o.quantization.clipping_range = config.clipping_range;
  o.quantization.quantization_range = config.quantization_range;
  o.quantization.modulus = config.modulus;
  o.max_weight = config.max_weight;
  o.stage_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.secagg_stage_timeout_s * 1000));
  return o;
}

SecureDropoutOptions SecureDropoutFrom(const Config& config) {
  SecureDropoutOptions o;
  o.rate = config.dropout_rate;
  o.stage = config.dropout_stage;
  return o;
}

core::grpc_comm::ServerOptions GrpcServerOptionsFrom(const Config& config) {
  core::grpc_comm::ServerOptions o;
  o.push_idle_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.push_idle_timeout_s * 1000.0));
  o.push_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.push_timeout_s * 1000.0));
  o.max_queued_frames = static_cast<std::size_t>(config.max_queued_updates);
  return o;
}

core::LocalTrainOptions LocalTrainOptionsFrom(const Config& config) {
  core::LocalTrainOptions o;
  o.epochs = config.epochs;
  o.batch_size = config.batch_size;
  o.optimizer = config.client_optimizer;
  o.learning_rate = config.learning_rate;
  o.momentum = config.momentum;
  o.weight_decay = config.weight_decay;
  o.proximal_mu = config.federated_optimizer == "FedProx" ? config.fedprox_mu : 0.0;
  o.augment_crop_flip = config.data_augmentation == "crop_flip";
  return o;
}

AttackOptions AttackOptionsFrom(const Config& c) {
  AttackOptions o;
  o.enabled = c.enable_attack;
  o.type = c.attack_type;
  o.mode = c.attack_mode;
  o.byzantine_client_num = c.byzantine_client_num;
  o.ratio_of_poisoned_client = c.ratio_of_poisoned_client;
  o.scale = c.attack_scale;
  o.client_num_in_total = c.client_num_in_total;
  o.client_num_per_round = c.client_num_per_round;
  o.seed = c.random_seed;
  return o;
}

Result<std::optional<algorithms::DpOptions>> LocalDpOptionsFrom(const Config& c) {
  if (!c.enable_dp || c.dp_solution_type != "ldp") return std::optional<algorithms::DpOptions>();
  algorithms::DpOptions dp;
  dp.clipping_norm = c.clipping_norm;
  dp.delta = c.delta;
  dp.sampling_rate = 1.0;  // each client's own release, in every round it takes part in
  dp.sampling = algorithms::DpSampling::kWithoutReplacement;  // any two inputs: 2C apart
  dp.seed = c.random_seed;
  dp.noise_multiplier = c.noise_multiplier;
  if (dp.noise_multiplier == 0.0) {
    FEDML_ASSIGN_OR_RETURN(
        dp.noise_multiplier,
        algorithms::DpNoiseMultiplierFor(1.0, c.comm_round, c.epsilon, c.delta, dp.sampling));
  }
  return std::optional<algorithms::DpOptions>(dp);
}

RunFeatures RunFeaturesOf(const Config& c) {
  RunFeatures f;
  f.strategy = c.federated_optimizer;
  f.asynchronous = algorithms::IsAsynchronous(c.federated_optimizer);
  const std::vector<std::string> linear = algorithms::LinearStrategyNames();
  f.linear = std::find(linear.begin(), linear.end(), c.federated_optimizer) != linear.end();
  f.secure = c.secure_aggregation == "none" ? "" : c.secure_aggregation;
  f.verification = c.verification == "enabled";
  f.defense = c.enable_defense ? c.defense_type : "";
  f.dp = c.enable_dp ? c.dp_solution_type : "";
  f.client_optimizer = c.client_optimizer;
  f.client_momentum = c.momentum;
  f.server_optimizer = c.server_optimizer;
  f.over_selection = c.over_selection;
  f.tier = c.aggregator_num > 0;
  return f;
}

}  // namespace fedml::api
