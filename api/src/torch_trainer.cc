#include "fedml/api/torch_trainer.h"

#include <cmath>

#include "fedml/algorithms/scaffold.h"
#include "fedml/api/verification.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"

namespace fedml::api {

TorchClientTrainer::TorchClientTrainer(torch::nn::AnyModule model,
                                       std::shared_ptr<const FederatedData> data,
                                       core::LocalTrainOptions options, torch::Device device,
                                       bool scaffold)
    : model_(std::move(model)),
      data_(std::move(data)),
      options_(std::move(options)),
      device_(device),
      stream_(core::WorkerStream(device)),
      scaffold_(scaffold) {
  const core::StreamScope on_stream(stream_);
  model_.ptr()->to(device_);
}

Status TorchClientTrainer::SetState(const core::ModelState& state) {
  const core::StreamScope on_stream(stream_);
  return core::LoadStateIntoModule(state, *model_.ptr());
}

Result<core::ModelState> TorchClientTrainer::GetState() {
  const core::StreamScope on_stream(stream_);
  return core::StateFromModule(*model_.ptr());
}

namespace {
Status CheckClient(const FederatedData& data, std::int64_t client_id) {
  if (client_id < 0 || static_cast<std::size_t>(client_id) >= data.partition.num_clients()) {
    return Status::InvalidArgument("client " + std::to_string(client_id) +
                                   " does not exist (the partition has " +
                                   std::to_string(data.partition.num_clients()) + " clients)");
  }
  return Status::Ok();
}
}  // namespace

Result<std::int64_t> TorchClientTrainer::NumTrainSamples(std::int64_t client_id) const {
  FEDML_RETURN_IF_ERROR(CheckClient(*data_, client_id));
  return static_cast<std::int64_t>(
      data_->partition.client_indices[static_cast<std::size_t>(client_id)].size());
}

Result<LocalUpdate> TorchClientTrainer::Train(const TrainTask& task) {
  return TrainDeviating(task, TrainingDeviation{});
}

Result<LocalUpdate> TorchClientTrainer::TrainDeviating(const TrainTask& task,
                                                       const TrainingDeviation& deviation) {
  const core::StreamScope on_stream(stream_);
  FEDML_RETURN_IF_ERROR(CheckClient(*data_, task.client_id));
  const auto& indices = data_->partition.client_indices[static_cast<std::size_t>(task.client_id)];
  core::LocalTrainAdjustments adjust;
  adjust.flip_labels = deviation.flip_labels;
  if (!(deviation.step_fraction > 0.0 && deviation.step_fraction <= 1.0)) {
    return Status::InvalidArgument("step_fraction must be in (0, 1], got " +
                                   std::to_string(deviation.step_fraction));
  }
  if (deviation.step_fraction < 1.0) {
    const std::int64_t steps =
        LocalSteps(options_.epochs, static_cast<std::int64_t>(indices.size()), options_.batch_size);
    adjust.stop_step =
        static_cast<std::int64_t>(std::ceil(deviation.step_fraction * static_cast<double>(steps)));
  }
  core::ModelState start;
  const core::ModelState* server_c = nullptr;
  if (scaffold_) {
    const auto c = task.extras.find(algorithms::kScaffoldServerC);
    const auto ci = task.extras.find(algorithms::kScaffoldClientC);
    if (c == task.extras.end() || ci == task.extras.end()) {
      return Status::InvalidArgument(
          "SCAFFOLD client: the task carries no control variates; is the server running "
          "federated_optimizer SCAFFOLD?");
    }
    FEDML_ASSIGN_OR_RETURN(start, core::StateFromModule(*model_.ptr()));
    FEDML_RETURN_IF_ERROR(start.CheckSameLayout(c->second, "SCAFFOLD: server control variate"));
    FEDML_RETURN_IF_ERROR(start.CheckSameLayout(ci->second, "SCAFFOLD: client control variate"));
    server_c = &c->second;
    FEDML_RETURN_IF_ERROR(core::CatchTorch("SCAFFOLD correction", [&] {
      for (const auto& item : model_.ptr()->named_parameters()) {
        const std::string& name = item.key();
        const torch::Tensor& param = item.value();
        const float* cs = c->second.TensorData(name);
        const float* cc = ci->second.TensorData(name);
        const auto n = static_cast<std::int64_t>(param.numel());
        torch::Tensor offset =
            torch::from_blob(const_cast<float*>(cs), {n}, torch::kFloat).clone() -
            torch::from_blob(const_cast<float*>(cc), {n}, torch::kFloat);
        adjust.gradient_offset.push_back(offset.view(param.sizes()).to(device_, param.dtype()));
      }
    }));
  } else if (!task.extras.empty()) {
    return Status::InvalidArgument("the task carries strategy payloads (" +
                                   task.extras.begin()->first +
                                   ") this client does not implement; check federated_optimizer");
  }
  // Verified work: every checkpoint kept and hashed, every batch's indices hashed.
  const bool commit = task.checkpoint_interval > 0;
  std::vector<core::ModelState> trajectory;
  core::security::TrainingCommitment commitment;
  core::security::BatchIndicesHasher batches;
  Status hook_status;
  if (commit) {
    if (scaffold_ || options_.proximal_mu > 0 || options_.optimizer != "sgd" ||
        options_.momentum != 0.0) {
      return Status::FailedPrecondition(
          "verification replays committed segments from their checkpoints, which needs plain "
          "SGD (client_optimizer sgd, momentum 0, no FedProx or SCAFFOLD): their state at a "
          "checkpoint is not committed");
    }
    adjust.checkpoint_interval = task.checkpoint_interval;
    adjust.on_checkpoint = [&](std::int64_t) {
      if (!hook_status.ok()) return;
      auto state = core::StateFromModule(*model_.ptr());
      auto sha = state.ok() ? core::security::CheckpointSha256(*state)
                            : Result<std::string>(state.status());
      if (!sha.ok()) {
        hook_status = sha.status();
        return;
      }
      commitment.checkpoint_sha256.push_back(std::move(sha).value());
      trajectory.push_back(std::move(state).value());
    };
    adjust.on_batch = [&](const std::int64_t* idx, std::size_t n) { batches.Add(idx, n); };
  }
  FEDML_ASSIGN_OR_RETURN(
      core::LocalTrainStats stats,
      core::TrainLocal(model_, data_->train, indices, options_, task.seed, device_, adjust));
  FEDML_RETURN_IF_ERROR(hook_status);
  LocalUpdate update;
  FEDML_ASSIGN_OR_RETURN(update.state, core::StateFromModule(*model_.ptr()));
  if (commit) {
    commitment.data_seed = task.seed;
    commitment.checkpoint_interval = task.checkpoint_interval;
    commitment.total_steps = stats.steps;
    FEDML_ASSIGN_OR_RETURN(commitment.batch_indices_sha256, batches.Finish());
    commitment.hyperparameters = {{"batch_size", static_cast<double>(options_.batch_size)},
                                  {"epochs", static_cast<double>(options_.epochs)},
                                  {"learning_rate", options_.learning_rate},
                                  {"weight_decay", options_.weight_decay}};
    commitment.num_samples = stats.num_samples;
    FEDML_RETURN_IF_ERROR(core::security::ValidateCommitment(commitment)
                              .WithContext("the trajectory this client committed to"));
    update.commitment = core::security::EncodeCommitment(commitment);
    checkpoints_[{task.round, task.client_id}] = std::move(trajectory);
  }
  if (scaffold_) {
    // delta_c_i = c_i+ - c_i = -c + (x - y_i) / (K lr), on parameters; zero on buffers.
    core::ModelState delta = core::ModelState::ZerosLike(start);
    const double scale = 1.0 / (static_cast<double>(stats.steps) * options_.learning_rate);
    for (const auto& item : model_.ptr()->named_parameters()) {
      const int t = start.Find(item.key());
      const core::TensorSpec& spec = start.specs()[static_cast<std::size_t>(t)];
      const float* x = start.data() + spec.offset;
      const float* y = update.state.data() + spec.offset;
      const float* c = server_c->data() + spec.offset;
      float* d = delta.data() + spec.offset;
      for (std::size_t i = 0; i < spec.numel(); ++i) {
        d[i] = static_cast<float>(-static_cast<double>(c[i]) +
                                  (static_cast<double>(x[i]) - static_cast<double>(y[i])) * scale);
      }
    }
    update.extras[algorithms::kScaffoldDeltaC] = std::move(delta);
  }
  update.num_samples = stats.num_samples;
  update.metrics["train_loss"] = stats.mean_loss;
  update.metrics["steps"] = static_cast<double>(stats.steps);
  return update;
}

Result<core::ModelState> TorchClientTrainer::CommittedCheckpoint(std::int64_t round,
                                                                 std::int64_t client_id,
                                                                 std::int64_t index) const {
  const auto it = checkpoints_.find({round, client_id});
  if (it == checkpoints_.end()) {
    return Status::NotFound("no committed trajectory of client " + std::to_string(client_id) +
                            " in round " + std::to_string(round + 1) + " is held here");
  }
  if (index < 0 || index >= static_cast<std::int64_t>(it->second.size())) {
    return Status::NotFound("checkpoint " + std::to_string(index) + " of client " +
                            std::to_string(client_id) + "'s trajectory does not exist (it has " +
                            std::to_string(it->second.size()) + ")");
  }
  return it->second[static_cast<std::size_t>(index)];
}

void TorchClientTrainer::ReleaseCheckpoints(std::int64_t round) {
  checkpoints_.erase(checkpoints_.begin(), checkpoints_.lower_bound({round, INT64_MIN}));
}

Result<core::ModelState> TorchClientTrainer::ReplaySegment(const ReplayTask& task) {
  const core::StreamScope on_stream(stream_);
  FEDML_RETURN_IF_ERROR(CheckClient(*data_, task.client_id));
  if (task.first_step < 0 || task.stop_step <= task.first_step) {
    return Status::InvalidArgument("a replayed segment needs 0 <= first_step < stop_step, got [" +
                                   std::to_string(task.first_step) + ", " +
                                   std::to_string(task.stop_step) + ")");
  }
  FEDML_RETURN_IF_ERROR(SetState(task.start).WithContext("the segment's start checkpoint"));
  core::LocalTrainAdjustments adjust;
  adjust.first_step = task.first_step;
  adjust.stop_step = task.stop_step;
  const auto& indices = data_->partition.client_indices[static_cast<std::size_t>(task.client_id)];
  FEDML_RETURN_IF_ERROR(
      core::TrainLocal(model_, data_->train, indices, options_, task.data_seed, device_, adjust)
          .status());
  return core::StateFromModule(*model_.ptr());
}

Result<Evaluation> TorchClientTrainer::Evaluate(const EvalTask& task) {
  const core::StreamScope on_stream(stream_);
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

ModelFactory BuiltinModelFactory(const Config& config, std::shared_ptr<const FederatedData> data) {
  return [name = config.model, seed = config.random_seed, data = std::move(data)]() {
    return core::CreateModel(name, data->train.sample_shape, data->train.num_classes, seed);
  };
}

ClientTrainerFactory TorchTrainerFactory(const Config& config,
                                         std::shared_ptr<const FederatedData> data,
                                         ModelFactory model_factory) {
  const core::LocalTrainOptions options = LocalTrainOptionsFrom(config);
  const std::string device_name = TrainingDevice(config);
  const bool scaffold = config.federated_optimizer == "SCAFFOLD";
  return [options, device_name, scaffold, data = std::move(data),
          model_factory = std::move(model_factory)](int) -> Result<std::unique_ptr<ClientTrainer>> {
    FEDML_ASSIGN_OR_RETURN(torch::Device device, core::ParseDevice(device_name));
    FEDML_ASSIGN_OR_RETURN(torch::nn::AnyModule model, model_factory());
    return std::unique_ptr<ClientTrainer>(
        std::make_unique<TorchClientTrainer>(std::move(model), data, options, device, scaffold));
  };
}

}  // namespace fedml::api
