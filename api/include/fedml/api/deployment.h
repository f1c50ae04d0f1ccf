// Deployment over gRPC: `fedml server` and `fedml client`. The server runs the same
// RoundController as the simulation with fixed clients (client N is the process that proved it
// is client N, and trains on its own data); the client runs the same ClientManager. TLS is on
// unless `insecure` is set.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "fedml/api/simulation.h"
#include "fedml/core/comm/grpc.h"

namespace fedml::api {

struct DeploymentServerArgs {
  std::string address = "0.0.0.0:50051";  // host:port; port 0 picks one (reported by on_listening)
  core::grpc_comm::Security security;
  /// Continue from checkpoint_dir/checkpoint.fedml (written after every round) instead of
  /// starting afresh. With the same config and seed the final model equals an uninterrupted run's.
  bool resume = false;
  std::function<void(int port)> on_listening;
};

/// The largest update frame `fedml server` accepts when max_update_mb is 0 (its default): room
/// for the model and three side payloads of the model's size, plus 64 MiB for the header. One
/// update may carry the model, SCAFFOLD's control-variate delta (an extra of the model's
/// layout), verification's next checkpoint (another) and secure aggregation's masked input (a
/// blob of 4 bytes per parameter), so every honest frame is admitted; a hostile one can make
/// the server hold no more than this per push (see ServerOptions::max_queued_frames).
/// `model_bytes` is the model's size on the wire: 4 bytes per parameter plus its tensor names.
std::uint64_t UpdateLimitForModel(std::uint64_t model_bytes);
/// The model's size on the wire, as UpdateLimitForModel takes it.
std::uint64_t ModelWireBytes(const core::ModelState& model);

/// Serves config.comm_round rounds to config.client_num_in_total clients (ids 0..N-1), sampling
/// client_num_per_round of them per round with the seed. A round starts when
/// min_available_clients are connected (default: client_num_per_round before the first round,
/// min_clients before later ones; asynchronous runs wait the same way before their first task),
/// or fails the run after round_timeout_s; it drops clients that are gone, fail or miss
/// the deadline, and keeps the model when fewer than min_clients updates arrived. The returned
/// summary is the one the simulation gives.
Result<RunSummary> RunDeploymentServer(const Config& config, const DeploymentServerArgs& args,
                                       const SimulationHooks& hooks = {});

struct DeploymentClientArgs {
  /// host:port, or a comma-separated list "a:1,b:2" of the run's servers (an aggregation tier):
  /// the first is dialled first, the others are fallbacks tried in turn when the connection is
  /// lost or the first registration cannot connect (ClientOptions::fallback_servers). Spaces
  /// around an item are ignored; an empty item is INVALID_ARGUMENT.
  std::string server = "localhost:50051";
  int client_id = 0;
  core::grpc_comm::Security security;
  std::string server_name;  // TLS name to expect ("" = the host of the address dialled)
  /// A real edge client's own data: a folder with the config's data set files (IDX, as
  /// data_cache_dir). Every training sample there is this client's, and it evaluates on all of
  /// its own test samples. Empty: partition client_id of config.dataset (trials on one machine).
  std::string data_dir;
  /// Print a line per task on stdout (what `fedml client` shows).
  bool verbose = true;
};

/// Trains as client `client_id` until the server says FINISH: with the built-in trainer on
/// partition client_id of config.dataset or on data_dir (hooks.trainer_factory to bring your own
/// trainer, called with client_id). Reconnects with backoff when the connection drops.
Status RunDeploymentClient(const Config& config, const DeploymentClientArgs& args,
                           const SimulationHooks& hooks = {});

}  // namespace fedml::api
