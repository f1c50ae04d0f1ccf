// A ClientTrainer for tests of weighted aggregation that need no LibTorch, and FedAvg's step
// over it, so a test can compute the mean a round must give.
#pragma once

#include <vector>

#include "fedml/api/client_trainer.h"

namespace fedml::testing {

using api::ClientTrainer;
using api::EvalTask;
using api::Evaluation;
using api::LocalUpdate;
using api::TrainTask;

// Client c moves every weight by 0.01 (c + 1) and claims 10 (c + 1) samples, so FedAvg's mean
// depends on the weights and the clients of the round.
class WeightedTrainer : public ClientTrainer {
 public:
  Status SetState(const core::ModelState& s) override {
    state_ = s;
    return Status::Ok();
  }
  Result<core::ModelState> GetState() override { return state_; }
  Result<LocalUpdate> Train(const TrainTask& task) override {
    LocalUpdate u;
    u.num_samples = 10 * (task.client_id + 1);
    u.state = state_;
    for (std::size_t i = 0; i < u.state.numel(); ++i) {
      u.state.data()[i] += 0.01f * static_cast<float>(task.client_id + 1) * (i % 2 ? -1.0f : 1.0f);
    }
    u.metrics["train_loss"] = 1.0;
    return u;
  }
  Result<Evaluation> Evaluate(const EvalTask&) override { return Evaluation{0.5, 0.5, 10}; }

 private:
  core::ModelState state_;
};

// FedAvg's weighted mean step over `clients` for WeightedTrainer, for weight 0 (even index).
inline double MeanStep(const std::vector<int>& clients) {
  double num = 0.0;
  double den = 0.0;
  for (int c : clients) {
    num += 10.0 * (c + 1) * 0.01 * (c + 1);
    den += 10.0 * (c + 1);
  }
  return num / den;
}

}  // namespace fedml::testing
