// Built-in models of McMahan et al. (2017), by FedML's `model` names.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core {

/// Multinomial logistic regression: flatten -> Linear(input, classes). FedML's `lr`.
struct LogisticRegressionImpl : torch::nn::Module {
  LogisticRegressionImpl(std::int64_t input_dim, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(LogisticRegression);

/// The 2NN: flatten -> 200 -> ReLU -> 200 -> ReLU -> classes. FedML's `mlp`.
struct MlpImpl : torch::nn::Module {
  MlpImpl(std::int64_t input_dim, std::int64_t num_classes, std::int64_t hidden = 200);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};
TORCH_MODULE(Mlp);

/// McMahan's CNN for 28x28 inputs: conv5x5(32) -> ReLU -> maxpool2 -> conv5x5(64) -> ReLU ->
/// maxpool2 -> 512 -> ReLU -> classes (1,663,370 parameters for 10 classes). FedML's `cnn`
/// (CNN_DropOut without dropout, as in the paper's FedAvg experiments).
struct CnnImpl : torch::nn::Module {
  CnnImpl(std::int64_t in_channels, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Cnn);

/// Builds a built-in model by name ("lr", "mlp", "cnn") for samples of `sample_shape` (without
/// the batch dimension). Initial weights come from `seed` alone (LibTorch's default
/// initialisers, run under a private generator), so every process builds the same model.
/// INVALID_ARGUMENT names the allowed models, or the input shape a model needs.
Result<torch::nn::AnyModule> CreateModel(const std::string& name,
                                         const std::vector<std::int64_t>& sample_shape,
                                         std::int64_t num_classes, std::uint64_t seed);

/// Names CreateModel accepts.
std::vector<std::string> ModelNames();

}  // namespace fedml::core
