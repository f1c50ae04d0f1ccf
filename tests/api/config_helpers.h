// Test helper: configs built from a base set of keys with some of them replaced.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "fedml/api/config.h"

namespace fedml::testing {

/// BuildConfig of `base` with `extra` on top; the test fails (naming the error) when it is
/// refused.
inline api::Config ConfigWith(api::RawConfig base, const api::RawConfig& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  auto c = api::BuildConfig({}, base);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return *c;
}

/// The message BuildConfig refuses `base` with `extra` on top with; the test fails when it is
/// accepted.
inline std::string ConfigErrorWith(api::RawConfig base, const api::RawConfig& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  auto c = api::BuildConfig({}, base);
  REQUIRE_FALSE(c.ok());
  return c.status().message();
}

}  // namespace fedml::testing
