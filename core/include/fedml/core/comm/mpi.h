// OpenMPI communicator backend: ranks are MPI processes (one machine or a cluster).
//
// One progress thread per communicator owns every MPI call, so the library needs
// MPI_THREAD_SERIALIZED (or MULTIPLE) and checks it at start-up. Frames are byte buffers, sent as
// a 16-byte header (size, chunk count) followed by chunks of at most `chunk_bytes`, so payloads
// past MPI's int count limit (2 GiB) go through; receives are sized by MPI_Probe/Get_count.
// No MPI call blocks a caller: Send queues the frame, Recv waits on the inbox with its deadline.
//
// Ranks on the same node bypass MPI: at creation they map one shared-memory segment (unlinked at
// once, so nothing is left in /dev/shm even if a rank is killed) with a byte ring per ordered
// pair. Send copies into the ring as far as it has room and leaves the rest to the library; a
// caller in Recv copies arriving frames out itself for up to 2 ms after the last byte moved, then
// leaves that to the progress thread. Should the segment not be set up (/dev/shm full, say), a
// warning says why and those ranks use MPI. Ranks on other nodes always use MPI.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <memory>

#include "fedml/core/comm/communicator.h"

namespace fedml::core::mpi {

/// Initialises MPI (MPI_Init_thread with MPI_THREAD_SERIALIZED) unless it already is, and
/// finalises it on destruction if it initialised it. Create one per process, before any
/// communicator, and destroy it after them. Not copyable.
///
/// MPI_Finalize is collective: with a rank dead (a job run with mpirun --enable-recovery) it can
/// wait forever for it, and Debian's OpenMPI has no fault tolerance to tell it otherwise. So the
/// destructor gives it finalize_timeout; past that it prints why and ends the process with
/// exit_code_if_stuck (nothing is lost by then: results are written before it runs).
class Environment {
 public:
  /// FAILED_PRECONDITION when the MPI library cannot provide MPI_THREAD_SERIALIZED.
  static Result<std::unique_ptr<Environment>> Create(int* argc, char*** argv);
  ~Environment();
  /// The process's exit status should MPI_Finalize not return in time (0 by default).
  void set_exit_code_if_stuck(int code) { exit_code_if_stuck_ = code; }
  std::chrono::milliseconds finalize_timeout{30000};
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

 private:
  explicit Environment(bool owns) : owns_(owns) {}
  bool owns_;
  int exit_code_if_stuck_ = 0;
};

struct Options {
  /// Largest single MPI message; frames above it are split. Tests lower it to exercise the
  /// splitting that 2 GiB+ payloads need. Must be in [1, INT_MAX].
  std::size_t chunk_bytes = std::size_t{1} << 30;
  /// Buffers of completed sends kept to receive into (each up to the largest frame sent): a
  /// recycled buffer is already mapped, a fresh one page-faults on every 4 KiB. 0 turns it off.
  std::size_t recycled_buffers = 2;
  /// How long the destructor waits for queued sends to complete before dropping them.
  std::chrono::milliseconds flush_timeout{10000};
  /// Ranks on one node exchange frames through rings in a shared-memory segment the library
  /// owns, with this many bytes per ordered pair of ranks (fewer on nodes with more than 23
  /// ranks, so that a node's segment stays within 256 MiB), instead of through MPI. 0 sends
  /// everything through MPI. The ranks of a node use the smallest value any of them gives. At
  /// most 2^30. 512 KiB measured best for 1 MB models (the ring stays in a core's L2 cache).
  std::size_t shared_memory_ring_bytes = std::size_t{512} << 10;
};

/// A communicator over `comm` (duplicated, so the library's traffic never mixes with the
/// caller's; the caller keeps ownership of `comm`). Requires MPI to be initialised with at least
/// MPI_THREAD_SERIALIZED. The progress thread polls with a short back-off when idle, so an idle
/// rank costs little CPU. Destruction flushes pending sends (bounded by flush_timeout) and frees
/// the duplicate; it never calls MPI_Abort.
Result<std::unique_ptr<Communicator>> CreateCommunicator(MPI_Comm comm, Options options = {});

}  // namespace fedml::core::mpi
