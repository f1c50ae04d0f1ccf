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

/// `fedml aggregator`: one node of an aggregation tier (config aggregator_num > 0). It serves edge
/// clients as `fedml server` does (their ids 0..client_num_in_total-1, its own TLS credentials),
/// and is itself client `aggregator_id` of the server upstream. For each training task from
/// upstream (the round's whole sample and the model) it trains the sampled clients connected to
/// it now, checks each update as the server would (its layout, finite values, a sample claim
/// within max_claimed_samples), and answers with one sample-weighted mean, its contributors and
/// their sample counts; an evaluation shard from upstream goes to one connected client and its
/// answer back. FINISH from upstream is passed to its clients and ends the run.
///
/// Trust: an aggregator sees its clients' updates in the clear and is trusted by them like the
/// server; the server checks what it forwards (server/tier_fit.h names the checks).
struct DeploymentAggregatorArgs {
  int aggregator_id = 0;                     // its id at the upstream server (0..aggregator_num-1)
  std::string upstream = "localhost:50051";  // HOST:PORT of `fedml server`
  /// Credentials toward upstream: certs_dir holds ca.pem and client-<aggregator_id>.token
  /// (or .pem/.key with mutual_tls), as a client's.
  core::grpc_comm::Security upstream_security;
  std::string upstream_name;              // TLS name to expect upstream ("" = the host)
  std::string address = "0.0.0.0:50052";  // where its clients connect; port 0 picks one
  core::grpc_comm::Security security;     // toward its clients, as the server's
  /// Clients that must be connected before it registers upstream (0 = none): a server that
  /// starts round 1 as soon as its aggregators are there would otherwise find their subtrees
  /// still empty. Waited for up to round_timeout_s.
  int wait_clients = 0;
  std::function<void(int port)> on_listening;
};

/// Runs an aggregator until the upstream server says FINISH (OK), or fails: upstream refused or
/// unreachable for its reconnect timeout, or silent for twice round_timeout_s. A subtree round
/// closes at 0.9 x round_timeout_s after its task arrived, so its answer reaches the server
/// before the server's own deadline. hooks.trainer_factory, when given, stands in for the
/// built-in trainer that tells it the model's size and the clients' partitions.
Status RunDeploymentAggregator(const Config& config, const DeploymentAggregatorArgs& args,
                               const SimulationHooks& hooks = {});

}  // namespace fedml::api
