// A ClientTrainer for tests that need no LibTorch: it "trains" by adding 1 to every weight and
// claims 10 samples, or misbehaves in one way.
#pragma once

#include <catch2/catch.hpp>

#include <limits>

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

}  // namespace fedml::testing
