// libFuzzer target for the wire decoder. Besides "never crash, never read out of bounds" (ASan
// and UBSan check that), it asserts two properties:
//  - whatever Decode accepts re-encodes, and decoding that gives the same frame again;
//  - the streaming path (ChunkAssembler) never crashes on the same bytes cut into chunks.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fedml/core/wire.h"

namespace {

using fedml::core::Bytes;
using fedml::core::ChunkAssembler;
using fedml::core::Decode;
using fedml::core::DecodeLimits;
using fedml::core::Encode;
using fedml::core::EncodeOptions;

// Small limits so that the fuzzer explores the limit checks instead of allocating gigabytes.
DecodeLimits SmallLimits() {
  DecodeLimits limits;
  limits.max_frame_bytes = std::uint64_t{1} << 20;
  limits.max_chunk_bytes = std::uint64_t{256} << 10;
  limits.max_tensors = 256;
  return limits;
}

void CheckReencodes(const fedml::core::Message& message) {
  EncodeOptions options;
  options.chunk_bytes = 1000;  // several data chunks for anything non-trivial
  auto first = Encode(message, options);
  if (!first.ok()) std::abort();  // everything Decode accepts must be describable
  // The re-encoding may be a little larger than the input (canonical form), so decode it with
  // roomier limits.
  DecodeLimits roomy = SmallLimits();
  roomy.max_frame_bytes = std::uint64_t{64} << 20;
  roomy.max_chunk_bytes = std::uint64_t{64} << 20;
  auto again = Decode(*first, roomy);
  if (!again.ok()) std::abort();
  auto second = Encode(*again, options);
  if (!second.ok() || *second != *first) std::abort();
}

// Reads the input as a stream of (u16 length, bytes) chunks for ChunkAssembler.
void FeedAssembler(const std::uint8_t* data, std::size_t size) {
  ChunkAssembler assembler(SmallLimits());
  std::size_t pos = 0;
  while (size - pos >= 2) {
    const std::size_t len = data[pos] | (std::size_t{data[pos + 1]} << 8);
    pos += 2;
    const std::size_t take = len < size - pos ? len : size - pos;
    if (!assembler.Add(data + pos, take).ok()) break;
    pos += take;
  }
  const bool complete = assembler.complete();
  auto message = assembler.Finish();
  if (message.ok() && !complete) std::abort();  // Finish succeeds only on a complete stream
  if (message.ok()) CheckReencodes(*message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto message = Decode(data, size, SmallLimits());
  if (message.ok()) CheckReencodes(*message);
  FeedAssembler(data, size);
  return 0;
}
