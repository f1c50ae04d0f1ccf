// Wire codec: Message <-> bytes, using the versioned Protobuf schema in core/proto/fedml.proto.
//
// A frame is a sequence of chunks so that no single Protobuf message approaches Protobuf's 2 GiB
// limit, whatever the model size:
//
//   frame  := magic "FMLW" | u32 version | chunk*            (all integers little-endian)
//   chunk  := u32 length | WireChunk (Protobuf, length bytes)
//
// The first chunk carries the header (type, round, sender, tensor specs, metrics, ...); the
// following chunks carry the tensor bytes in order, each at most `chunk_bytes` long. Every
// transport moves whole frames made by Encode and read by Decode: in-process and MPI pass them as
// they are, gRPC cuts each frame into FrameChunk messages of its own and puts the frame back
// together before Decode. EncodeChunks and ChunkAssembler, which hand over a frame's chunks one
// by one, are used by no transport; only the tests and the wire fuzzer call them.
//
// Decoding validates everything before touching memory: truncated or oversized frames, chunk
// lengths past the end, a shape whose element count disagrees with the bytes sent, unknown
// dtypes or message types, duplicate tensor names, and (when the receiver forbids them)
// non-finite values. Each failure is an INVALID_ARGUMENT (RESOURCE_EXHAUSTED for size limits)
// whose message names the problem; nothing crashes and nothing reads out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/message.h"
#include "fedml/core/status.h"

namespace fedml::core {

inline constexpr std::uint32_t kWireVersion = 1;

struct EncodeOptions {
  /// Largest tensor-data chunk in bytes (the header chunk is separate). Must be > 0.
  std::size_t chunk_bytes = std::size_t{64} << 20;
};

struct DecodeLimits {
  /// Largest frame (or sum of streamed chunks) accepted, in bytes.
  std::uint64_t max_frame_bytes = std::uint64_t{16} << 30;
  /// Largest single chunk accepted, in bytes.
  std::uint64_t max_chunk_bytes = std::uint64_t{256} << 20;
  /// Largest number of tensors in one model state.
  std::uint32_t max_tensors = 1u << 16;
  /// Caps on what a header makes the decoder allocate, checked by scanning the header's
  /// encoding before Protobuf parses it (a map entry of a few bytes on the wire costs ~100 bytes
  /// parsed, so a frame within max_frame_bytes could otherwise be amplified ~20x). Honest frames
  /// carry a handful of metrics and attrs, at most a few extras, and a model's tensors.
  /// Header bytes other than the blob (which is as large on the wire as in memory).
  std::uint64_t max_header_bytes = std::uint64_t{16} << 20;
  std::uint32_t max_metrics = 4096;
  std::uint32_t max_attrs = 4096;
  std::uint32_t max_extras = 64;
  /// Tensors over the main model and every extra together.
  std::uint32_t max_total_tensors = 1u << 17;
  /// Refuse NaN and Inf in tensor values.
  bool require_finite = true;
};

/// Encodes a whole frame. Fails only for invalid options or a message that cannot be described
/// (for instance an invalid type).
Result<Bytes> Encode(const Message& message, const EncodeOptions& options = {});

/// Decodes and validates a whole frame (see the file comment for what is checked).
Result<Message> Decode(const std::uint8_t* data, std::size_t size, const DecodeLimits& limits = {});
inline Result<Message> Decode(const Bytes& frame, const DecodeLimits& limits = {}) {
  return Decode(frame.data(), frame.size(), limits);
}

/// The chunks of a frame as serialized WireChunk messages (no magic, no length prefixes), for a
/// transport that would stream them one by one (none does: see the file comment). The first
/// element is the header chunk.
Result<std::vector<std::string>> EncodeChunks(const Message& message,
                                              const EncodeOptions& options = {});

/// Rebuilds a Message from streamed chunks. Feed chunks in order with Add(); Finish() validates
/// and returns the message. Not thread-safe; one assembler per stream.
class ChunkAssembler {
 public:
  explicit ChunkAssembler(DecodeLimits limits = {});
  ~ChunkAssembler();
  ChunkAssembler(const ChunkAssembler&) = delete;
  ChunkAssembler& operator=(const ChunkAssembler&) = delete;

  /// Takes one serialized WireChunk. An error poisons the assembler.
  Status Add(const std::uint8_t* data, std::size_t size);
  Status Add(const std::string& chunk) {
    return Add(reinterpret_cast<const std::uint8_t*>(chunk.data()), chunk.size());
  }
  /// True once the header and every tensor byte it announced have arrived.
  bool complete() const;
  /// Validates and returns the message; fails if incomplete.
  Result<Message> Finish();

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace fedml::core
