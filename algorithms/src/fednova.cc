#include "fedml/algorithms/fednova.h"

#include <cmath>
#include <string>

namespace fedml::algorithms {

double FedNovaEffectiveSteps(double steps, double rho) {
  if (rho == 0.0) return steps;
  return (steps - rho * (1.0 - std::pow(rho, steps)) / (1.0 - rho)) / (1.0 - rho);
}

FedNova::FedNova(FedNovaOptions options) : options_(options) {}

Status FedNova::Begin(const core::ModelState& global, const RoundInfo& /*info*/) {
  if (global.empty()) return Status::InvalidArgument("FedNova: the global model has no tensors");
  global_ = global;
  sum_.assign(global.numel(), 0.0);
  samples_ = 0.0;
  weighted_steps_ = 0.0;
  accepted_ = 0;
  begun_ = true;
  return Status::Ok();
}

Status FedNova::Accumulate(ClientUpdate update) {
  if (!begun_) return Status::FailedPrecondition("FedNova: Accumulate called before Begin");
  const std::string who = "FedNova: update from client " + std::to_string(update.client_id);
  FEDML_RETURN_IF_ERROR(global_.CheckSameLayout(update.state, who));
  if (update.num_samples <= 0) {
    return Status::InvalidArgument(who + " has num_samples " + std::to_string(update.num_samples) +
                                   "; the sample count must be > 0");
  }
  const auto steps = update.metrics.find("steps");
  if (steps == update.metrics.end() || !(steps->second >= 1)) {
    return Status::InvalidArgument(
        who + " carries no local step count (metrics \"steps\" >= 1); FedNova normalises by it");
  }
  FEDML_RETURN_IF_ERROR(update.state.CheckFinite().WithContext(who));
  const double a = FedNovaEffectiveSteps(steps->second, options_.client_momentum);
  const double n = static_cast<double>(update.num_samples);
  const double w = n / a;
  const float* x = global_.data();
  const float* xi = update.state.data();
  for (std::size_t i = 0; i < sum_.size(); ++i) {
    sum_[i] += w * (static_cast<double>(x[i]) - static_cast<double>(xi[i]));
  }
  samples_ += n;
  weighted_steps_ += n * a;
  ++accepted_;
  return Status::Ok();
}

Result<core::ModelState> FedNova::Finalize() {
  if (!begun_) return Status::FailedPrecondition("FedNova: Finalize called before Begin");
  if (accepted_ == 0) return Status::FailedPrecondition("FedNova: no update was accepted");
  const double tau_eff = weighted_steps_ / samples_;
  const double scale = tau_eff / samples_;
  core::ModelState out = std::move(global_);
  float* x = out.data();
  for (std::size_t i = 0; i < sum_.size(); ++i) {
    x[i] = static_cast<float>(static_cast<double>(x[i]) - scale * sum_[i]);
  }
  figures_ = {{"fednova_tau_eff", tau_eff}};
  begun_ = false;
  return out;
}

}  // namespace fedml::algorithms
