// Training trajectories for verified work: TrainLocal reports checkpoints every interval steps and
// each batch's indices, and a replay of one segment from its checkpoint, with the same seed,
// ends at the next checkpoint (bitwise with the same thread count, within float noise across
// thread counts), while a replay from the wrong start or with the wrong seed does not.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <cmath>

#include "fedml/core/data/dataset.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/train/local_trainer.h"
#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"

using namespace fedml;
using namespace fedml::core;

namespace {

struct Trajectory {
  std::vector<std::int64_t> steps;  // the step count of each checkpoint
  std::vector<ModelState> checkpoints;
  std::vector<std::vector<std::int64_t>> batches;
};

torch::nn::AnyModule Model(const data::Dataset& d) {
  auto m = CreateModel("mlp", d.sample_shape, d.num_classes, 3);
  REQUIRE(m.ok());
  return std::move(m).value();
}

// Trains from `start` over steps [first, stop) and records what the hooks report.
Trajectory Run(const data::SyntheticData& s, const ModelState& start, std::int64_t first,
               std::int64_t stop, std::uint64_t seed, std::int64_t interval) {
  torch::nn::AnyModule model = Model(s.train);
  REQUIRE(LoadStateIntoModule(start, *model.ptr()).ok());
  Trajectory t;
  LocalTrainAdjustments adj;
  adj.first_step = first;
  adj.stop_step = stop;
  adj.checkpoint_interval = interval;
  adj.on_checkpoint = [&](std::int64_t step) {
    auto state = StateFromModule(*model.ptr());
    REQUIRE(state.ok());
    t.steps.push_back(step);
    t.checkpoints.push_back(std::move(state).value());
  };
  adj.on_batch = [&](const std::int64_t* idx, std::size_t n) {
    t.batches.emplace_back(idx, idx + n);
  };
  LocalTrainOptions o;
  o.epochs = 2;
  o.batch_size = 8;
  o.learning_rate = 0.1;
  auto stats = TrainLocal(model, s.train, s.partition.client_indices[0], o, seed, torch::kCPU, adj);
  REQUIRE(stats.ok());
  return t;
}

}  // namespace

TEST_CASE("a replayed segment ends at the committed checkpoint", "[verification][train]") {
  data::SyntheticOptions so;
  so.num_clients = 4;
  so.min_samples = 90;
  so.max_samples = 90;
  auto synthetic = data::GenerateSynthetic(so);
  REQUIRE(synthetic.ok());
  const data::SyntheticData& s = *synthetic;
  auto initial = StateFromModule(*Model(s.train).ptr());
  REQUIRE(initial.ok());
  const std::size_t samples = s.partition.client_indices[0].size();
  const auto per_epoch = static_cast<std::int64_t>((samples + 7) / 8);
  const std::int64_t total = 2 * per_epoch;

  const int threads_before = torch::get_num_threads();
  torch::set_num_threads(1);
  const Trajectory full = Run(s, *initial, 0, -1, 17, 4);
  // Checkpoints at 0, 4, 8, ... and at the end, as the commitment layout expects.
  REQUIRE(static_cast<std::int64_t>(full.checkpoints.size()) == security::NumCheckpoints(total, 4));
  for (std::size_t k = 0; k + 1 < full.steps.size(); ++k) {
    CHECK(full.steps[k] == static_cast<std::int64_t>(4 * k));
  }
  CHECK(full.steps.back() == total);
  CHECK(static_cast<std::int64_t>(full.batches.size()) == total);
  CHECK(full.checkpoints.front() == *initial);

  // Every segment, replayed from its checkpoint with the same seed, ends bit for bit at the next.
  for (std::size_t k = 0; k + 1 < full.checkpoints.size(); ++k) {
    INFO("segment " << k);
    const std::int64_t first = full.steps[k];
    const std::int64_t stop = full.steps[k + 1];
    const Trajectory replay = Run(s, full.checkpoints[k], first, stop, 17, 4);
    REQUIRE(!replay.checkpoints.empty());
    CHECK(replay.steps.back() == stop);
    CHECK(replay.checkpoints.back() == full.checkpoints[k + 1]);
    // And it trained on exactly the committed batches of those steps.
    const std::vector<std::vector<std::int64_t>> committed(full.batches.begin() + first,
                                                           full.batches.begin() + stop);
    CHECK(replay.batches == committed);
  }

  // With two LibTorch threads the same segment lands within float noise: the honest threshold.
  const std::size_t mid = full.checkpoints.size() / 2;
  torch::set_num_threads(2);
  const Trajectory threaded =
      Run(s, full.checkpoints[mid], full.steps[mid], full.steps[mid + 1], 17, 4);
  torch::set_num_threads(1);
  auto noise = security::StateL2Distance(threaded.checkpoints.back(), full.checkpoints[mid + 1]);
  REQUIRE(noise.ok());
  CHECK(*noise < 1e-4);

  // A cheat's segment: another seed (other batches), or a start that skipped training, is far.
  const Trajectory other_seed =
      Run(s, full.checkpoints[mid], full.steps[mid], full.steps[mid + 1], 18, 4);
  auto far = security::StateL2Distance(other_seed.checkpoints.back(), full.checkpoints[mid + 1]);
  REQUIRE(far.ok());
  CHECK(*far > 100 * std::max(*noise, 1e-7));
  auto skipped = security::StateL2Distance(full.checkpoints[mid], full.checkpoints[mid + 1]);
  REQUIRE(skipped.ok());
  CHECK(*skipped > 100 * std::max(*noise, 1e-7));
  torch::set_num_threads(threads_before);
}
