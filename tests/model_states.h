// Test helper: small model states to aggregate.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/model_state.h"
#include "fedml/core/random.h"

namespace fedml::testing {

/// One float tensor `name` holding `v`.
inline core::ModelState Vector(const std::vector<float>& v, const std::string& name = "w") {
  core::ModelState s;
  REQUIRE(s.Add(name, {static_cast<std::int64_t>(v.size())}, v.data()).ok());
  return s;
}

/// One tensor of `n` values drawn N(0, scale^2) from `rng`.
inline core::ModelState RandomVector(core::Rng& rng, std::size_t n, double scale) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.Normal());
  return Vector(v);
}

}  // namespace fedml::testing
