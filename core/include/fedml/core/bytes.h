// Byte strings and the one little-endian binary encoding every hand-written fedml-cpp format uses
// (Shamir shares, training commitments, secure-aggregation messages, the wire frame's preamble),
// whatever the host's byte order:
//
//   core::Bytes         a byte string (std::vector<std::uint8_t>), in its own small header so that
//                       code that only passes bytes around does not pull in the wire codec;
//   HexEncode / AppendHex / HexDecode
//                       the one lowercase hex text form of bytes (digests, tokens, test pins) and
//                       its strict parser;
//   StoreLe* / LoadLe*  fixed-width little-endian integers at a pointer the caller has checked;
//   ByteWriter          appends integers, IEEE-754 doubles, raw bytes and u32-length-prefixed
//                       byte strings to a buffer it owns;
//   ByteReader          reads the same back from a byte span, bounds-checked: every read returns
//                       a Status or Result, and every error is an INVALID_ARGUMENT naming what
//                       was being decoded, the field, the position and the sizes involved.
//
// A reader never allocates from a length or count it has read before checking that the bytes it
// announces are present (Count, Blob, String), so a forged prefix cannot make it reserve memory.
//
// Thread safety: a ByteWriter or ByteReader is used from one thread at a time; different objects
// are independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core {

using Bytes = std::vector<std::uint8_t>;

// ---- hex ----------------------------------------------------------------------------------------
// Two digits per byte, high nibble first; the encoder writes lowercase only.

/// Appends the lowercase hex of p[0..n) to *out: 2n characters, *out grown once at most. A
/// caller writing secret digits reserves the final size first, so that no copy is left behind.
void AppendHex(const std::uint8_t* p, std::size_t n, std::string* out);
/// The lowercase hex of p[0..n) (an empty string for n == 0).
std::string HexEncode(const std::uint8_t* p, std::size_t n);
inline std::string HexEncode(const Bytes& b) { return HexEncode(b.data(), b.size()); }

/// Which digits HexDecode accepts: kLowerOnly the encoder's form (0-9 a-f), kAnyCase also A-F.
enum class HexCase { kLowerOnly, kAnyCase };

/// The bytes that `hex` spells, two digits a byte (an empty string gives no bytes). Strict: no
/// prefix, sign, separator or whitespace. Otherwise INVALID_ARGUMENT: "hex string has odd length
/// N" or "hex string: <character> at position P is not a hex digit (0-9, a-f)" (P counts from 0;
/// the accepted set as `digits` says; a non-printable character is shown as byte 0xNN).
Result<Bytes> HexDecode(std::string_view hex, HexCase digits = HexCase::kLowerOnly);

// ---- fixed-width little-endian integers at a pointer ------------------------------------------
// For hot loops and fixed buffers; the caller guarantees 4 or 8 bytes at p.

inline void StoreLe32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void StoreLe64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint32_t LoadLe32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t LoadLe64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(LoadLe32(p)) |
         (static_cast<std::uint64_t>(LoadLe32(p + 4)) << 32);
}

// ---- ByteWriter ---------------------------------------------------------------------------------

/// Builds a byte string. Every call appends; nothing fails. Lengths written as u32 prefixes
/// (Blob, String) must be below 2^32: a longer one is a caller error and is cut to its low 32
/// bits, as every fedml format caps its fields far below that.
///
/// Secrets: growing the buffer frees the old one without wiping it. A caller writing secret bytes
/// reserves the final size first (the constructor's argument or Reserve) so that no copy of the
/// secret is left behind, and wipes the result when done.
class ByteWriter {
 public:
  ByteWriter() = default;
  /// Reserves `capacity` bytes up front.
  explicit ByteWriter(std::size_t capacity) { out_.reserve(capacity); }

  void Reserve(std::size_t capacity) { out_.reserve(capacity); }

  ByteWriter& U8(std::uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  ByteWriter& U32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  ByteWriter& U64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  /// The IEEE-754 bits of `v` as a u64 (so -0.0 and NaN payloads are kept).
  ByteWriter& F64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return U64(bits);
  }
  /// `n` bytes as they are, no prefix.
  ByteWriter& Raw(const std::uint8_t* p, std::size_t n);
  ByteWriter& Raw(std::string_view s) {
    return Raw(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }
  /// u32 length | the bytes.
  ByteWriter& Blob(const std::uint8_t* p, std::size_t n) {
    U32(static_cast<std::uint32_t>(n));
    return Raw(p, n);
  }
  ByteWriter& Blob(const Bytes& b) { return Blob(b.data(), b.size()); }
  ByteWriter& String(std::string_view s) {
    return Blob(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }
  /// `n` words as u32 each, no prefix.
  ByteWriter& U32s(const std::uint32_t* words, std::size_t n);

  std::size_t size() const { return out_.size(); }
  const Bytes& bytes() const { return out_; }
  /// The bytes written; the writer is left empty.
  Bytes Take() { return std::move(out_); }

 private:
  Bytes out_;
};

// ---- ByteReader ---------------------------------------------------------------------------------

/// Reads a byte span front to back. The span is not copied and must outlive the reader (and any
/// pointer Raw returns). Field names are used only to build error messages. A read that fails
/// leaves the position where it was, except that Count, Blob, String and Version* may have
/// consumed the prefix they read; callers stop at the first error (the reader does not poison
/// itself, nor does it need to).
class ByteReader {
 public:
  /// `what` names the thing being decoded in every error ("SecAggKeys", "training commitment").
  ByteReader(const std::uint8_t* data, std::size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}
  ByteReader(const Bytes& bytes, std::string what)
      : ByteReader(bytes.data(), bytes.size(), std::move(what)) {}
  /// A temporary would be gone before the first read.
  ByteReader(Bytes&&, std::string) = delete;

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }

  /// OK when at least n bytes remain; otherwise "<what>: truncated in <field> at byte P: it needs
  /// n bytes, R are left".
  Status Need(std::size_t n, std::string_view field) const;

  Result<std::uint8_t> U8(std::string_view field);
  Result<std::uint32_t> U32(std::string_view field);
  Result<std::uint64_t> U64(std::string_view field);
  /// A double from its IEEE-754 bits (any bits: callers check finiteness where they need it).
  Result<double> F64(std::string_view field);
  /// n raw bytes: a pointer into the span, valid as long as the span.
  Result<const std::uint8_t*> Raw(std::size_t n, std::string_view field);
  /// `n` u32 words into `out`, resized to n only after the 4n bytes were found present
  /// ("<what>: <field> count N does not fit in the remaining R bytes (4 per word)").
  Status U32s(std::uint64_t n, std::vector<std::uint32_t>* out, std::string_view field);

  /// Expects the bytes of `magic` next; otherwise "<what>: wrong magic: it does not start with
  /// \"<magic>\"" (or truncated).
  Status Magic(std::string_view magic);
  /// A u8 (Version8) or u32 (Version32) format version that must equal `want`; otherwise
  /// "<what> has format version V; this build reads version W".
  Status Version8(std::uint8_t want);
  Status Version32(std::uint32_t want);

  /// A u32 count of elements each at least `min_bytes` long; refused, before the caller
  /// allocates for it, when count * min_bytes exceeds what remains ("<what>: <field> count N does
  /// not fit in the remaining R bytes").
  Result<std::uint32_t> Count(std::string_view field, std::size_t min_bytes);
  /// u32 length | bytes, into `out`. The length is checked against `max_len` (an error naming
  /// both) and against what remains before `out` is resized.
  Status Blob(Bytes* out, std::string_view field, std::size_t max_len = SIZE_MAX);
  Result<std::string> String(std::string_view field, std::size_t max_len = SIZE_MAX);

  /// OK when every byte was read; otherwise "<what>: N trailing bytes after <after>".
  Status End(std::string_view after = "the message") const;

  /// INVALID_ARGUMENT "<what>: <message>", for the caller's own checks.
  Status Error(std::string_view message) const;

 private:
  // The length prefix of Blob / String, checked; the caller then copies that many bytes.
  Result<std::uint32_t> Length(std::string_view field, std::size_t max_len);
  Status BadVersion(std::uint32_t got, std::uint32_t want) const;

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string what_;
};

}  // namespace fedml::core
