// Runs a function when the scope ends, on every return path: how secret scratch gets wiped even
// when a step in between fails.
#pragma once

#include <utility>

namespace fedml::core {

/// Calls f() once, from the destructor. Not copyable or movable; f must not throw.
template <class F>
class Defer {
 public:
  explicit Defer(F f) : f_(std::move(f)) {}
  ~Defer() { f_(); }
  Defer(const Defer&) = delete;
  Defer& operator=(const Defer&) = delete;
  Defer(Defer&&) = delete;
  Defer& operator=(Defer&&) = delete;

 private:
  F f_;
};

}  // namespace fedml::core
