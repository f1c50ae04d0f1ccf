#include "fedml/api/torch_trainer.h"

#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"

namespace fedml::api {

TorchClientTrainer::TorchClientTrainer(torch::nn::AnyModule model,
                                       std::shared_ptr<const FederatedData> data,
                                       core::LocalTrainOptions options, torch::Device device)
    : model_(std::move(model)),
      data_(std::move(data)),
      options_(std::move(options)),
      device_(device) {
  model_.ptr()->to(device_);
}

Status TorchClientTrainer::SetState(const core::ModelState& state) {
  return core::LoadStateIntoModule(state, *model_.ptr());
}

Result<core::ModelState> TorchClientTrainer::GetState() {
  return core::StateFromModule(*model_.ptr());
}

Result<LocalUpdate> TorchClientTrainer::Train(const TrainTask& task) {
  if (task.client_id < 0 ||
      static_cast<std::size_t>(task.client_id) >= data_->partition.num_clients()) {
    return Status::InvalidArgument("client " + std::to_string(task.client_id) +
                                   " does not exist (the partition has " +
                                   std::to_string(data_->partition.num_clients()) + " clients)");
  }
  const auto& indices = data_->partition.client_indices[static_cast<std::size_t>(task.client_id)];
  FEDML_ASSIGN_OR_RETURN(
      core::LocalTrainStats stats,
      core::TrainLocal(model_, data_->train, indices, options_, task.seed, device_));
  LocalUpdate update;
  FEDML_ASSIGN_OR_RETURN(update.state, core::StateFromModule(*model_.ptr()));
  update.num_samples = stats.num_samples;
  update.metrics["train_loss"] = stats.mean_loss;
  update.metrics["steps"] = static_cast<double>(stats.steps);
  return update;
}

Result<Evaluation> TorchClientTrainer::Evaluate(const EvalTask& task) {
  if (task.num_shards < 1 || task.shard < 0 || task.shard >= task.num_shards) {
    return Status::InvalidArgument("evaluation shard " + std::to_string(task.shard) + " of " +
                                   std::to_string(task.num_shards) + " does not exist");
  }
  // Shards are cut at multiples of the evaluation batch, so every batch holds the same samples
  // whatever the number of shards, and the per-sample results do not depend on it.
  const std::int64_t n = static_cast<std::int64_t>(data_->test.size());
  const std::int64_t batches = (n + kEvalBatch - 1) / kEvalBatch;
  const std::int64_t first = batches * task.shard / task.num_shards * kEvalBatch;
  const std::int64_t last = std::min(n, batches * (task.shard + 1) / task.num_shards * kEvalBatch);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = first; i < last; ++i) indices.push_back(i);
  if (indices.empty()) return Evaluation{0.0, 0.0, 0};
  FEDML_ASSIGN_OR_RETURN(core::EvalStats stats,
                         core::EvaluateModel(model_, data_->test, indices, device_, kEvalBatch));
  return Evaluation{stats.loss, stats.accuracy, stats.num_samples};
}

core::LocalTrainOptions LocalTrainOptionsFrom(const Config& config) {
  core::LocalTrainOptions o;
  o.epochs = config.epochs;
  o.batch_size = config.batch_size;
  o.optimizer = config.client_optimizer;
  o.learning_rate = config.learning_rate;
  o.momentum = config.momentum;
  o.weight_decay = config.weight_decay;
  return o;
}

ModelFactory BuiltinModelFactory(const Config& config, std::shared_ptr<const FederatedData> data) {
  return [name = config.model, seed = config.random_seed, data = std::move(data)]() {
    return core::CreateModel(name, data->train.sample_shape, data->train.num_classes, seed);
  };
}

ClientTrainerFactory TorchTrainerFactory(const Config& config,
                                         std::shared_ptr<const FederatedData> data,
                                         ModelFactory model_factory) {
  const core::LocalTrainOptions options = LocalTrainOptionsFrom(config);
  std::string device_name = config.device;
  if (device_name.empty()) {
    device_name = config.using_gpu ? "cuda:" + std::to_string(config.gpu_id) : "cpu";
  }
  return [options, device_name, data = std::move(data),
          model_factory = std::move(model_factory)](int) -> Result<std::unique_ptr<ClientTrainer>> {
    FEDML_ASSIGN_OR_RETURN(torch::Device device, core::ParseDevice(device_name));
    FEDML_ASSIGN_OR_RETURN(torch::nn::AnyModule model, model_factory());
    return std::unique_ptr<ClientTrainer>(
        std::make_unique<TorchClientTrainer>(std::move(model), data, options, device));
  };
}

}  // namespace fedml::api
