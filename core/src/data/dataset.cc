#include "fedml/core/data/dataset.h"

namespace fedml::core::data {

std::size_t Dataset::sample_numel() const {
  // An empty shape is a scalar sample: one element.
  std::size_t n = 1;
  for (std::int64_t d : sample_shape) n *= static_cast<std::size_t>(d);
  return n;
}

}  // namespace fedml::core::data
