// Local training and evaluation of a LibTorch module on a client's samples.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fedml/core/data/dataset.h"
#include "fedml/core/status.h"

namespace fedml::core {

struct LocalTrainOptions {
  int epochs = 1;
  int batch_size = 32;
  std::string optimizer = "sgd";  // sgd | adam
  double learning_rate = 0.05;
  double momentum = 0.0;
  double weight_decay = 0.0;
  /// FedProx (Li et al. 2020): adds (mu / 2) ||w - w_start||^2 to the loss, as its gradient
  /// mu (w - w_start) on every parameter, w_start the weights TrainLocal began from. >= 0.
  double proximal_mu = 0.0;
  /// The standard CIFAR augmentation on image batches ([N, C, H, W]): each sample shifted by a
  /// random crop of the image padded by 4 on every side (the padding is 0 after normalisation,
  /// i.e. the mean colour) and flipped left-right with probability 1/2. The draws of step s come
  /// from DeriveSeed(seed, {tag, s}) alone, so a replay of steps (verified work) sees the same
  /// images. Ignored for samples that are not images.
  bool augment_crop_flip = false;
};

/// Per-call changes to local training that strategies and the attack harness ask for.
struct LocalTrainAdjustments {
  /// Added to each parameter's gradient before every step, in module->parameters() order
  /// (SCAFFOLD's c - c_i); empty: none. Each tensor has its parameter's shape.
  std::vector<torch::Tensor> gradient_offset;
  /// Train on y -> num_classes - 1 - y (a simulated label-flipping attacker).
  bool flip_labels = false;

  // Verified work (fedml/core/security/commitment.h). Steps are numbered from 0 across epochs in
  // the order the seed gives; a replay of steps [first_step, stop_step) draws the same batches
  // as the original run and trains only those, so it ends where the original did at stop_step
  // (exactly, for optimizers without state: SGD with momentum 0; with momentum or Adam the
  // optimizer's state at first_step is not restored and the replay differs).
  /// Steps before this one are drawn but not trained. >= 0.
  std::int64_t first_step = 0;
  /// Training stops before this step (-1: at the end of the last epoch).
  std::int64_t stop_step = -1;
  /// With checkpoint_interval > 0 and on_checkpoint set: on_checkpoint(s) runs before every
  /// trained step s that is a multiple of the interval, and once more after the last step taken
  /// (s = the number of that step + 1) unless that step count was just reported; `model` then
  /// holds the weights after s steps.
  std::int64_t checkpoint_interval = 0;
  std::function<void(std::int64_t step)> on_checkpoint;
  /// Called with each trained batch's sample indices (before its step), in order.
  std::function<void(const std::int64_t* indices, std::size_t n)> on_batch;
};

struct LocalTrainStats {
  double mean_loss = 0.0;        // mean training loss over all samples seen
  std::int64_t num_samples = 0;  // distinct samples of the client
  std::int64_t steps = 0;        // optimizer steps taken
};

struct EvalStats {
  double loss = 0.0;  // mean cross-entropy
  double accuracy = 0.0;
  std::int64_t num_samples = 0;
  std::int64_t correct = 0;
};

/// Trains `model` in place with cross-entropy on `data`'s samples `indices`, `epochs` passes in
/// minibatches. The sample order of each epoch is drawn from `seed` (pass
/// DeriveSeed(run seed, {round, client})), so with a fixed LibTorch thread count the result is a
/// pure function of (initial weights, seed, options, data). A fresh optimizer is made per call
/// (FedAvg clients keep no optimizer state across rounds). Errors: INVALID_ARGUMENT for empty
/// `indices` or bad options; INTERNAL carrying LibTorch's message; non-finite loss is
/// FAILED_PRECONDITION (diverged; lower the learning rate).
Result<LocalTrainStats> TrainLocal(torch::nn::AnyModule& model, const data::Dataset& data,
                                   const std::vector<std::int64_t>& indices,
                                   const LocalTrainOptions& options, std::uint64_t seed,
                                   const torch::Device& device,
                                   const LocalTrainAdjustments& adjustments = {});

/// Evaluates `model` on all of `data` (indices empty) or on `indices`, in batches, without
/// gradients.
Result<EvalStats> EvaluateModel(torch::nn::AnyModule& model, const data::Dataset& data,
                                const std::vector<std::int64_t>& indices,
                                const torch::Device& device, int batch_size = 1000);

/// A view of `data`'s features as a [N, sample_shape...] tensor without copying (valid while
/// `data` lives and is not modified).
torch::Tensor FeaturesTensor(const data::Dataset& data);

}  // namespace fedml::core
