// The built-in models' names (fedml/core/train/models.h), without LibTorch's headers, for code
// that only checks a name (the config).
#pragma once

#include <string>
#include <vector>

namespace fedml::core {

/// Names CreateModel accepts, in the order messages list them.
std::vector<std::string> ModelNames();

/// Whether `model` names a TorchScript file (it ends in ".pt") rather than a built-in model.
/// CreateModel loads such a file with torch::jit::load; its weights are the file's, not the
/// seed's.
bool IsScriptedModelPath(const std::string& model);

}  // namespace fedml::core
