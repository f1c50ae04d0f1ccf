// ClientTrainers for tests that need no LibTorch: ScriptedTrainer "trains" by adding 1 to every
// weight and claims 10 samples, or misbehaves in one way; WeightedTrainer's clients differ in
// their steps and sample counts, and MeanStep is FedAvg's step over them.
#pragma once

#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "fedml/api/client_trainer.h"

namespace fedml::testing {

using api::ClientTrainer;
using api::EvalTask;
using api::Evaluation;
using api::LocalUpdate;
using api::TrainTask;

// A trainer that adds 1 to every weight, or misbehaves in one way.
class ScriptedTrainer : public ClientTrainer {
 public:
  enum class Kind { kGood, kWrongShape, kNaN, kFail };
  explicit ScriptedTrainer(Kind kind) : kind_(kind) {}
  Status SetState(const core::ModelState& s) override {
    state_ = s;
    return Status::Ok();
  }
  Result<core::ModelState> GetState() override { return state_; }
  Result<LocalUpdate> Train(const TrainTask&) override {
    LocalUpdate u;
    u.num_samples = 10;
    u.state = state_;
    for (std::size_t i = 0; i < u.state.numel(); ++i) u.state.data()[i] += 1.0f;
    if (kind_ == Kind::kWrongShape) {
      core::ModelState other;
      const float one[] = {1.0f};
      REQUIRE(other.Add("w", {1}, one).ok());
      u.state = std::move(other);
    }
    if (kind_ == Kind::kNaN) u.state.data()[0] = std::numeric_limits<float>::quiet_NaN();
    if (kind_ == Kind::kFail) return Status::Internal("disk on fire");
    return u;
  }
  Result<Evaluation> Evaluate(const EvalTask&) override { return Evaluation{0.5, 0.5, 10}; }

 private:
  Kind kind_;
  core::ModelState state_;
};

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
