// TorchScript models (private to core/src/train; CreateModel's path).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core {

/// The model at `path` (a torch.jit export) as a module whose parameters and buffers are the
/// scripted module's own, under their own names. INVALID_ARGUMENT naming the file when LibTorch
/// cannot load it, when a batch of samples of `sample_shape` does not run through it, or when
/// its output is not [batch, num_classes] (both shapes named).
Result<torch::nn::AnyModule> LoadScriptedModel(const std::string& path,
                                               const std::vector<std::int64_t>& sample_shape,
                                               std::int64_t num_classes);

}  // namespace fedml::core
