// Communicator: the one transport interface under every mode (in-process, MPI, gRPC).
//
// Transports move opaque byte frames between ranks; only the wire codec (fedml/core/wire.h)
// knows tensors, so backends compile without LibTorch. Rank 0 is the server by convention.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

/// A deadline `timeout` from now.
inline Deadline DeadlineAfter(std::chrono::milliseconds timeout) { return Clock::now() + timeout; }

inline constexpr int kAnySource = -1;

struct Envelope {
  int source = -1;
  std::vector<std::uint8_t> payload;
};

/// Thread safety: Send may be called from several threads at once; Recv from one thread per
/// communicator (the owner's receive loop). Abort may be called from any thread at any time.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Backend name for logs: "inproc", "mpi", "grpc".
  virtual std::string backend() const = 0;

  /// Queues `payload` for `dst` and returns without waiting for the receiver (the payload is
  /// moved from). Errors: INVALID_ARGUMENT for a bad rank, UNAVAILABLE when `dst` is gone,
  /// ABORTED after Abort.
  virtual Status Send(int dst, std::vector<std::uint8_t> payload) = 0;

  /// Waits until a frame from `source` (or any rank, kAnySource) arrives or `deadline` passes.
  /// Frames from one sender arrive in the order they were sent. Errors: DEADLINE_EXCEEDED when
  /// the deadline passes (nothing is consumed), ABORTED after Abort, UNAVAILABLE when `source`
  /// is known to be gone.
  virtual Result<Envelope> Recv(int source, Deadline deadline) = 0;

  /// Wakes every blocked Recv with ABORTED and makes later calls fail. Idempotent.
  virtual void Abort(const Status& reason) = 0;
};

}  // namespace fedml::core
