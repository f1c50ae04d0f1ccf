// Shared memory between the MPI ranks of one node: one segment per node, holding a one-way byte
// ring for every ordered pair of ranks there. Private to fedml_core's MPI backend.
//
// Why: OpenMPI's shared-memory transport (vader) falls into a mode of about 3 GB/s on some
// machines, seen with bare MPI_Send/MPI_Recv too; copying through rings the library owns, with
// the sender's and the receiver's copies overlapping chunk by chunk, runs at the speed the cores
// can move lines between each other, every time.
//
// The segment is a POSIX shared-memory object that is unlinked once every rank of the node has
// mapped it, so a killed rank leaves nothing behind in /dev/shm and the memory goes with the last
// process. Each ring has one writing process and one reading process; positions are 64-bit
// counters in the segment (lock-free atomics are address-free, so they work across processes).
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fedml::core::mpi::shm {

/// The two positions of one ring, each on its own cache line so the writer's and the reader's
/// updates do not share one.
struct alignas(64) RingControl {
  std::atomic<std::uint64_t> written{0};  // bytes published by the writer, ever
  char pad_written[64 - sizeof(std::atomic<std::uint64_t>)];
  std::atomic<std::uint64_t> read{0};  // bytes consumed by the reader, ever
  char pad_read[64 - sizeof(std::atomic<std::uint64_t>)];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "shared-memory rings need address-free 64-bit atomics");

/// The writing end of a ring. Used by one thread at a time (the caller serialises).
class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingControl* control, std::uint8_t* data, std::size_t capacity)
      : control_(control), data_(data), capacity_(capacity) {}
  /// Copies as much of [src, src + n) as fits now and returns how many bytes it copied; never
  /// waits for the reader. Publishes every kPublishBytes, so the reader can copy out the first
  /// part while this copies in the rest.
  std::size_t Write(const std::uint8_t* src, std::size_t n);

 private:
  RingControl* control_ = nullptr;
  std::uint8_t* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t written_ = 0;  // this side's copy of control_->written
};

/// The reading end of a ring. Used by one thread at a time (the caller serialises).
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingControl* control, std::uint8_t* data, std::size_t capacity)
      : control_(control), data_(data), capacity_(capacity) {}
  /// Copies up to n published bytes into dst and returns how many; never waits for the writer.
  std::size_t Read(std::uint8_t* dst, std::size_t n);

 private:
  RingControl* control_ = nullptr;
  std::uint8_t* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t read_ = 0;  // this side's copy of control_->read
};

/// Bytes copied between publications: small enough that the reader starts early, large enough
/// that the position updates (a cache line moving between cores each) cost little.
inline constexpr std::size_t kPublishBytes = std::size_t{32} << 10;

/// One node's segment as this rank sees it: a writer to and a reader from every other rank of
/// the node, indexed by rank in the communicator it was set up on (empty for ranks elsewhere).
class NodeLinks {
 public:
  ~NodeLinks();
  NodeLinks(const NodeLinks&) = delete;
  NodeLinks& operator=(const NodeLinks&) = delete;

  /// Whether `rank` shares the segment (on this node, and not this rank itself).
  bool IsLinked(int rank) const {
    return rank >= 0 && rank < static_cast<int>(linked_.size()) && linked_[rank];
  }
  RingWriter& WriterTo(int rank) { return writers_[static_cast<std::size_t>(rank)]; }
  RingReader& ReaderFrom(int rank) { return readers_[static_cast<std::size_t>(rank)]; }
  /// Ranks this rank is linked to, in increasing order.
  const std::vector<int>& peers() const { return peers_; }
  std::size_t ring_bytes() const { return ring_bytes_; }

 private:
  friend std::unique_ptr<NodeLinks> SetUpNodeLinks(MPI_Comm, std::size_t, std::string*);
  NodeLinks() = default;
  void* base_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  std::size_t ring_bytes_ = 0;
  std::vector<bool> linked_;
  std::vector<int> peers_;
  std::vector<RingWriter> writers_;
  std::vector<RingReader> readers_;
};

/// Collective over `comm`: every rank must call it. Splits `comm` by node, and on each node
/// with two or more ranks creates, maps and unlinks one segment with a ring of `ring_bytes`
/// (the smallest any rank of the node asked for, and less on crowded nodes so that a segment
/// stays within 256 MiB) per ordered pair. Returns null when no rank of this node shares memory
/// with another: alone on its node, ring_bytes 0 on some rank of the node, or a failure
/// (creating, sizing or mapping the segment on any rank of the node), in which case `why_not`
/// says what failed. The ranks of a node always agree on the outcome.
std::unique_ptr<NodeLinks> SetUpNodeLinks(MPI_Comm comm, std::size_t ring_bytes,
                                          std::string* why_not);

}  // namespace fedml::core::mpi::shm
