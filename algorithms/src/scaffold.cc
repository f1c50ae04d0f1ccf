#include "fedml/algorithms/scaffold.h"

#include <cmath>
#include <string>

namespace fedml::algorithms {

Scaffold::Scaffold(ScaffoldOptions options)
    : options_(options), mean_(FedAvgOptions{options.fold_width}) {}

Status Scaffold::Begin(const core::ModelState& global, const RoundInfo& info) {
  FEDML_RETURN_IF_ERROR(mean_.Begin(global, info));
  if (server_c_.empty() || !server_c_.CheckSameLayout(global).ok()) {
    server_c_ = core::ModelState::ZerosLike(global);
    client_c_.clear();
  }
  pending_delta_.clear();
  return Status::Ok();
}

std::map<std::string, core::ModelState> Scaffold::TaskExtras(std::int64_t client_id) const {
  std::map<std::string, core::ModelState> extras;
  extras[kScaffoldServerC] = server_c_;
  const auto it = client_c_.find(client_id);
  extras[kScaffoldClientC] =
      it == client_c_.end() ? core::ModelState::ZerosLike(server_c_) : it->second;
  return extras;
}

Status Scaffold::Accumulate(ClientUpdate update) {
  const std::string who = "SCAFFOLD: update from client " + std::to_string(update.client_id);
  const auto delta = update.extras.find(kScaffoldDeltaC);
  if (delta == update.extras.end()) {
    return Status::InvalidArgument(who + " carries no control-variate delta ('" +
                                   std::string(kScaffoldDeltaC) +
                                   "'); is the client running federated_optimizer SCAFFOLD?");
  }
  if (pending_delta_.count(update.client_id)) {
    return Status::InvalidArgument(who + " arrived twice this round");
  }
  FEDML_RETURN_IF_ERROR(server_c_.CheckSameLayout(delta->second, who + ": control-variate delta"));
  FEDML_RETURN_IF_ERROR(delta->second.CheckFinite().WithContext(who + ": control-variate delta"));
  // FedAvg checks finiteness only when it folds; the control variate must not be kept for an
  // update the mean later drops, so the model is checked here.
  FEDML_RETURN_IF_ERROR(update.state.CheckFinite().WithContext(who));
  core::ModelState dc = std::move(delta->second);
  const std::int64_t id = update.client_id;
  update.extras.clear();
  FEDML_RETURN_IF_ERROR(mean_.Accumulate(std::move(update)));
  pending_delta_[id] = std::move(dc);
  return Status::Ok();
}

Result<core::ModelState> Scaffold::Finalize() {
  FEDML_ASSIGN_OR_RETURN(core::ModelState mean, mean_.Finalize());
  const double inv_n = 1.0 / static_cast<double>(std::max(1, options_.client_num_in_total));
  float* c = server_c_.data();
  double c_sq = 0.0;
  for (auto& [id, dc] : pending_delta_) {
    auto [it, fresh] = client_c_.try_emplace(id);
    if (fresh) it->second = core::ModelState::ZerosLike(server_c_);
    float* ci = it->second.data();
    const float* d = dc.data();
    for (std::size_t i = 0; i < server_c_.numel(); ++i) {
      ci[i] += d[i];
      c[i] = static_cast<float>(static_cast<double>(c[i]) + inv_n * static_cast<double>(d[i]));
    }
  }
  for (std::size_t i = 0; i < server_c_.numel(); ++i) c_sq += static_cast<double>(c[i]) * c[i];
  figures_ = {{"scaffold_c_norm", std::sqrt(c_sq)}};
  pending_delta_.clear();
  return mean;
}

std::map<std::string, core::ModelState> Scaffold::SaveState() const {
  std::map<std::string, core::ModelState> state;
  if (server_c_.empty()) return state;
  state[kScaffoldServerC] = server_c_;
  for (const auto& [id, c] : client_c_) {
    state[std::string(kScaffoldClientC) + "/" + std::to_string(id)] = c;
  }
  return state;
}

Status Scaffold::RestoreState(const std::map<std::string, core::ModelState>& state) {
  const auto c = state.find(kScaffoldServerC);
  if (c == state.end()) return Status::Ok();
  std::map<std::int64_t, core::ModelState> clients;
  const std::string prefix = std::string(kScaffoldClientC) + "/";
  for (const auto& [name, value] : state) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    FEDML_RETURN_IF_ERROR(c->second.CheckSameLayout(value, "SCAFFOLD: the checkpoint's " + name));
    try {
      clients[std::stoll(name.substr(prefix.size()))] = value;
    } catch (const std::exception&) {
      return Status::InvalidArgument("SCAFFOLD: the checkpoint names a control variate '" + name +
                                     "' without a client id");
    }
  }
  server_c_ = c->second;
  client_c_ = std::move(clients);
  return Status::Ok();
}

}  // namespace fedml::algorithms
