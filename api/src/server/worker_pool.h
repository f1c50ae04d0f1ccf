// The server's side of the transport, shared by every round driver: which worker ranks are
// alive, the model version each holds, sending frames (a rank found unreachable is marked gone),
// receiving and decoding them, and dispatching a batch of tasks with deadlines and lost ranks.
// What differs between simulation and deployment is one PlacementPolicy, read here and in the
// drivers by name, instead of a `fixed_clients` flag branched on everywhere.
//
// Contract: not thread-safe; one round driver uses it at a time on the controller's thread. It
// borrows the communicator (rank 0), which must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "fedml/api/metrics.h"
#include "fedml/core/comm/communicator.h"
#include "fedml/core/message.h"
#include "fedml/core/model_state.h"
#include "fedml/core/wire.h"

namespace fedml::api::server {

/// Where a client's work runs and what a lost or late worker costs.
struct PlacementPolicy {
  /// Deployment: client N is the process on rank N + 1 with its own data, so only that rank can
  /// train it, the model travels in every task (a client that reconnected may hold none), a
  /// client that fails, leaves or misses the deadline loses its update for the round and the run
  /// goes on, and the connected ranks are asked before each round. Simulation: any worker trains
  /// any client from the model it was synced, a lost worker's task goes to another, and a missed
  /// deadline or a failed worker ends the run.
  bool clients_own_ranks = false;

  static PlacementPolicy Simulation() { return {false}; }
  static PlacementPolicy Deployment() { return {true}; }
  /// The only rank that may train `client`, or -1 when any worker may.
  int OwnerOf(std::int64_t client) const {
    return clients_own_ranks ? static_cast<int>(client) + 1 : -1;
  }
  bool model_in_task() const { return clients_own_ranks; }
  /// A worker that fails or leaves costs only its client's task (not the run).
  bool survives_failures() const { return clients_own_ranks; }
};

struct WorkerPoolOptions {
  PlacementPolicy placement;
  core::EncodeOptions encode;
  core::DecodeLimits decode;
  /// A worker holding one task longer than this is given up (0 = off).
  std::chrono::milliseconds worker_timeout{0};
  /// The round deadline the drivers give Dispatch (named in its DEADLINE_EXCEEDED message).
  std::chrono::milliseconds round_timeout{600000};
  /// With clients_own_ranks: whether a rank is connected now (empty: every rank).
  std::function<bool(int rank)> is_connected;
};

/// A frame received from a worker: decoded (msg, with msg.sender set to the transport's source,
/// never the frame's claim), or not (decode_error says why).
struct Inbound {
  int source = -1;
  bool decoded = false;
  bool rejoined = false;  // only a notice: `source` registered again (see Receive)
  core::Message msg;
  Status decode_error;
};

class WorkerPool {
 public:
  WorkerPool(core::Communicator& comm, WorkerPoolOptions options);

  const PlacementPolicy& placement() const { return options_.placement; }
  int world_size() const { return comm_.world_size(); }
  bool alive(int rank) const { return alive_[static_cast<std::size_t>(rank)]; }
  void MarkLost(int rank) { alive_[static_cast<std::size_t>(rank)] = false; }
  int alive_count() const;
  /// Deployment: marks the connected ranks alive and the others not (every connected rank is
  /// tried again each round). Simulation: nothing.
  void RefreshConnected();
  /// The model version worker `rank` was last sent (-1 = none).
  std::int64_t held_version(int rank) const { return version_[static_cast<std::size_t>(rank)]; }
  void set_held_version(int rank, std::int64_t v) { version_[static_cast<std::size_t>(rank)] = v; }

  /// Encodes `msg` and sends it to `rank`, adding the frame's size to *bytes (may be null). An
  /// UNAVAILABLE rank is marked lost and the status returned, so the caller can account for it.
  Status Send(int rank, const core::Message& msg, std::uint64_t* bytes);
  /// The same for a frame already encoded (one encoding sent to many ranks).
  Status SendFrame(int rank, const core::Bytes& frame, std::uint64_t* bytes);
  /// Sends the global model to every live worker that does not hold `version` (simulation; with
  /// the model in each task, nothing). UNAVAILABLE when no worker is left.
  Status SyncModel(std::int64_t round, std::int64_t version, const core::ModelState& global,
                   std::uint64_t* bytes);
  /// Tells every worker rank FINISH (those taken for lost too: they may only be slow, and a
  /// worker left waiting would hold up the end of an MPI job). Errors are ignored.
  void Finish();

  /// The next frame that is not a heartbeat or a rejoin notice, until `deadline`
  /// (DEADLINE_EXCEEDED then); adds its size to *bytes_up. Transport errors other than the
  /// deadline are returned as they are. A REGISTER from a rank (the transport: the client
  /// registered again, and what was sent to its earlier connection is lost) is kept for
  /// TakeRejoined; with return_on_rejoin Receive then returns at once with Inbound::rejoined set
  /// (and nothing else), so a caller waiting on a task that rank held can act now.
  Result<Inbound> Receive(core::Deadline deadline, std::uint64_t* bytes_up,
                          bool return_on_rejoin = false);
  /// The ranks that registered again since the last call (each once), oldest first.
  std::vector<int> TakeRejoined() { return std::exchange(rejoined_, {}); }

  /// How Dispatch runs a batch of n tasks (indices 0..n-1).
  struct Batch {
    std::int64_t round = 0;
    std::int64_t model_version = 0;  // stamped on every task
    int n = 0;
    /// Close the batch as soon as this many replies of reply_type are in (0: wait for all n,
    /// up to the deadline): the tasks still out are abandoned, counted in
    /// metrics.extra[cut_metric], and their late replies ignored. Deployment only (which
    /// tasks make the cut is a matter of timing).
    int target = 0;
    /// The metrics.extra entry that counts the tasks a target cut.
    std::string cut_metric = "over_selected_cut";
    core::MessageType reply_type = core::MessageType::kClientUpdate;
    core::Deadline deadline;
    /// The only rank that may take task i, or -1 for any rank.
    std::function<int(int)> owner;
    std::function<core::Message(int)> make_task;
    std::function<std::string(int)> describe;
    /// Each reply of reply_type (or kInvalid: refused by the transport, or a frame that did not
    /// decode), in task order whatever order they arrive in.
    std::function<void(int, core::Message&&)> on_result;
  };
  /// Hands tasks to live workers, at most one in flight each, and passes each reply to
  /// on_result in task order. A worker that is lost has its task handed to another (or dropped,
  /// when it had an owner). Bounded by batch.deadline: simulation fails with DEADLINE_EXCEEDED
  /// naming the missing tasks, deployment drops the stragglers. Counts into `metrics`.
  Status Dispatch(const Batch& batch, RoundMetrics& metrics);

 private:
  /// Sends an encoded frame, counting its bytes; marks the rank lost when it is UNAVAILABLE.
  Status Deliver(int rank, core::Bytes frame, std::uint64_t* bytes);

  core::Communicator& comm_;
  WorkerPoolOptions options_;
  std::vector<bool> alive_;            // index = rank; rank 0 is the server
  std::vector<std::int64_t> version_;  // model version each worker holds, -1 = none
  std::vector<int> rejoined_;          // ranks that registered again, not yet taken
};

}  // namespace fedml::api::server
