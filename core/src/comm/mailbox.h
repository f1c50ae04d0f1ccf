// What every communicator backend's Recv shares: taking the first matching frame from a queue,
// and the error for a deadline that passed. Private to fedml_core.
#pragma once

#include <deque>
#include <optional>
#include <string>

#include "fedml/core/comm/communicator.h"

namespace fedml::core::comm_detail {

/// Removes and returns the oldest envelope from `source` (any source for kAnySource), if queued.
/// Frames from one sender thus come out in the order they were queued.
inline std::optional<Envelope> TakeFirstFrom(std::deque<Envelope>& box, int source) {
  for (auto it = box.begin(); it != box.end(); ++it) {
    if (source == kAnySource || it->source == source) {
      Envelope e = std::move(*it);
      box.erase(it);
      return e;
    }
  }
  return std::nullopt;
}

inline Status RecvDeadlineExceeded(int source) {
  return Status::DeadlineExceeded(
      "no message from " +
      (source == kAnySource ? std::string("any rank") : "rank " + std::to_string(source)) +
      " before the deadline");
}

}  // namespace fedml::core::comm_detail
