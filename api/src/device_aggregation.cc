#include "fedml/api/device_aggregation.h"

#include <cmath>
#include <utility>

#include "fedml/core/train/torch_bridge.h"

namespace fedml::api {

DeviceMean::DeviceMean(std::int64_t numel, torch::Device device)
    : mean_(torch::zeros({numel}, torch::TensorOptions().dtype(torch::kFloat32).device(device))) {}

Status DeviceMean::Add(const torch::Tensor& x, double weight) {
  if (!(weight > 0.0) || !std::isfinite(weight)) {
    return Status::InvalidArgument("an update's weight must be a finite number > 0, got " +
                                   std::to_string(weight));
  }
  if (x.numel() != mean_.numel() || x.scalar_type() != torch::kFloat32) {
    return Status::InvalidArgument("an update must hold " + std::to_string(mean_.numel()) +
                                   " float32 values, got " + std::to_string(x.numel()) + " " +
                                   std::string(c10::toString(x.scalar_type())));
  }
  const std::string where = "averaging on " + mean_.device().str();
  torch::Tensor on_device;
  double sum = 0.0;
  FEDML_RETURN_IF_ERROR(core::CatchTorch(where, [&] {
    on_device = x.reshape({-1}).to(mean_.device());
    // Float64 accumulation: a sum of float32 values cannot overflow it, so a non-finite sum means
    // a NaN or Inf in the input.
    sum = on_device.sum(torch::kFloat64).item<double>();
  }));
  if (!std::isfinite(sum)) {
    return Status::InvalidArgument("the update holds NaN or Inf; only finite values are averaged");
  }
  const double total = total_weight_ + weight;
  FEDML_RETURN_IF_ERROR(core::CatchTorch(where, [&] {
    if (count_ == 0) {
      mean_.copy_(on_device);
    } else {
      mean_.lerp_(on_device, weight / total);
    }
  }));
  total_weight_ = total;
  ++count_;
  return Status::Ok();
}

namespace {

class DeviceFedAvg final : public algorithms::Aggregator {
 public:
  explicit DeviceFedAvg(torch::Device device) : device_(device) {}

  std::string name() const override { return "FedAvg"; }
  bool is_linear() const override { return true; }
  bool needs_all_updates() const override { return false; }

  Status Begin(const core::ModelState& global, const algorithms::RoundInfo& /*info*/) override {
    if (global.empty()) return Status::InvalidArgument("FedAvg: the global model has no tensors");
    layout_ = core::ModelState::ZerosLike(global);
    return core::CatchTorch("averaging on " + device_.str(), [&] {
      mean_ = std::make_unique<DeviceMean>(static_cast<std::int64_t>(layout_.numel()), device_);
    });
  }

  Status Accumulate(algorithms::ClientUpdate update) override {
    if (!mean_) return Status::FailedPrecondition("FedAvg: Accumulate before Begin");
    const std::string who = "client " + std::to_string(update.client_id);
    FEDML_RETURN_IF_ERROR(layout_.CheckSameLayout(update.state, who + "'s update"));
    if (update.num_samples <= 0) {
      return Status::InvalidArgument(who + ": num_samples must be > 0, got " +
                                     std::to_string(update.num_samples));
    }
    const torch::Tensor host = torch::from_blob(
        update.state.data(), {static_cast<std::int64_t>(update.state.numel())}, torch::kFloat32);
    return mean_->Add(host, static_cast<double>(update.num_samples)).WithContext(who + " refused");
  }

  Result<core::ModelState> Finalize() override {
    if (!mean_ || mean_->count() == 0) {
      return Status::FailedPrecondition("FedAvg: no update was accepted this round");
    }
    core::ModelState out = std::move(layout_);  // the next Begin makes the next round's
    const Status copied = core::CatchTorch("copying the mean from " + device_.str(), [&] {
      torch::from_blob(out.data(), {static_cast<std::int64_t>(out.numel())}, torch::kFloat32)
          .copy_(mean_->mean());
    });
    if (!copied.ok()) {
      layout_ = std::move(out);  // the round stays as it was
      return copied;
    }
    mean_.reset();
    return out;
  }

  int accepted() const override { return mean_ ? static_cast<int>(mean_->count()) : 0; }

 private:
  torch::Device device_;
  core::ModelState layout_;
  std::unique_ptr<DeviceMean> mean_;
};

}  // namespace

Result<std::unique_ptr<algorithms::Aggregator>> CreateDeviceFedAvg(const std::string& device) {
  FEDML_ASSIGN_OR_RETURN(torch::Device parsed, core::ParseDevice(device));
  return std::unique_ptr<algorithms::Aggregator>(std::make_unique<DeviceFedAvg>(parsed));
}

}  // namespace fedml::api
