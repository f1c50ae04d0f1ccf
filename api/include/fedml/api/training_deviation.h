// How the attack harness (fedml/api/client_pipeline.h) makes a simulated attacker train
// differently from an honest client. Kept apart from ClientTrainer and TrainTask so that a user's
// trainer never sees attack knobs: only a trainer that opts in by implementing DeviatingTrainer
// can host the attacks that change training itself.
#pragma once

#include "fedml/api/client_trainer.h"
#include "fedml/core/status.h"

namespace fedml::api {

/// A simulated attacker's deviation from the task it was given.
struct TrainingDeviation {
  /// label_flipping: train on labels y -> num_classes - 1 - y.
  bool flip_labels = false;
  /// fewer_steps: train only the first ceil(step_fraction x steps) of the task's optimizer steps;
  /// in (0, 1].
  double step_fraction = 1.0;
};

/// Implemented by a trainer that can host label_flipping and fewer_steps (TorchClientTrainer
/// does). The harness looks for it on the trainer it wraps and, through ForwardingClientTrainer
/// wrappers, on the trainers under it (FindDeviatingTrainer); where there is none it refuses those
/// two attacks by name and runs every other. Same threading contract as ClientTrainer.
class DeviatingTrainer {
 public:
  virtual ~DeviatingTrainer() = default;
  /// ClientTrainer::Train with `deviation` applied; INVALID_ARGUMENT on a step_fraction outside
  /// (0, 1].
  virtual Result<LocalUpdate> TrainDeviating(const TrainTask& task,
                                             const TrainingDeviation& deviation) = 0;
};

/// The first DeviatingTrainer among `trainer` and the trainers it forwards to, or nullptr.
/// Not owned: it lives as long as `trainer`.
DeviatingTrainer* FindDeviatingTrainer(ClientTrainer& trainer);

}  // namespace fedml::api
