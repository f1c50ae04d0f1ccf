// The client updates the aggregation benchmarks feed their aggregators: one big tensor and a few
// small ones, as in a real network, with uniform values and sample counts in [100, 1100), from a
// fixed seed so every run aggregates the same inputs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fedml/algorithms/aggregator.h"
#include "fedml/core/random.h"

namespace fedml::bench {

inline Result<std::vector<algorithms::ClientUpdate>> SyntheticUpdates(int clients,
                                                                      std::int64_t params) {
  const std::int64_t small = std::min<std::int64_t>(1000, params / 4);
  const std::vector<std::vector<std::int64_t>> shapes = {
      {small}, {params - 3 * small}, {small}, {small}};
  core::Rng rng(42);
  std::vector<algorithms::ClientUpdate> updates(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    algorithms::ClientUpdate& u = updates[static_cast<std::size_t>(c)];
    u.client_id = c;
    u.round = 0;
    u.num_samples = 100 + static_cast<std::int64_t>(rng.UniformInt(1000));
    for (std::size_t t = 0; t < shapes.size(); ++t) {
      std::vector<float> v(static_cast<std::size_t>(shapes[t][0]));
      for (float& x : v) x = static_cast<float>(rng.Uniform() - 0.5);
      FEDML_RETURN_IF_ERROR(u.state.Add("t" + std::to_string(t), shapes[t], v.data()));
    }
  }
  return updates;
}

}  // namespace fedml::bench
