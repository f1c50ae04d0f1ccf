// The model zoo of the published FL benchmarks (fedml/core/train/models.h).
#include <string>
#include <vector>

#include "fedml/core/train/models.h"

namespace fedml::core {
namespace {

torch::nn::AnyModule Norm(std::int64_t channels, bool group_norm) {
  if (group_norm) return torch::nn::AnyModule(torch::nn::GroupNorm(2, channels));
  return torch::nn::AnyModule(torch::nn::BatchNorm2d(channels));
}

torch::nn::Conv2d Conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                       std::int64_t padding) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

// conv3x3 -> norm -> ReLU -> conv3x3 -> norm, plus the input (projected where the shape
// changes), -> ReLU.
struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(std::int64_t in, std::int64_t out, std::int64_t stride, bool group_norm)
      : conv1(register_module("conv1", Conv(in, out, 3, stride, 1))),
        conv2(register_module("conv2", Conv(out, out, 3, 1, 1))),
        norm1(Norm(out, group_norm)),
        norm2(Norm(out, group_norm)) {
    register_module("norm1", norm1.ptr());
    register_module("norm2", norm2.ptr());
    if (stride != 1 || in != out) {
      shortcut = register_module(
          "shortcut", torch::nn::Sequential(Conv(in, out, 1, stride, 0), Norm(out, group_norm)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = norm1.forward(conv1->forward(x)).relu_();
    y = norm2.forward(conv2->forward(y));
    y += shortcut.is_empty() ? x : shortcut->forward(x);
    return y.relu_();
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::AnyModule norm1, norm2;  // BatchNorm2d or GroupNorm
  torch::nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BasicBlock);

}  // namespace

CifarCnnImpl::CifarCnnImpl(std::int64_t in_channels, std::int64_t side, std::int64_t num_classes)
    : conv1(register_module("conv1",
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, 32, 3)))),
      conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))),
      fc1(register_module("fc1", torch::nn::Linear(((side - 4) / 2) * ((side - 4) / 2) * 64, 128))),
      fc2(register_module("fc2", torch::nn::Linear(128, num_classes))) {
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(conv1->weight);
  torch::nn::init::xavier_uniform_(conv2->weight);
  torch::nn::init::xavier_uniform_(fc1->weight);
  torch::nn::init::xavier_uniform_(fc2->weight);
  // Channels-last convolutions: oneDNN's fast path on CPUs, as for `cnn` (models.cc).
  for (auto* conv : {&conv1, &conv2}) {
    (*conv)->weight.set_data((*conv)->weight.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

torch::Tensor CifarCnnImpl::forward(torch::Tensor x) {
  x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  x = conv1->forward(x).relu_();
  x = torch::max_pool2d(conv2->forward(x).relu_(), 2);
  x = fc1->forward(x.flatten(1)).relu_();
  return fc2->forward(x);
}

FemnistCnnImpl::FemnistCnnImpl(std::int64_t in_channels, std::int64_t num_classes)
    : conv1(register_module(
          "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, 32, 5).padding(2)))),
      conv2(register_module("conv2",
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)))),
      fc1(register_module("fc1", torch::nn::Linear(7 * 7 * 64, 2048))),
      fc2(register_module("fc2", torch::nn::Linear(2048, num_classes))) {}

torch::Tensor FemnistCnnImpl::forward(torch::Tensor x) {
  x = torch::max_pool2d(conv1->forward(x).relu_(), 2);
  x = torch::max_pool2d(conv2->forward(x).relu_(), 2);
  x = fc1->forward(x.flatten(1)).relu_();
  return fc2->forward(x);
}

CharLstmImpl::CharLstmImpl(std::int64_t vocabulary, std::int64_t num_classes)
    : embed(register_module("embed", torch::nn::Embedding(vocabulary, 8))),
      lstm(register_module(
          "lstm", torch::nn::LSTM(torch::nn::LSTMOptions(8, 256).num_layers(2).batch_first(true)))),
      fc(register_module("fc", torch::nn::Linear(256, num_classes))) {}

torch::Tensor CharLstmImpl::forward(torch::Tensor x) {
  torch::Tensor h = embed->forward(x.to(torch::kLong));
  h = std::get<0>(lstm->forward(h));
  return fc->forward(h.select(1, h.size(1) - 1));
}

ResNetImpl::ResNetImpl(std::int64_t in_channels, std::int64_t side, std::int64_t num_classes,
                       const std::vector<int>& depths, const std::vector<std::int64_t>& widths,
                       bool group_norm) {
  const std::int64_t w0 = widths.front();
  torch::nn::Sequential s;
  if (side <= 64) {
    s->push_back(Conv(in_channels, w0, 3, 1, 1));
    s->push_back(Norm(w0, group_norm));
    s->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  } else {
    s->push_back(Conv(in_channels, w0, 7, 2, 3));
    s->push_back(Norm(w0, group_norm));
    s->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
    s->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  }
  stem = register_module("stem", s);
  torch::nn::Sequential blocks;
  std::int64_t in = w0;
  for (std::size_t stage = 0; stage < depths.size(); ++stage) {
    for (int b = 0; b < depths[stage]; ++b) {
      const std::int64_t stride = stage > 0 && b == 0 ? 2 : 1;
      blocks->push_back(BasicBlock(in, widths[stage], stride, group_norm));
      in = widths[stage];
    }
  }
  stages = register_module("stages", blocks);
  fc = register_module("fc", torch::nn::Linear(in, num_classes));
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = stages->forward(stem->forward(x));
  return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

}  // namespace fedml::core
