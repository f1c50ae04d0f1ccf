// What every communicator backend's Recv shares: taking the first matching frame from a queue,
// and the error for a deadline that passed. Private to fedml_core.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
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

/// An inbox with Communicator::Recv's contract: frames from one source come out in order, Recv
/// waits until its deadline, Abort wakes every waiter with ABORTED. Thread-safe.
class Mailbox {
 public:
  void Push(Envelope e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      box_.push_back(std::move(e));
    }
    cv_.notify_all();
  }

  Result<Envelope> Recv(int source, Deadline deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!abort_.ok()) return abort_;
      if (auto e = TakeFirstFrom(box_, source)) return std::move(*e);
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
        if (!abort_.ok()) return abort_;
        if (auto e = TakeFirstFrom(box_, source)) return std::move(*e);
        return RecvDeadlineExceeded(source);
      }
    }
  }

  /// Removes every queued envelope `pred` matches; returns how many.
  template <class Pred>
  int EraseIf(Pred pred) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto before = box_.size();
    box_.erase(std::remove_if(box_.begin(), box_.end(), pred), box_.end());
    return static_cast<int>(before - box_.size());
  }

  /// The first Abort's reason is kept; later calls change nothing.
  void Abort(const Status& reason) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abort_.ok()) {
        abort_ = reason.ok() ? Status::Aborted("communicator aborted") : reason;
      }
    }
    cv_.notify_all();
  }

  Status aborted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return abort_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Envelope> box_;
  Status abort_;
};

}  // namespace fedml::core::comm_detail
