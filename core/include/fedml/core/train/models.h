// Built-in models by FedML's `model` names: McMahan et al. (2017)'s, and the models of the
// published FL benchmarks (LEAF, FedML, pfl-research).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "fedml/core/status.h"
#include "fedml/core/train/model_names.h"

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

// ---- The model zoo of the published FL benchmarks (model_zoo.cc) ----------------------------

/// pfl-research's CIFAR-10 benchmark CNN (benchmarks/model/pytorch/cnn.py, simple_cnn): conv3x3(32)
/// -> ReLU -> conv3x3(64) -> ReLU -> maxpool2 -> 128 -> ReLU -> classes, Glorot-uniform weights
/// as there. Its two dropout layers are left out (as McMahan's `cnn` leaves its out): dropout
/// draws from the process's generator and would make a run depend on which thread trains which
/// client. `cnn_cifar`.
struct CifarCnnImpl : torch::nn::Module {
  CifarCnnImpl(std::int64_t in_channels, std::int64_t side, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(CifarCnn);

/// LEAF's FEMNIST CNN (models/femnist/cnn.py): conv5x5(32, same) -> ReLU -> maxpool2 ->
/// conv5x5(64, same) -> ReLU -> maxpool2 -> 2048 -> ReLU -> classes. `cnn_femnist`.
struct FemnistCnnImpl : torch::nn::Module {
  FemnistCnnImpl(std::int64_t in_channels, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FemnistCnn);

/// LEAF's Shakespeare model (models/shakespeare/stacked_lstm.py): letter indices -> embedding(8)
/// -> 2-layer LSTM(256) -> the last step's output -> classes. Inputs are float letter indices
/// [batch, sequence] (as the data set holds them), each in [0, vocabulary). `lstm_shakespeare`.
struct CharLstmImpl : torch::nn::Module {
  CharLstmImpl(std::int64_t vocabulary, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Embedding embed{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(CharLstm);

/// A ResNet of basic blocks (He et al. 2016) with batch or group normalisation (GroupNorm with 2
/// groups, Hsieh et al. 2020: BatchNorm's statistics do not average well across non-IID
/// clients). `depths` blocks per stage of `widths` channels, stride 2 from the second stage on,
/// projection shortcuts (1x1 convolution + norm) where the shape changes. The CIFAR ResNets
/// (`resnet20`, `resnet56`: 3 stages of 16/32/64 channels, 3 or 9 blocks each, FedML's benchmark
/// models) and `resnet18` (4 stages of 64..512, 2 blocks each) with a 3x3 stem for images up to
/// 64 pixels a side and ImageNet's 7x7/2 stem with max pooling above. The `_gn` names use
/// GroupNorm.
struct ResNetImpl : torch::nn::Module {
  ResNetImpl(std::int64_t in_channels, std::int64_t side, std::int64_t num_classes,
             const std::vector<int>& depths, const std::vector<std::int64_t>& widths,
             bool group_norm);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Sequential stem{nullptr};
  torch::nn::Sequential stages{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet);

/// Builds a built-in model by name (ModelNames(): "lr", "mlp", "cnn" and the zoo above) for
/// samples of `sample_shape` (without the batch dimension). Initial weights come from `seed` alone
/// (LibTorch's default initialisers, run under a private generator), so every process builds the
/// same model. INVALID_ARGUMENT names the allowed models, or the input shape a model needs.
Result<torch::nn::AnyModule> CreateModel(const std::string& name,
                                         const std::vector<std::int64_t>& sample_shape,
                                         std::int64_t num_classes, std::uint64_t seed);

}  // namespace fedml::core
