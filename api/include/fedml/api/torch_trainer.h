// The default ClientTrainer over a LibTorch module.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "fedml/api/client_trainer.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/options.h"
#include "fedml/api/training_deviation.h"
#include "fedml/core/train/local_trainer.h"

namespace fedml::api {

/// Trains any module with a `forward(Tensor) -> Tensor` (wrapped in an AnyModule) with
/// cross-entropy on the client's partition of `data`. Owns its module; shares `data` read-only
/// with the other workers.
///
/// Client-side strategies: options.proximal_mu > 0 is FedProx; `scaffold` makes it a SCAFFOLD
/// client, which needs the control variates in every task's extras (fedml/algorithms/scaffold.h),
/// corrects each gradient by c - c_i and returns delta_c_i (the paper's option II, on the
/// parameters; buffers carry zero). Hosts the attack harness's label_flipping and fewer_steps
/// (DeviatingTrainer).
///
/// On a GPU each trainer queues its work on a stream of its own (core::WorkerStream), so that the
/// workers of one process, one trainer each, train their clients concurrently on one card. Every
/// call returns with its stream's work done (results cross to the host, which waits for it).
/// Thread-compatible: one thread at a time.
class TorchClientTrainer final : public ClientTrainer, public DeviatingTrainer {
 public:
  TorchClientTrainer(torch::nn::AnyModule model, std::shared_ptr<const FederatedData> data,
                     core::LocalTrainOptions options, torch::Device device = torch::kCPU,
                     bool scaffold = false);

  Status SetState(const core::ModelState& state) override;
  Result<core::ModelState> GetState() override;
  Result<LocalUpdate> Train(const TrainTask& task) override;
  Result<LocalUpdate> TrainDeviating(const TrainTask& task,
                                     const TrainingDeviation& deviation) override;
  Result<Evaluation> Evaluate(const EvalTask& task) override;
  Result<std::int64_t> NumTrainSamples(std::int64_t client_id) const override;
  /// Verified work: commitments need plain SGD (momentum 0) without FedProx or SCAFFOLD, whose
  /// state at a checkpoint (momentum, the anchor, the control variates) a replay would not have;
  /// Train refuses a commitment otherwise (FAILED_PRECONDITION).
  Result<core::ModelState> CommittedCheckpoint(std::int64_t round, std::int64_t client_id,
                                               std::int64_t index) const override;
  void ReleaseCheckpoints(std::int64_t round) override;
  Result<core::ModelState> ReplaySegment(const ReplayTask& task) override;

  torch::nn::AnyModule& model() { return model_; }

  /// Samples per evaluation batch.
  static constexpr int kEvalBatch = 250;

 private:
  torch::nn::AnyModule model_;
  std::shared_ptr<const FederatedData> data_;
  core::LocalTrainOptions options_;
  torch::Device device_;
  std::optional<c10::Stream> stream_;  // std::nullopt on the CPU
  bool scaffold_ = false;
  /// Committed trajectories, by (round, client): checkpoint 0, I, 2I, ..., the last.
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<core::ModelState>> checkpoints_;
};

/// Builds a module for worker `worker_index`.
using ModelFactory = std::function<Result<torch::nn::AnyModule>()>;

/// The built-in model named by `config.model` for `data`'s sample shape.
ModelFactory BuiltinModelFactory(const Config& config, std::shared_ptr<const FederatedData> data);

/// A ClientTrainerFactory making TorchClientTrainers with modules from `model_factory` and the
/// optimiser settings of `config`.
ClientTrainerFactory TorchTrainerFactory(const Config& config,
                                         std::shared_ptr<const FederatedData> data,
                                         ModelFactory model_factory);

}  // namespace fedml::api
