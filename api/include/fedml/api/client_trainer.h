// ClientTrainer: what a researcher implements to bring their own training code. Torch-free, so a
// trainer may wrap any framework; fedml/api/torch_trainer.h has the default LibTorch one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "fedml/core/bytes.h"
#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::api {

/// The seed of client `client_id`'s task in `round` (TrainTask::seed): DeriveSeed(run_seed,
/// {round, client_id}). The server assigns the same value to verified tasks.
std::uint64_t TaskSeed(std::uint64_t run_seed, std::int64_t round, std::int64_t client_id);

/// One unit of client work in a round.
struct TrainTask {
  std::int64_t round = 0;
  std::int64_t client_id = 0;      // whose data to train on
  std::int64_t model_version = 0;  // version of the state last given to SetState
  std::uint64_t seed = 0;          // DeriveSeed(run seed, {round, client_id}): use it for shuffles
  /// Side payloads from the server's strategy (SCAFFOLD: "scaffold_c" and "scaffold_c_i", see
  /// fedml/algorithms/scaffold.h). A trainer that does not implement the strategy that sent
  /// them should refuse the task rather than ignore them.
  std::map<std::string, core::ModelState> extras;
  /// Verified work (fedml/core/security/commitment.h): > 0 asks the trainer to commit to its
  /// training trajectory, a checkpoint every this many optimizer steps (LocalUpdate::commitment),
  /// and to keep the checkpoints for spot checks until ReleaseCheckpoints. 0: no commitment.
  std::int64_t checkpoint_interval = 0;
};

/// The result of TrainTask: the client's local model after training.
struct LocalUpdate {
  core::ModelState state;
  std::int64_t num_samples = 0;                    // > 0; the FedAvg weight
  std::map<std::string, double> metrics;           // e.g. "train_loss"
  std::map<std::string, core::ModelState> extras;  // side payloads (control variates)
  /// EncodeCommitment of the trajectory when the task asked for one (TrainTask::
  /// checkpoint_interval > 0), else empty. Its last checkpoint hash is state's CheckpointSha256.
  core::Bytes commitment;
};

/// A spot check's re-execution of one committed segment: steps [first_step, stop_step) of
/// client_id's data order drawn from data_seed (the commitment's), from `start` (the committed
/// checkpoint at first_step).
struct ReplayTask {
  std::int64_t client_id = 0;
  std::uint64_t data_seed = 0;
  std::int64_t first_step = 0;
  std::int64_t stop_step = 0;
  core::ModelState start;
};

/// Which part of the held-out data to evaluate: the shard-th of num_shards contiguous ranges.
/// The server splits evaluation over its workers this way, so a trainer only has to cut its test
/// set the same way every time (num_shards == 1 means all of it).
struct EvalTask {
  std::int64_t round = 0;
  int shard = 0;
  int num_shards = 1;
};

/// Combined by the server as sample-weighted means over shards.
struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t num_samples = 0;
};

/// A worker owns one trainer and runs many clients through it one after another:
/// SetState(global) then Train(task) for each client. Not called from several threads at once.
class ClientTrainer {
 public:
  virtual ~ClientTrainer() = default;
  /// Replaces the trainer's model state (the global model). INVALID_ARGUMENT on a layout that
  /// does not fit the model, leaving the state as it was.
  virtual Status SetState(const core::ModelState& state) = 0;
  virtual Result<core::ModelState> GetState() = 0;
  /// Trains the current state on task.client_id's data and returns the new local state. Should
  /// be a pure function of (state, task) for reproducible runs.
  virtual Result<LocalUpdate> Train(const TrainTask& task) = 0;
  /// Evaluates the current state on shard task.shard of task.num_shards of the held-out data.
  virtual Result<Evaluation> Evaluate(const EvalTask& task) = 0;
  /// The training samples client `client_id` holds, for the simulation's virtual clock
  /// (fedml/api/system_model.h: a client's compute time is epochs x samples / its speed). Asked
  /// of the server's trainer only. Not overridden (UNIMPLEMENTED): every client counts as one
  /// sample, so the virtual clock models speed and bandwidth only.
  virtual Result<std::int64_t> NumTrainSamples(std::int64_t /*client_id*/) const {
    return Status::Unimplemented("this trainer does not report its clients' sample counts");
  }

  // Verified work. A trainer that commits (TrainTask::checkpoint_interval) keeps its checkpoints
  // and reveals them for spot checks; a verifier re-executes segments. Defaults: UNIMPLEMENTED.
  /// Checkpoint `index` (0-based, as the commitment lists them) of the trajectory committed for
  /// (round, client_id). NOT_FOUND when it is not held (released, or never trained here).
  virtual Result<core::ModelState> CommittedCheckpoint(std::int64_t /*round*/,
                                                       std::int64_t /*client_id*/,
                                                       std::int64_t /*index*/) const {
    return Status::Unimplemented("this trainer keeps no training checkpoints");
  }
  /// Forgets the checkpoints of rounds before `round` (their rounds are settled).
  virtual void ReleaseCheckpoints(std::int64_t /*round*/) {}
  /// Re-executes `task` on this trainer's copy of the client's data and returns the model after
  /// it. Leaves the trainer's state at that model (callers SetState before training again).
  virtual Result<core::ModelState> ReplaySegment(const ReplayTask& /*task*/) {
    return Status::Unimplemented("this trainer cannot replay training segments");
  }
};

/// Passes every call to `inner` (owned): the base of wrappers that change a call or two (the
/// attack and DP pipeline, a deployed client's progress lines) and must keep the others, the
/// verification calls included. Same threading contract as ClientTrainer.
class ForwardingClientTrainer : public ClientTrainer {
 public:
  explicit ForwardingClientTrainer(std::unique_ptr<ClientTrainer> inner)
      : inner_(std::move(inner)) {}
  Status SetState(const core::ModelState& state) override { return inner_->SetState(state); }
  Result<core::ModelState> GetState() override { return inner_->GetState(); }
  Result<LocalUpdate> Train(const TrainTask& task) override { return inner_->Train(task); }
  Result<Evaluation> Evaluate(const EvalTask& task) override { return inner_->Evaluate(task); }
  Result<std::int64_t> NumTrainSamples(std::int64_t client_id) const override {
    return inner_->NumTrainSamples(client_id);
  }
  Result<core::ModelState> CommittedCheckpoint(std::int64_t round, std::int64_t client_id,
                                               std::int64_t index) const override {
    return inner_->CommittedCheckpoint(round, client_id, index);
  }
  void ReleaseCheckpoints(std::int64_t round) override { inner_->ReleaseCheckpoints(round); }
  Result<core::ModelState> ReplaySegment(const ReplayTask& task) override {
    return inner_->ReplaySegment(task);
  }
  /// The wrapped trainer (for FindDeviatingTrainer); owned by this wrapper.
  ClientTrainer& inner() const { return *inner_; }

 protected:
  std::unique_ptr<ClientTrainer> inner_;  // never null
};

/// Makes the trainer of worker `worker_index` (0-based). The simulation runner calls it once per
/// worker, on its own thread, before any worker starts (so it need not be thread-safe); index
/// worker_num makes the server's copy, which provides the initial global model.
using ClientTrainerFactory =
    std::function<Result<std::unique_ptr<ClientTrainer>>(int worker_index)>;

}  // namespace fedml::api
