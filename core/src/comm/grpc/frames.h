// The chunked frame protocol of the deployment service (core/proto/fedml_service.proto): a wire
// frame travels as FrameChunks, written by WriteFrame and rebuilt by FrameReader. Private to the
// gRPC communicators (grpc_communicator.cc) and the tools that speak the protocol without them
// (benchmarks/grpc/loadgen_bench.cc, whose simulated clients use gRPC's callback API), so both
// ends cut and check chunks one way.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "fedml/core/bytes.h"
#include "fedml_service.grpc.pb.h"

namespace fedml::core::grpc_comm {

/// The metadata entry that carries a client's token (TLS without client certificates).
inline constexpr const char* kTokenKey = "x-fedml-token";
/// gRPC refuses messages over 4 MiB unless told otherwise; our chunks stay far below this.
inline constexpr int kMaxGrpcMessage = 64 << 20;
inline constexpr std::size_t kMaxChunkBytes = std::size_t{32} << 20;

/// The next chunk of `frame` from *offset into *chunk (at most chunk_bytes of data); advances
/// *offset. A frame of 0 bytes is one empty chunk (the reader needs frame_bytes to finish it).
/// For writers that send one chunk per callback (gRPC's callback API).
inline void FillChunk(const Bytes& frame, std::size_t chunk_bytes, std::size_t* offset,
                      fedml::service::FrameChunk* chunk) {
  const std::size_t len = std::min(chunk_bytes, frame.size() - *offset);
  chunk->set_offset(*offset);
  chunk->set_frame_bytes(frame.size());
  chunk->set_data(reinterpret_cast<const char*>(frame.data()) + *offset, len);
  *offset += len;
}

/// Writes `frame` as FrameChunks through `write` (a ClientWriter's Write, or anything that takes
/// a chunk and says whether it went out); false when a write failed.
template <class WriteFn>
bool WriteFrame(const Bytes& frame, std::size_t chunk_bytes, WriteFn&& write) {
  fedml::service::FrameChunk chunk;
  std::size_t offset = 0;
  do {
    FillChunk(frame, chunk_bytes, &offset, &chunk);
    if (!write(chunk)) return false;
  } while (offset < frame.size());
  return true;
}

/// Rebuilds one frame from FrameChunks, refusing gaps, overlaps, overruns and oversize frames.
class FrameReader {
 public:
  explicit FrameReader(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}

  /// OK while the chunk fits; the frame is done() when every announced byte arrived.
  grpc::Status Add(const fedml::service::FrameChunk& c) {
    if (!started_) {
      if (c.offset() != 0) {
        return {grpc::StatusCode::INVALID_ARGUMENT, "the first chunk starts at offset " +
                                                        std::to_string(c.offset()) +
                                                        "; a frame's chunks must start at 0"};
      }
      if (c.frame_bytes() > max_bytes_) {
        return {grpc::StatusCode::RESOURCE_EXHAUSTED, "a " + std::to_string(c.frame_bytes()) +
                                                          "-byte frame is over the limit of " +
                                                          std::to_string(max_bytes_) + " bytes"};
      }
      // At most kReserveAhead is reserved before bytes arrive; beyond it memory follows the bytes
      // that do, so a client that announces max_frame_bytes and sends nothing holds at most that.
      // (Reserving ahead keeps the copies of geometric growth off a typical model's push: with a
      // 1 MiB start a 100 MB push was copied 7 times and ran at 0.6 of its former speed.)
      total_ = c.frame_bytes();
      started_ = true;
    } else if (c.frame_bytes() != total_) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "a chunk announces " + std::to_string(c.frame_bytes()) +
                  " bytes where the frame has " + std::to_string(total_)};
    }
    if (c.offset() != frame_.size()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "a chunk at offset " + std::to_string(c.offset()) + " where " +
                  std::to_string(frame_.size()) + " was expected (a gap or a repeat)"};
    }
    if (c.data().size() > total_ - frame_.size()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "chunks run past the announced " + std::to_string(total_) + " bytes"};
    }
    const std::uint64_t needed = frame_.size() + c.data().size();
    if (needed > frame_.capacity()) {
      // Geometric growth (amortised copies), never past the announced size.
      const std::uint64_t want =
          std::max<std::uint64_t>({std::uint64_t{frame_.capacity()} * 2, needed, kReserveAhead});
      frame_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(want, total_)));
    }
    frame_.insert(frame_.end(), c.data().begin(), c.data().end());
    return grpc::Status::OK;
  }
  bool started() const { return started_; }
  bool done() const { return started_ && frame_.size() == total_; }
  std::string progress() const {
    return std::to_string(frame_.size()) + " of " + std::to_string(total_) + " bytes";
  }
  Bytes Take() { return std::move(frame_); }

 private:
  static constexpr std::uint64_t kReserveAhead = std::uint64_t{64} << 20;
  std::uint64_t max_bytes_;
  bool started_ = false;
  std::uint64_t total_ = 0;
  Bytes frame_;
};

}  // namespace fedml::core::grpc_comm
