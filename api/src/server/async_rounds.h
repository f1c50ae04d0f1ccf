// Asynchronous aggregation (FedAsync, FedBuff): clients train from whatever model version is
// current when they start, and every buffer_size accepted updates make one new version.
//
// Simulation (a system model): each task's virtual finish time is known when it starts (the
// client's download, compute and upload time), so updates are applied in (finish time, task
// number) order whatever order the workers return them in, and the run is a function of the
// config and the seed on every backend and for any number of workers. Workers train tasks in
// finish-time order, at most kWorkerDepth outstanding each, so the one the server waits for next
// is never stuck behind later ones for long, and the tasks still open at the end cost little.
//
// Deployment (clients on their own ranks, no system model): a connected client that is free gets
// a task with the current model at once and its update is applied when it arrives.
//
// Contract: internal; one AsyncRounds per run, on the controller's thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "server/server_context.h"

namespace fedml::api::server {

class AsyncRounds {
 public:
  explicit AsyncRounds(ServerContext& ctx);
  /// Runs until comm_round versions exist; `global` is the newest.
  Status Run(core::ModelState& global);

 private:
  struct Task {
    std::int64_t seq = 0;  // task number: the seed's "round", and the order of equal finish times
    std::int64_t client = 0;
    std::int64_t base_version = 0;
    std::shared_ptr<const core::ModelState> base;
    double finish = 0.0;  // virtual time it ends (simulation)
    bool lost = false;    // the client goes offline first: never trained, its slot frees at finish
    int rank = -1;        // where it was sent, -1 = not yet
    std::optional<core::Message> reply;
  };

  long long version_no() const { return static_cast<long long>(versions_) + 1; }
  Status BeginVersion();
  /// A free client (online, not training) for task `seq`, uniformly with the seed.
  std::optional<std::int64_t> PickClient(std::int64_t seq) const;
  Status SendTask(Task& t, int rank);
  /// Starts tasks until max_concurrency are in flight or no client is free.
  Status Fill();
  /// Simulation: hands unsent tasks to workers with room, earliest finish first.
  Status FeedWorkers();
  /// A rank that is gone: simulation hands its tasks to the others (the result does not depend
  /// on who trains), deployment drops its client's task.
  Status LoseRank(int rank, const std::string& why);
  /// Applies one finished task; makes a new version when the buffer is full.
  Status Apply(Task t);
  /// Receives one frame (until `wake`) and files it with its task. False when none came.
  Result<bool> Receive(core::Deadline wake);
  /// Gives up on ranks that did not answer in time.
  Status Expire();
  /// Simulation: the next event in virtual time. Deployment: whatever arrives first.
  Status StepSimulated();
  Status StepDeployed();
  /// Nobody to give a task to: the clock jumps (simulation) or the clients are waited for.
  Status WaitForAClient();
  /// Tasks still out answer first, so every client is idle when FINISH comes.
  void DrainOpenTasks();
  core::Deadline NextWake(core::Deadline latest) const;

  ServerContext& ctx_;
  const ServerOptions::Async& opt_;
  WorkerPool& pool_;
  const SystemModel* sys_;  // null in deployment
  int max_concurrency_;
  std::chrono::milliseconds worker_wait_;
  std::uint64_t model_bytes_ = 0;
  core::ModelState* global_ = nullptr;

  std::map<std::int64_t, Task> tasks_;  // in flight, by seq
  std::set<std::int64_t> busy_clients_;
  std::vector<int> outstanding_;                 // per rank: sent, unanswered
  std::map<int, core::Deadline> rank_deadline_;  // a rank with work must answer by then
  std::int64_t next_seq_ = 0;
  std::int64_t versions_ = 0;  // versions made (what comm_round counts)
  std::shared_ptr<const core::ModelState> current_;
  std::optional<std::pair<std::int64_t, core::Bytes>> sync_frame_;  // a version, encoded once

  RoundMetrics row_;
  double loss_weighted_ = 0.0;
  double loss_weight_ = 0.0;
  core::Clock::time_point row_t0_;
};

}  // namespace fedml::api::server
