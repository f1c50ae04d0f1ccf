// core::ByteWriter and core::ByteReader (fedml/core/bytes.h): the exact bytes each write
// produces, round trips, every truncation refused with the field named, length prefixes and
// counts larger than what remains refused before anything is allocated for them, trailing bytes,
// magic and version checks; HexEncode / AppendHex / HexDecode: the exact digits, round trips,
// the case policy, odd lengths and non-hex characters refused with their position.
#include "fedml/core/bytes.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using fedml::StatusCode;
using fedml::core::ByteReader;
using fedml::core::Bytes;
using fedml::core::ByteWriter;
using fedml::core::HexCase;
using fedml::core::HexDecode;
using fedml::core::HexEncode;

// A reader over a temporary would read freed memory: refused at compile time.
static_assert(!std::is_constructible_v<ByteReader, Bytes&&, std::string>);
static_assert(std::is_constructible_v<ByteReader, const Bytes&, std::string>);

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void CheckRefused(const fedml::Status& s, const std::string& what) {
  INFO(s.ToString());
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(Contains(s.message(), what));
}

// One of everything the writer offers, in a known order.
Bytes Sample() {
  ByteWriter w;
  const std::uint32_t words[] = {7, 0xfffffffeu};
  w.Raw("MAGC").U8(3).U32(0x01020304u).U64(0x1122334455667788ULL).F64(-0.0);
  w.Blob(Bytes{9, 8, 7}).String("hi").U32s(words, 2).Blob(Bytes{});
  return w.Take();
}

// Reads Sample() back; fails where the bytes do.
fedml::Status ReadSample(ByteReader& r) {
  FEDML_RETURN_IF_ERROR(r.Magic("MAGC"));
  FEDML_RETURN_IF_ERROR(r.Version8(3));
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t a, r.U32("a"));
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t b, r.U64("b"));
  FEDML_ASSIGN_OR_RETURN(const double c, r.F64("c"));
  Bytes blob;
  FEDML_RETURN_IF_ERROR(r.Blob(&blob, "blob"));
  FEDML_ASSIGN_OR_RETURN(const std::string s, r.String("s"));
  std::vector<std::uint32_t> words;
  FEDML_RETURN_IF_ERROR(r.U32s(2, &words, "words"));
  Bytes empty;
  FEDML_RETURN_IF_ERROR(r.Blob(&empty, "empty"));
  CHECK(a == 0x01020304u);
  CHECK(b == 0x1122334455667788ULL);
  CHECK(c == 0.0);
  CHECK(std::signbit(c));
  CHECK(blob == Bytes{9, 8, 7});
  CHECK(s == "hi");
  CHECK(words == std::vector<std::uint32_t>{7, 0xfffffffeu});
  CHECK(empty.empty());
  return r.End();
}

}  // namespace

TEST_CASE("ByteWriter writes little-endian fields and u32 length prefixes", "[bytes]") {
  CHECK(Sample() == Bytes{'M',  'A',  'G',  'C',  3,                       // raw, u8
                          0x04, 0x03, 0x02, 0x01,                          // u32
                          0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // u64
                          0,    0,    0,    0,    0,    0,    0,    0x80,  // -0.0
                          3,    0,    0,    0,    9,    8,    7,           // blob
                          2,    0,    0,    0,    'h',  'i',               // string
                          7,    0,    0,    0,    0xfe, 0xff, 0xff, 0xff,  // u32s
                          0,    0,    0,    0});                           // empty
  ByteWriter w;
  CHECK(w.size() == 0);
  w.U64(1);
  CHECK(w.size() == 8);
  CHECK(w.bytes() == Bytes{1, 0, 0, 0, 0, 0, 0, 0});
  const Bytes taken = w.Take();
  CHECK(taken.size() == 8);
  w.U8(5);
  CHECK(w.bytes() == Bytes{5});
}

TEST_CASE("ByteWriter keeps a reservation: no reallocation up to it", "[bytes]") {
  ByteWriter w(64);
  w.U32(1);
  const std::uint8_t* at = w.bytes().data();
  for (int i = 0; i < 15; ++i) w.U32(static_cast<std::uint32_t>(i));
  CHECK(w.size() == 64);
  CHECK(w.bytes().data() == at);
}

TEST_CASE("StoreLe / LoadLe agree with the writer", "[bytes]") {
  std::uint8_t b[8];
  fedml::core::StoreLe32(b, 0xa1b2c3d4u);
  CHECK(Bytes(b, b + 4) == ByteWriter().U32(0xa1b2c3d4u).Take());
  CHECK(fedml::core::LoadLe32(b) == 0xa1b2c3d4u);
  fedml::core::StoreLe64(b, 0x0102030405060708ULL);
  CHECK(Bytes(b, b + 8) == ByteWriter().U64(0x0102030405060708ULL).Take());
  CHECK(fedml::core::LoadLe64(b) == 0x0102030405060708ULL);
}

TEST_CASE("ByteReader reads back what ByteWriter wrote", "[bytes]") {
  const Bytes b = Sample();
  ByteReader r(b, "sample");
  REQUIRE(ReadSample(r).ok());
  CHECK(r.position() == b.size());
  CHECK(r.remaining() == 0);

  ByteReader empty(nullptr, 0, "nothing");
  CHECK(empty.Need(0, "x").ok());
  CHECK(empty.End().ok());
  CheckRefused(empty.U8("x").status(), "nothing: truncated in x at byte 0");
}

TEST_CASE("ByteReader refuses every truncation, naming what and the field", "[bytes]") {
  const Bytes b = Sample();
  for (std::size_t n = 0; n < b.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    ByteReader r(b.data(), n, "sample");
    const fedml::Status s = ReadSample(r);
    CheckRefused(s, "sample: ");
    // Cut words are a count that does not fit (U32s's count is the caller's, not a prefix).
    CHECK((Contains(s.message(), "truncated in ") || Contains(s.message(), "does not fit")));
  }
  // The exact form: what, field, position, sizes.
  const Bytes three = {1, 2, 3};
  ByteReader r(three, "SecAggKeys");
  const auto u = r.U64("round_id");
  REQUIRE_FALSE(u.ok());
  CHECK(u.status().message() ==
        "SecAggKeys: truncated in round_id at byte 0: it needs 8 bytes, 3 are left");
  CHECK(r.position() == 0);  // a failed read moves nothing
  CHECK(r.U8("first").ok());
  CheckRefused(r.U32("next").status(), "truncated in next at byte 1: it needs 4 bytes, 2 are left");
}

TEST_CASE("ByteReader refuses trailing bytes", "[bytes]") {
  Bytes b = Sample();
  b.push_back(0);
  b.push_back(0);
  ByteReader r(b, "sample");
  CheckRefused(ReadSample(r), "sample: 2 trailing bytes after the message");
  ByteReader other(b, "commitment");
  CHECK(other.Raw(b.size() - 1, "most").ok());
  CheckRefused(other.End("the last field"), "commitment: 1 trailing bytes after the last field");
}

TEST_CASE("ByteReader refuses a wrong magic and an unknown version", "[bytes]") {
  const Bytes b = Sample();
  Bytes magic = b;
  magic[1] = 'X';
  ByteReader m(magic, "sample");
  CheckRefused(m.Magic("MAGC"), "sample: wrong magic: it does not start with \"MAGC\"");
  CHECK(m.position() == 0);
  ByteReader v(b, "sample");
  REQUIRE(v.Magic("MAGC").ok());
  CheckRefused(v.Version8(4), "sample has format version 3; this build reads version 4");
  const Bytes v32 = ByteWriter().U32(2).Take();
  ByteReader w(v32, "frame");
  CheckRefused(w.Version32(1), "frame has format version 2; this build reads version 1");
  ByteReader ok32(v32, "frame");
  CHECK(ok32.Version32(2).ok());
}

// "Before allocating": the outputs keep no capacity, and counts too large for any allocation
// (2^62 words) are refused with a status rather than std::bad_alloc. (A replaced global operator
// new that measured allocations would clash with AddressSanitizer's own in the sanitize build.)
TEST_CASE("ByteReader refuses length prefixes beyond the bytes or the limit, before allocating",
          "[bytes]") {
  // u32 length 0xffffffff, then three bytes.
  const Bytes forged = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  {
    ByteReader r(forged, "msg");
    Bytes out;
    const fedml::Status s = r.Blob(&out, "key");
    CheckRefused(s, "msg: truncated in key at byte 4: it needs 4294967295 bytes, 3 are left");
    CHECK(out.capacity() == 0);
  }
  {
    ByteReader r(forged, "msg");
    const auto s = r.String("name");
    CheckRefused(s.status(), "truncated in name at byte 4");
  }
  // One byte more than remains.
  const Bytes one_over = {4, 0, 0, 0, 1, 2, 3};
  ByteReader r(one_over, "msg");
  CheckRefused(r.String("name").status(), "it needs 4 bytes, 3 are left");
  // Present but above the caller's limit: refused naming both.
  const Bytes long_name = ByteWriter().String("abcdef").Take();
  ByteReader limited(long_name, "commitment");
  CheckRefused(limited.String("name", 5).status(),
               "commitment: name is 6 bytes long; at most 5 are allowed");
  ByteReader exact(long_name, "commitment");
  CHECK(*exact.String("name", 6) == "abcdef");
  // A cut length prefix.
  const Bytes cut = {6, 0};
  ByteReader c(cut, "msg");
  CheckRefused(c.String("name").status(), "truncated in name's length at byte 0");
}

TEST_CASE("ByteReader refuses counts the remaining bytes cannot hold, before allocating",
          "[bytes]") {
  const Bytes forged = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  ByteReader r(forged, "request");
  CheckRefused(r.Count("survivors", 4).status(),
               "request: survivors count 4294967295 does not fit in the remaining 4 bytes");
  ByteReader fits(forged, "request");
  const auto n = fits.Count("survivors", 0);  // zero-size elements: any count fits
  REQUIRE(n.ok());
  CHECK(*n == 0xffffffffu);
  // count * min_bytes overflows 64 bits: still refused.
  ByteReader huge(forged, "request");
  CHECK_FALSE(huge.Count("x", std::numeric_limits<std::size_t>::max() / 2).ok());
  // Exactly enough.
  const Bytes two = {2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0};
  ByteReader exact(two, "request");
  CHECK(*exact.Count("ids", 4) == 2);
  ByteReader short_by_one(two.data(), two.size() - 1, "request");
  CHECK_FALSE(short_by_one.Count("ids", 4).ok());

  // Words: refused without resizing the output, whatever the count (n * 4 overflows here).
  const Bytes words = {1, 0, 0, 0, 2, 0, 0};
  for (std::uint64_t count : {std::uint64_t{2}, std::uint64_t{1} << 62, ~std::uint64_t{0}}) {
    ByteReader w(words, "masked input");
    std::vector<std::uint32_t> out;
    CheckRefused(w.U32s(count, &out, "masked"),
                 "masked input: masked count " + std::to_string(count) +
                     " does not fit in the remaining 7 bytes (4 per word)");
    CHECK(out.capacity() == 0);
  }
  ByteReader one(words, "masked input");
  std::vector<std::uint32_t> out;
  REQUIRE(one.U32s(1, &out, "masked").ok());
  CHECK(out == std::vector<std::uint32_t>{1});
  CHECK(one.remaining() == 3);
}

TEST_CASE("ByteReader::Raw returns a view into the span", "[bytes]") {
  const Bytes b = {1, 2, 3, 4};
  ByteReader r(b, "raw");
  const auto p = r.Raw(3, "three");
  REQUIRE(p.ok());
  CHECK(*p == b.data());
  CHECK(r.remaining() == 1);
  CheckRefused(r.Raw(2, "two").status(), "raw: truncated in two at byte 3");
  CheckRefused(r.Error("custom"), "raw: custom");
}

TEST_CASE("HexEncode writes two lowercase digits per byte, high nibble first", "[bytes][hex]") {
  CHECK(HexEncode(Bytes{}).empty());
  CHECK(HexEncode(Bytes{0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff}) == "00017f80abcdefff");
  const std::uint8_t raw[] = {0xde, 0xad};
  CHECK(HexEncode(raw, 2) == "dead");
  CHECK(HexEncode(raw, 0).empty());
  // AppendHex appends, and keeps a reservation.
  std::string out = "0x";
  out.reserve(16);
  const char* at = out.data();
  fedml::core::AppendHex(raw, 2, &out);
  CHECK(out == "0xdead");
  CHECK(out.data() == at);
}

TEST_CASE("HexDecode reads back what HexEncode wrote", "[bytes][hex]") {
  Bytes all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string hex = HexEncode(all);
  CHECK(hex.size() == 512);
  for (HexCase digits : {HexCase::kLowerOnly, HexCase::kAnyCase}) {
    const auto back = HexDecode(hex, digits);
    REQUIRE(back.ok());
    CHECK(*back == all);
  }
  const auto empty = HexDecode("");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  const auto mixed = HexDecode("aBcDeF09", HexCase::kAnyCase);
  REQUIRE(mixed.ok());
  CHECK(*mixed == Bytes{0xab, 0xcd, 0xef, 0x09});
}

TEST_CASE("HexDecode refuses odd lengths and non-hex characters, naming the position",
          "[bytes][hex]") {
  CheckRefused(HexDecode("abc").status(), "hex string has odd length 3");
  CheckRefused(HexDecode("a", HexCase::kAnyCase).status(), "hex string has odd length 1");
  CheckRefused(HexDecode("00g1").status(),
               "hex string: 'g' at position 2 is not a hex digit (0-9, a-f)");
  // Uppercase only where the caller asks for it.
  CheckRefused(HexDecode("00aB").status(),
               "hex string: 'B' at position 3 is not a hex digit (0-9, a-f)");
  CheckRefused(HexDecode("0G", HexCase::kAnyCase).status(),
               "hex string: 'G' at position 1 is not a hex digit (0-9, a-f, A-F)");
  // No prefix, sign or whitespace; a non-printable byte is shown by its value.
  CheckRefused(HexDecode("0x12").status(), "'x' at position 1");
  CheckRefused(HexDecode("+1").status(), "'+' at position 0");
  CheckRefused(HexDecode("12 3").status(), "' ' at position 2");
  CheckRefused(HexDecode("1\n").status(), "byte 0x0a at position 1");
  CheckRefused(HexDecode(std::string{'\xff', '0'}).status(), "byte 0xff at position 0");
}
