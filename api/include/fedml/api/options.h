// Every mapping from a Config (fedml/api/config.h) to the options of the part it configures,
// declared in one header and defined in one file (api/src/options.cc), so that a config key is
// read in one place. The option structs are forward-declared: include the part's own header to
// use what a mapper returns.
#pragma once

#include <memory>
#include <optional>

#include "fedml/core/status.h"

namespace fedml::core {
struct LocalTrainOptions;
namespace grpc_comm {
struct ServerOptions;
}
}  // namespace fedml::core
namespace fedml::algorithms {
struct AggregatorOptions;
struct DpOptions;
}  // namespace fedml::algorithms

namespace fedml::api {

struct Config;
struct ServerOptions;
struct WorkerOptions;
struct SecureAggregationOptions;
struct SecureDropoutOptions;
struct AttackOptions;
struct RunFeatures;
class SystemModel;

/// The round controller's options (fedml/api/round_controller.h): rounds, deadlines, checkpoint,
/// ledger, asynchronous aggregation, secure aggregation and verified work. Simulation's
/// spot-check key is derived from the seed; deployment replaces it with a random one.
ServerOptions ServerOptionsFrom(const Config& config);
/// A worker's options (fedml/api/client_manager.h): its idle deadline covers a round, the
/// evaluation after it and, with secure aggregation, its three stages.
WorkerOptions WorkerOptionsFrom(const Config& config);
/// A deployed server's transport limits (fedml/core/comm/grpc.h): push_idle_timeout_s,
/// push_timeout_s and max_queued_updates. The caller sets the address, the client count, the
/// credentials and the update limit.
core::grpc_comm::ServerOptions GrpcServerOptionsFrom(const Config& config);
/// The simulated devices of the virtual clock (heterogeneity, speed_sigma, ... trace_file).
Result<std::shared_ptr<const SystemModel>> SystemModelFrom(const Config& config);
/// The server's strategy pipeline settings (fedml/algorithms/registry.h) from train_args,
/// defense_args and dp_args; the DP noise multiplier is derived from epsilon when not given.
Result<algorithms::AggregatorOptions> AggregatorOptionsFrom(const Config& config);
/// The options a config's security_args give (secure_aggregation "none": protocol "").
SecureAggregationOptions SecureOptionsFrom(const Config& config);
SecureDropoutOptions SecureDropoutFrom(const Config& config);
/// The simulated attack (fedml/api/client_pipeline.h) from attack_args.
AttackOptions AttackOptionsFrom(const Config& config);
/// Local DP settings from dp_args, when enable_dp and dp_solution_type ldp; nullopt otherwise.
/// The noise multiplier is noise_multiplier, or derived from epsilon over comm_round rounds.
Result<std::optional<algorithms::DpOptions>> LocalDpOptionsFrom(const Config& config);
/// What the run combines, for the compatibility table (fedml/api/compatibility.h).
RunFeatures RunFeaturesOf(const Config& config);
/// LocalTrainOptions from the train_args of `config` (proximal_mu is fedprox_mu under
/// federated_optimizer FedProx, else 0).
core::LocalTrainOptions LocalTrainOptionsFrom(const Config& config);

}  // namespace fedml::api
