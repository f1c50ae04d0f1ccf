// The built-in models' names (fedml/core/train/models.h), without LibTorch's headers, for code
// that only checks a name (the config).
#pragma once

#include <string>
#include <vector>

namespace fedml::core {

/// Names CreateModel accepts, in the order messages list them.
std::vector<std::string> ModelNames();

}  // namespace fedml::core
