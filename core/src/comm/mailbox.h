// What every communicator backend's Recv shares: taking the first matching frame from a queue,
// and the error for a deadline that passed. Private to fedml_core.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
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
      ++queued_[e.source];
      box_.push_back(std::move(e));
    }
    cv_.notify_all();
  }

  /// Queues `e` only while fewer than `max_from_source` envelopes from its source wait; false
  /// (and `e` dropped) otherwise. What bounds the memory one sender can hold in the inbox.
  bool PushIfBelow(Envelope e, std::size_t max_from_source) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::size_t& n = queued_[e.source];
      if (n >= max_from_source) return false;
      ++n;
      box_.push_back(std::move(e));
    }
    cv_.notify_all();
    return true;
  }

  /// How many envelopes from `source` wait to be received.
  std::size_t queued_from(int source) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = queued_.find(source);
    return it == queued_.end() ? 0 : it->second;
  }

  Result<Envelope> Recv(int source, Deadline deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!abort_.ok()) return abort_;
      if (auto e = TakeLocked(source)) return std::move(*e);
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
        if (!abort_.ok()) return abort_;
        if (auto e = TakeLocked(source)) return std::move(*e);
        return RecvDeadlineExceeded(source);
      }
    }
  }

  /// Removes every queued envelope `pred` matches; returns how many.
  template <class Pred>
  int EraseIf(Pred pred) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto before = box_.size();
    for (const Envelope& e : box_) {
      if (pred(e)) --queued_[e.source];
    }
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
  std::optional<Envelope> TakeLocked(int source) {
    auto e = TakeFirstFrom(box_, source);
    if (e) --queued_[e->source];
    return e;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Envelope> box_;
  std::map<int, std::size_t> queued_;  // envelopes in box_ per source
  Status abort_;
};

}  // namespace fedml::core::comm_detail
